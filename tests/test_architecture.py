"""The floors hold: the import-linter contracts in pyproject.toml pass, an upward import would
break them, and no module imports itself back through a circle."""

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    sys.path.insert(0, str(ROOT))  # lint-imports reads the checkout, as CI runs it
    try:
        return grimp.build_graph("fvtrust")
    finally:
        sys.path.remove(str(ROOT))


def _rooms_contract() -> dict:
    return next(c for c in CONFIG["contracts"] if c.get("containers") == ["fvtrust.empirical"])


def _layers(contract: dict) -> list[grimp.Layer]:
    return [grimp.Layer(*(name.strip() for name in layer.split("|")), independent=True)
            for layer in contract["layers"]]


def test_lint_imports_passes():
    proc = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "BROKEN" not in proc.stdout


def test_every_room_is_in_the_contract(graph):
    rooms = {m.split(".")[2] for m in graph.modules if m.startswith("fvtrust.empirical.")}
    named = {name.strip() for layer in _rooms_contract()["layers"] for name in layer.split("|")}
    assert rooms == named, f"rooms without a floor: {sorted(rooms - named)}"


@pytest.mark.parametrize("lower, higher", [
    ("fvtrust.empirical.nets.registry", "fvtrust.empirical.render.loop"),
    ("fvtrust.empirical.data.images", "fvtrust.empirical.nets.layers"),  # siblings: independent
    ("fvtrust.empirical.render.loop", "fvtrust.empirical.observers.embedding"),
    ("fvtrust.empirical.circuits.gates", "fvtrust.empirical.experiments.fooling"),
    ("fvtrust.empirical.experiments.afc", "fvtrust.empirical.reports.writers"),
    ("fvtrust.empirical.reports.figures", "fvtrust.empirical.runs.appendix"),
    ("fvtrust.empirical.runs.sweep.store", "fvtrust.empirical.cli.parser"),
])
def test_an_upward_import_breaks_the_rooms_contract(graph, lower, higher):
    layers = _layers(_rooms_contract())
    assert not graph.find_illegal_dependencies_for_layers(layers=layers, containers={"fvtrust.empirical"})
    assert not graph.direct_import_exists(importer=lower, imported=higher)
    graph.add_import(importer=lower, imported=higher)
    try:
        illegal = graph.find_illegal_dependencies_for_layers(layers=layers, containers={"fvtrust.empirical"})
    finally:
        graph.remove_import(importer=lower, imported=higher)
    assert illegal, f"{lower} -> {higher} was not caught"


def test_the_theory_never_reaches_the_experiments(graph):
    for module in ("fvtrust.theory", "fvtrust.proofs"):
        chain = graph.find_shortest_chain(importer=module, imported="fvtrust.empirical")
        assert chain is None, chain
        for child in graph.find_children(module):
            assert not graph.chain_exists(importer=child, imported="fvtrust.empirical", as_packages=True)


def test_no_import_circle(graph):
    # Module-level and function-local imports alike: a local import may not hide a circle.
    g = nx.DiGraph()
    for module in graph.modules:
        if module.startswith("fvtrust."):
            for imported in graph.find_modules_directly_imported_by(module):
                # a package's own __init__ importing its children is not a circle
                if imported.startswith("fvtrust.") and not imported.startswith(module + "."):
                    if not module.startswith(imported + "."):
                        g.add_edge(module, imported)
    cycles = list(nx.simple_cycles(g))
    assert not cycles, cycles[:5]
