"""One resume rule for every long run: a finished piece of work is saved under a key derived
from the configuration dataclass that produced it, and a rerun with the same key loads it.

The key is ``sha256(type name, every field that can change a result)``: all fields of the
dataclass (nested dataclasses included) except those declared with
``field(metadata=RUN_ONLY)`` — where to write, how many at once, what to print. A field added
to a config therefore changes its key unless it is marked as not affecting results, so a new
setting can never reuse a stale stage. Experiments (``Stages``), the appendix's parts, render
jobs and the sweep's store all key their saved work with :func:`stage_key`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fvtrust.io import atomic_write_with

T = TypeVar("T")

#: ``field(metadata=RUN_ONLY)``: this field never changes a result (left out of the key).
RUN_ONLY = {"affects_results": False}


def result_fields(config: Any) -> dict[str, Any]:
    """The fields of dataclass `config` that can change a result, nested dataclasses as dicts;
    a field whose metadata ``omit_from_key(config)`` is true is left out (so that a field added
    later keeps the keys of the configs it does not change)."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"a stage key is derived from a config dataclass, got {type(config).__name__}")
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        omit = f.metadata.get("omit_from_key")  # e.g. a field that means nothing in this config
        if omit is not None and omit(config):
            continue
        if f.metadata.get("affects_results", True):
            value = getattr(config, f.name)
            out[f.name] = result_fields(value) if dataclasses.is_dataclass(value) else value
    return out


def digest(data: Any) -> str:
    """A short stable hash of JSON-able data (12 hex digits of sha256)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _factory_source(model: Any) -> dict[str, str]:
    """The bytes of a user factory file that a ``model`` spec names (``path/to/net.py:make``):
    editing the factory makes another network, so another key."""
    target = str(model or "").rpartition(":")[0]
    if not target.endswith(".py") or not Path(target).expanduser().is_file():
        return {}
    return {"model_source_sha256": hashlib.sha256(Path(target).expanduser().read_bytes()).hexdigest()}


def stage_key(config: Any, **extra: Any) -> str:
    """The key of `config`'s results: its type and :func:`result_fields`, plus `extra` (facts
    outside the config, e.g. a weights file's digest) and the digest of a factory file that
    ``model`` (or the `extra` ``model``) names."""
    return digest({"type": type(config).__name__, **result_fields(config),
                   **_factory_source(extra.get("model", getattr(config, "model", None))), **extra})


def atomic_torch_save(obj: Any, path: Path) -> None:
    import torch

    atomic_write_with(path, lambda tmp: torch.save(obj, tmp), suffix=".pt.tmp")


class StageDamaged(ValueError):
    """A saved stage or record cannot be read, or holds another one than its name says."""


def load_stage(path: str | Path, name: str | None = None, key: str | None = None) -> Any:
    """The value saved in a stage file, checked: it must hold stage `name` with key `key`
    (both read from the file name ``<name>-<key>.pt`` when not given)."""
    import torch

    path = Path(path)
    if name is None or key is None:
        name, _, key = path.stem.rpartition("-")
    try:
        saved = torch.load(path, weights_only=False)
    except Exception as exc:
        raise StageDamaged(f"the saved stage {path} cannot be read ({type(exc).__name__}); "
                           f"delete it or rerun with --force") from None
    if not (isinstance(saved, dict) and saved.get("stage") == name
            and saved.get("settings_hash") == key and "value" in saved):
        raise StageDamaged(f"the saved stage {path} does not hold stage {name!r} with "
                           f"settings {key}; delete it or rerun with --force")
    return saved["value"]


def read_record(path: str | Path, required: tuple[str, ...]) -> dict[str, Any] | None:
    """A saved JSON record (a part, a render job, a store's identity): None when there is
    none, :class:`StageDamaged` when it cannot be read or lacks one of `required`."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        record = None
    if not (isinstance(record, dict) and set(required) <= set(record)):
        raise StageDamaged(f"{path} is damaged (not a record holding {', '.join(required)}); "
                           f"delete it or rerun with --force")
    return record


class Stages:
    """``stages.run("renders", compute)`` returns the saved result of that stage if one with
    the same key (:func:`stage_key` of `config`) exists under `root`, else computes, saves and
    returns it.

    A file holds its stage's name and key beside the value, and both are checked on load: a
    file copied over another stage's, or cut short, is refused by name."""

    def __init__(self, root: str | Path | None, config: Any, force: bool = False) -> None:
        self.root = Path(root) / ".stages" if root is not None else None
        self.key, self.force = stage_key(config), force
        self.reused: list[str] = []

    def run(self, name: str, compute: Callable[[], T]) -> T:
        if self.root is None:
            return compute()
        path = self.root / f"{name}-{self.key}.pt"
        if path.exists() and not self.force:
            value = load_stage(path, name, self.key)
            self.reused.append(name)
            return value
        value = compute()
        atomic_torch_save({"stage": name, "settings_hash": self.key, "value": value}, path)
        return value
