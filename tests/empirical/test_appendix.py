"""``fvtrust appendix`` end to end at the tiny scale (empirical/appendix.py)."""

import json
import re

import pytest

from fvtrust.empirical.runs.appendix import build_appendix
from fvtrust.proofs import all_proofs


@pytest.fixture(scope="module")
def appendix(tmp_path_factory, cached_proofs):
    from tests.support import use_cached_proofs

    out = tmp_path_factory.mktemp("appendix")
    with use_cached_proofs(cached_proofs):  # each proof's report runs once per session
        return build_appendix(out, scale="tiny", pdf=False)


def test_tex_contains_every_theorem_and_every_referenced_figure_exists(appendix):
    tex = appendix.read_text()
    for proof in all_proofs():
        assert f"\\label{{proof:{proof.key}}}" in tex, proof.key
    figures = re.findall(r"\\includegraphics\[[^]]*\]\{([^}]+)\}", tex)
    assert len(figures) >= 6  # one per experiment part
    for fig in figures:
        assert (appendix.parent / fig).exists(), fig
    assert "\\begin{tabular}" in tex and "\\end{document}" in tex


def test_results_and_manifest(appendix):
    results = json.loads((appendix.parent / "results.json").read_text())
    manifest = json.loads((appendix.parent / "MANIFEST.json").read_text())
    assert results["proofs"]["passed"] == results["proofs"]["total"] == len(all_proofs())
    assert set(manifest["parts"]) == set(results)
    assert all(p["seconds"] >= 0 for p in manifest["parts"].values())
    assert manifest["versions"]["torch"]


def test_parts_are_reused_and_reproducible(appendix, tmp_path):
    # Same settings: reused, not recomputed.
    build_appendix(appendix.parent, scale="tiny", pdf=False, parts=["theory", "silent"])
    manifest = json.loads((appendix.parent / "MANIFEST.json").read_text())
    assert manifest["parts"]["theory"]["reused"] and manifest["parts"]["silent"]["reused"]
    # Recomputed from scratch elsewhere with the same seed: the same numbers.
    fresh = build_appendix(tmp_path, scale="tiny", pdf=False, parts=["theory", "silent"])
    again = json.loads((fresh.parent / "results.json").read_text())
    first = json.loads((appendix.parent / "results.json").read_text())
    assert again["theory"] == first["theory"]
    for key in ("natural_heldout", "max_abs_activation_change", "pairwise_similarity_after",
                "observer_pairwise_after", "collapsed"):
        assert again["silent"][key] == first["silent"][key], key


def test_unknown_part_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown appendix parts"):
        build_appendix(tmp_path, scale="tiny", parts=["nope"], pdf=False)


def test_manifest_records_full_settings_and_the_device_each_part_used(appendix):
    manifest = json.loads((appendix.parent / "MANIFEST.json").read_text())
    afc = manifest["parts"]["afc_references"]["settings"]
    assert afc["task"] == "references" and afc["n_references"] == 2 and afc["observer"]  # the whole config
    assert manifest["parts"]["theory"]["device"] == "cpu"
    assert all(p["device"] in ("cpu", "cuda", "cuda:0") for p in manifest["parts"].values())


def test_a_damaged_part_is_named_and_does_not_block_other_parts(appendix, tmp_path, capsys):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(appendix.parent, out)
    (out / "parts" / "silent" / "part.json").write_text('{"hash": "abc", "resul')
    build_appendix(out, scale="tiny", pdf=False, parts=["theory"], force=True)
    assert "parts/silent/part.json is damaged" in capsys.readouterr().out
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert "silent" not in manifest["parts"] and "theory" in manifest["parts"]


def test_a_demanded_pdf_that_cannot_be_built_is_an_error(appendix, monkeypatch, capsys):
    import shutil

    from fvtrust.empirical.cli import main

    monkeypatch.setattr(shutil, "which", lambda name: None)  # no pdflatex here
    assert main(["appendix", "--scale", "tiny", "--parts", "theory", "--out", str(appendix.parent),
                 "--pdf"]) == 1
    captured = capsys.readouterr()
    assert "texlive-fonts-recommended" in captured.out and "no PDF was built" in captured.err
    assert main(["appendix", "--scale", "tiny", "--parts", "theory", "--out", str(appendix.parent)]) == 0


@pytest.mark.parametrize("scale", ["tiny", "quick", "full", "paper"])
def test_every_part_builds_its_config_at_every_scale(scale):
    """A renamed config field must not leave a scale's settings behind (paper's afc had `pool`)."""
    from fvtrust.empirical.runs.appendix import PARTS, SCALES

    assert scale in SCALES
    for part in PARTS.values():
        part.config(SCALES[scale].get(part.group, {}))


def test_the_full_scale_runs_the_2afc_of_each_network_through_the_sweep_and_nothing_quick(tmp_path):
    from fvtrust.empirical.runs.appendix import FULL_AFC_LAYERS, scale_configs

    full = scale_configs("full")
    assert {"afc_full_lite0", "afc_full_lite1", "afc_full_lite2"} <= set(full)
    assert "afc_references" not in full and "afc_occlusion" not in full
    assert all(full[f"afc_full_{m[-5:]}"].layers == tuple(layers) for m, layers in FULL_AFC_LAYERS.items())
    # the power analysis' sizes, so that the published tables are these parts' units
    assert [full[f"afc_full_{net}"].units_per_layer for net in ("lite0", "lite1", "lite2")] == [70, 68, 62]
    # the papers' other conditions: parts of their own, a store of their own, 32 units per layer
    # of the same seeded order; the main parts' keys (and stores) are what they were before
    from fvtrust.empirical.runs.appendix import AFC_CONDITIONS
    from fvtrust.stages import result_fields

    for net in ("lite0", "lite1", "lite2"):
        conditions = full[f"afc_conditions_{net}"]
        assert conditions.plan().measure == list(AFC_CONDITIONS) and conditions.units_per_layer == 32
        assert conditions.store != full[f"afc_full_{net}"].store
        assert conditions.layers == full[f"afc_full_{net}"].layers
        assert "measure" not in result_fields(full[f"afc_full_{net}"])
        assert "measure" in result_fields(conditions)
    assert full["afc_full_lite0"].plan().measure == ["afc_references", "afc_occlusion"]
    assert len(full["fooling_permute"].units) == 50 and len(full["silent"].units) == 320
    assert "afc_full_lite0" not in scale_configs("quick")
    # a part the scale has not: refused in one line, before the folder is touched
    with pytest.raises(ValueError, match="not in the 'quick' scale"):
        build_appendix(tmp_path / "out", scale="quick", parts=["afc_full_lite0"], pdf=False)
    assert not (tmp_path / "out").exists()


def test_a_full_scale_part_reads_its_units_back_from_the_store_and_extends_it(appendix, tmp_path,
                                                                              monkeypatch):
    import shutil

    from fvtrust.empirical.runs import appendix as module

    results = json.loads((appendix.parent / "results.json").read_text())["afc_full_lite0"]
    assert results["sweep"]["units_per_layer"] == {"_blocks.2": 2, "_blocks.4": 2}
    for task in ("references", "occlusion"):
        data = results[task]
        assert data["overall"]["mis"]["natural"]["n_units"] == 4
        assert data["overall"]["mis"]["natural"]["n_trials"] == 12  # 4 units x 3 trials
        assert {e["kind"] for e in data["paired"]} >= {"natural − synthetic", "references − none"}
        assert set(data["per_layer"]["mis"]["natural"]) == {"_blocks.2", "_blocks.4"}
    # More units per layer: the store keeps the four done and measures only the new ones.
    out = tmp_path / "copy"
    shutil.copytree(appendix.parent, out)
    tiny = {**module.SCALES["tiny"], "afc_full": {**module.SCALES["tiny"]["afc_full"], "units_per_layer": 3}}
    monkeypatch.setitem(module.SCALES, "tiny", tiny)
    build_appendix(out, scale="tiny", pdf=False, parts=["afc_full_lite0"])
    extended = json.loads((out / "results.json").read_text())["afc_full_lite0"]
    run = extended["sweep"]["this_run"]
    assert (run["n_units"], run["n_skipped"], run["n_computed"]) == (6, 4, 2)
    assert extended["sweep"]["units_per_layer"] == {"_blocks.2": 3, "_blocks.4": 3}
    # The papers' other conditions, end to end at a tiny setting: a store of their own, each
    # condition's tables from it, the main store untouched.
    main_store = (out / "afc_store" / "units.parquet").read_bytes()
    kept = sorted(p.name for p in (out / "afc_renders" / ".stages").glob("synthetic-*.pt"))
    assert len(kept) == 6  # one file per unit of the main part (its K)
    tiny["afc_conditions"] = {**tiny["afc_full"], "networks": {"efficientnet_lite0": ["_blocks.2"]},
                              "units_per_layer": 1}
    build_appendix(out, scale="tiny", pdf=False, parts=["afc_conditions_lite0"])
    conditions = json.loads((out / "results.json").read_text())["afc_conditions_lite0"]
    assert conditions["sweep"]["units_per_layer"] == {"_blocks.2": 1}
    assert set(conditions) == {"sweep", "references_max", "references_max1", "references_minmax1",
                               "occlusion_patch30", "occlusion_patch50"}
    assert (conditions["references_max1"]["config"]["reference_sides"],
            conditions["references_max1"]["config"]["n_references"]) == ("max", 1)
    assert conditions["occlusion_patch50"]["config"]["patch"] == 0.5
    assert all(conditions[k]["overall"]["mis"]["natural"]["n_units"] == 1 for k in conditions if k != "sweep")
    assert (out / "afc_conditions_store" / "units.parquet").is_file()
    assert (out / "parts" / "afc_conditions_lite0" / "afc_references_max1.json").is_file()
    assert (out / "afc_store" / "units.parquet").read_bytes() == main_store
    # the conditions part loaded its unit's K-renders from the main part's: its only new file
    # is the K = 1 references of Max-1 and Min+Max-1
    now = sorted(p.name for p in (out / "afc_renders" / ".stages").glob("synthetic-*.pt"))
    assert set(kept) < set(now) and len(now) == len(kept) + 1


def test_a_full_scale_part_takes_units_measured_elsewhere_and_measures_none_again(appendix, tmp_path):
    # --merge: another machine's store (here its units.parquet, as published in docs/results)
    # gives the part every unit it needs; the numbers are those of the part that measured them
    store = appendix.parent / "afc_store" / "units.parquet"
    out = tmp_path / "elsewhere"
    build_appendix(out, scale="tiny", pdf=False, parts=["afc_full_lite0"], merge=[store])
    merged = json.loads((out / "results.json").read_text())["afc_full_lite0"]
    first = json.loads((appendix.parent / "results.json").read_text())["afc_full_lite0"]
    run = merged["sweep"]["this_run"]
    assert (run["n_units"], run["n_merged"], run["n_computed"]) == (4, 4, 0)
    for task in ("references", "occlusion"):
        assert merged[task]["paired"] == first[task]["paired"]
        assert merged[task]["overall"] == first[task]["overall"]
    # refused in one line, before anything is written: a path that is no store, and --merge
    # for parts that take none
    for merge, parts, message in ((tmp_path / "nope", ["afc_full_lite0"], "no such sweep store"),
                                  (store, ["theory"], "--merge is for the full-scale 2-AFC parts")):
        with pytest.raises(ValueError, match=message):
            build_appendix(tmp_path / "refused", scale="tiny", pdf=False, parts=parts, merge=[merge])
        assert not (tmp_path / "refused").exists()
