"""Renderer: param, transform, objectives, render (empirical/)."""

import copy

import numpy as np
import pytest
import torch

from fvtrust.empirical.data.photos import bundled_images
from fvtrust.empirical.nets.layers import forward_activations
from fvtrust.empirical.render.loop import render
from fvtrust.empirical.render.objectives import channel, class_logit, direction, diversity, neuron
from fvtrust.empirical.render.param import FourierImage, PixelImage
from fvtrust.empirical.render.transform import RandomTransform, TransformConfig

LAYER = "_blocks.5"


def test_visualization_exceeds_natural_activations(lite0):
    units = [3, 17]
    result = render(lite0, channel(LAYER, units), steps=48, size=96)
    with torch.no_grad():
        vis = forward_activations(lite0, result.images, [LAYER])[LAYER]
        nat = forward_activations(lite0, bundled_images(40, size=96).images, [LAYER])[LAYER]
    for i, u in enumerate(units):
        vis_act = float(vis[i, u].mean())
        nat_max = float(nat[:, u].mean((1, 2)).max())
        assert vis_act > 2.0 * nat_max, (u, vis_act, nat_max)
    assert np.all(result.trace[-1] > result.trace[0])


def test_batched_render_equals_single_renders(lite0):
    units, seeds = [1, 4, 9], [5, 6, 7]
    # The gradient each image receives in a batch is the one it receives alone ...
    def first_gradient(us, ss):
        param = FourierImage(ss, 64)
        acts = forward_activations(lite0, RandomTransform(TransformConfig(), ss)(param()), [LAYER])
        channel(LAYER, us)(acts).sum().backward()
        return param.spectrum.grad
    batched_grad = first_gradient(units, seeds)
    for i, (u, s) in enumerate(zip(units, seeds, strict=True)):
        alone = first_gradient([u], [s])[0]
        assert float((batched_grad[i] - alone).norm() / alone.norm()) < 1e-5
    # ... so whole renders agree. Adam's first steps move by lr·sign(gradient), which turns
    # float32 round-off into visible differences; in float64 the renders agree to 1e-8.
    model64 = copy.deepcopy(lite0).double()
    batched = render(model64, channel(LAYER, units), steps=6, size=64, seeds=seeds)
    for i, (u, s) in enumerate(zip(units, seeds, strict=True)):
        single = render(model64, channel(LAYER, u), steps=6, size=64, seeds=[s])
        assert torch.allclose(batched.images[i], single.images[0], atol=1e-8)
        assert np.allclose(batched.trace[:, i], single.trace[:, 0], rtol=1e-8)


def test_seeds_make_renders_repeatable(lite0):
    a = render(lite0, channel(LAYER, 2), steps=4, size=64, seed=11)
    b = render(lite0, channel(LAYER, 2), steps=4, size=64, seed=11)
    assert torch.equal(a.images, b.images)


@pytest.mark.parametrize("config", [
    TransformConfig(pad=12, jitter=0, scales=(1.0,), angles=(0.0,), jitter_after=0),
    TransformConfig(pad=0, jitter=8, scales=(1.0,), angles=(0.0,), jitter_after=0),
    TransformConfig(pad=0, jitter=0, scales=(0.9, 1.1), angles=(0.0,), jitter_after=0),
    TransformConfig(pad=0, jitter=0, scales=(1.0,), angles=(-10.0, 10.0), jitter_after=0),
    TransformConfig(pad=0, jitter=0, scales=(1.0,), angles=(0.0,), jitter_after=4),
    TransformConfig(),
])
def test_gradients_reach_the_image_through_every_transform(config):
    param = FourierImage([0, 1], 32)
    out = RandomTransform(config, [0, 1])(param())
    assert out.shape[-1] == config.output_size(32)
    (out * torch.linspace(0, 1, out.shape[-1])).sum().backward()
    grad = param.spectrum.grad
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_identity_transform_is_exact():
    img = PixelImage([0], 16)()
    assert torch.allclose(RandomTransform(TransformConfig.none(), [0])(img), img, atol=1e-5)


def test_objectives_compose(lite0):
    x = torch.rand(2, 3, 64, 64)
    acts = forward_activations(lite0, x, [LAYER, "logits"])
    a, b = channel(LAYER, [0, 1]), class_logit(3)
    combo = a + 2 * b - neuron(LAYER, 0)
    expected = a(acts) + 2 * b(acts) - neuron(LAYER, 0)(acts)
    assert torch.allclose(combo(acts), expected)
    assert (-a)(acts).neg().equal(a(acts))
    assert direction(LAYER, torch.ones(80))(acts).shape == (2,)
    assert diversity(LAYER)(acts).shape == (2,)


def test_minimizing_lowers_the_activation(lite0):
    low = render(lite0, -channel(LAYER, 3), steps=24, size=64)
    activation = -low.trace[:, 0]  # the trace records the objective, here −activation
    assert activation[-1] < activation[0] - 1.0


@pytest.mark.parametrize(("call", "match"), [
    (lambda m: render(m, channel(LAYER, 999), steps=2, size=32),
     "unit 999 is out of range for layer '_blocks.5' with 80 units"),
    (lambda m: render(m, channel("_blocks.99", 0), steps=2, size=32), "unknown layer '_blocks.99'"),
    (lambda m: render(m, channel(LAYER, 0), steps=0), "steps must be a positive integer, got steps=0"),
    (lambda m: render(m, channel(LAYER, 0), steps=1, size=4),
     r"image size must be an integer in \[8, 2048\], got size=4"),
    (lambda m: forward_activations(m, torch.rand(1, 1, 32, 32), [LAYER]), r"shape \(B, 3, H, W\)"),
    (lambda m: forward_activations(m, torch.full((1, 3, 32, 32), float("nan")), [LAYER]), "NaN"),
])
def test_bad_input_is_reported_clearly(lite0, call, match):
    with pytest.raises(ValueError, match=match):
        call(lite0)


def test_training_mode_is_rejected(lite0):
    lite0.train()
    try:
        with pytest.raises(ValueError, match="training mode"):
            render(lite0, channel(LAYER, 0), steps=1, size=32)
    finally:
        lite0.eval()


@pytest.mark.parametrize("units", ["12", 1.0, [1, "2"], True])
def test_units_must_be_ints(units):
    from fvtrust.empirical.render.objectives import channel

    with pytest.raises(ValueError, match="units must be"):
        channel("_blocks.10", units)


def test_bfloat16_autocast_reaches_the_float32_objective(lite0):
    """bfloat16 autocast changes the arithmetic, not the optimization: the final objective,
    scored in float32 on the final image, lands within a few percent of float32's."""
    objective = channel("_blocks.5", [0, 1, 2, 3])
    finals = {}
    for precision in ("float32", "bfloat16"):
        images = render(lite0, objective, steps=24, size=64, precision=precision).images
        with torch.no_grad():
            finals[precision] = float(objective(forward_activations(lite0, images, ["_blocks.5"])).mean())
    assert finals["float32"] > 0
    assert abs(finals["bfloat16"] / finals["float32"] - 1) < 0.05, finals
    with pytest.raises(ValueError, match="precision"):
        render(lite0, objective, steps=1, size=32, precision="float16")
