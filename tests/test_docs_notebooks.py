"""docs/notebooks/ holds one executed copy of each notebook: same code, with its outputs."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _code(path: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_executed_copy_has_the_current_code_and_its_outputs(notebook):
    copy = ROOT / "docs" / "notebooks" / notebook.name
    assert copy.exists(), f"run: python docs/execute_notebooks.py {notebook.stem[:2]}"
    assert _code(copy) == _code(notebook), f"stale copy: python docs/execute_notebooks.py {notebook.stem[:2]}"
    cells = [c for c in json.loads(copy.read_text())["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in cells), "every code cell ran"
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
