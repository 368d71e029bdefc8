"""Fooling circuits and silent units (empirical/fooling.py, gates.py, silent.py)."""

import pytest
import torch

from fvtrust.empirical.circuits.fooling import (
    FoolingCircuit,
    PermutationDecoy,
    TemplateDecoy,
    calibrate_constants,
)
from fvtrust.empirical.circuits.gates import (
    Gate,
    NearestCalibrationGate,
    check_gate_images,
    conformal_threshold,
    gate_accuracy,
    train_classifier_gate,
)
from fvtrust.empirical.circuits.silent import (
    GatedSilentUnits,
    SilentConv,
    conv_input,
    install_silent_units,
)
from fvtrust.empirical.data.splits import split_indices
from fvtrust.empirical.experiments.silent import branch_activity
from fvtrust.empirical.nets.layers import forward_activations, predict
from fvtrust.empirical.observers.similarity import pixel_similarity
from fvtrust.empirical.render.loop import render
from fvtrust.empirical.render.objectives import channel, class_logit
from tests.empirical.digits import SIZE, trained_digits_network


@pytest.fixture(scope="module")
def digits():
    model, data = trained_digits_network()
    cal, held = split_indices(len(data), 0.5, seed=0)
    return model, data.images[cal], data.images[held]


@pytest.fixture(scope="module")
def renders(digits):
    model, _, _ = digits
    result = render(model, class_logit(list(range(10))), steps=24, size=SIZE,
                    snapshots=(1, 4, 24))
    return torch.cat([result.snapshots[s] for s in (1, 4, 24)])


@pytest.fixture(scope="module")
def gate(digits):
    model, cal, _ = digits
    return NearestCalibrationGate(model, "0").calibrate(cal)


def test_digits_network_is_a_real_classifier(digits):
    model, data = trained_digits_network()
    assert float((predict(model, data.images).argmax(1) == data.labels).float().mean()) > 0.9


def test_nearest_gate_separates_natural_from_visualizations_in_a_closed_world(digits, renders, gate):
    _, _, held = digits
    acc = gate_accuracy(gate, held, renders)
    assert acc["natural_passed"] == 1.0 and acc["visualizations_caught"] == 1.0


def test_permutation_circuit_keeps_natural_predictions_and_routes_gradients(digits, renders, gate):
    model, cal, held = digits
    decoy = PermutationDecoy(3)
    circuit = FoolingCircuit(model, gate, decoy, calibrate_constants(model, decoy, cal, renders))
    before, after = predict(model, held), predict(circuit, held)
    assert torch.equal(before.argmax(1), after.argmax(1))
    assert float((after - before - circuit.constants.c).abs().max()) < 1e-4
    # On a visualization input (E = 1) the gradient of A_i is the gradient of D_i = F_{i+3}.
    x = renders[-1:].clone().requires_grad_(True)
    assert float(gate(x)) == 1.0
    (grad_a,) = torch.autograd.grad(circuit(x)[0, 2], x)
    (grad_d,) = torch.autograd.grad(model(x)[0, 5], x)
    assert torch.allclose(grad_a, grad_d, atol=1e-6)


def test_template_circuit_shows_the_target(digits, renders, gate):
    model, cal, held = digits
    target = torch.zeros(3, SIZE, SIZE)
    target[:, 4:12, 7:9] = 1.0  # a bar: nothing like any digit's visualization
    decoy = TemplateDecoy(target, [0])
    circuit = FoolingCircuit(model, gate, decoy, calibrate_constants(model, decoy, cal, renders))
    assert torch.equal(predict(model, held).argmax(1), predict(circuit, held).argmax(1))
    fooled = render(circuit, class_logit(0), steps=16, size=SIZE, seed=3).images[0]
    original = render(model, class_logit(0), steps=16, size=SIZE, seed=3).images[0]
    assert pixel_similarity(fooled, target) > 0.4
    assert pixel_similarity(fooled, target) > pixel_similarity(original, target) + 0.3


def test_classifier_gate_trains(digits, renders):
    _, cal, held = digits
    gate = train_classifier_gate(cal, renders[::2], epochs=15, size=96)
    acc = gate_accuracy(gate, held, renders[1::2])
    assert acc["accuracy"] > 0.9


def test_silent_branch_is_exactly_zero_on_held_out_digits(digits):
    model, cal, held = digits
    layer = "4"  # the third conv
    target = render(model, channel(layer, 0), steps=16, size=SIZE, seed=1).images[0]
    silent = install_silent_units(model, layer, target, cal)
    module = silent.net[4]
    assert isinstance(module, SilentConv)
    with torch.no_grad():
        branch = module.branch(conv_input(silent, module.conv, held))
    assert float(branch.max()) == 0.0
    a = forward_activations(model, held, [layer])[layer]
    b = forward_activations(silent, held, [layer])[layer]
    assert torch.equal(a, b)


class _FixedGate(Gate):
    """E(x) = `value` for every image."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def decide(self, images: torch.Tensor) -> torch.Tensor:
        return torch.full((len(images),), self.value, device=images.device)


def test_gated_silent_branches_open_only_where_the_gate_opens(digits):
    model, cal, held = digits
    layer = "4"
    target = render(model, channel(layer, 0), steps=16, size=SIZE, seed=1).images[0]
    # b′ at the mean natural response: the bias alone lets the branches fire on held-out digits
    shut = install_silent_units(model, layer, target, cal, margin=-1.0, gate=_FixedGate(0.0))
    assert isinstance(shut, GatedSilentUnits)
    activity = branch_activity(shut, layer, held)
    assert activity.images_firing_without_gate > 0
    assert activity.images_firing == 0 and activity.gate_flagged == 0
    assert torch.equal(predict(model, held), predict(shut, held))
    opened = install_silent_units(model, layer, target, cal, margin=-1.0, gate=_FixedGate(1.0))
    assert branch_activity(opened, layer, held).images_firing > 0
    assert not torch.equal(predict(model, held), predict(opened, held))

    def gradient(net: torch.nn.Module) -> torch.Tensor:
        x = held[:4].clone().requires_grad_(True)
        forward_activations(net, x, [layer])[layer][:, 1].sum().backward()
        return x.grad
    # the open gate routes the unit's gradient through its branch; the shut one does not
    assert torch.equal(gradient(shut), gradient(model))
    assert not torch.allclose(gradient(opened), gradient(model))
    with pytest.raises(ValueError, match="a negative margin needs the gate lock"):
        install_silent_units(model, layer, target, cal, margin=-0.5)
    with pytest.raises(ValueError, match=r"margin must be a finite number >= -1, got -2"):
        install_silent_units(model, layer, target, cal, margin=-2.0, gate=_FixedGate(0.0))


def test_conformal_threshold_is_the_right_order_statistic():
    scores = torch.arange(1.0, 200.0)  # 1 … 199
    assert conformal_threshold(scores, 0.005) == 199.0  # ⌈200·0.995⌉ = 199th smallest
    assert conformal_threshold(scores, 0.1) == 180.0  # ⌈200·0.9⌉ = 180th


def test_silent_units_on_the_bundled_network():
    from fvtrust.empirical.experiments.silent import SilentConfig, run_silent

    # The paper's bias lock (the gate lock is tested on the corpus in test_fooling_heldout.py)
    result, images = run_silent(SilentConfig(units=[0, 1, 2], steps=32, size=64, n_natural=96,
                                             lock="bias"))
    held = result.natural_heldout
    assert held["n_images"] > 20 and held["n_sources"] > 10
    assert held["top1_identical"] == 1.0 and held["n_top1_changed"] == 0
    assert held["max_abs_logit_change"] == 0.0 and result.max_abs_activation_change == 0.0
    assert all(row["images_with_a_firing_branch"] == 0 and row["images"] == held["n_images"]
               for row in result.branch_active_natural.values())
    assert len(result.collapsed) == 3 and result.collapsed_fraction == sum(result.collapsed) / 3
    assert images["silent units"].shape == (3, 3, 64, 64)




def test_an_interrupted_whole_layer_run_resumes_at_the_batch_it_was_in(lite0, tmp_path, monkeypatch):
    """Each render batch of the silent experiment is a stage of its own: a run stopped in a
    batch keeps the ones it finished, and its resumption equals an uninterrupted run."""
    from fvtrust.empirical.experiments import silent as experiment
    from fvtrust.stages import Stages

    monkeypatch.setattr(experiment, "RENDER_CHUNK", 2)
    config = experiment.SilentConfig(units=[0, 1, 2], steps=3, size=32, lock="bias")
    seeds, snapshots = [0, 0, 0], [1, 3]
    whole = experiment._render_units(lite0, config, seeds, snapshots, Stages(None, config), "r")
    calls, real = [], experiment.render

    def stopped(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # ^C in the second batch
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(experiment, "render", stopped)
    with pytest.raises(KeyboardInterrupt):
        experiment._render_units(lite0, config, seeds, snapshots, Stages(tmp_path, config), "r")
    monkeypatch.setattr(experiment, "render", real)
    stages = Stages(tmp_path, config)
    resumed = experiment._render_units(lite0, config, seeds, snapshots, stages, "r")
    assert stages.reused == ["r_0"]
    assert sorted(resumed) == sorted(whole) == ["final", "step1", "step3"]
    for key, images in whole.items():
        assert images.shape[0] == 3 and torch.equal(resumed[key], images), key

def test_bad_input(digits, gate):
    model, cal, _ = digits
    with pytest.raises(ValueError, match=r"target image must have shape \(3, H, W\)"):
        TemplateDecoy(torch.zeros(1, 8, 8), [0])
    with pytest.raises(ValueError, match="not a convolution with spatial structure"):
        install_silent_units(model, "8", torch.rand(3, SIZE, SIZE), cal)
    with pytest.warns(UserWarning, match="calibrated on only 5 images"):
        NearestCalibrationGate(model, "0").calibrate(cal[:5])
    with pytest.raises(ValueError, match=r"gate images must have shape \(B, 3, H, W\), got \(3, 8, 8\)"):
        gate(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match=r"gate images must lie in \[0, 1\], got values in \[-0\.5, 1\.5\]"):
        gate(torch.linspace(-0.5, 1.5, 384).view(2, 3, 8, 8))
    with pytest.raises(ValueError, match="gate images must be floating point"):
        check_gate_images(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="need at least 199"):
        conformal_threshold(torch.zeros(100), 0.005)


def test_fool_and_silent_commands_write_json_and_figures(tmp_path):
    import json

    from fvtrust.empirical.cli import main
    from fvtrust.empirical.data.corpus import corpus_crops
    from fvtrust.empirical.data.images import save_png

    # --verify-images: a directory of PNG files (crops of two scikit-image photos); the
    # overlap check compares file contents, and none of these files is a calibration file.
    verify = tmp_path / "verify"
    for i, img in enumerate(corpus_crops(6, 64, sources=["skimage/coffee", "skimage/chelsea"]).images):
        save_png(img, verify / f"crop{i}.png")
    out = tmp_path / "out"  # one folder for both: they share the gate's saved stages
    args = ["fool", "--units", "417", "--steps", "16", "--size", "64", "--natural", "60",
            "--gate", "nearest", "--verify-images", str(verify), "--out", str(out)]
    rc = main(args)
    result = json.loads((out / "fooling_target.json").read_text())
    # At this toy scale the circuit may not fool: then the command says so and exits 1.
    shown = sum(m > o for m, o in zip(result["observer_similarity_manipulated"],
                                      result["observer_similarity_original"], strict=True))
    assert rc == (0 if shown and result["gate"]["visualizations_caught"] > 0 else 1)
    assert result["natural_heldout"]["n_images"] > 0
    assert result["natural_verify"]["n_images"] == 6
    assert (out / "fooling_target.png").exists() and (out / "fooling_target.pdf").exists()
    assert main(args) == rc  # resumed from the saved stages
    assert "manipulated_renders" in json.loads(
        (out / "fooling_target.json").read_text())["reused_stages"]
    assert main(["silent", "--units", "0,1", "--steps", "8", "--size", "64", "--natural", "40",
                 "--lock", "bias", "--verify-images", str(verify), "--out", str(out)]) == 0
    silent = json.loads((out / "silent_units.json").read_text())
    assert silent["natural_verify"]["n_images"] == 6
    assert (out / "silent_units.png").exists()
