"""The results store of a sweep: one Parquet record per unit, PNGs beside it.

Layout of a store directory::

    .fvtrust.json         the folder's identity: a sweep store, and every file written here
    sweep.json            the measurement settings (their hash names the current parts)
    parts/<hash>/<task>.parquet  one file per finished task, written atomically as results arrive
    units.parquet         every unit's newest record (an ``ok`` one before a ``failed`` one)
    images/<model>/<layer>/unit_0007_max.png ...

A part is written by the driver alone (one writer), by rename, so a crash leaves whole parts
only; a rerun reads them back and skips every unit that finished with the same settings.
``--force`` with other settings starts a new ``parts/<hash>/``; the old settings' parts are
removed only after the new run has written its table, and only those the identity lists (a
folder that is not a sweep store is refused before anything is touched).
``pandas.read_parquet(store / "units.parquet")`` gives the table.

Units measured elsewhere (another machine's store, a published ``units.parquet``) come in with
:meth:`SweepStore.merge` (``fvtrust sweep --merge``): the same resume rule decides, so a record
is taken only where its ``config_hash`` is the one this plan asks for, with the images it names.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fvtrust.io import atomic_write_json, atomic_write_with
from fvtrust.outputs import OutputDir
from fvtrust.stages import StageDamaged, read_record

#: columns every record has, whatever was measured (measurement columns follow them).
KEY_COLUMNS = ("model", "weights", "layer", "unit")
META_COLUMNS = (*KEY_COLUMNS, "status", "error", "config_hash", "seed", "device", "worker",
                "seconds", "finished", "versions")
UNITS_FILE = "units.parquet"
MODELS_FILE = "models.parquet"


#: what a record needs to be merged: its key, its outcome and the settings it was measured with
MERGE_COLUMNS = (*KEY_COLUMNS, "status", "config_hash")


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


@dataclass(frozen=True)
class MergeSource:
    """Unit records measured elsewhere; ``root`` is the folder their image paths are relative to."""

    root: Path
    records: tuple[dict[str, Any], ...]


@dataclass
class MergeReport:
    """What a merge took (unit keys) and what it left out: reason → units."""

    merged: set[tuple[str, str, str, int]] = field(default_factory=set)
    left_out: dict[str, int] = field(default_factory=dict)


def read_merge_source(path: str | Path) -> MergeSource:
    """The unit records of a sweep store folder (its parts and its table) or of one Parquet
    table (a ``units.parquet``, images beside it); a path that is neither is refused in one
    line, naming it, before anything is written."""
    import pyarrow.parquet as pq

    src = Path(path)
    if src.is_dir():
        files = sorted(src.glob("parts/*/*.parquet")) + [p for p in [src / UNITS_FILE] if p.is_file()]
        if not files:
            raise ValueError(f"--merge {path}: not a sweep store (no {UNITS_FILE} and no parts/ in it)")
        root = src
    elif src.is_file() and src.suffix == ".parquet":
        files, root = [src], src.parent
    else:
        raise ValueError(f"--merge {path}: no such sweep store folder or .parquet file")
    records: list[dict[str, Any]] = []
    for file in files:
        try:
            table = pq.read_table(file)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"--merge {file}: not a readable Parquet table ({reason})") from None
        missing = [c for c in MERGE_COLUMNS if c not in table.column_names]
        if missing:
            raise ValueError(f"--merge {file}: not a sweep table (no {', '.join(missing)} column)")
        records.extend(table.to_pylist())
    return MergeSource(root, tuple(records))


def _image_paths(record: dict[str, Any], root: Path) -> dict[str, Path] | None:
    """The PNGs a record names (store-relative path → the source's file), or None where one is
    missing or names a path outside the source (a stored number describes its stored image)."""
    out = {}
    for column, rel in record.items():
        if not column.endswith("_png") or not rel:
            continue
        if Path(rel).is_absolute() or ".." in Path(rel).parts or not (root / rel).is_file():
            return None
        out[rel] = root / rel
    return out


class SweepStore:
    """Open (or create) the store at `root` for `settings`; a store written with other
    settings is refused unless ``force``. Opening validates only: nothing is written until
    :meth:`open`."""

    def __init__(self, root: str | Path, settings: dict[str, Any], settings_hash: str,
                 force: bool = False) -> None:
        self.out = OutputDir(root, "sweep")  # refuses a file, a read-only or a foreign folder
        self.root = self.out.root
        self.settings, self.settings_hash = settings, settings_hash
        self.meta_path = self.root / "sweep.json"
        try:
            meta = read_record(self.meta_path, ("settings_hash",))
        except StageDamaged:
            if not force:
                raise StoreMismatch(f"{self.meta_path} is damaged; pass --force to start the "
                                    f"store afresh") from None
            meta = None
        if meta is not None and meta["settings_hash"] != settings_hash and not force:
            changed = sorted(k for k in set(settings) | set(meta.get("settings", {}))
                             if settings.get(k) != meta.get("settings", {}).get(k))
            raise StoreMismatch(
                f"the store {self.root} was written with other settings (changed: "
                f"{', '.join(changed) or 'unknown'}); pass --force to recompute it, or "
                f"choose another --out")
        self.parts = self.root / "parts" / settings_hash

    def open(self) -> SweepStore:
        """Claim the folder and record the settings (the parts of earlier settings stay until
        :meth:`drop_stale`)."""
        self.out.open()
        atomic_write_json(self.meta_path, {"settings": self.settings, "settings_hash": self.settings_hash})
        return self

    def drop_stale(self) -> list[Path]:
        """Remove the parts of other settings, once this run's table is written; only files
        the identity lists (ours) are removed."""
        current = {self._parts(False), self._parts(True)}
        stale = [rel for rel in self.out.files()
                 if rel.endswith(".parquet") and rel.split("/")[0] in ("parts", "model_parts")
                 and (self.root / rel).parent not in current]
        removed = self.out.remove(stale)
        for folder in {p.parent for p in removed}:
            if not any(folder.iterdir()):  # emptied by us: a folder with a user's file stays
                folder.rmdir()
        return removed

    def _parts(self, models: bool) -> Path:
        return self.root / "model_parts" / self.settings_hash if models else self.parts

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

        self.out.claim([*images, self._parts(models) / f"{task}.parquet"])  # one listing per task
        for rel, data in images.items():
            _atomic_write_bytes(data, self.root / rel)
        stamp = time.time()
        for record in records:
            record.setdefault("finished", stamp)
        return _atomic_write_table(pa.Table.from_pylist(records), self._parts(models) / f"{task}.parquet")

    def merge(self, sources: list[MergeSource], hashes: dict[tuple[str, str, str, int], str],
              done: set[tuple[str, str, str, int]]) -> MergeReport:
        """Add the ``ok`` records of `sources` whose unit `hashes` names with the same
        ``config_hash`` (the resume rule: measured with the settings asked for now) and that
        are not `done` here yet, with their images, as one part; the first source's record of
        a unit wins. Counts what is left out, per unit, by reason."""
        chosen: dict[tuple[str, str, str, int], tuple[dict[str, Any], dict[str, Path]]] = {}
        reasons: dict[tuple[str, str, str, int], str] = {}
        for source in sources:
            for record in source.records:
                key = unit_key(record)
                if record.get("status") != "ok" or key in chosen:
                    continue
                if key not in hashes:
                    reasons[key] = "outside this plan"
                elif record["config_hash"] != hashes[key]:
                    reasons[key] = "measured with other settings"
                elif key in done:
                    reasons[key] = "done here already"
                elif (images := _image_paths(record, source.root)) is None:
                    reasons[key] = "images missing"
                else:
                    chosen[key] = (dict(record), images)
                    reasons.pop(key, None)
        if chosen:
            digest = hashlib.sha256(repr(sorted(chosen)).encode()).hexdigest()[:12]
            images = {rel: path.read_bytes() for _, paths in chosen.values() for rel, path in paths.items()}
            self.add(f"merged-{digest}", [record for record, _ in chosen.values()], images)
        return MergeReport(set(chosen), dict(Counter(reasons.values())))

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


