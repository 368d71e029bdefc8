"""The photo corpus, source ids, source-disjoint splits and user directories."""

import shutil

import numpy as np
import pytest
import torch

from fvtrust.empirical.data.corpus import (
    INSTALL_COMMAND,
    PHOTOS,
    CorpusNotInstalled,
    corpus_crops,
    corpus_photos,
    corpus_sources,
    source_files,
)
from fvtrust.empirical.data.folders import check_not_calibration, image_folder
from fvtrust.empirical.data.natural import natural_images
from fvtrust.empirical.data.shifts import augment_natural
from fvtrust.empirical.data.splits import gate_split, source_of, split_by_source


def test_corpus_is_installed_and_diverse():
    photos = corpus_photos()
    sources = {s for s, _, _ in photos}
    assert len(photos) == len(PHOTOS) + 7 and len(sources) == 68
    assert len(corpus_sources()) == 61
    for _, _, image in photos:
        assert image.ndim == 3 and image.shape[0] == 3 and min(image.shape[1:]) >= 200
        assert 0 <= float(image.min()) and float(image.max()) <= 1
    # Real photographs differ: no two scenes share (nearly) the same mean colour and contrast.
    stats = torch.stack([torch.cat([im.mean((1, 2)), im.std((1, 2))]) for _, _, im in photos])
    d = torch.cdist(stats, stats) + torch.eye(len(stats))
    assert float(d.min()) > 0


def test_crop_ids_name_their_scene_and_split_by_source():
    data = corpus_crops(300, 48, seed=2)
    assert data.images.shape == (300, 3, 48, 48)
    assert source_of("mate-backgrounds/Dune@Dune.jpg#2") == "mate-backgrounds/Dune"
    assert source_of("opencv-doc/aero@aero3.jpg#0") == source_of("opencv-doc/aero@aero1.jpg#4")
    assert source_of("/data/a@b/x.jpg") == "/data/a@b/x.jpg"  # a file path is its own source
    first, second = split_by_source(data.sources, 0.5, seed=1)
    a = {source_of(data.sources[i]) for i in first}
    b = {source_of(data.sources[i]) for i in second}
    assert a and b and not a & b and len(first) + len(second) == 300
    # every file of a multi-file scene lands on one side
    aero = [i for i, s in enumerate(data.sources) if s.startswith("opencv-doc/aero@")]
    assert len({int(i in set(first.tolist())) for i in aero}) <= 1


def test_gate_split_is_source_disjoint_three_ways():
    data = natural_images(None, 600, 32, seed=0)
    split = gate_split(data, seed=3)
    parts = [{source_of(s) for s in p.sources} for p in (split.train, split.threshold, split.held_out)]
    assert all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    counts = split.counts()
    assert counts["held_out_sources"] >= 20 and counts["held_out_images"] >= 150
    with pytest.raises(ValueError, match="needs at least 4 distinct sources, got 3"):
        gate_split(natural_images(None, 30, 32, corpus="bundled").subset(range(3)))


def test_missing_corpus_names_the_install_command(tmp_path):
    with pytest.raises(CorpusNotInstalled, match="apt-get install -y --no-install-recommends"):
        corpus_crops(4, 32, root=tmp_path)
    assert "opencv-doc" in INSTALL_COMMAND
    with pytest.raises(ValueError, match="unknown corpus"):
        natural_images(None, 4, 32, corpus="imagenet")


def test_augmentations_stay_images_and_are_seeded():
    x = corpus_crops(12, 32, seed=1).images
    a, b = augment_natural(x, seed=5), augment_natural(x, seed=5)
    assert torch.equal(a, b) and a.shape == x.shape
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.equal(a, augment_natural(x, seed=6))


def test_image_folder_accepts_flat_trees_and_names_damaged_files(tmp_path):
    from PIL import Image

    for i in range(3):
        arr = (np.random.default_rng(i).random((40, 50, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(tmp_path / f"p{i}.png")
    data = image_folder(tmp_path, size=32)
    assert data.images.shape == (3, 3, 32, 32) and data.labels is None
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.jpg"):
        image_folder(tmp_path, size=32)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no image files"):
        image_folder(empty, size=32)


def test_verification_images_must_not_be_calibration_photos(tmp_path):
    photo = PHOTOS[0]
    shutil.copy(f"/{photo.path}", tmp_path / "renamed_copy.jpg")
    with pytest.raises(ValueError, match=r"1 file\(s\) are calibration photos .*renamed_copy\.jpg"):
        check_not_calibration([tmp_path / "renamed_copy.jpg"], [f"/{p.path}" for p in PHOTOS])
    check_not_calibration([tmp_path / "renamed_copy.jpg"], [f"/{p.path}" for p in PHOTOS[1:]])
    # calibration files follow from source ids: every file of a scene, a user's file itself
    aero = source_files(["opencv-doc/aero", "/data/x.jpg", "skimage/coffee"])
    assert [a.rsplit("/", 1)[1] for a in aero] == ["aero1.jpg", "aero3.jpg", "x.jpg"]
