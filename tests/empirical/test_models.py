"""Model registry, layer access and activations (empirical/models.py)."""

import pytest
import torch

from fvtrust.empirical.data.crops import resize, resize_center_crop
from fvtrust.empirical.data.photos import load_photo
from fvtrust.empirical.nets.layers import (
    capture,
    forward_activations,
    get_layer,
    layer_channels,
    layer_names,
    predict,
)
from fvtrust.empirical.nets.registry import LOGITS, load_model


def test_bundled_network_predicts_real_classes(lite0):
    photos = torch.stack([resize(load_photo(n), 224) for n in ("chelsea", "coffee")])
    top1 = predict(lite0, photos).argmax(1).tolist()
    assert top1 == [285, 967]  # Egyptian cat, espresso
    crops = torch.stack([resize_center_crop(load_photo(n), 224) for n in ("chelsea", "coffee")])
    assert predict(lite0, crops).argmax(1).tolist() == [282, 967]  # tiger cat: sides cropped


def test_layers_are_listed_and_resolved(lite0):
    names = layer_names(lite0)
    assert "_blocks.10" in names and names[-1] == LOGITS
    assert layer_channels(lite0, ["_blocks.10"])["_blocks.10"][0] == 112


def test_unknown_layer_lists_close_matches(lite0):
    with pytest.raises(ValueError, match=r"unknown layer '_block.10'.*did you mean.*'_blocks.10'"):
        get_layer(lite0, "_block.10")


def test_early_stop_gives_the_same_activations(lite0):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    early = forward_activations(lite0, x, ["_blocks.3"])["_blocks.3"]
    with torch.no_grad(), capture(lite0, ["_blocks.3"]) as store:
        lite0(x)
    assert torch.equal(early, store["_blocks.3"])


@pytest.mark.parametrize(("name", "layer", "units"), [("googlenet", "inception4a", 512),
                                                      ("resnet50", "layer4.1.conv2", 512)])
def test_paper_networks_build_offline_with_random_weights(name, layer, units):
    model = load_model(name, weights="random")
    assert not model.training
    assert layer_channels(model, [layer], size=64)[layer][0] == units


def test_random_weights_are_one_network_in_every_process():
    """weights="random" is seeded: a fresh interpreter (a Ray worker, a second benchmark run)
    builds the same network, whatever the caller's generator state, which is left as it was."""
    import subprocess
    import sys

    code = ("import torch; torch.manual_seed(123); torch.rand(7)\n"
            "from fvtrust.empirical.nets.registry import load_model\n"
            "m = load_model('googlenet', weights='random')\n"
            "print(float(sum(p.double().sum() for p in m.parameters())))")
    here = float(sum(p.double().sum() for p in load_model("googlenet", weights="random").parameters()))
    state = torch.random.get_rng_state()
    load_model("googlenet", weights="random")
    assert torch.equal(state, torch.random.get_rng_state())
    there = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True, timeout=300).stdout.split()[-1])
    assert here == there


def test_paper_network_weights_from_a_local_file(tmp_path):
    model = load_model("resnet50", weights="random")
    path = tmp_path / "resnet50.pth"
    torch.save(model.net.state_dict(), path)
    again = load_model("resnet50", weights=str(path))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), again(x))


def test_missing_weights_give_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="does not exist"):
        load_model("googlenet", weights=str(tmp_path / "nope.pth"))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(ValueError, match="could not load torchvision's ImageNet weights for googlenet"):
        load_model("googlenet", weights="imagenet")
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        load_model("vgg")
    with pytest.raises(ValueError, match=r"could not load torchvision's ImageNet weights for vgg11.*"
                                         r"or weights='random'"):
        load_model("torchvision:vgg11")


@pytest.mark.parametrize("images, message", [
    (torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8), "floating point"),
    (torch.rand(1, 3, 8, 8) * 255, r"must lie in \[0, 1\]"),
    (torch.full((1, 3, 8, 8), float("inf")), "NaN or infinite"),
    (torch.full((1, 3, 8, 8), float("nan")), "NaN or infinite"),
])
def test_images_on_another_scale_are_refused_by_name(lite0, images, message):
    from fvtrust.empirical.nets.layers import forward_activations

    with pytest.raises(ValueError, match=message):
        forward_activations(lite0, images, ["_blocks.0"])


def test_a_module_reused_at_several_depths_is_not_a_layer(lite0):
    from fvtrust.empirical.nets.layers import get_layer, layer_names, main_layers, reused_modules

    assert "_swish" in reused_modules(lite0)
    assert "_swish" not in layer_names(lite0) and "_swish" not in main_layers(lite0)
    with pytest.raises(ValueError, match="runs more than once in one forward pass"):
        get_layer(lite0, "_swish")
