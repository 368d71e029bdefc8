"""The gate over a family of render settings: the renderer's family axes (spectrum decay,
colour decorrelation, L2 and total-variation penalties), the classic bank drawn exactly as
before, regions that hold what they say, gates fitted on features equal to gates trained on
images, and the experiment end to end (every region scored, escapes listed, resumable)."""

import dataclasses

import numpy as np
import pytest
import torch

from fvtrust.empirical.circuits.gate_bank import (
    REGIONS,
    FamilySetting,
    RenderBank,
    RenderBankConfig,
    draw_setting,
)
from fvtrust.empirical.circuits.gates import (
    fit_feature_gate,
    gate_feature_table,
    gate_layers,
    train_feature_gate,
)
from fvtrust.empirical.experiments.gate_family import (
    GateFamilyConfig,
    eval_settings,
    run_gate_family,
)
from fvtrust.empirical.render.loop import render
from fvtrust.empirical.render.objectives import class_logit
from fvtrust.empirical.render.transform import TransformConfig
from fvtrust.stages import result_fields

TINY = dict(steps=3, size=32, transforms=TransformConfig.none(), seeds=[1, 2])


def test_penalties_pull_the_image_towards_grey_and_smooth(lite0):
    plain = render(lite0, class_logit([1, 2]), **TINY, lr=0.2)
    l2 = render(lite0, class_logit([1, 2]), **TINY, lr=0.2, l2=1e4)
    tv = render(lite0, class_logit([1, 2]), **TINY, lr=0.2, tv=1e4)
    grey = lambda x: float(((x - 0.5) ** 2).mean())  # noqa: E731
    rough = lambda x: float((x[..., 1:, :] - x[..., :-1, :]).abs().mean())  # noqa: E731
    assert grey(l2.images) < grey(plain.images)
    assert rough(tv.images) < rough(plain.images)
    # the trace is the objective alone, not objective − penalty: at step 1 (before any
    # update) the penalized render's trace is the plain one's, bit for bit
    assert np.array_equal(l2.trace[0], plain.trace[0]) and np.array_equal(tv.trace[0], plain.trace[0])


def test_spectrum_and_colour_axes_reach_the_parametrization(lite0):
    base = render(lite0, class_logit([1, 2]), **TINY)
    assert not torch.equal(render(lite0, class_logit([1, 2]), **TINY, decay_power=0.5).images, base.images)
    assert not torch.equal(render(lite0, class_logit([1, 2]), **TINY, decorrelate=False).images, base.images)
    # the defaults are lucid's: passing them changes nothing, bit for bit
    same = render(lite0, class_logit([1, 2]), **TINY, decay_power=1.0, decorrelate=True, l2=0.0, tv=0.0)
    assert torch.equal(same.images, base.images)


@pytest.mark.parametrize("kwargs, named", [
    ({"l2": -1.0}, "l2=-1.0"), ({"tv": float("nan")}, "tv=nan"),
    ({"param": "pixel", "decay_power": 0.5}, "decay_power=0.5"), ({"decay_power": 9.0}, "decay_power=9.0")])
def test_bad_family_settings_are_refused_by_name(lite0, kwargs, named):
    with pytest.raises(ValueError, match=named.replace("(", r"\(")):
        render(lite0, class_logit([1, 2]), **TINY | kwargs)


def test_the_classic_bank_draws_exactly_what_it_drew_before_families():
    """fvtrust 0.2's inline draws, written out here: the classic family must repeat them (its
    saved banks and gates keep their keys and contents)."""
    config = RenderBankConfig(settings=12)
    ours, old = np.random.default_rng(3), np.random.default_rng(3)
    lo, hi = np.log(config.lr_range[0]), np.log(config.lr_range[1])
    for j in range(config.settings):
        s = draw_setting(ours, j, "classic", config.lr_range, config.size, config.steps)
        transforms = old.random() < 0.6
        lr = float(np.exp(old.uniform(lo, hi)))
        assert (s.param, s.transforms, s.lr) == (("fourier", "pixel")[j % 2], transforms, lr)
        assert (s.decay_power, s.decorrelate, s.l2, s.tv) == (1.0, True, 0.0, 0.0)
        assert ours.random() == old.random()  # the channel draw that follows sees the same stream
    assert "family" not in result_fields(config)
    assert result_fields(dataclasses.replace(config, family="wide"))["family"] == "wide"


def test_every_region_holds_what_it_says_and_the_wide_bank_spans_them():
    rng = np.random.default_rng(0)
    wide = [draw_setting(rng, j, "wide", (0.005, 0.5), 128, 128) for j in range(400)]
    for region in REGIONS:
        moved = [region.into(s, rng) for s in wide[:50]]
        if region.bank:
            assert all(region.contains(s) for s in moved), region.name
            inside = sum(region.contains(s) for s in wide)
            # a region is neither empty nor the whole family
            assert 0.03 * len(wide) < inside < 0.7 * len(wide), (region.name, inside)
        else:  # no bank draws it: larger size or more steps than every bank setting
            assert all((s.size, s.steps) != (128, 128) for s in moved) and not any(
                region.contains(s) for s in wide), region.name
        for s in moved:  # a moved setting renders: its own checks pass
            FamilySetting(**dataclasses.asdict(s)).render_kwargs()


def test_a_bank_without_a_region_splits_by_the_settings_left():
    settings = tuple(FamilySetting(param=("fourier", "pixel")[j % 2]) for j in range(8))
    setting = torch.arange(8).repeat_interleave(3)
    bank = RenderBank(torch.rand(24, 3, 8, 8), setting, torch.ones(24, dtype=torch.long), settings)
    left = bank.where(bank.outside(REGIONS[0]))  # pixel parametrization: the odd settings
    assert torch.unique(left.setting).tolist() == [0, 2, 4, 6]
    fit, held = left.split(1)
    assert torch.unique(fit.setting).tolist() == [0, 2, 4] and torch.unique(held.setting).tolist() == [6]
    with pytest.raises(ValueError, match="cannot hold out 4 of 4"):
        left.split(4)


def test_a_gate_fitted_on_features_is_the_gate_trained_on_images(lite0):
    g = torch.Generator().manual_seed(0)

    def grey(n):  # low-contrast "photos" against full-range "renders"
        return torch.rand(n, 3, 48, 48, generator=g) * 0.5 + 0.25
    natural, renders = grey(40), torch.rand(40, 3, 48, 48, generator=g)
    thr_nat, thr_ren = grey(210), torch.rand(30, 3, 48, 48, generator=g)
    a = train_feature_gate(lite0, natural, renders, thr_nat, thr_ren, iterations=20, ensemble=2)
    layers = gate_layers(lite0)
    f = [gate_feature_table(lite0, x, layers) for x in (natural, renders, thr_nat, thr_ren)]
    b = fit_feature_gate(lite0, layers, *f, iterations=20, ensemble=2)
    assert a.threshold == b.threshold
    probe = torch.rand(5, 3, 48, 48, generator=g)
    assert torch.equal(a.score(probe), b.score(probe))


def test_eval_settings_lie_inside_their_region():
    config = GateFamilyConfig(eval_settings=3)
    for index, region in enumerate(REGIONS):
        for s in eval_settings(config, index):
            assert region.contains(s) or not region.bank, (region.name, s)


@pytest.mark.parametrize("kwargs, named", [
    ({"bank_settings": 4}, "bank_settings"), ({"eval_settings": 0}, "eval_settings"),
    ({"units_per_setting": 7}, "units_per_setting"), ({"bank_steps": 2}, "bank_steps"),
    ({"sources": "folder"}, "--sources")])
def test_bad_gate_family_configs_are_refused_by_name(kwargs, named):
    with pytest.raises(ValueError, match=named):
        GateFamilyConfig(**kwargs)


#: The experiment at a small setting: 64 px, 32-step banks of 8 settings, one unit per region.
SMALL_FAMILY = dict(bank_settings=8, bank_steps=32, size=64, eval_settings=1, units_per_setting=1,
                    classic_bank_settings=8)


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """The experiment end to end at SMALL_FAMILY, with a stage folder of its own (its default
    gate is trained here, once)."""
    config = GateFamilyConfig(**SMALL_FAMILY)
    out, shared = tmp_path_factory.mktemp("gate_family"), tmp_path_factory.mktemp("family_stages")
    return config, out, run_gate_family(config, out, shared_dir=shared), shared


def test_every_region_is_scored_for_both_gates(family):
    config, _, result, _ = family
    assert [r["region"] for r in result.regions] == [r.name for r in REGIONS]
    for row, region in zip(result.regions, REGIONS, strict=True):
        assert row["renders"] == config.eval_settings * config.units_per_setting
        assert row["trained_without_region"] == region.bank
        for scored in (row, row["classic"]):
            assert 0 <= scored["caught"] <= 1
            # a render passing at every step (as seen) is also listed among the escapes
            assert scored["passed_every_step_as_seen"] <= len(scored["escaped"])
            if scored["caught"] < 1:
                assert scored["escaped"], row["region"]  # nothing hidden in an average
    assert result.lowest_region == min(result.regions, key=lambda r: r["caught"])["region"]
    assert result.natural["images"] >= 200 and result.natural["sources"] >= 20


def test_the_default_gate_is_the_one_fool_uses(family):
    """The classic gate is ``fool``'s gate (the same GateConfig, so the same saved stage),
    trained once."""
    from fvtrust.empirical.experiments.fooling import FoolingConfig

    config, _, _, shared = family
    fool = FoolingConfig(mode="permute", bank_settings=8, bank_steps=32, size=64)
    assert config.gate_config("classic") == fool.gate_config()
    assert len(list((shared / ".stages").glob("feature_gate-*.pt"))) == 1


def test_a_rerun_reuses_every_region_and_gives_the_same_numbers(family):
    config, out, result, shared = family
    again = run_gate_family(config, out, shared_dir=shared)
    assert {f"gate_family_scores{i:02d}" for i in range(len(REGIONS))} <= set(again.reused_stages)
    assert again.regions == result.regions


def test_the_writer_lists_every_escape_and_plots(family, tmp_path):
    from fvtrust.empirical.reports.writers import write_gate_family

    _, _, result, _ = family
    data = result.to_json()
    paths = write_gate_family(data, tmp_path)
    assert {p.name for p in paths} == {"gate_family.json", "gate_family.md", "gate_family.png",
                                       "gate_family.pdf"}
    text = (tmp_path / "gate_family.md").read_text()
    n_escapes = sum(len(r["escaped"]) + len(r["classic"]["escaped"]) for r in data["regions"])
    assert text.count("| family |") + text.count("| default |") == n_escapes
    assert data["lowest_region"] in text


def test_pixel_similarity_matrix_is_the_pairwise_pearson():
    from fvtrust.empirical.observers.similarity import pixel_similarity, pixel_similarity_matrix

    images = torch.rand(5, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    images[3] = 0.5  # a constant image correlates with nothing
    matrix = pixel_similarity_matrix(images)
    for i in range(5):
        for j in range(5):
            if i != j:
                assert abs(float(matrix[i, j]) - pixel_similarity(images[i], images[j])) < 1e-5


def test_an_image_grid_shows_at_most_twelve_columns_and_says_so(tmp_path, monkeypatch):
    from fvtrust.empirical.reports import figures

    titles = []
    monkeypatch.setattr(figures.plt.Figure, "suptitle", lambda self, t, **k: titles.append(t))
    figures.image_grid({"a": torch.rand(30, 3, 8, 8)}, [f"unit {i}" for i in range(30)], "grid",
                       tmp_path / "g")
    assert titles == [f"grid (first {figures.MAX_COLUMNS} of 30 columns)"]
    assert (tmp_path / "g.png").exists()
