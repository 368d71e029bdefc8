import numpy as np
import pytest
import torch

from fvtrust.empirical.data.crops import augmented_crop
from fvtrust.empirical.data.folders import image_folder
from fvtrust.empirical.data.photos import bundled_images, load_photo
from fvtrust.empirical.data.splits import split_indices


def test_bundled_images_are_deterministic_and_in_range():
    a, b = bundled_images(12, size=64, seed=3), bundled_images(12, size=64, seed=3)
    assert a.images.shape == (12, 3, 64, 64)
    assert torch.equal(a.images, b.images)
    assert float(a.images.min()) >= 0 and float(a.images.max()) <= 1
    assert not torch.equal(a.images, bundled_images(12, size=64, seed=4).images)


def test_crops_differ_by_seed():
    photo = load_photo("astronaut")
    assert not torch.equal(augmented_crop(photo, 32, 0), augmented_crop(photo, 32, 1))


def test_split_is_seeded_and_disjoint():
    cal, held = split_indices(50, 0.6, seed=1)
    assert len(cal) == 30 and len(held) == 20
    assert not set(cal) & set(held) and set(cal) | set(held) == set(range(50))
    assert np.array_equal(cal, split_indices(50, 0.6, seed=1)[0])


def test_image_folder(tmp_path):
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for k in range(2):
            Image.fromarray(np.full((40, 60, 3), 80 * k, np.uint8)).save(tmp_path / cls / f"{k}.png")
    data = image_folder(tmp_path, size=32)
    assert data.images.shape == (4, 3, 32, 32) and data.labels.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize(("call", "match"), [
    (lambda: load_photo("lena"), "unknown photo 'lena'"),
    (lambda: bundled_images(0), "at least one image"),
    (lambda: split_indices(10, 1.5), "calibration_fraction"),
    (lambda: image_folder("/no/such/dir"), "does not exist"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
