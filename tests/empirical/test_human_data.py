"""Published human data (empirical/human_data.py): the numbers and their layer depths."""

import pytest

from fvtrust.empirical.nets.layers import relative_depths
from fvtrust.empirical.nets.registry import load_model
from fvtrust.empirical.observers import human_data


def test_per_layer_numbers_are_the_published_ones():
    nat = [human_data.REFERENCES_PER_LAYER["natural"][layer].value for layer in human_data.INCEPTION_LAYERS]
    syn = [human_data.REFERENCES_PER_LAYER["synthetic"][layer].value for layer in human_data.INCEPTION_LAYERS]
    assert nat == [0.72, 0.96, 0.94, 0.96, 1.00, 0.98, 0.94, 1.00, 0.80]
    assert syn == [0.62, 0.86, 0.74, 0.94, 0.84, 0.80, 0.88, 0.88, 0.82]
    assert human_data.REFERENCES_OVERALL["natural"].value == 0.922
    assert human_data.REFERENCES_BY_CONDITION["Min+Max-9"]["synthetic"].value == 0.717
    assert human_data.OCCLUSION["random"].value == 0.60
    for h in human_data.REFERENCES_PER_LAYER["natural"].values():
        assert "Borowski" in h.citation


def test_inception_depths_match_torchvision_googlenet():
    g = load_model("googlenet", weights="random")
    names = [layer.replace("mixed", "inception") for layer in human_data.INCEPTION_LAYERS]
    depth = relative_depths(g, names)
    assert [depth[n] for n in names] == pytest.approx(list(human_data.INCEPTION_RELATIVE_DEPTH))


def test_relative_depth_skips_reused_modules(lite0):
    # EfficientNet's `_swish` runs in the stem and in the head: it has no single depth.
    depth = relative_depths(lite0, ["_blocks.0", "_blocks.15", "logits"])
    assert 0 < depth["_blocks.0"] < depth["_blocks.15"] < depth["logits"] == 1.0
    with pytest.raises(ValueError, match="_swish"):
        relative_depths(lite0, ["_swish"])


def test_as_dict_is_json_ready():
    import json

    data = json.loads(json.dumps(human_data.as_dict()))
    assert data["occlusion"]["synthetic"]["error"] == 0.04
    with pytest.raises(ValueError, match="task must be"):
        human_data.human_overall("ranking")
