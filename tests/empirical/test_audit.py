"""The audit: detectors with known answers, calibration's false-flag rate on a synthetic null,
the zoo's ground truth on a small trained network, and the refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.functional import normalize

from fvtrust.empirical.circuits.fooling import FoolingCircuit, LayerFoolingCircuit
from fvtrust.empirical.circuits.gate_setup import CalibrationPhotos
from fvtrust.empirical.circuits.gates import Gate
from fvtrust.empirical.circuits.silent import SilentConv
from fvtrust.empirical.cli import main
from fvtrust.empirical.data.crops import NaturalImages
from fvtrust.empirical.data.splits import GateSplit
from fvtrust.empirical.experiments.audit.calibration import (
    Calibration,
    CalibrationMismatch,
    calibrate,
    min_units,
)
from fvtrust.empirical.experiments.audit.detectors import (
    DETECTORS,
    AuditConfig,
    AuditContext,
    audit_scores,
    check_layer,
)
from fvtrust.empirical.experiments.audit.zoo import (
    MANIPULATIONS,
    ZooConfig,
    ZooSetup,
    build_zoo,
    natural_cost,
    success,
)
from fvtrust.empirical.nets.layers import forward_activations, predict
from fvtrust.empirical.nets.registry import LOGITS, Network
from fvtrust.empirical.observers.embedding import Observer
from fvtrust.empirical.reports.audit import write_zoo
from tests.empirical.digits import SIZE, trained_digits_network

CONV = "4"  # the digits network's last convolution (32 units)
MID = "3"  # the ReLU after its middle convolution (32 units)
SIDES = {d: DETECTORS[d].side for d in DETECTORS}


class SaturationGate(Gate):
    """E(x) = 1 iff the image has colour (max − min over channels > 0.02 somewhere on average):
    the digits are grey, renders are coloured. A gate whose answer is known exactly."""

    def decide(self, images: torch.Tensor) -> torch.Tensor:
        spread = images.amax(1) - images.amin(1)
        return (spread.flatten(1).mean(1) > 0.02).float()


@pytest.fixture(scope="module")
def digits():
    model, held = trained_digits_network()
    return model, held


def _digit_set(held: NaturalImages, lo: int, hi: int) -> NaturalImages:
    return held.subset(np.arange(lo, hi))


@pytest.fixture(scope="module")
def setup(digits):
    """A zoo setup on the digits network with the saturation gate and digits as the photos."""
    model, held = digits
    split = GateSplit(_digit_set(held, 0, 200), _digit_set(held, 200, 300), _digit_set(held, 300, len(held)))
    config = ZooConfig(logit_units=(0, 1, 2, 3), conv_layer=CONV, conv_units=(1, 2, 3, 4), offset=1,
                       mid_layer=MID, mid_units=(0, 5, 31), size=SIZE, steps=24, finetune_steps=40,
                       target="coffee")
    s = ZooSetup(model, config)
    s.__dict__["photos"] = CalibrationPhotos(split, split.train.images, split.threshold.images, [])
    s.__dict__["gate"] = SaturationGate()
    return s


@pytest.fixture(scope="module")
def observer():
    return Observer(model_name="efficientnet_lite1", size=64)


def _config(**kw):
    return AuditConfig(steps=24, size=SIZE, n_exemplars=5, n_random=20, n_gradient=16, **kw)


# ------------------------------------------------------------------ detectors, known answers


def test_dormant_is_zero_for_a_clean_convolution(setup, observer):
    """A convolution is linear in its input, so every image has the same sensitivity pattern:
    dormant = 0 exactly."""
    clean, _ = audit_scores(setup.model, CONV, [1, 2, 3, 4], setup.photos.split.held_out, _config(),
                            ["dormant"], observer)
    assert np.allclose(clean["dormant"], 0.0, atol=1e-6)


def test_dormant_is_exact_for_a_permutation_circuit(setup, observer):
    """With the gate open on a render (and F′ < k), logit u answers with F_{u+1}: its sensitivity
    to the pooled features is the read-out's row W_{u+1}, while on every natural image it is
    W_u. So dormant = 1 − cos(W_{u+1}, W_u), exactly."""
    entry = MANIPULATIONS["fooling_permute"].build(setup)
    ctx = AuditContext(entry.network, LOGITS, entry.units, setup.photos.split.held_out, _config(), observer)
    scores = DETECTORS["dormant"].score(entry.network, LOGITS, entry.units, ctx.natural, context=ctx)
    w = setup.model.net[-1].weight.double()
    renders = ctx.renders.flatten(0, 1)
    gate_open = SaturationGate()(renders).view(len(entry.units), -1).bool()
    with torch.no_grad():
        f = entry.network.original(renders).view(len(entry.units), -1, 10)
    c, k = entry.network.constants.c, entry.network.constants.k
    checked = 0
    for i, u in enumerate(entry.units):
        if bool(gate_open[i].all()) and bool((f[i, :, u] + c < k).all()):
            expected = 1 - float(torch.nn.functional.cosine_similarity(w[u + 1], w[u], dim=0))
            assert scores[i] == pytest.approx(expected, abs=1e-5)
            checked += 1
    assert checked, "no render opened the gate: the test would prove nothing"


def test_dormant_is_one_when_the_response_bypasses_the_layer_input(setup, observer):
    """The target decoy reads the pixels, not the pooled features: on a render (gate open) the
    logit does not depend on the read-out's input at all, so dormant = 1."""
    entry = MANIPULATIONS["fooling_target"].build(setup)
    ctx = AuditContext(entry.network, LOGITS, entry.units, setup.photos.split.held_out, _config(),
                       observer)
    gate_open = SaturationGate()(ctx.renders.flatten(0, 1)).view(len(entry.units), -1)
    scores = DETECTORS["dormant"].score(entry.network, LOGITS, entry.units, ctx.natural, context=ctx)
    k = entry.network.constants.k
    with torch.no_grad():
        f = entry.network.original(ctx.renders.flatten(0, 1)).view(len(entry.units), -1, 10)
    for i, u in enumerate(entry.units):
        # B = ReLU(F + c − k) = 0 on every render with the gate open: only the decoy path is live
        if bool(gate_open[i].all()) and bool((f[i, :, u] + entry.network.constants.c < k).all()):
            assert scores[i] == pytest.approx(1.0)


def _context_with(model, natural, responses, activations, **kw):
    ctx = AuditContext(model, CONV, list(range(activations.shape[0])), natural, _config(**kw))
    ctx.__dict__["responses"] = responses
    ctx.__dict__["_rendered"] = (torch.zeros(activations.size, 3, SIZE, SIZE), activations.reshape(-1))
    return ctx


def test_overdrive_is_the_asinh_of_the_render_against_the_natural_range(digits):
    model, held = digits
    natural = _digit_set(held, 0, 60)
    responses = torch.zeros(60, 32)
    responses[:, :3] = torch.linspace(0, 2, 60)[:, None]  # median 1, max 2
    acts = np.array([[1.0, 1.0], [3.0, 5.0], [0.0, 0.0]])
    ctx = _context_with(model, natural, responses, acts)
    z = DETECTORS["overdrive"].score(model, CONV, [0, 1, 2], natural, context=ctx)
    med = float(np.median(responses[:, 0].numpy()))
    expected = np.arcsinh((acts.mean(1) - med) / (2 - med))
    assert np.allclose(z, expected)
    assert z[0] == pytest.approx(0.0, abs=0.02) and z[1] > z[0] > z[2]


def test_embedding_detectors_on_hand_made_embeddings(digits):
    """Seed instability is 0 for identical renders; exemplar consistency is very negative when
    the render embeds exactly as its exemplars and near 0 when it is unrelated to them."""
    model, held = digits
    natural = _digit_set(held, 0, 60)
    responses = torch.zeros(60, 32)
    responses[:, 0] = torch.arange(60.0)  # exemplars of unit 0: the last images
    responses[:, 1] = -torch.arange(60.0)  # exemplars of unit 1: the first images
    ctx = _context_with(model, natural, responses, np.ones((2, 2)))
    nat = normalize(torch.randn(60, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    nat[ctx.exemplars[0]] = normalize(torch.ones(16), dim=0)
    ctx.__dict__["natural_embeddings"] = nat
    like_exemplars = normalize(torch.ones(16), dim=0).expand(2, -1)
    unrelated = normalize(torch.randn(2, 16, generator=torch.Generator().manual_seed(1)), dim=1)
    ctx.__dict__["render_embeddings"] = torch.stack([like_exemplars, unrelated])
    instability = DETECTORS["seed_instability"].score(model, CONV, [0, 1], natural, context=ctx)
    consistency = DETECTORS["exemplar_consistency"].score(model, CONV, [0, 1], natural, context=ctx)
    assert instability[0] == pytest.approx(0.0, abs=1e-6) and instability[1] > 0.5
    assert consistency[0] < -3 and abs(consistency[1]) < 3


def test_sanity_prefers_renders_that_are_processed_like_the_exemplars(digits):
    model, held = digits
    natural = _digit_set(held, 0, 80)
    ctx = AuditContext(model, CONV, [0, 5], natural, _config())
    exemplar_images = natural.images[ctx.exemplars[:, :2]]  # (U, S=2, 3, H, W): the top two
    noise = torch.rand(2, 2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    like, unlike = (AuditContext(model, CONV, [0, 5], natural, _config()) for _ in range(2))
    like.__dict__["_rendered"] = (exemplar_images.flatten(0, 1), np.zeros(4))
    unlike.__dict__["_rendered"] = (noise.flatten(0, 1), np.zeros(4))
    s_like = DETECTORS["sanity"].score(model, CONV, [0, 5], natural, context=like)
    s_unlike = DETECTORS["sanity"].score(model, CONV, [0, 5], natural, context=unlike)
    assert (s_like < s_unlike).all()


def test_every_detector_has_one_call_shape_and_states_its_cost(digits):
    model, held = digits
    natural = _digit_set(held, 0, 60)
    for name, detector in DETECTORS.items():
        assert detector.source and detector.cost and detector.side in ("upper", "both")
        scores = detector.score(model, CONV, [0, 1], natural, _config(observer="efficientnet_lite1"))
        assert scores.shape == (2,), name


# ------------------------------------------------------------------ calibration


def test_calibration_false_flag_rate_on_a_synthetic_null():
    """Clean units drawn from one null: a fresh null sample is flagged at about α (≤ α plus
    binomial noise), and a shifted sample far more often."""
    rng = np.random.default_rng(0)
    alpha = 0.01

    def null(n):
        return {"a": rng.normal(size=n), "b": rng.standard_t(5, size=n), "c": rng.normal(2, 3, size=n)}
    sides = {"a": "upper", "b": "both", "c": "upper"}
    rates = []
    for _ in range(20):
        cal = calibrate(null(400), sides, alpha)
        flagged, fired, _ = cal.verdicts(null(5000))
        rates.append(flagged.mean())
        assert all(bool(f) == bool(x) for f, x in zip(fired, flagged, strict=True))
    assert np.mean(rates) <= alpha + 0.004  # conformal: ≤ α on average over calibrations
    assert np.mean(rates) >= alpha / 3
    shifted = null(2000)
    shifted["a"] = shifted["a"] + 6
    assert cal.verdicts(shifted)[0].mean() > 0.9


def test_a_detector_outside_the_verdict_is_standardized_but_never_decides():
    """τ comes from the verdict's detectors only, and a unit that only they would flag is
    clean; the reported detector is still standardized."""
    rng = np.random.default_rng(1)
    clean = {"a": rng.normal(size=300), "b": rng.normal(size=300)}
    both = calibrate(clean, {"a": "upper", "b": "upper"}, 0.01)
    only_a = calibrate(clean, {"a": "upper", "b": "upper"}, 0.01, in_verdict=["a"])
    assert only_a.verdict_detectors == ["a"] and both.verdict_detectors == ["a", "b"]
    r_a = np.sort(only_a.standardized("a", clean["a"]))
    assert only_a.threshold == r_a[int(np.ceil(301 * 0.99)) - 1]  # the conformal quantile of r_a alone
    r_ab = np.sort(np.maximum(both.standardized("a", clean["a"]),
                              both.standardized("b", clean["b"])))
    assert both.threshold == r_ab[int(np.ceil(301 * 0.99)) - 1]
    probe = {"a": np.array([0.0, 50.0]), "b": np.array([50.0, 0.0])}
    flagged, fired, _ = only_a.verdicts(probe)
    assert flagged.tolist() == [False, True] and fired == [[], ["a"]]
    assert only_a.standardized("b", np.array([50.0]))[0] > only_a.threshold
    with pytest.raises(ValueError, match="verdict"):
        calibrate(clean, {"a": "upper", "b": "upper"}, 0.01, in_verdict=["c"])
    assert not DETECTORS["sanity"].verdict and DETECTORS["dormant"].verdict


def test_each_unit_is_standardized_among_the_clean_units_of_its_own_layer():
    """A detector whose clean level differs by layer (dormant: exactly 0 on a linear layer,
    about 0.17 on a nonlinear block): pooled, every unit of the block looks extreme; per layer,
    the flagged fraction of fresh clean units of both layers stays near α."""
    rng = np.random.default_rng(2)

    def clean(n):
        return ({"d": np.concatenate([rng.normal(0, 1e-4, n), rng.normal(0.17, 0.06, n)])},
                ["linear"] * n + ["block"] * n)
    scores, layers = clean(150)
    pooled = calibrate(scores, {"d": "upper"}, 0.01, resolution={"d": 0.01})
    per_layer = calibrate(scores, {"d": "upper"}, 0.01, resolution={"d": 0.01}, unit_layers=layers)
    assert set(per_layer.detectors) == {"linear", "block"} and set(pooled.detectors) == {"*"}
    fresh, fresh_layers = clean(2000)
    assert per_layer.verdicts(fresh, fresh_layers)[0].mean() <= 0.02
    shifted = {"d": fresh["d"] + np.where(np.asarray(fresh_layers) == "linear", 0.3, 0.0)}
    flagged = per_layer.verdicts(shifted, fresh_layers)[0]
    assert flagged[:2000].mean() > 0.99  # a linear unit at the block's level is extreme there
    r_block = per_layer.standardized("d", np.array([0.17]), "block")[0]
    assert abs(r_block) < 1 and pooled.standardized("d", np.array([0.17]))[0] > 5
    with pytest.raises(CalibrationMismatch, match="layer 'other' has no calibration"):
        per_layer.verdicts({"d": np.zeros(1)}, ["other"])
    with pytest.raises(ValueError, match="layer 'tiny' has 5 clean units"):
        calibrate({"d": rng.normal(size=105)}, {"d": "upper"}, 0.01, unit_layers=["big"] * 100 + ["tiny"] * 5)


def test_the_bench_refuses_too_few_clean_units_per_layer_before_computing():
    from fvtrust.empirical.experiments.audit.bench import BenchConfig

    with pytest.raises(ValueError, match=r"\{'n_clean_conv': 6\}: each layer's calibration needs >= 10"):
        BenchConfig(n_clean_conv=6)
    assert BenchConfig(manipulations=["silent_bias"], n_clean_mid=3).places == ["logits", "conv"]
    with pytest.raises(ValueError, match="n_clean_mid"):
        BenchConfig(manipulations=["fooling_permute_mid"], n_clean_mid=3)


def test_a_units_random_null_does_not_depend_on_the_units_beside_it(digits):
    """The sweep audits units in chunks: unit 3's null is the same alone and beside others."""
    model, held = digits
    alone = AuditContext(model, CONV, [3], held, _config())
    beside = AuditContext(model, CONV, [7, 3, 11], held, _config())
    assert np.array_equal(alone.random[0], beside.random[1])
    assert not np.array_equal(beside.random[0], beside.random[1])


def test_calibration_refuses_too_few_units_and_a_mismatch(tmp_path):
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match=r"50 clean units .* need >= 99"):
        calibrate({"a": rng.normal(size=50)}, {"a": "upper"}, 0.01)
    assert min_units(0.05) == 19
    cal = calibrate({"a": rng.normal(size=120)}, {"a": "upper"}, 0.01, models=["efficientnet_lite0"],
                    layers=["_blocks.5"], settings_hash="abc")
    path = cal.write(tmp_path / "calibration.json")
    again = Calibration.read(path)
    assert again.threshold == cal.threshold and again.detectors == cal.detectors
    again.check("efficientnet_lite0", ["_blocks.5"], "abc")
    with pytest.raises(CalibrationMismatch, match="efficientnet_lite1"):
        again.check("efficientnet_lite1", ["_blocks.5"], "abc")
    with pytest.raises(CalibrationMismatch, match=r"\['_blocks.6'\]"):
        again.check("efficientnet_lite0", ["_blocks.6"], "abc")
    with pytest.raises(CalibrationMismatch, match="settings differ"):
        again.check("efficientnet_lite0", ["_blocks.5"], "xyz")
    again.check("efficientnet_lite1", ["_blocks.6"], "xyz", force=True)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not an audit calibration"):
        Calibration.read(tmp_path / "bad.json")


# ------------------------------------------------------------------ the zoo's ground truth


def test_fooling_entries_preserve_natural_logits_and_show_their_decoys(setup):
    model = setup.model
    held = setup.photos.split.held_out
    colour = torch.rand(6, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    for name in ("fooling_target", "fooling_permute"):
        entry = MANIPULATIONS[name].build(setup)
        assert isinstance(entry.network, FoolingCircuit)
        assert entry.layer == LOGITS and entry.units == [0, 1, 2, 3]
        assert entry.decoys.shape == (4, 3, SIZE, SIZE)
        c = entry.network.constants.c
        assert entry.logit_offset == c
        natural = predict(entry.network, held.images) - predict(model, held.images)
        assert torch.allclose(natural, torch.full_like(natural, c), atol=1e-4)
        cost = natural_cost(entry, model, held.images, held.sources, setup.config)
        assert cost.top1_agreement == 1.0 and cost.max_abs_logit_change < 1e-3 and cost.within_budget
        if name == "fooling_permute":  # the gate is open on colour: unit u outputs F_{u+1} + c
            f, a = predict(model, colour), predict(entry.network, colour)
            assert torch.allclose(a, torch.roll(f, -1, 1) + c, atol=1e-4)
            assert entry.params["offset"] == 1


def test_the_intermediate_fooling_circuit_passes_natural_maps_on_and_permutes_renders(setup):
    """On natural images (gate shut) every map of the layer, and so the logits, are the
    original ones exactly; on coloured images (gate open) map u is map π(u) = (u + 1) mod 32,
    so the circuit's last unit shows channel 0."""
    model = setup.model
    held = setup.photos.split.held_out
    entry = MANIPULATIONS["fooling_permute_mid"].build(setup)
    assert isinstance(entry.network, LayerFoolingCircuit) and entry.family == "architectural"
    assert entry.layer == MID and entry.units == [0, 5, 31] and entry.params["partners"] == [1, 6, 0]
    assert entry.decoys.shape == (3, 3, SIZE, SIZE)
    before = forward_activations(model, held.images, [MID, LOGITS])
    after = forward_activations(entry.network, held.images, [MID, LOGITS])
    assert torch.allclose(after[MID], before[MID], atol=1e-5)
    assert torch.allclose(after[LOGITS], before[LOGITS], atol=1e-4)
    colour = torch.rand(6, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    f = forward_activations(model, colour, [MID])[MID]
    a = forward_activations(entry.network, colour, [MID])[MID]
    assert torch.allclose(a[:, [0, 5, 31]], f[:, [1, 6, 0]], atol=1e-5)
    others = [u for u in range(32) if u not in (0, 5, 31)]
    assert torch.equal(a[:, others], f[:, others])
    cost = natural_cost(entry, model, held.images, held.sources, setup.config)
    assert cost.top1_agreement == 1.0 and cost.unit_correlation_min > 0.9999
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(model.net.parameters(),
                                                           entry.network.net.parameters(), strict=True))
    x = held.images[:4]
    assert torch.equal(predict(model, x), predict(model, x))  # the clean network has no hook
    with pytest.raises(ValueError, match="mid_units"):
        bad = ZooSetup(model, ZooConfig(mid_layer=MID, mid_units=(40,)))
        bad.__dict__.update(photos=setup.photos, gate=setup.gate)
        MANIPULATIONS["fooling_permute_mid"].build(bad)


def test_silent_entries_leave_natural_activations_unchanged(setup):
    held = setup.photos.split.held_out
    for name in ("silent_gate", "silent_bias"):
        entry = MANIPULATIONS[name].build(setup)
        assert entry.layer == CONV and entry.units == [1, 2, 3, 4]
        module = entry.network.net[4]
        assert isinstance(module, SilentConv)
        before = forward_activations(setup.model, setup.build_images, [CONV])[CONV]
        after = forward_activations(entry.network, setup.build_images, [CONV])[CONV]
        assert torch.equal(before, after), name  # shut on every image it was built on
        cost = natural_cost(entry, setup.model, held.images, held.sources, setup.config)
        assert cost.top1_agreement >= 0.95, name


def test_finetune_entries_touch_only_what_lies_below_the_layer(setup):
    """Scope "units": only the manipulated units' own rows of the layer's weight and bias
    move; scope "below": the layer and the main layer with parameters just below it."""
    from dataclasses import replace

    model = setup.model
    units = list(setup.config.conv_units)
    for name in ("decoy_finetune", "slingshot_finetune"):
        entry = MANIPULATIONS[name].build(setup)
        assert entry.family == "weight-space" and entry.layer == CONV and entry.params["scope"] == "units"
        before, after = dict(model.named_parameters()), dict(entry.network.named_parameters())
        changed = [k for k in before if not torch.equal(before[k], after[k])]
        assert sorted(changed) == ["net.4.bias", "net.4.weight"], changed
        rows = (after["net.4.weight"] != before["net.4.weight"]).flatten(1).any(1).nonzero().flatten()
        assert set(rows.tolist()) <= set(units) and len(rows) > 0
        assert np.mean(entry.trace[-5:]) < np.mean(entry.trace[:5]), name  # each step: a new batch
        assert not any(p.requires_grad for p in entry.network.parameters())
    wide = ZooSetup(model, replace(setup.config, finetune_scope="below"))
    wide.__dict__.update(photos=setup.photos, gate=setup.gate)
    entry = MANIPULATIONS["decoy_finetune"].build(wide)
    after = dict(entry.network.named_parameters())
    changed = [k for k, v in model.named_parameters() if not torch.equal(v, after[k])]
    assert changed and all(k.startswith(("net.2.", "net.4.")) for k in changed), changed


def test_success_compares_the_new_render_with_the_decoy_and_the_original(setup, observer):
    entry = MANIPULATIONS["fooling_target"].build(setup)
    decoys = entry.decoys
    ok, to_decoy, _ = success(entry, decoys.clone(), torch.rand_like(decoys), observer)
    assert ok.all() and np.allclose(to_decoy, 1.0, atol=1e-5)
    ok, _, _ = success(entry, torch.rand_like(decoys), torch.rand_like(decoys), observer)
    assert ok.shape == (4,)


def test_zoo_writes_manifests_and_loadable_weights(setup, observer, tmp_path):
    import copy

    reports = build_zoo(setup, ["decoy_finetune", "silent_bias"], observer)
    write_zoo(reports, tmp_path)
    manifest = json.loads((tmp_path / "digits" / "decoy_finetune.json").read_text())
    assert manifest["units"] == [1, 2, 3, 4] and manifest["layer"] == CONV
    assert manifest["family"] == "weight-space" and manifest["n_units"] == 4
    assert manifest["n_succeeded"] == sum(manifest["succeeded"])
    assert {"top1_agreement", "unit_correlation_min", "kendall_tau_topk", "within_budget"} <= set(
        manifest["cost"])
    fresh = copy.deepcopy(setup.model)
    fresh.net.load_state_dict(torch.load(tmp_path / "digits" / "decoy_finetune.pt", weights_only=True))
    x = setup.photos.split.held_out.images[:16]
    assert torch.equal(predict(fresh, x), predict(reports[0].entry.network, x))
    silent = json.loads((tmp_path / "digits" / "silent_bias.json").read_text())
    assert silent["weights"] is None and "MANIPULATIONS['silent_bias'].build" in silent["load"]
    assert not (tmp_path / "digits" / "silent_bias.pt").exists()
    assert (tmp_path / "zoo.md").exists() and (tmp_path / "zoo.png").exists()


# ------------------------------------------------------------------ refusals


def test_a_layer_without_a_channel_axis_is_refused():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(2), nn.AdaptiveAvgPool1d(1), nn.Flatten(1),
                        nn.Linear(4, 3))
    model = Network(net, "toy", (0.5,) * 3, (0.5,) * 3, 16, 3).eval()
    with pytest.raises(ValueError, match=r"layer '1' of toy has output shape \(4, 3844\)"):
        check_layer(model, "1")
    assert check_layer(model, "0") == 4


def test_audit_context_refuses_units_out_of_range_and_too_few_natural_images(digits):
    model, held = digits
    with pytest.raises(ValueError, match=r"units \[32\] are out of range .* 32 units"):
        AuditContext(model, CONV, [0, 32], held, _config())
    with pytest.raises(ValueError, match=r"10 natural images are too few .* need >= 25"):
        AuditContext(model, CONV, [0], _digit_set(held, 0, 10), _config())
    with pytest.raises(ValueError, match="n_seeds must be >= 2"):
        AuditConfig(n_seeds=1)


@pytest.mark.parametrize("argv, message", [
    (["--model", "nope"], "unknown model 'nope'"),
    (["--layers", "_blocks.99"], "unknown layer '_blocks.99'"),
    (["--units", "40-41", "--layers", "_blocks.3"], "out of range for layer '_blocks.3'"),
    (["--natural", "20"], "--natural 20 natural images are too few"),
    (["--seeds", "1"], "n_seeds must be >= 2"),
    (["--alpha", "0.01", "--calibrate", "--units", "0-9"],
     "10 units cannot calibrate a false-flag rate of 0.01"),
    (["--alpha", "0.2", "--calibrate", "--units", "0-5", "--layers", "_blocks.3,_blocks.5"],
     "layers {'_blocks.3': 6, '_blocks.5': 6} have too few units to calibrate"),
])
def test_audit_refuses_bad_input_in_one_line(tmp_path, capsys, argv, message):
    code = main(["audit", "--out", str(tmp_path / "a"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("argv, message", [
    (["--manipulations", "fooling_target,nope"], "--manipulations: unknown ['nope']"),
    (["--conv-units", "0,5000"], "--conv-units: 5000 is out of range (1280 units)"),
    (["--conv-layer", "_blocks.3._depthwise_conv", "--conv-units", "0-7"], "grouped/depthwise convolution"),
    (["--model", "nope"], "unknown model 'nope'"),
    (["--manipulations", "fooling_permute_mid", "--mid-units", "3,112"],
     "--mid-units: 112 is out of range (112 units)"),
    (["--manipulations", "fooling_permute_mid", "--mid-layer", "_blocks.99"], "unknown layer '_blocks.99'"),
])
def test_zoo_refuses_bad_input_in_one_line(tmp_path, capsys, argv, message):
    code = main(["zoo", "--out", str(tmp_path / "z"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "z").exists()


def test_audit_refuses_weights_that_do_not_load(tmp_path, capsys):
    bad = tmp_path / "w.pt"
    bad.write_bytes(b"not a state dict")
    assert main(["audit", "--weights", str(bad), "--out", str(tmp_path / "a")]) == 2
    assert "is not a PyTorch state dict" in capsys.readouterr().err


def test_audit_refuses_a_calibration_of_another_model_unless_forced(tmp_path, capsys):
    cal = calibrate({d: np.random.default_rng(0).normal(size=30) for d in DETECTORS}, SIDES, 0.05,
                    models=["efficientnet_lite1"], layers=["_blocks.1"])
    path = cal.write(tmp_path / "calibration.json")
    code = main(["audit", "--layers", "_blocks.1", "--calibration", str(path), "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code == 2 and "made for efficientnet_lite1, not efficientnet_lite0" in err
    assert not (tmp_path / "a").exists()


# ------------------------------------------------------------------ end to end, on Ray


def test_audit_end_to_end_calibrates_judges_reports_and_resumes(tmp_path, capsys):
    import pandas as pd

    out = tmp_path / "audit"
    argv = ["audit", "--layers", "_blocks.1", "--units", "all", "--steps", "6", "--size", "32",
            "--natural", "60", "--alpha", "0.05", "--chunk", "12", "--workers", "2", "--out", str(out)]
    assert main([*argv, "--calibrate"]) == 0
    printed = capsys.readouterr().out
    assert "of 24 units suspicious" in printed and "24 computed" in printed
    verdicts = pd.read_parquet(out / "verdicts.parquet")
    assert len(verdicts) == 24 and set(verdicts.verdict) <= {"trusted", "suspicious"}
    for d in DETECTORS:
        assert np.isfinite(verdicts[f"audit_{d}"]).all(), d
    cal = json.loads((out / "calibration.json").read_text())
    assert cal["n_units"] == 24 and cal["models"] == ["efficientnet_lite0"]
    # in-sample, the conformal threshold flags at most ⌊α·(n+1)⌋ units
    assert (verdicts.verdict == "suspicious").sum() <= int(0.05 * 25)
    for name in ("audit_report.png", "audit_report.pdf", "audit.md", "units.parquet"):
        assert (out / name).exists(), name
    first = verdicts
    # a rerun computes nothing and gives the same verdicts
    assert main([*argv, "--calibrate"]) == 0
    assert "0 computed" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_parquet(out / "verdicts.parquet"), first)
    # an interrupted run: one task's part is lost; the rerun computes those units only
    parts = sorted((out / "parts").rglob("*.parquet"))
    parts[0].unlink()
    assert main([*argv, "--calibrate"]) == 0
    assert "12 computed" in capsys.readouterr().out
    again = pd.read_parquet(out / "verdicts.parquet")
    assert np.allclose(again.audit_overdrive, first.audit_overdrive)
    # the calibration judges other weights of the same network (here: its own weights, saved to
    # a file, so the verdicts must agree) without --force
    from fvtrust.empirical.nets.registry import load_model

    weights = tmp_path / "w.pt"
    torch.save(load_model("efficientnet_lite0").net.state_dict(), weights)
    other = tmp_path / "audit2"
    assert main([*argv[:-1], str(other), "--units", "0-5", "--weights", str(weights),
                 "--calibration", str(out / "calibration.json")]) == 0
    judged = pd.read_parquet(other / "verdicts.parquet")
    assert len(judged) == 6 and (judged.weights == str(weights)).all()
    # 6 units in one task vs 12 per task: float32 convolutions of other batch sizes take other
    # kernels, so the scores agree to float32 noise (about 1e-6), not to the last digit
    assert np.allclose(judged.combined, first.combined[:6], rtol=1e-4, atol=1e-5)
    # the same verdicts, except for a unit at the threshold itself (in-sample, the conformal
    # threshold is one of the calibration units' own scores): float32 noise may tip it
    threshold = first.threshold[:6].to_numpy()
    clear = np.abs(first.combined[:6].to_numpy() - threshold) > 1e-4 * np.abs(threshold)
    assert clear.sum() >= 4
    assert list(judged.verdict[clear]) == list(first.verdict[:6][clear])
