"""A user's images: a directory tree (ImageFolder/ImageNet layout or any tree of files), its
files grouped into sources by a rule (``--sources``); file digests, so that verification
images can be refused when they are calibration photos.

A *source* is what a held-out split keeps on one side: several crops or shots of one scene
must share one, or they leak across the split. Rules (:func:`source_ids`):

* ``file``: every file is its own source;
* ``folder``: the files of one folder share a source;
* a regular expression: searched in each file's path relative to the root, the source is its
  first group (or the whole match): ``'^([^_]+)_'`` groups ``beach_1.jpg`` and ``beach_2.jpg``;
* ``auto`` (the default): ``folder`` when the files sit in subfolders, unless they are
  ImageNet's class folders (``n01440764/…``: classes, not scenes); ``file`` otherwise.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from fvtrust.empirical.data.crops import NaturalImages, resize_center_crop
from fvtrust.empirical.data.images import read_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def image_files(root: str | Path, option: str = "image directory") -> list[Path]:
    """Every image file under `root` (any depth, through symlinked folders, each real folder
    once), sorted; a clear error naming `option` when there is none, and naming a file whose
    name is not valid UTF-8 (it could not be stored in a record)."""
    root = Path(root)
    if not root.exists():
        raise ValueError(f"{option} {str(root)!r} does not exist")
    if not root.is_dir():
        raise ValueError(f"{option} {str(root)!r} is a file, not a folder of images")
    files, seen = [], set()
    for folder, subdirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a symlink loop, or a folder reached twice: read it once
            subdirs[:] = []
            continue
        seen.add(real)
        subdirs.sort()
        for name in names:
            path = Path(folder) / name
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                try:
                    str(path).encode("utf-8")
                except UnicodeEncodeError:
                    name = os.fsencode(path)
                    raise ValueError(f"{option}: the file name {name!r} is not valid UTF-8; "
                                     f"rename it") from None
                files.append(path)
    if not files:
        raise ValueError(f"{option} {str(root)!r} holds no image files "
                         f"({', '.join(IMAGE_SUFFIXES)})")
    return sorted(files)


SOURCE_RULES = ("auto", "file", "folder")
_SYNSET = re.compile(r"n\d{8}")


def check_source_rule(rule: str) -> str:
    """`rule` if it is a rule: auto, file, folder or a regular expression (compiled here)."""
    if not isinstance(rule, str) or not rule:
        raise ValueError(f"--sources must be auto, file, folder or a regular expression, got {rule!r}")
    if rule not in SOURCE_RULES:
        try:
            re.compile(rule)
        except re.error as exc:
            raise ValueError(f"--sources {rule!r} is neither auto, file, folder nor a regular "
                             f"expression ({exc})") from None
    return rule


#: metadata of a config's ``sources`` field: it means nothing without ``images`` (the corpus's
#: sources are its scenes), so it leaves the keys of corpus runs as they were before it existed
SOURCES_KEY = {"omit_from_key": lambda config: config.images is None}


def check_sources_option(images: str | None, sources: str) -> str:
    """`sources` checked (:func:`check_source_rule`), and refused without `images`."""
    check_source_rule(sources)
    if images is None and sources != "auto":
        raise ValueError(f"--sources {sources!r} groups the files of --images DIR; without --images "
                         f"the photo corpus's sources are its scenes")
    return sources


def resolve_source_rule(rule: str, files: list[Path], root: Path) -> str:
    """The rule ``auto`` stands for with these files (see the module docstring)."""
    if check_source_rule(rule) != "auto":
        return rule
    folders = {p.parent for p in files}
    if folders == {root}:
        return "file"
    if all(p.parent.parent == root and _SYNSET.fullmatch(p.parent.name) for p in files):
        return "file"  # ImageNet's class folders: many unrelated photos each
    return "folder"


def _escaped(key: str) -> str:
    # "#" and "@" separate a sample id's parts (splits.source_of): keep them out of the key
    return key.replace("%", "%25").replace("#", "%23").replace("@", "%40")


def source_ids(files: list[Path], root: str | Path, rule: str = "auto") -> list[str]:
    """A sample id per file: the file's path, prefixed by its source where the rule groups
    files (``"folder:/data/beach@/data/beach/1.jpg"``); ``splits.source_of`` reads it back."""
    root = Path(root)
    rule = resolve_source_rule(rule, files, root)
    if rule == "file":
        return [str(p.resolve()) for p in files]
    if rule == "folder":
        return [f"{_escaped('folder:' + str(p.parent.resolve()))}@{p.resolve()}" for p in files]
    pattern, out = re.compile(rule), []
    for p in files:
        rel = p.relative_to(root).as_posix()
        match = pattern.search(rel)
        if match is None:
            raise ValueError(f"--sources {rule!r} matches nothing in {rel!r} (searched in the "
                             f"path relative to {str(root)!r})")
        key = match.group(1) if pattern.groups else match.group(0)
        if not key:
            raise ValueError(f"--sources {rule!r} gives {rel!r} an empty source")
        out.append(f"{_escaped('regex:' + key)}@{p.resolve()}")
    return out


def user_file(sample: str) -> str | None:
    """The file behind a sample id of :func:`image_folder` (either form), None for others
    (corpus crops, scikit-image's photos)."""
    if sample.startswith("/"):
        return sample
    group, at, path = sample.partition("@")
    return path if at and group.startswith(("folder:", "regex:")) and path.startswith("/") else None


def image_folder(root: str | Path, size: int = 224, limit: int | None = None,
                 seed: int = 0, option: str = "image directory",
                 sources: str = "auto") -> NaturalImages:
    """Images from a directory — ImageFolder/ImageNet layout (one folder per class: labels
    are the folder indices) or any tree of image files (no labels) — resized and
    centre-cropped; `limit` keeps a seeded random subset. `sources` groups the files into
    sources (see the module docstring)."""
    root = Path(root)
    check_source_rule(sources)
    files = image_files(root, option)
    ids = source_ids(files, root, sources)
    classes = sorted({p.parent.name for p in files})
    layered = all(p.parent.parent == root for p in files)
    order = np.arange(len(files))
    if limit is not None and limit < len(order):
        order = np.sort(np.random.default_rng(seed).choice(order, size=limit, replace=False))
    images, samples, labels = [], [], []
    for i in order:
        path = files[int(i)]
        images.append(resize_center_crop(read_image(path), size))
        samples.append(ids[int(i)])
        labels.append(classes.index(path.parent.name) if layered else -1)
    return NaturalImages(torch.stack(images), samples,
                         torch.tensor(labels) if layered else None)


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (a copy of a calibration photo has the same digest)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_not_calibration(verify_files: Iterable[str | Path],
                          calibration_files: Iterable[str | Path]) -> None:
    """Refuse verification files whose bytes equal a calibration file's, naming them."""
    calibration = {}
    for p in calibration_files:
        calibration.setdefault(file_digest(p), str(p))
    overlap = [(str(p), calibration[d]) for p in verify_files
               if (d := file_digest(p)) in calibration]
    if overlap:
        shown = "; ".join(f"{v} = {c}" for v, c in overlap[:5])
        more = f" and {len(overlap) - 5} more" if len(overlap) > 5 else ""
        raise ValueError(f"--verify-images must not overlap the calibration images: "
                         f"{len(overlap)} file(s) are calibration photos ({shown}{more})")


def verification_images(directory: str | Path, calibration_files: Iterable[str | Path],
                        size: int) -> NaturalImages:
    """A user's directory for checking natural behaviour: refused, by content, if any file is
    a calibration photo; else every image, resized and centre-cropped to `size`."""
    check_not_calibration(image_files(directory), calibration_files)
    return image_folder(directory, size=size, sources="file")  # no split inside: each file counts
