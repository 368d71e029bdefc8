"""Resumable stages: a long experiment saves each finished stage, keyed by its settings, and
a rerun with the same settings loads it instead of recomputing."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from theory.io import umask_file_mode

T = TypeVar("T")


def config_hash(config: Any) -> str:
    """A short stable hash of a dataclass or JSON-able settings object."""
    data = asdict(config) if is_dataclass(config) else config
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".pt.tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, umask_file_mode())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


class Stages:
    """``stages.run("renders", compute)`` returns the saved result of that stage if one with
    the same settings hash exists under `root`, else computes, saves and returns it."""

    def __init__(self, root: str | Path | None, settings: Any, force: bool = False) -> None:
        self.root = Path(root) / ".stages" if root is not None else None
        self.key, self.force = config_hash(settings), force
        self.reused: list[str] = []

    def run(self, name: str, compute: Callable[[], T]) -> T:
        if self.root is None:
            return compute()
        path = self.root / f"{name}-{self.key}.pt"
        if path.exists() and not self.force:
            self.reused.append(name)
            return torch.load(path, weights_only=False)
        value = compute()
        atomic_torch_save(value, path)
        return value
