"""Atomic file writes: a reader never sees a half-written result."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fvtrust.outputs import record_written, replace_atomically, replace_with


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record_written([path])  # inside an output folder: listed as ours (never a user's file)
    return replace_atomically(path, text)


def atomic_write_with(path: str | Path, write: Callable[[str], None], suffix: str = ".tmp") -> Path:
    """``write(tmp_path)`` into a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record_written([path])
    return replace_with(path, write, suffix)


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True))


#: Unicode that our titles and step names use, as LaTeX (pdflatex knows none of it).
_LATEX_UNICODE = {"≤": r"$\leq$", "≥": r"$\geq$", "·": r"$\cdot$", "−": "-", "ε": r"$\varepsilon$",
                  "Φ": r"$\Phi$", "δ": r"$\delta$", "κ": r"$\kappa$", "‖": r"$\|$", "∞": r"$\infty$",
                  "₊": r"$_+$", "₋": r"$_-$", "→": r"$\to$", "—": "---", "–": "--", "✓": "ok",
                  "✗": "x", "×": r"$\times$", "√": r"$\surd$"}


def latex_escape(text: object) -> str:
    """Plain text → LaTeX: special characters escaped, known Unicode translated, the rest
    dropped (pdflatex would stop on it)."""
    out = []
    for ch in str(text):
        if ch in "\\":
            out.append(r"\textbackslash{}")
        elif ch in "_%&#${}":
            out.append("\\" + ch)
        elif ch in "^~":
            out.append(r"\string" + ch)
        elif ch in _LATEX_UNICODE:
            out.append(_LATEX_UNICODE[ch])
        elif ord(ch) < 128:
            out.append(ch)
    return "".join(out)
