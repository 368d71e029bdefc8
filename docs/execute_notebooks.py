"""Execute every notebook under notebooks/ and store the executed copy, figures included,
under docs/notebooks/ for reading on the web. CI still runs the notebooks from clean (nbmake);
tests/test_docs_notebooks.py checks that each copy has the current notebook's code.

    python docs/execute_notebooks.py            # all notebooks
    python docs/execute_notebooks.py 04         # those whose name contains "04"
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def execute(source: Path, target: Path) -> None:
    nb = nbformat.read(source, as_version=4)
    # Run where CI runs them (notebooks/), so relative paths such as ../docs/results resolve.
    NotebookClient(nb, timeout=1800, kernel_name="python3",
                   resources={"metadata": {"path": str(source.parent)}}).execute()
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)


def main(patterns: list[str]) -> None:
    for source in sorted((ROOT / "notebooks").glob("*.ipynb")):
        if patterns and not any(p in source.name for p in patterns):
            continue
        target = ROOT / "docs" / "notebooks" / source.name
        print(f"executing {source.name} → {target.relative_to(ROOT)}", flush=True)
        execute(source, target)


if __name__ == "__main__":
    main(sys.argv[1:])
