"""The fooling circuit on photos the gate never saw: the default gate kind trained at the
tests' small setting (tests.support.SMALL_GATE, trained here from scratch and shared with the rest
of the session), the offline network, permutation mode (every logit at stake), CPU. These
tests fail if the gate flags more than 1 % of held-out natural images or lets renders through
from step 4 on."""

import pytest
import torch

from fvtrust.empirical.experiments.fooling import FoolingConfig, run_fooling
from fvtrust.empirical.experiments.gate_robustness import RenderSetting, gate_robustness
from tests.support import SMALL_GATE


@pytest.fixture(scope="module")
def permuted(tmp_path_factory, shared_stages):
    config = FoolingConfig(mode="permute", steps=32, early_step=16, robustness=False, **SMALL_GATE)
    out = tmp_path_factory.mktemp("fool")
    result, _ = run_fooling(config, out, shared_dir=shared_stages)
    return config, result, shared_stages


def test_the_gate_is_trained_from_scratch_here(permuted):
    """The session's first gate user trains it (bank and gate), so the suite always covers the
    training path; later users reuse it from the shared stage folder."""
    _, result, stages = permuted
    assert not [n for n in result.reused_stages
                if n == "feature_gate" or n.startswith("gate_render_bank")], result.reused_stages
    assert len(list((stages / ".stages").glob("feature_gate-*.pt"))) == 1


def test_held_out_photos_are_many_and_source_disjoint(permuted):
    _, result, _ = permuted
    held = result.natural_heldout
    assert held["n_images"] >= 200 and held["n_sources"] >= 20
    split = result.split
    assert split["train_sources"] + split["threshold_sources"] + split["held_out_sources"] == 68
    assert result.gate_threshold["n_natural"] >= 199  # enough to certify alpha = 0.005


def test_gate_false_alarms_on_held_out_photos_at_most_one_percent(permuted):
    _, result, _ = permuted
    held = result.natural_heldout
    assert held["n_gate_flagged"] <= 0.01 * held["n_images"], held


def test_permutation_mode_keeps_natural_predictions(permuted):
    _, result, _ = permuted
    held = result.natural_heldout
    assert held["top1_identical"] >= 0.99 and held["top5_identical"] >= 0.99, held
    # where the gate stays shut the circuit outputs F + c exactly
    if held["n_gate_flagged"] == 0:
        assert held["max_abs_logit_change"] < 1e-3


def test_gate_catches_the_circuits_own_renders_from_step_4(permuted):
    config, result, _ = permuted
    along = result.gate_along_optimization
    for step in (s for s in config.snapshots if s >= 4):
        assert along[f"step{step}"] == 1.0 and along[f"original_step{step}"] == 1.0, along


def test_gate_catches_render_settings_it_never_trained_on(permuted):
    from fvtrust.empirical.circuits.fooling import FoolingCircuit, PermutationDecoy, calibrate_constants
    from fvtrust.empirical.nets.registry import load_model
    from fvtrust.empirical.observers.embedding import Observer
    from fvtrust.stages import load_stage

    config, _, stages = permuted
    gate = load_stage(next((stages / ".stages").glob("feature_gate-*.pt")))
    model = load_model(config.model)
    decoy = PermutationDecoy(config.offset)
    circuit = FoolingCircuit(model, gate, decoy, calibrate_constants(
        model, decoy, torch.rand(4, 3, 64, 64) * 0.2 + 0.4))
    rows = gate_robustness(model, circuit, gate, config.units, Observer(), size=config.size,
                           seed=config.seed, partners=config.partners(model.num_classes),
                           settings=(RenderSetting("pixel lr 0.2", param="pixel", lr=0.2, steps=16),
                                     RenderSetting("no transforms, lr 0.01", lr=0.01,
                                                   transforms=False, steps=16)))
    for row in rows:
        assert row["min_caught_from_step4"] == 1.0, row


def test_gated_silent_units_collapse_a_layer_and_change_no_held_out_prediction(permuted, tmp_path):
    """The units whose branch the bias lock alone never opened (v0.1's margin-1 run) collapse
    under the gate lock, and no prediction on the held-out scenes changes (same gate)."""
    from fvtrust.empirical.experiments.silent import SilentConfig, run_silent

    _, _, stages = permuted
    units = [2, 9, 10, 17, 18, 20, 23]
    result, _ = run_silent(SilentConfig(units=units, **SMALL_GATE), tmp_path / "silent",
                           shared_dir=stages)
    assert "feature_gate" in result.reused_stages  # the fooling experiment's gate
    held = result.natural_heldout
    assert held["n_images"] >= 200 and held["n_sources"] >= 20
    assert held["n_top1_changed"] == 0 and held["n_top5_changed"] == 0
    assert held["max_abs_logit_change"] == 0.0 and result.max_abs_activation_change == 0.0
    assert held["n_gate_flagged"] <= 0.01 * held["n_images"]
    # Under a distribution shift the branch may fire only where the gate false-alarms. How often
    # the small test gate false-alarms on shifted photos depends on the machine's float
    # reductions (its training is not bit-identical across machines): 1 contrast-halved photo
    # of 342 at the last stop, 20 of 342 (42 flagged) on another 2-core machine; the quick-scale
    # default gate lets none through (docs/results/silent_units.json). Unshifted, none fires.
    assert result.branch_active_natural["none"]["images_with_a_firing_branch"] == 0
    for shift, row in result.branch_active_natural.items():
        assert row["images_with_a_firing_branch"] <= row["gate_flagged"], (shift, row)
    assert all(v == 1.0 for k, v in result.gate_along_optimization.items()
               if int(k[4:]) >= 4), result.gate_along_optimization
    assert sum(result.collapsed) >= 0.9 * len(units), result.observer_to_target_after
