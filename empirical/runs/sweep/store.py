"""The results store of a sweep: one Parquet record per unit, PNGs beside it.

Layout of a store directory::

    sweep.json            the measurement settings (their hash is the store's identity)
    parts/<task>.parquet  one file per finished task, written atomically as results arrive
    units.parquet         every unit's newest record (an ``ok`` one before a ``failed`` one)
    images/<model>/<layer>/unit_0007_max.png ...

A part is written by the driver alone (one writer), by rename, so a crash leaves whole parts
only; a rerun reads them back and skips every unit that finished with the same settings.
``pandas.read_parquet(store / "units.parquet")`` gives the table.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fvtrust.io import atomic_write_json, atomic_write_with
from fvtrust.stages import StageDamaged, read_record

#: columns every record has, whatever was measured (measurement columns follow them).
KEY_COLUMNS = ("model", "weights", "layer", "unit")
META_COLUMNS = (*KEY_COLUMNS, "status", "error", "config_hash", "seed", "device", "worker",
                "seconds", "finished", "versions")
UNITS_FILE = "units.parquet"
MODELS_FILE = "models.parquet"


class StoreMismatch(ValueError):
    """The store under this directory was written with other settings."""


def unit_key(record: dict[str, Any]) -> tuple[str, str, str, int]:
    """(model, weights, layer, unit); a model's own record has no layer or unit: "" and -1."""
    return (record["model"], record["weights"] or "", record.get("layer", ""), int(record.get("unit", -1)))


def _atomic_write_table(table: Any, path: Path) -> Path:
    import pyarrow.parquet as pq

    return atomic_write_with(path, lambda tmp: pq.write_table(table, tmp))


def _atomic_write_bytes(data: bytes, path: Path) -> Path:
    return atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(data))


class SweepStore:
    """Open (or create) the store at `root` for `settings`; a store written with other
    settings is refused unless ``force`` (which clears its records)."""

    def __init__(self, root: str | Path, settings: dict[str, Any], settings_hash: str,
                 force: bool = False) -> None:
        self.root = Path(root)
        self.parts = self.root / "parts"
        self.settings_hash = settings_hash
        meta_path = self.root / "sweep.json"
        try:
            meta = read_record(meta_path, ("settings_hash",))
        except StageDamaged:
            raise StoreMismatch(f"{meta_path} is damaged; pass --force to start the store "
                                f"afresh") from None
        if meta is not None:
            if meta["settings_hash"] != settings_hash:
                if not force:
                    changed = sorted(k for k in set(settings) | set(meta.get("settings", {}))
                                     if settings.get(k) != meta.get("settings", {}).get(k))
                    raise StoreMismatch(
                        f"the store {self.root} was written with other settings (changed: "
                        f"{', '.join(changed) or 'unknown'}); pass --force to recompute it, or "
                        f"choose another --out")
                self.clear()
        elif force:
            self.clear()
        atomic_write_json(meta_path, {"settings": settings, "settings_hash": settings_hash})

    def clear(self) -> None:
        """Drop every record (images are overwritten as units are recomputed)."""
        for parts in (self.parts, self._parts(models=True)):
            for path in parts.glob("*.parquet") if parts.exists() else []:
                path.unlink()
        (self.root / UNITS_FILE).unlink(missing_ok=True)
        (self.root / MODELS_FILE).unlink(missing_ok=True)

    def _parts(self, models: bool) -> Path:
        return self.root / "model_parts" if models else self.parts

    def records(self, models: bool = False) -> list[dict[str, Any]]:
        """Every record of every part (unit records, or per-model ones), oldest part first."""
        import pyarrow.parquet as pq

        out: list[dict[str, Any]] = []
        parts = self._parts(models)
        if not parts.exists():
            return out
        for path in sorted(parts.glob("*.parquet"), key=lambda p: p.stat().st_mtime_ns):
            try:
                out.extend(pq.read_table(path).to_pylist())
            except Exception as exc:  # a part is written by rename, so this is outside damage
                raise StoreMismatch(f"the store part {path} cannot be read ({exc}); delete it "
                                    f"to recompute its units, or pass --force") from None
        return out

    def latest(self, models: bool = False) -> dict[tuple[str, str, str, int], dict[str, Any]]:
        """Per unit (or model), its newest ``ok`` record (else its newest)."""
        best: dict[tuple[str, str, str, int], dict[str, Any]] = {}
        for record in self.records(models):
            key = unit_key(record)
            old = best.get(key)
            if old is None or record["status"] == "ok" or old["status"] != "ok":
                best[key] = record
        return best

    def done(self, config_hashes: dict[tuple[str, str, str, int], str],
             models: bool = False) -> set[tuple[str, str, str, int]]:
        """The units (or models) that finished with the settings they are asked for now."""
        return {key for key, record in self.latest(models).items()
                if record["status"] == "ok" and config_hashes.get(key) == record["config_hash"]}

    def add(self, task: str, records: list[dict[str, Any]], images: dict[str, bytes],
            models: bool = False) -> Path:
        """Write a task's images, then its records (the part last: a part on disk means its
        images are there too)."""
        import pyarrow as pa

        for rel, data in images.items():
            _atomic_write_bytes(data, self.root / rel)
        stamp = time.time()
        for record in records:
            record.setdefault("finished", stamp)
        return _atomic_write_table(pa.Table.from_pylist(records), self._parts(models) / f"{task}.parquet")

    def consolidate(self) -> Path | None:
        """Write ``units.parquet`` (one row per unit, sorted by model, layer, unit) and, when
        models were measured, ``models.parquet`` (one row per model)."""
        import pyarrow as pa

        model_rows = sorted(self.latest(models=True).values(), key=lambda r: (r["model"], r["weights"]))
        if model_rows:
            _atomic_write_table(pa.Table.from_pylist(model_rows), self.root / MODELS_FILE)
        rows = sorted(self.latest().values(), key=unit_key)
        if not rows:
            return None
        columns: list[str] = list(META_COLUMNS)
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        table = pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])
        return _atomic_write_table(table, self.root / UNITS_FILE)


def read_sweep(root: str | Path) -> Any:
    """The store's table as a pandas DataFrame (one row per unit)."""
    import pandas as pd

    path = Path(root) / UNITS_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {UNITS_FILE} under {root}: run `fvtrust sweep --out {root}` first")
    return pd.read_parquet(path)


