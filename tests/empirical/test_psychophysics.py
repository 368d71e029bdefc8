"""Machine-observer 2-AFC runs (empirical/psychophysics.py) at a tiny scale on the real
offline network, and the source-disjoint split they stand on."""

import json

import numpy as np
import pytest

from fvtrust.empirical.data.photos import bundled_images
from fvtrust.empirical.data.splits import source_of, split_by_source
from fvtrust.empirical.experiments.afc import AFCConfig, paired_comparisons, run_afc
from fvtrust.empirical.reports.afc import (
    afc_table,
    human_cells,
    paired_table,
    per_layer_table,
    plot_afc,
    plot_paired,
)
from fvtrust.empirical.reports.writers import afc_markdown
from fvtrust.stages import result_fields, stage_key

TINY = {"layers": ["_blocks.5"], "units": [0, 1], "n_references": 2, "n_trials": 3, "n_natural": 40,
        "steps": 2, "size": 64, "stride": 16}


def test_split_by_source_never_shares_a_photo():
    data = bundled_images(60, size=32)
    first, second = split_by_source(data.sources, 0.5, seed=3)
    a = {source_of(data.sources[i]) for i in first}
    b = {source_of(data.sources[i]) for i in second}
    assert a and b and not a & b
    assert sorted(np.concatenate([first, second]).tolist()) == list(range(60))
    assert source_of("/data/val/n01/img.JPEG") == "/data/val/n01/img.JPEG"
    with pytest.raises(ValueError, match="at least 2 distinct sources, got 1"):
        split_by_source(["coffee#0", "coffee#1"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("afc")
    shared = root / "shared"
    occ = run_afc(AFCConfig(task="occlusion", **TINY), root / "occ", shared_dir=shared, progress=False)
    ref = run_afc(AFCConfig(task="references", query_selection="mis", **TINY), root / "ref",
                  shared_dir=shared, progress=False)
    return root, occ, ref


def test_every_observer_and_condition_is_scored_with_clustered_ci(runs):
    _, occ, ref = runs
    assert occ.observers == ["mis", "spatial", "center", "variance"]
    assert ref.observers == ["mis", "spatial"]
    for result in (occ, ref):
        for o in result.observers:
            for c in ("natural", "synthetic", "random"):
                est = result.overall[o][c]
                assert est["ci"][0] <= est["mean"] <= est["ci"][1]
                assert (est["n_units"], est["n_trials"]) == (2, 6)
                assert result.per_layer[o][c]["_blocks.5"]["mean"] == pytest.approx(est["mean"])
        assert not set(result.split["reference_sources"]) & set(result.split["query_sources"])
    # Reference-free baselines answer the same in every condition.
    assert occ.overall["center"]["natural"] == occ.overall["center"]["random"]
    assert occ.overall["center"]["natural"]["p_correct"] is None
    assert occ.occlusion["positions"] == 16 and occ.occlusion["n_occluded_images_scored"] > 0


def test_tasks_share_the_synthetic_references_and_resume_identically(runs):
    root, occ, ref = runs
    assert not any(s.startswith("synthetic") for s in occ.reused_stages)
    assert any(s.startswith("synthetic") for s in ref.reused_stages)  # rendered by the occlusion run
    again = run_afc(AFCConfig(task="occlusion", **TINY), root / "occ", shared_dir=root / "shared",
                    progress=False)
    assert "trials-_blocks.5" in again.reused_stages
    assert again.overall == occ.overall


def test_tables_and_figure_come_from_the_saved_json(runs, tmp_path):
    _, occ, ref = runs
    for result in (occ, ref):
        data = json.loads(json.dumps(result.to_json()))
        table = afc_table(data)
        assert "human data" in table and "source-disjoint" in table
        assert "`_blocks.5`" in per_layer_table(data, "mis")
        paths = plot_afc(data, tmp_path / data["config"]["task"])
        assert all(p.stat().st_size > 0 for p in paths)


def test_paired_comparisons_are_the_papers_on_the_same_units_and_trials(runs):
    _, occ, ref = runs
    labels = [c.label for c in paired_comparisons(ref.observers)]
    assert labels[:2] == ["mis/natural − mis/synthetic", "spatial/natural − spatial/synthetic"]
    assert "mis/synthetic − mis/random" in labels and "mis/natural − spatial/natural" in labels
    assert not any("center" in x for x in labels)  # no prior in the references task
    occ_labels = [e["label"] for e in occ.paired]
    assert {"mis/natural − center/natural", "spatial/synthetic − variance/natural"} <= set(occ_labels)
    for result in (occ, ref):
        assert [e["label"] for e in result.paired] == [c.label for c in paired_comparisons(result.observers)]
        for e in result.paired:
            (oa, ca), (ob, cb) = e["a"], e["b"]
            # same units, same trials: the paired mean is the difference of the two cells
            assert e["mean"] == pytest.approx(result.overall[oa][ca]["mean"] - result.overall[ob][cb]["mean"])
            assert e["ci"][0] <= e["mean"] <= e["ci"][1]
            assert e["decided"] == (not e["ci"][0] <= 0 <= e["ci"][1])
            assert (e["n_units"], e["n_trials"]) == (2, 6)
            assert e["per_layer"]["_blocks.5"]["mean"] == pytest.approx(e["mean"])
            power = e["power"]
            assert power["units_needed"] >= 2 and power["units_needed_at_50_trials"] <= power["units_needed"]


def test_the_reports_lead_with_the_paired_differences(runs, tmp_path):
    _, occ, ref = runs
    for result in (occ, ref):
        data = json.loads(json.dumps(result.to_json()))
        md = afc_markdown(data)
        assert md.startswith(paired_table(data).splitlines()[0])
        assert "same 2 units × 3 trials" in md and "human data" in paired_table(data)
        assert all(p.stat().st_size > 0 for p in plot_paired(data, tmp_path / f"{data['config']['task']}_p"))
    table = paired_table(json.loads(json.dumps(ref.to_json())))
    assert "| mis/natural − mis/synthetic |" in table and "+10.2 pp |" in table  # 92.2 − 82.0, human data
    old = {k: v for k, v in ref.to_json().items() if k != "paired"}  # saved before 0.3
    assert "no paired comparisons" in paired_table(old)


def test_what_a_sweep_worker_keeps_gives_the_same_trials(runs):
    """Views and scoring network made once, a unit's visualizations kept in memory for the
    other task: the same numbers as each run on its own, with one render of the references."""
    from fvtrust.empirical.experiments.afc import afc_observer, afc_pool, afc_scorer
    from fvtrust.empirical.nets.registry import load_model

    _, occ, ref = runs
    model = load_model("efficientnet_lite0")
    occ_config = AFCConfig(task="occlusion", **TINY)
    ref_config = AFCConfig(task="references", query_selection="mis", **TINY)
    pool, observer = afc_pool(occ_config), afc_observer(occ_config)
    views, scorer, renders = observer.views(pool.images), afc_scorer(model, TINY["layers"]), {}
    kept = [run_afc(c, progress=False, model=model, observer=observer, pool=pool, views=views,
                    scorer=scorer, renders=renders) for c in (occ_config, ref_config)]
    assert kept[0].overall == occ.overall and kept[1].overall == ref.overall
    assert kept[0].paired == occ.paired and kept[1].paired == ref.paired
    assert "synthetic (kept in memory)" not in kept[0].reused_stages
    assert "synthetic (kept in memory)" in kept[1].reused_stages and len(renders) == 1


def test_max_only_references_are_scored_on_the_same_trials(runs):
    root, _, ref = runs
    config = AFCConfig(task="references", query_selection="mis", reference_sides="max", **TINY)
    assert stage_key(config) != stage_key(AFCConfig(task="references", query_selection="mis", **TINY))
    assert "reference_sides" not in result_fields(AFCConfig())  # saved runs keep their keys
    alone = run_afc(config, root / "max", shared_dir=root / "shared", progress=False)
    assert any(s.startswith("synthetic") for s in alone.reused_stages)  # Min+Max-K's renders
    assert alone.overall != ref.overall
    assert [e["label"] for e in alone.paired] == [e["label"] for e in ref.paired]
    with pytest.raises(ValueError, match="reference_sides must be one of min\\+max, max, got 'min'"):
        AFCConfig(reference_sides="min")


def test_borowski_s_conditions_are_shown_beside_their_own_human_data(runs):
    _, _, ref = runs
    data = json.loads(json.dumps(ref.to_json()))

    def human(sides, k):
        data["config"].update(reference_sides=sides, n_references=k)
        return {c: v["value"] for c, v in human_cells(data).items()}
    assert human("max", 1) == {"natural": 0.730, "synthetic": 0.652}  # Exp. II, human data
    assert human("max", 9) == {"natural": 0.811, "synthetic": 0.667}
    assert human("min+max", 1) == {"natural": 0.837, "synthetic": 0.759}
    assert human("min+max", 9) == {"natural": 0.922, "synthetic": 0.820}  # Exp. I overall
    assert human("max", 2) == human("min+max", 9)  # no such condition in the paper
    human("max", 9)
    assert "+14.4 pp |" in paired_table(data) and "81.1 %" in afc_table(data)


def test_afc_rejects_units_out_of_range():
    with pytest.raises(ValueError, match=r"units \[500\] are out of range for layer '_blocks.5' with 80"):
        run_afc(AFCConfig(**{**TINY, "units": [500]}), progress=False)


def test_too_small_a_split_is_named():
    with pytest.raises(ValueError, match="source-disjoint split of 40 images"):
        run_afc(AFCConfig(**{**TINY, "n_references": 15, "n_trials": 1}), progress=False)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_natural": 40}, "need at least 58 natural images, n_natural is 40"),
    ({"task": "ranking"}, "task must be"),
    ({"observers": ["center"]}, r"unknown observer\(s\) \['center'\] for the references task"),
    ({"query_selection": "best"}, "query_selection must be"),
    ({"patch": 0.0}, "fraction must lie in"),
    ({"stride": 0}, "stride must be >= 1 px"),
    ({"units": [1, 1]}, "units must be distinct"),
])
def test_bad_afc_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AFCConfig(**kwargs)


def test_cli_afc_writes_json_table_and_figure(tmp_path, capsys):
    from fvtrust.empirical.cli import main

    args = ["afc", "--task", "occlusion", "--layers", "_blocks.5", "--units", "0-1", "--references", "2",
            "--trials", "3", "--natural", "40", "--steps", "2", "--size", "64", "--stride", "16",
            "--out", str(tmp_path)]
    assert main(args) == 0
    assert "`spatial` observer" in capsys.readouterr().out
    for suffix in ("json", "md", "png", "pdf"):
        assert (tmp_path / f"afc_occlusion.{suffix}").stat().st_size > 0
    assert main([*args[:-2], "--observers", "bogus", "--out", str(tmp_path)]) == 2
    assert "unknown observer(s) ['bogus']" in capsys.readouterr().err


def test_the_two_tasks_share_their_synthetic_references_across_output_folders(tmp_path):
    import json

    from fvtrust.empirical.cli import main

    common = ["--layers", "_blocks.5", "--units", "0", "--references", "2", "--trials", "3",
              "--natural", "40", "--steps", "2", "--size", "64", "--stride", "16",
              "--renders", str(tmp_path / "renders")]
    assert main(["afc", "--task", "references", *common, "--out", str(tmp_path / "ref")]) == 0
    assert main(["afc", "--task", "occlusion", *common, "--out", str(tmp_path / "occ")]) == 0
    reused = json.loads((tmp_path / "occ" / "afc_occlusion.json").read_text())["reused_stages"]
    assert "synthetic" in reused  # rendered once, by the first run (keyed by SyntheticReferences)
    identity = json.loads((tmp_path / "renders" / ".fvtrust.json").read_text())
    assert identity["kind"] == "renders" and len(identity["files"]) == 1  # listed as ours


def test_the_right_option_is_the_one_the_sign_points_to():
    import torch

    from fvtrust.empirical.experiments.afc import answer_signs, ordered_options, score

    right, wrong = torch.tensor([[1, 1], [2, 2], [3, 3]]), torch.tensor([[9, 9], [8, 8], [7, 7]])
    flip = torch.tensor([False, True, False])
    first, second = ordered_options(right, wrong, flip)
    sign = answer_signs(flip)
    picked_right = torch.where(sign[:, None] > 0, first, second)
    assert torch.equal(picked_right, right)
    # An observer whose evidence always favours the right option scores 1, its negation 0.
    evidence = sign * 0.3
    assert score(evidence, sign, 20.0)[0].tolist() == [1.0, 1.0, 1.0]
    assert score(-evidence, sign, 20.0)[0].tolist() == [0.0, 0.0, 0.0]
