"""The fooling circuit on photos the gate never saw: the default gate, the offline network,
permutation mode (every logit at stake), CPU. These tests fail if the gate flags more than
1 % of held-out natural images or lets renders through from step 4 on."""

import pytest
import torch

from fvtrust.empirical.experiments.fooling import FoolingConfig, run_fooling
from fvtrust.empirical.experiments.gate_robustness import RenderSetting, gate_robustness


@pytest.fixture(scope="module")
def permuted(tmp_path_factory):
    config = FoolingConfig(mode="permute", steps=32, early_step=16, robustness=False)
    out = tmp_path_factory.mktemp("fool")
    result, _ = run_fooling(config, out)
    return config, result, out


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

    config, _, out = permuted
    gate = load_stage(next((out / ".stages").glob("feature_gate-*.pt")))
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


def test_gated_silent_units_collapse_a_layer_and_change_no_held_out_prediction(permuted):
    """The units whose branch the bias lock alone never opened (v0.1's margin-1 run) collapse
    under the gate lock, and no prediction on the held-out scenes changes (same gate)."""
    from fvtrust.empirical.experiments.silent import SilentConfig, run_silent

    _, _, out = permuted
    units = [2, 9, 10, 17, 18, 20, 23]
    result, _ = run_silent(SilentConfig(units=units), out / "silent", shared_dir=out)
    assert "feature_gate" in result.reused_stages  # the fooling experiment's gate
    held = result.natural_heldout
    assert held["n_images"] >= 200 and held["n_sources"] >= 20
    assert held["n_top1_changed"] == 0 and held["n_top5_changed"] == 0
    assert held["max_abs_logit_change"] == 0.0 and result.max_abs_activation_change == 0.0
    assert held["n_gate_flagged"] <= 0.01 * held["n_images"]
    for shift, row in result.branch_active_natural.items():
        assert row["images_with_a_firing_branch"] == 0, shift
    assert all(v == 1.0 for k, v in result.gate_along_optimization.items()
               if int(k[4:]) >= 4), result.gate_along_optimization
    assert sum(result.collapsed) >= 0.9 * len(units), result.observer_to_target_after
