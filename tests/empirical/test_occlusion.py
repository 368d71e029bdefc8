"""Sliding occlusions of the occlusion task (empirical/occlusion.py)."""

import pytest
import torch

from fvtrust.empirical.nets.layers import forward_activations
from fvtrust.empirical.observers.occlusion import (
    OcclusionGrid,
    extreme_occlusions,
    occlude_with_mean,
    occlusion_responses,
)


@pytest.mark.parametrize("fraction, patch, positions", [(0.4, 90, 68), (0.5, 112, 57)])
def test_paper_grids(fraction, patch, positions):
    # Zimmermann et al. 2021 at 224 px, stride 2: 40 % → 90 px, 68×68; 50 % → 112 px, 57×57.
    grid = OcclusionGrid.from_fraction(224, fraction, 2)
    assert grid.patch == patch and len(grid) == positions ** 2


def test_grid_reaches_the_border():
    grid = OcclusionGrid(100, 30, 8)
    offsets = grid.offsets()
    assert offsets[0] == 0 and offsets[-1] == 70 and len(grid.boxes()) == len(offsets) ** 2


def test_fill_is_the_patch_own_mean_colour():
    image = torch.rand(3, 20, 20)
    out = occlude_with_mean(image, torch.tensor([[2, 5], [10, 0]]), 6)
    for k, (t, s) in enumerate([(2, 5), (10, 0)]):
        region = out[k, :, t:t + 6, s:s + 6]
        want = image[:, t:t + 6, s:s + 6].mean((1, 2))
        assert torch.allclose(region, want[:, None, None].expand_as(region))
        mask = torch.ones(20, 20, dtype=torch.bool)
        mask[t:t + 6, s:s + 6] = False
        assert torch.equal(out[k][:, mask], image[:, mask])


def test_responses_equal_one_forward_per_occlusion(lite0):
    torch.manual_seed(0)
    image = torch.rand(3, 64, 64)
    grid = OcclusionGrid(64, 24, 20)
    resp = occlusion_responses(lite0, "_blocks.5", image, grid, batch_size=3)
    boxes = grid.boxes()
    assert resp.shape == (len(boxes), 80)
    for i in (0, len(boxes) - 1):
        occluded = occlude_with_mean(image, boxes[i:i + 1], 24)
        want = forward_activations(lite0, occluded, ["_blocks.5"])["_blocks.5"].mean((2, 3))[0]
        assert torch.allclose(resp[i], want, atol=1e-5)


def test_extremes_are_argmax_and_argmin():
    boxes = torch.tensor([[0, 0], [0, 4], [4, 0]])
    trial = extreme_occlusions(torch.tensor([0.5, 2.0, -1.0]), boxes, clean=3.0)
    assert trial.least == (0, 4) and trial.most == (4, 0)
    assert trial.response_most == -1.0 and trial.response_clean == 3.0


def test_bad_grids_and_images_are_named(lite0):
    with pytest.raises(ValueError, match=r"patch must be 1\.\.64 px"):
        OcclusionGrid(64, 80, 2)
    with pytest.raises(ValueError, match="stride must be >= 1 px, got 0"):
        OcclusionGrid(64, 10, 0)
    with pytest.raises(ValueError, match="fraction must lie in"):
        OcclusionGrid.from_fraction(64, 1.5, 2)
    with pytest.raises(ValueError, match=r"one \(3, 64, 64\) image"):
        occlusion_responses(lite0, "_blocks.5", torch.rand(1, 3, 64, 64), OcclusionGrid(64, 10, 8))
