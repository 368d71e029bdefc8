"""--sources: how a user's files group into sources (what a held-out split keeps apart), and
the warning that names near-duplicate images on both sides of a split."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fvtrust.empirical.cli import main
from fvtrust.empirical.data.folders import (
    check_not_calibration,
    image_files,
    image_folder,
    resolve_source_rule,
    source_ids,
    user_file,
)
from fvtrust.empirical.data.images import save_png
from fvtrust.empirical.data.photos import load_photo
from fvtrust.empirical.data.splits import (
    near_duplicates_across,
    perceptual_hashes,
    source_of,
    split_by_source,
    warn_near_duplicates,
)
from fvtrust.empirical.experiments.afc import AFCConfig
from fvtrust.stages import result_fields, stage_key

SCENES = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "camera")


def _shots(photo: str, n: int) -> list[torch.Tensor]:
    """n shots of one scene: 90 % crops of a photo, each shifted a few pixels further."""
    image = load_photo(photo)
    h, w = image.shape[1:]
    ch, cw = int(0.9 * h), int(0.9 * w)
    return [F.interpolate(image[None, :, 4 * k:4 * k + ch, 4 * k:4 * k + cw], size=(64, 64),
                          mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)
            for k in range(n)]


@pytest.fixture(scope="module")
def scene_tree(tmp_path_factory):
    """Per-scene folders of three shots each: the layout --sources auto reads as folders."""
    root = tmp_path_factory.mktemp("scenes")
    for photo in SCENES:
        for k, shot in enumerate(_shots(photo, 3)):
            save_png(shot, root / photo / f"shot_{k}.png")
    return root


@pytest.fixture(scope="module")
def flat_tree(tmp_path_factory):
    """The same shots in one folder, named scene_k.png: only a REGEX can group them."""
    root = tmp_path_factory.mktemp("flat")
    for photo in SCENES:
        for k, shot in enumerate(_shots(photo, 3)):
            save_png(shot, root / f"{photo}_{k}.png")
    return root


def test_auto_groups_per_scene_folders_and_every_split_keeps_a_scene_on_one_side(scene_tree):
    data = image_folder(scene_tree, size=32)
    assert len({source_of(s) for s in data.sources}) == len(SCENES)
    for seed in range(5):
        first, second = split_by_source(data.sources, 0.5, seed=seed)
        scenes = [{user_file(data.sources[i]).split("/")[-2] for i in part} for part in (first, second)]
        assert not scenes[0] & scenes[1]
    files = image_folder(scene_tree, size=32, sources="file")
    assert len({source_of(s) for s in files.sources}) == 3 * len(SCENES)  # what 0.2 did
    assert [user_file(s) for s in files.sources] == [user_file(s) for s in data.sources]


def test_a_regex_groups_by_its_first_group_and_names_a_file_it_misses(flat_tree, tmp_path):
    assert resolve_source_rule("auto", image_files(flat_tree), flat_tree) == "file"
    data = image_folder(flat_tree, size=32, sources=r"^([^_]+)_")
    groups = {source_of(s) for s in data.sources}
    assert groups == {f"regex:{p}" for p in SCENES}
    (flat_tree / "odd.png").write_bytes((flat_tree / "coffee_0.png").read_bytes())
    try:
        with pytest.raises(ValueError, match=r"--sources '\^\(\[\^_\]\+\)_' matches nothing in 'odd.png'"):
            image_folder(flat_tree, size=32, sources=r"^([^_]+)_")
    finally:
        (flat_tree / "odd.png").unlink()


def test_imagenet_class_folders_stay_one_source_per_file(tmp_path):
    for synset in ("n01440764", "n01443537"):
        for k in range(2):
            save_png(torch.rand(3, 8, 8), tmp_path / synset / f"{k}.png")
    files = image_files(tmp_path)
    assert resolve_source_rule("auto", files, tmp_path) == "file"
    assert source_ids(files, tmp_path) == [str(p.resolve()) for p in files]


def test_source_ids_survive_paths_with_separators(tmp_path):
    odd = tmp_path / "a#b@c"
    save_png(torch.rand(3, 8, 8), odd / "x#1@2.png")
    save_png(torch.rand(3, 8, 8), odd / "y.png")
    save_png(torch.rand(3, 8, 8), tmp_path / "other" / "z.png")
    ids = source_ids(image_files(tmp_path), tmp_path, "folder")
    assert len({source_of(s) for s in ids}) == 2
    assert [user_file(s) for s in ids] == [str(p.resolve()) for p in image_files(tmp_path)]
    assert user_file("mate-backgrounds/Dune@Dune.jpg#2") is None  # a corpus crop has no user file


def test_grouped_files_are_still_refused_as_verification_images(scene_tree):
    data = image_folder(scene_tree, size=32)
    calibration = [user_file(s) for s in data.sources]
    with pytest.raises(ValueError, match="must not overlap the calibration images: 18 file"):
        check_not_calibration(image_files(scene_tree), calibration)


def test_near_duplicates_on_both_sides_of_a_split_are_named(flat_tree):
    data = image_folder(flat_tree, size=64, sources="file")
    first, second = split_by_source(data.sources, 0.5, seed=0)
    with pytest.warns(UserWarning, match=r"near-duplicate image pair\(s\) fall on both sides of the "
                                         r"references / queries split .*_\d\.png ~ .*_\d\.png"):
        pairs = warn_near_duplicates(data, first, second, "references / queries")
    scene = [user_file(s).rsplit("/", 1)[1].split("_")[0] for s in data.sources]
    assert pairs and all(scene[i] == scene[j] for i, j, _ in pairs)  # shots of one scene only
    grouped = image_folder(flat_tree, size=64, sources=r"^([^_]+)_")
    a, b = split_by_source(grouped.sources, 0.5, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_near_duplicates(grouped, a, b, "references / queries") == []


def test_unrelated_photos_are_far_apart_in_hash():
    shots = torch.stack([_shots(p, 1)[0] for p in SCENES])
    h = perceptual_hashes(shots)
    idx = np.arange(len(SCENES))
    assert near_duplicates_across(shots, idx[:3], idx[3:]) == []
    assert len(set(h.tolist())) == len(SCENES)
    shifted = torch.stack([_shots("coffee", 3)[2]])
    both = torch.cat([shots, shifted])
    assert [(i, j) for i, j, _ in near_duplicates_across(both, idx, np.array([len(SCENES)]))] == [(1, 6)]


def test_the_rule_keys_runs_on_a_directory_and_leaves_corpus_keys_alone():
    assert "sources" not in result_fields(AFCConfig())  # corpus runs: the same key as before
    assert result_fields(AFCConfig(images="/data"))["sources"] == "auto"
    assert stage_key(AFCConfig(images="/data")) != stage_key(AFCConfig(images="/data", sources="file"))


@pytest.mark.parametrize("command", [["afc"], ["sanity"], ["fool"], ["silent"], ["sweep"], ["audit"]])
def test_sources_without_images_is_one_line(command, tmp_path, capsys):
    assert main([*command, "--sources", "folder", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("fvtrust: error: --sources 'folder' groups the files of --images DIR; "
                           "without --images the photo corpus's sources are its scenes")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("rule, message", [
    ("([", "is neither auto, file, folder nor a regular expression"),
    (r"^(zzz)", "matches nothing in"),
])
def test_a_bad_rule_is_one_line_before_any_work(rule, message, scene_tree, tmp_path, capsys):
    assert main(["sweep", "--images", str(scene_tree), "--sources", rule, "--units", "0",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fvtrust: error: --sources") and message in err and "\n" not in err
