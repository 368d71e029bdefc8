"""Any network a researcher brings: a factory in a file or a module, torchvision's zoo
(``vit_b_16`` with random weights, offline), a vision transformer's tokens and heads as
units, a greyscale network; and every bad model named in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fvtrust.empirical.cli import main
from fvtrust.empirical.data.natural import bundled_images
from fvtrust.empirical.nets.layers import (
    attention_heads,
    forward_activations,
    layer_channels,
    layer_responses,
    main_layers,
)
from fvtrust.empirical.nets.registry import LUMA, load_model
from fvtrust.empirical.render.loop import render
from fvtrust.empirical.render.objectives import channel, neuron
from fvtrust.empirical.render.transform import TransformConfig

HERE = Path(__file__).resolve().parent
FILE = HERE / "user_models.py"


def spec(factory: str) -> str:
    return f"{FILE}:{factory}"


@pytest.fixture(scope="module")
def tiny_vit():
    return load_model(spec("tiny_vit"))


@pytest.fixture(scope="module")
def vit_b_16():
    return load_model("torchvision:vit_b_16", weights="random")


def _out_set(out: Path, layer: str) -> Path:
    (folder,) = out.glob(f"{layer}-max-*")
    return folder


# --- user factories ------------------------------------------------------------------------

def test_a_factory_in_a_file_and_in_a_module_is_one_network():
    by_file, by_module = load_model(spec("small_cnn")), load_model("tests.empirical.user_models:small_cnn")
    probe = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    assert torch.equal(by_file(probe), by_module(probe))  # seeded: one network everywhere
    assert (by_file.in_channels, by_file.input_size, by_file.num_classes) == (3, 224, 10)
    assert not by_file.fixed_size and by_file.weights_note == "the factory's own weights"
    assert by_file.mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])  # ImageNet's


def test_a_factorys_attributes_set_channels_size_normalization_and_class_names():
    grey = load_model(spec("grey_cnn"))
    assert (grey.in_channels, grey.input_size, grey.labels[3]) == (1, 32, "digit 3")
    # The network sees the luma of an RGB image, normalized by its own mean and std.
    rgb = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    luma = torch.einsum("bchw,c->bhw", rgb, torch.tensor(LUMA))[:, None]
    assert torch.allclose(grey(rgb), grey.net((luma - 0.5) / 0.25), atol=1e-6)
    assert load_model(spec("flatten_cnn")).fixed_size  # only 32 px fits: found by probing


def test_weights_from_a_file_load_into_a_factorys_network(tmp_path):
    net = load_model(spec("small_cnn"))
    state = {k: v + 1 for k, v in net.net.state_dict().items()}
    torch.save(state, tmp_path / "mine.pt")
    mine = load_model(spec("small_cnn"), weights=str(tmp_path / "mine.pt"))
    assert torch.equal(mine.net.head.bias, net.net.head.bias + 1)
    assert "mine.pt" in mine.weights_note


def test_fvtrust_render_runs_on_a_user_factory_and_stores_the_pngs_activation(tmp_path):
    args = ["render", "--model", spec("small_cnn"), "--layer", "features.3", "--units", "0-1",
            "--steps", "3", "--size", "32", "--out", str(tmp_path)]
    assert main(args) == 0
    folder = _out_set(tmp_path, "features.3")
    record = json.loads((folder / "render.json").read_text())
    png = torch.from_numpy(np.asarray(Image.open(folder / "unit_0001.png"), dtype=np.float32) / 255)
    model = load_model(spec("small_cnn"))
    act = forward_activations(model, png.permute(2, 0, 1)[None], ["features.3"])["features.3"]
    assert record["units"]["1"]["final_activation"] == pytest.approx(float(act[0, 1].mean()), rel=1e-5)


def test_a_greyscale_network_renders_in_one_channel(tmp_path):
    assert main(["render", "--model", spec("grey_cnn"), "--layer", "features.3", "--units", "0-2",
                 "--steps", "4", "--size", "32", "--out", str(tmp_path)]) == 0
    folder = _out_set(tmp_path, "features.3")
    pixels = np.asarray(Image.open(folder / "unit_0002.png").convert("RGB"))
    assert pixels.std() > 0
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    grey = load_model(spec("grey_cnn"))
    result = render(grey, channel("features.3", [0, 1]), steps=6, size=32, param="pixel")
    assert torch.equal(result.images[:, 0], result.images[:, 2])  # grey RGB, exactly
    assert (result.trace[-1] > result.trace[0]).all()  # the one channel is optimized


# --- vision transformers -------------------------------------------------------------------

def test_the_tokens_of_a_vit_block_are_units_in_every_view(tiny_vit):
    block = "encoder.layers.encoder_layer_1"
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    raw = {}
    handle = tiny_vit.net.encoder.layers[1].register_forward_hook(lambda m, i, o: raw.update(out=o))
    acts = forward_activations(tiny_vit, images, [block, f"{block}@cls", f"{block}@token5",
                                                 f"{block}@patches"])
    handle.remove()
    tokens = raw["out"]  # (B, 17, 16): a class token, then 4 x 4 patches
    assert torch.equal(acts[block], tokens[:, 1:].transpose(1, 2).unflatten(2, (4, 4)))
    assert torch.equal(acts[f"{block}@patches"], acts[block])
    assert torch.equal(acts[f"{block}@cls"], tokens[:, 0])
    assert torch.equal(acts[f"{block}@token5"], tokens[:, 5])
    assert layer_channels(tiny_vit, [block, f"{block}@cls"]) == {
        block: (16, 4, 4), f"{block}@cls": (16,), "logits": (10,)}
    assert main_layers(tiny_vit) == ["conv_proj", "encoder.layers.encoder_layer_0", block,
                                     "heads.head", "logits"]


@pytest.mark.parametrize("which", ["tiny", "vit_b_16"])
def test_attention_heads_are_the_modules_output_before_its_projection(which, tiny_vit, vit_b_16):
    model = tiny_vit if which == "tiny" else vit_b_16
    size, block = model.input_size, model.net.encoder.layers[1]
    images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(4))
    got = {}
    handle = block.self_attention.register_forward_hook(
        lambda m, i, o: got.update(inputs=i, out=o[0]))
    heads = forward_activations(model, images, ["encoder.layers.encoder_layer_1.self_attention@heads"])
    handle.remove()
    mha = block.self_attention
    z = attention_heads(mha, *got["inputs"])  # (B, H, T, d_h)
    merged = torch.nn.functional.linear(z.transpose(1, 2).flatten(2), mha.out_proj.weight,
                                        mha.out_proj.bias)
    assert torch.allclose(merged, got["out"], atol=1e-5)
    side = int((z.shape[2] - 1) ** 0.5)
    rms = z[:, :, 1:].square().mean(-1).sqrt().unflatten(2, (side, side))
    (value,) = heads.values()
    assert value.shape == (2, mha.num_heads, side, side) and torch.allclose(value, rms, atol=1e-6)


def test_renders_objectives_and_responses_accept_tokens_and_heads(tiny_vit):
    block = "encoder.layers.encoder_layer_1"
    for layer in (block, f"{block}@cls", f"{block}.self_attention@heads"):
        result = render(tiny_vit, channel(layer, [0, 1]), steps=12, size=32,
                        transforms=TransformConfig.none())  # no jitter: the trace must rise
        assert result.images.shape == (2, 3, 32, 32) and np.isfinite(result.scores).all()
        assert (result.trace[-1] > result.trace[0]).all(), layer
    assert render(tiny_vit, neuron(block, 0), steps=2, size=40).images.shape == (1, 3, 40, 40)
    natural = bundled_images(6, size=48, seed=0)  # any size: the ViT sees them at 32 px
    assert layer_responses(tiny_vit, f"{block}@cls", natural.images).shape == (6, 16)


def test_the_sanity_check_runs_on_a_vit(tiny_vit):
    from fvtrust.empirical.experiments.sanity import SanityConfig, run_sanity

    config = SanityConfig(model=spec("tiny_vit"), n_natural=40, min_per_class=2,
                          min_confidence=0.0, size=32, steps=4, vis_per_class=1)
    result = run_sanity(config, natural=bundled_images(40, size=32, seed=0), model=tiny_vit)
    assert result.layers == ["conv_proj", "encoder.layers.encoder_layer_0",
                             "encoder.layers.encoder_layer_1", "logits"]
    assert np.isfinite(result.score_mean).all()


def test_fvtrust_layers_lists_vit_b_16s_blocks_tokens_and_heads(capsys):
    assert main(["layers", "--model", "torchvision:vit_b_16", "--weights", "random"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("torchvision:vit_b_16: random weights (untrained")
    blocks = [line for line in out.splitlines() if line.startswith("encoder.layers.encoder_layer_")]
    assert len(blocks) == 12
    assert all("units=  768  tokens  shape=(197, 768)" in line and "196 patches" in line
               and "12 heads as units: " in line for line in blocks)


def test_fvtrust_render_runs_on_vit_b_16_with_random_weights(tmp_path):
    layer = "encoder.layers.encoder_layer_3@cls"
    assert main(["render", "--model", "torchvision:vit_b_16", "--weights", "random", "--layer",
                 layer, "--units", "7", "--steps", "2", "--size", "32", "--out", str(tmp_path)]) == 0
    record = json.loads((_out_set(tmp_path, layer) / "render.json").read_text())
    assert np.isfinite(record["units"]["7"]["final_activation"])


# --- bad models and layers, one line each ----------------------------------------------------

@pytest.mark.parametrize("model, message", [
    (spec("not_a_module"), "the factory returned a str, not a torch.nn.Module"),
    (spec("raises"), "the factory raised RuntimeError: no weights here"),
    (spec("rejects_its_size"), "rejects a (1, 3, 64, 64) input"),
    (spec("returns_a_dict"), "returns a dict, not class logits"),
    (spec("nope"), "has no callable 'nope'"),
    ("missing/net.py:make", "file 'missing/net.py' does not exist"),
    ("no_such_package.nets:make", "cannot import module 'no_such_package.nets'"),
    ("torchvision:vit_b_17", "unknown torchvision classifier 'vit_b_17'; did you mean vit_b_16"),
    ("resnet_fifty", "unknown model 'resnet_fifty': not a registered name"),
])
def test_a_bad_model_is_named_in_one_line(model, message, capsys):
    with pytest.raises(ValueError, match=None) as err:
        load_model(model)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert main(["layers", "--model", model]) == 2
    assert message in capsys.readouterr().err


def test_a_factory_file_that_fails_to_import_is_named(tmp_path, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("import torch\ndef make(:\n")
    assert main(["layers", "--model", f"{broken}:make"]) == 2
    assert f"importing '{broken}' failed (SyntaxError" in capsys.readouterr().err


@pytest.mark.parametrize("layer, message", [
    ("pair", "layer 'pair' returns a tuple of 2 (keys [0, 1]); choose one with pair#0"),
    ("pair#5", "its output has no element '5'"),
    ("conv#0", "#0 picks an element of a tuple or dict, but 'conv' returns a Tensor"),
    ("conv@cls", "@cls applies to a transformer's (B, T, D) tokens"),
    ("conv@heads", "@heads needs an nn.MultiheadAttention, 'conv' is a Conv2d"),
    ("conv@bogus", "unknown view @bogus"),
])
def test_a_layer_without_one_tensor_says_how_to_choose(layer, message, tmp_path, capsys):
    assert main(["render", "--model", spec("tuple_net"), "--layer", layer, "--units", "0",
                 "--steps", "1", "--size", "32", "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err
    assert layer_channels(load_model(spec("tuple_net")), ["pair#1"])["pair#1"] == (4, 222, 222)


def test_views_that_do_not_exist_for_this_network_are_refused(tiny_vit):
    with pytest.raises(ValueError, match="token 17 is out of range for 17 tokens"):
        layer_channels(tiny_vit, ["encoder.layers.encoder_layer_0@token17"])
    no_cls = load_model(spec("tiny_vit"))
    no_cls.prefix_tokens = 0  # as a network without a class token declares
    with pytest.raises(ValueError, match="has no class token"):
        layer_channels(no_cls, ["encoder.layers.encoder_layer_0@cls"])


def test_renders_of_an_edited_factory_are_not_reused(tmp_path):
    factory = tmp_path / "net.py"
    factory.write_text(FILE.read_text())
    args = ["render", "--model", f"{factory}:small_cnn", "--layer", "features.3", "--units", "0",
            "--steps", "2", "--size", "32", "--out", str(tmp_path / "r")]
    assert main(args) == 0
    factory.write_text(FILE.read_text().replace("nn.Conv2d(8, 12, 3", "nn.Conv2d(8, 12, 5"))
    assert main(args) == 0
    assert len(list((tmp_path / "r").glob("features.3-max-*"))) == 2  # side by side, none reused
