"""Output folders: users' files are never deleted or overwritten.

Every folder a command writes into carries an identity file, ``.fvtrust.json``: which kind of
output it is (``render``, ``sweep``, ``experiments``, ``appendix``, …) and every file this
package wrote there. A folder is used only when it is new or empty, or when its identity says
that it is an output of the same kind; ``--force`` and clean-up remove only files that the
identity lists. :func:`check_out` validates a path before anything is computed or touched.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fvtrust._version import __version__

IDENTITY = ".fvtrust.json"
LOCK = ".fvtrust.lock"
#: files a folder may hold before it is first claimed (left there by the OS or the shell)
_HARMLESS = {".DS_Store", "Thumbs.db", LOCK}


def umask_file_mode() -> int:
    """The mode a plain ``open(..., "w")`` would give: 0o666 less the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def replace_with(path: Path, write: Callable[[str], None], suffix: str = ".tmp") -> Path:
    """``write(tmp)`` into a temporary file beside `path`, then rename it into place, with the
    mode a plain open() gives (mkstemp's 0600 would hide results from other users). The
    primitive under :mod:`fvtrust.io`, which also records the file as ours."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, umask_file_mode())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def replace_atomically(path: Path, text: str) -> Path:
    """`text` written to `path` by :func:`replace_with`."""
    return replace_with(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _write_identity(path: Path, data: dict) -> None:
    replace_atomically(path, json.dumps(data, indent=1, sort_keys=True))
    _CACHE.pop(path, None)


#: identity path → (mtime_ns, kind, files): a write into a listed file reads no JSON
_CACHE: dict[Path, tuple[int, str, frozenset[str]]] = {}


def _listing(identity: Path) -> tuple[str, frozenset[str]] | None:
    """(kind, files) of an identity file, cached while the file is unchanged; None when there
    is none or it is damaged."""
    try:
        stamp = identity.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    cached = _CACHE.get(identity)
    if cached is None or cached[0] != stamp:
        try:
            saved = json.loads(identity.read_text())
            cached = (stamp, str(saved["kind"]), frozenset(saved["files"]))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            return None
        _CACHE[identity] = cached
    return cached[1], cached[2]
#: identity path → its listing, while this process holds the folder's lock
_HELD: dict[Path, dict] = {}


class OutputRefused(ValueError):
    """The output path cannot be used (a file, unwritable, or holding someone else's files)."""


def check_out(path: str | Path, option: str = "--out") -> Path:
    """`path` can be an output folder: it is not a file, nothing above it is a file, and the
    folder (or the nearest folder above it that exists) is writable. Touches nothing."""
    path = Path(path)
    text = str(path)
    if "\x00" in text:
        raise OutputRefused(f"{option} {text!r} is not a path")
    if path.exists() and not path.is_dir():
        raise OutputRefused(f"{option} {text!r} is a file, not a folder")
    probe = path.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise OutputRefused(f"{option} {text!r} lies under {str(probe)!r}, which is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "" if probe == path.absolute() else f" (the folder {str(probe)!r} above it is not)"
        raise OutputRefused(f"{option} {text!r} is not writable{where}")
    return path


class OutputDir:
    """The output folder `root` of one `kind`: ``open()`` claims it (creating the identity),
    ``claim(paths)`` records files as ours before they are written, ``remove(paths)`` deletes
    only files the identity lists."""

    def __init__(self, root: str | Path, kind: str, option: str = "--out") -> None:
        self.root, self.kind, self.option = check_out(root, option), kind, option
        self.identity = self.root / IDENTITY
        saved = self._read()
        if saved is not None and saved.get("kind") != kind:
            raise OutputRefused(f"{option} {str(self.root)!r} holds a fvtrust "
                                f"{saved.get('kind')!r} output, not a {kind!r} one; choose "
                                f"another {option}")
        if saved is None and self.root.is_dir():
            foreign = sorted(p.name for p in self.root.iterdir() if p.name not in _HARMLESS)
            if foreign:
                shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
                raise OutputRefused(f"{option} {str(self.root)!r} holds files fvtrust did not "
                                    f"write ({shown}); choose a new or empty folder")

    def _read(self) -> dict | None:
        if not self.identity.exists():
            return None
        try:
            saved = json.loads(self.identity.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            saved = None
        if not (isinstance(saved, dict) and isinstance(saved.get("files"), list)):
            raise OutputRefused(f"{self.identity} is damaged (not a fvtrust identity file); "
                                f"choose another {self.option}")
        return saved

    @contextmanager
    def locked(self) -> Iterator[dict]:
        """The identity, read and written back under the folder's lock (concurrent jobs and
        processes). Re-entrant: a write inside the block (which records its file) joins it."""
        key = self.identity.resolve()
        if key in _HELD:
            yield _HELD[key]
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                saved = self._read() or {"kind": self.kind, "files": []}
                before = json.dumps(saved, sort_keys=True)
                _HELD[key] = saved
                try:
                    yield saved
                finally:
                    del _HELD[key]
                saved["fvtrust"] = saved.get("fvtrust", __version__)
                if json.dumps(saved, sort_keys=True) != before or not self.identity.exists():
                    saved["files"] = sorted(set(saved["files"]))
                    _write_identity(self.identity, saved)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def open(self) -> OutputDir:
        """Create the folder and its identity (nothing else is touched)."""
        with self.locked():
            pass
        return self

    def relative(self, path: str | Path) -> str:
        """`path` relative to the folder (given relative to it, or under it)."""
        path = Path(path)
        for base in (self.root, self.root.absolute(), self.root.resolve()):
            if path.is_relative_to(base):
                path = path.relative_to(base)
                break
        if path.is_absolute() or ".." in path.parts:
            raise OutputRefused(f"{path} lies outside {self.root}")
        return path.as_posix()

    def files(self) -> frozenset[str]:
        """The files this package wrote here (relative paths)."""
        listing = _listing(self.identity)
        return listing[1] if listing else frozenset()

    def claim(self, paths: Iterable[str | Path]) -> list[Path]:
        """Record `paths` as ours before writing them; a file already there that we did not
        write is refused, naming it (nothing is overwritten)."""
        rels = [self.relative(p) for p in paths]
        if self.identity.exists() and set(rels) <= self.files():
            return [self.root / rel for rel in rels]  # all listed already
        with self.locked() as saved:
            owned = set(saved["files"])
            for rel in rels:
                target = self.root / rel
                if rel not in owned and (target.exists() or target.is_symlink()):
                    raise OutputRefused(f"{target} exists and was not written by fvtrust; move it "
                                        f"or choose another {self.option}")
            saved["files"].extend(rels)
        return [self.root / rel for rel in rels]

    def remove(self, paths: Iterable[str | Path]) -> list[Path]:
        """Delete the listed ones among `paths` (others are left alone); returns those removed."""
        rels = [self.relative(p) for p in paths]
        removed = []
        with self.locked() as saved:
            owned = set(saved["files"])
            for rel in rels:
                if rel in owned:
                    target = self.root / rel
                    if target.is_file() or target.is_symlink():
                        target.unlink()
                        removed.append(target)
                    owned.discard(rel)
            saved["files"] = sorted(owned)
        return removed

    @classmethod
    def around(cls, path: str | Path) -> OutputDir | None:
        """The output folder holding `path` (the nearest folder at or above it with an identity
        file), or None when `path` is not inside one."""
        probe = Path(path).absolute()
        for folder in (probe, *probe.parents):
            identity = folder / IDENTITY
            if identity.is_file():
                listing = _listing(identity)
                if listing is None:
                    return None
                found = cls.__new__(cls)  # validated when it was claimed: no second check
                found.root, found.kind, found.option, found.identity = folder, listing[0], "--out", identity
                return found
        return None


def shared_folder(path: str | Path, option: str = "--renders") -> OutputDir:
    """A folder that several runs keep shared work in (synthetic references): an existing
    fvtrust output folder of any kind (e.g. another run's ``--out``), or a new or empty one,
    of kind ``renders``. Validated only; ``.open()`` claims it."""
    listing = _listing(Path(path) / IDENTITY)
    return OutputDir(path, listing[0] if listing else "renders", option)


def record_written(paths: Iterable[str | Path]) -> None:
    """Record files about to be written as this package's, in the output folder that holds
    them (where there is one: a library call into a plain folder records nothing). Every
    atomic write of :mod:`fvtrust.io` calls this, so an output folder lists all it holds."""
    by_folder: dict[Path, list[Path]] = {}
    for path in paths:
        path = Path(path).absolute()
        by_folder.setdefault(path.parent, []).append(path)
    for parent, files in by_folder.items():
        owner = OutputDir.around(parent)
        if owner is not None:
            owner.claim(files)
