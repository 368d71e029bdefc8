"""Resumable stages: a long experiment saves each finished stage, keyed by its settings, and
a rerun with the same settings loads it instead of recomputing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from fvtrust.theory.io import atomic_write_with

T = TypeVar("T")


def config_hash(config: Any) -> str:
    """A short stable hash of a dataclass or JSON-able settings object."""
    data = asdict(config) if is_dataclass(config) else config
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def atomic_torch_save(obj: Any, path: Path) -> None:
    atomic_write_with(path, lambda tmp: torch.save(obj, tmp), suffix=".pt.tmp")


class StageDamaged(ValueError):
    """A saved stage cannot be read, or holds another stage than its name says."""


def load_stage(path: str | Path, name: str | None = None, key: str | None = None) -> Any:
    """The value saved in a stage file, checked: it must hold stage `name` with settings hash
    `key` (both read from the file name ``<name>-<key>.pt`` when not given)."""
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


class Stages:
    """``stages.run("renders", compute)`` returns the saved result of that stage if one with
    the same settings hash exists under `root`, else computes, saves and returns it.

    A file holds its stage's name and settings hash beside the value, and both are checked
    on load: a file copied over another stage's, or cut short, is refused by name."""

    def __init__(self, root: str | Path | None, settings: Any, force: bool = False) -> None:
        self.root = Path(root) / ".stages" if root is not None else None
        self.key, self.force = config_hash(settings), force
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
