"""A diverse offline corpus of real photographs, installed from Debian packages.

The ten scikit-image photos are a demo; anything that must generalize (the fooling gate, its
held-out false-alarm rate, the psychophysics' exemplars) needs many distinct scenes. These
69 photographs (61 sources: several files of one scene share a source id) come from four
Debian packages, each with its licence stated in the package's ``copyright`` file:

* ``plasma-workspace-wallpapers`` (KDE; GPL-2+): 10 landscape, nature and architecture photos;
* ``lomiri-wallpapers-16.04`` (Ubuntu community photographers; CC-BY-4.0 / CC-BY-SA-4.0 /
  CC0-1.0 per file): 14 photos — mountains, a stream, dogs, a dragonfly, a fig, a room, …;
* ``mate-backgrounds`` (MATE; GPL-2+): 12 close-up nature photos;
* ``opencv-doc`` (OpenCV's sample data; Apache-2.0 AND BSD-3-Clause): 25 sources — fruit, a
  baboon, a squirrel, a butterfly, a building, streets, aerial views, a football player, …

Install (about 250 MB, 10 s)::

    apt-get install -y --no-install-recommends plasma-workspace-wallpapers \\
        lomiri-wallpapers-16.04 mate-backgrounds opencv-doc

Every photo was checked by eye to be a photograph (renders, drawings, logos, charts,
checkerboards and text were left out). Together with the ten scikit-image photos the corpus
has 68 distinct sources (scikit-image's telescope, fundus and microscope images are left out:
see :data:`NOT_PHOTOGRAPHS`). Sample ids are ``"<package>/<source>@<file>#<crop>"``; the source
id (``source_of``) is everything before ``@``, so all crops of all files of one scene land on
one side of :func:`empirical.data.splits.split_by_source`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fvtrust.empirical.data.crops import NaturalImages, augmented_crop
from fvtrust.empirical.data.images import read_image_uint8
from fvtrust.empirical.data.photos import BUNDLED_PHOTOS, load_photo

#: Where the packages put their files (a different root can be given for tests/chroots).
DEFAULT_ROOT = Path("/")

PACKAGES = ("plasma-workspace-wallpapers", "lomiri-wallpapers-16.04", "mate-backgrounds",
            "opencv-doc")
INSTALL_COMMAND = ("apt-get install -y --no-install-recommends " + " ".join(PACKAGES))


@dataclass(frozen=True)
class Photo:
    """One photograph file of the corpus."""

    package: str
    source: str  # scene id; files of one scene share it
    path: str  # relative to the file-system root
    licence: str

    @property
    def source_id(self) -> str:
        return f"{self.package}/{self.source}"


def _plasma(name: str) -> Photo:
    files = {"ColorfulCups": "2560x1600.jpg"}
    return Photo("plasma-workspace-wallpapers", name,
                 f"usr/share/wallpapers/{name}/contents/images/{files.get(name, '1600x1200.jpg')}",
                 "GPL-2+")


def _lomiri(stem: str, licence: str) -> Photo:
    return Photo("lomiri-wallpapers-16.04", stem.split("_by_")[0],
                 f"usr/share/backgrounds/{stem}.jpg", licence)


def _mate(name: str) -> Photo:
    return Photo("mate-backgrounds", name, f"usr/share/backgrounds/mate/nature/{name}.jpg", "GPL-2+")


def _opencv(source: str, file: str) -> Photo:
    return Photo("opencv-doc", source, f"usr/share/doc/opencv-doc/examples/data/{file}",
                 "Apache-2.0 AND BSD-3-Clause")


PHOTOS: tuple[Photo, ...] = (
    *(_plasma(n) for n in ("BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour",
                           "EveningGlow", "FallenLeaf", "Grey", "OneStandsOut", "Path",
                           "summer_1am")),
    _lomiri("Bridge_by_Sander_Klootwijk", "CC-BY-SA-4.0"),
    _lomiri("Dragonfly_by_Bolly", "CC-BY-SA-4.0"),
    _lomiri("Picture_0B_by_freespace", "CC-BY-4.0"),
    _lomiri("Picture_1A_by_freespace", "CC-BY-4.0"),
    _lomiri("Wine_by_Jakkub_Mede", "CC-BY-SA-4.0"),
    _lomiri("aitzgorri_by_Aitzol_Berasategi", "CC-BY-4.0"),
    _lomiri("free_by_Peter_Nerlich", "CC-BY-SA-4.0"),
    _lomiri("friends_by_Aitzol_Berasategi", "CC-BY-4.0"),
    _lomiri("greentock_by_Peter_Nerlich", "CC-BY-SA-4.0"),
    _lomiri("life_by_Aitzol_Berasategi", "CC-BY-4.0"),
    _lomiri("picosdeeuropa_by_Aitzol_Berasategi", "CC-BY-4.0"),
    _lomiri("seeding_by_Clements_Engelhardt", "CC0-1.0"),
    _lomiri("sunset_by_Aitzol_Berasategi", "CC-BY-4.0"),
    _lomiri("umang_by_Abhishek_Mudgal", "CC-BY-4.0"),
    *(_mate(n) for n in ("Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow",
                         "LadyBird", "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower")),
    _opencv("aero", "aero1.jpg"), _opencv("aero", "aero3.jpg"),
    _opencv("aloe", "aloeL.jpg"), _opencv("aloe", "aloeR.jpg"),
    _opencv("apple", "apple.jpg"), _opencv("baboon", "baboon.jpg"),
    _opencv("basketball", "basketball1.png"), _opencv("basketball", "basketball2.png"),
    _opencv("blox", "blox.jpg"), _opencv("board", "board.jpg"),
    _opencv("box", "box.png"), _opencv("box", "box_in_scene.png"),
    _opencv("building", "building.jpg"), _opencv("butterfly", "butterfly.jpg"),
    _opencv("chicky", "chicky_512.png"), _opencv("ela", "ela_original.jpg"),
    _opencv("fruits", "fruits.jpg"), _opencv("graf", "graf1.png"), _opencv("graf", "graf3.png"),
    _opencv("home", "home.jpg"), _opencv("books", "left.jpg"), _opencv("books", "right.jpg"),
    _opencv("leuven", "leuvenA.jpg"), _opencv("leuven", "leuvenB.jpg"),
    _opencv("licenseplate", "licenseplate_motion.jpg"), _opencv("messi", "messi5.jpg"),
    _opencv("orange", "orange.jpg"), _opencv("rubberwhale", "rubberwhale1.png"),
    _opencv("rubberwhale", "rubberwhale2.png"), _opencv("smarties", "smarties.png"),
    _opencv("squirrel", "squirrel_cls.jpg"), _opencv("stuff", "stuff.jpg"),
    _opencv("sudoku", "sudoku.png"),
)


#: scikit-image images that are scientific imaging (a telescope field, a fundus camera, a
#: microscope slide), not photographs of scenes: kept out of the photo corpus.
NOT_PHOTOGRAPHS = ("hubble", "retina", "immunohistochemistry")


class CorpusNotInstalled(RuntimeError):
    """The Debian packages holding the corpus are missing."""


def missing_files(root: Path = DEFAULT_ROOT) -> list[Photo]:
    return [p for p in PHOTOS if not (root / p.path).is_file()]


def check_installed(root: Path = DEFAULT_ROOT) -> None:
    missing = missing_files(root)
    if missing:
        packages = sorted({p.package for p in missing})
        raise CorpusNotInstalled(
            f"the photo corpus is not installed: {len(missing)} of {len(PHOTOS)} files missing "
            f"(e.g. /{missing[0].path}) from {', '.join(packages)}. Install it with: "
            f"{INSTALL_COMMAND}")


def source_files(sources: Sequence[str], root: Path = DEFAULT_ROOT) -> list[str]:
    """The files behind source ids: a corpus scene's photo files, a file path itself
    (scikit-image's photos live inside the package and have no file of their own)."""
    wanted = set(sources)
    files = [str(root / p.path) for p in PHOTOS if p.source_id in wanted]
    return files + sorted(s for s in wanted if s.startswith("/"))


def corpus_sources() -> list[str]:
    """The distinct source ids of the Debian photos (scikit-image's are added by callers)."""
    return sorted({p.source_id for p in PHOTOS})


@functools.lru_cache(maxsize=256)
def _load(path: str, short_side: int) -> torch.Tensor:
    """A photo as (3, H, W) uint8 with its shorter side brought down to `short_side` (cached:
    experiments draw many crops of each photo)."""
    return read_image_uint8(path, short_side=short_side)


def load_corpus_photo(photo: Photo, short_side: int = 384,
                      root: Path = DEFAULT_ROOT) -> torch.Tensor:
    """One corpus photo as (3, H, W) float32 in [0, 1], shorter side ≤ `short_side`."""
    path = root / photo.path
    if not path.is_file():
        check_installed(root)
    return _load(str(path), short_side).float() / 255


def corpus_photos(include_bundled: bool = True, short_side: int = 384,
                  root: Path = DEFAULT_ROOT) -> list[tuple[str, str, torch.Tensor]]:
    """(source id, file id, image) for every photo: the Debian photos, then (optionally)
    scikit-image's seven photographs under ``skimage/<name>``."""
    check_installed(root)
    out = [(p.source_id, Path(p.path).name, load_corpus_photo(p, short_side, root))
           for p in PHOTOS]
    if include_bundled:
        out += [(f"skimage/{name}", name, load_photo(name)) for name in BUNDLED_PHOTOS
                if name not in NOT_PHOTOGRAPHS]
    return out


def corpus_crops(n: int, size: int, seed: int = 0, sources: Sequence[str] | None = None,
                 include_bundled: bool = True, scale: tuple[float, float] = (0.2, 1.0),
                 root: Path = DEFAULT_ROOT) -> NaturalImages:
    """`n` deterministic augmented crops (random-resized crop of an area fraction in `scale`,
    flip), cycling through the photos of `sources` (default: all) in a seeded order so any n
    covers many scenes."""

    if n < 1:
        raise ValueError(f"need at least one image, got n={n}")
    photos = corpus_photos(include_bundled, short_side=max(256, 2 * size), root=root)
    if sources is not None:
        wanted = set(sources)
        unknown = wanted - {s for s, _, _ in photos}
        if unknown:
            raise ValueError(f"unknown corpus sources {sorted(unknown)[:5]}")
        photos = [p for p in photos if p[0] in wanted]
    order = np.random.default_rng(seed).permutation(len(photos))
    images, ids = [], []
    for i in range(n):
        source, file, image = photos[order[i % len(photos)]]
        images.append(augmented_crop(image, size, seed=seed * 1_000_003 + i, scale=scale))
        ids.append(f"{source}@{file}#{i // len(photos)}")
    return NaturalImages(torch.stack(images), ids)
