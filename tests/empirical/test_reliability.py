"""Issue 20: never lose a user's finished work, never store a number the saved file does not
have. One test per numbered finding of the issue (the number is in the test's name)."""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fvtrust import outputs
from fvtrust.empirical.cli import main
from fvtrust.empirical.data.folders import image_files, image_folder
from fvtrust.empirical.data.images import MAX_PIXELS, read_image, read_image_uint8
from fvtrust.empirical.nets.layers import forward_activations
from fvtrust.outputs import IDENTITY, OutputDir, OutputRefused

RENDER = ["render", "--layer", "_blocks.5", "--steps", "3", "--size", "32"]


def _folder(out: Path, side: str = "max") -> Path:
    (folder,) = out.glob(f"_blocks.5-{side}-*")
    return folder


def _activation_of_png(model, path: Path, layer: str, unit: int) -> float:
    """The unit's spatial-mean activation of a PNG as it is on disk (read back, no jitter)."""
    image = read_image(path)[None]
    with torch.no_grad():
        return float(forward_activations(model, image, [layer])[layer][0, unit].mean())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------------------------ 1: stored = saved


def test_01_render_stores_the_activation_of_the_saved_png(lite0, tmp_path):
    assert main([*RENDER, "--units", "0-2", "--out", str(tmp_path)]) == 0
    folder = _folder(tmp_path)
    record = json.loads((folder / "render.json").read_text())
    for unit in (0, 1, 2):
        saved = _activation_of_png(lite0, folder / f"unit_{unit:04d}.png", "_blocks.5", unit)
        stored = record["units"][str(unit)]
        assert stored["final_activation"] == pytest.approx(saved, rel=1e-4, abs=1e-5)
        assert stored["last_objective"] == stored["trace"][-1]  # the optimizer's, kept apart


def test_01_sweep_stores_the_activation_of_its_saved_pngs(lite0, tmp_path):
    from fvtrust.empirical.runs.sweep.plan import ModelRef, SweepPlan, SweepTask
    from fvtrust.empirical.runs.sweep.worker import measure_task

    plan = SweepPlan(layers=["_blocks.5"], units="3,7", measure=["render"], steps=3, size=32, seed=4)
    records, images = measure_task(plan, SweepTask(ModelRef("efficientnet_lite0"), "_blocks.5", (3, 7)),
                                   device="cpu")
    for rec in records:
        for side in ("max", "min"):
            png = tmp_path / f"{rec['unit']}_{side}.png"
            png.write_bytes(images[rec[f"render_{side}_png"]])
            saved = _activation_of_png(lite0, png, "_blocks.5", rec["unit"])
            assert rec[f"render_{side}_activation"] == pytest.approx(saved, rel=1e-4, abs=1e-5)
            assert f"render_{side}_last_objective" in rec
        assert rec["seed"] == 4 + rec["unit"]  # item 17: the unit's own seed, not the base seed


# ------------------------------------------------------------------ 2: every mode

def _png(path: Path, width: int, height: int, depth: int, colour: int, raw: bytes) -> None:
    """A PNG written by hand (IHDR, one IDAT, IEND): what Pillow cannot write."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def _png16_rgb(path: Path, rgb: np.ndarray) -> None:
    """A 16-bit RGB PNG (unfiltered rows of big-endian samples)."""
    h, w, _ = rgb.shape
    _png(path, w, h, 16, 2, b"".join(b"\x00" + rgb[y].astype(">u2").tobytes() for y in range(h)))


def _modes(tmp: Path) -> dict[str, tuple[Path, float]]:
    """One file per mode Pillow opens, with the grey level (0..1) it must read as."""
    out = {}
    grey16 = np.full((8, 8), round(0.15 * 65535), dtype=np.uint16)
    out["I;16"] = (tmp / "g16.png", 0.15)
    Image.fromarray(grey16).save(out["I;16"][0])
    out["I"] = (tmp / "g32.tif", 0.15)
    Image.fromarray(grey16.astype(np.int32), mode="I").save(out["I"][0])
    out["F"] = (tmp / "f.tif", 0.4)
    Image.fromarray(np.full((8, 8), 0.4, dtype=np.float32), mode="F").save(out["F"][0])
    out["RGB16"] = (tmp / "rgb16.png", 0.3)
    _png16_rgb(out["RGB16"][0], np.full((8, 8, 3), round(0.3 * 65535), dtype=np.uint16))
    out["L"] = (tmp / "l.png", 0.5)
    Image.new("L", (8, 8), 128).save(out["L"][0])
    out["1"] = (tmp / "bw.png", 1.0)
    Image.new("1", (8, 8), 1).save(out["1"][0])
    out["P"] = (tmp / "p.png", 0.5)
    Image.new("RGB", (8, 8), (128, 128, 128)).convert("P").save(out["P"][0])
    out["P+transparency"] = (tmp / "pt.png", 0.5)
    pal = Image.new("RGB", (8, 8), (128, 128, 128)).convert("P")
    pal.info["transparency"] = 0
    pal.save(out["P+transparency"][0], transparency=0)
    out["RGBA"] = (tmp / "rgba.png", 0.5)
    Image.new("RGBA", (8, 8), (128, 128, 128, 40)).save(out["RGBA"][0])
    out["LA"] = (tmp / "la.png", 0.5)
    Image.new("LA", (8, 8), (128, 200)).save(out["LA"][0])
    out["CMYK"] = (tmp / "cmyk.jpg", 0.5)
    Image.new("CMYK", (8, 8), (0, 0, 0, 127)).save(out["CMYK"][0], quality=100)
    return out


@pytest.mark.parametrize("mode", ["I;16", "I", "F", "RGB16", "L", "1", "P", "P+transparency",
                                  "RGBA", "LA", "CMYK"])
def test_02_every_image_mode_reads_as_its_grey_level(tmp_path, mode):
    path, level = _modes(tmp_path)[mode]
    image = read_image(path)
    assert image.shape == (3, 8, 8)
    assert float(image.mean()) == pytest.approx(level, abs=3 / 255), mode


def test_02_a_16_bit_grey_folder_is_not_white(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((40, 40), round(0.15 * 65535), dtype=np.uint16)).save(tmp_path / f"{i}.png")
    natural = image_folder(tmp_path, size=32)
    assert float(natural.images.mean()) == pytest.approx(0.15, abs=0.01)


# ------------------------------------------------------------------ 3: symlinked folders

def test_03_symlinked_class_folders_are_followed_once(tmp_path):
    real = tmp_path / "elsewhere" / "cats"
    real.mkdir(parents=True)
    for i in range(10):
        Image.new("RGB", (16, 16), (i, 0, 0)).save(real / f"{i}.png")
    root = tmp_path / "data"
    (root / "dogs").mkdir(parents=True)
    Image.new("RGB", (16, 16)).save(root / "dogs" / "d.png")
    (root / "cats").symlink_to(real, target_is_directory=True)
    (real / "loop").symlink_to(real, target_is_directory=True)  # a loop: read once, no hang
    files = image_files(root)
    assert len(files) == 11
    natural = image_folder(root, size=16)
    assert natural.labels is not None and sorted(set(natural.labels.tolist())) == [0, 1]


# ------------------------------------------------------------------ 4: fool's modes

@pytest.mark.parametrize("args, message", [
    (["--permute", "0"], "--permute OFFSET must be a positive integer"),
    (["--permute", "-3"], "--permute OFFSET must be a positive integer"),
    (["--permute", "5000"], "--permute 5000 is a multiple of the 1000 output units"),
    (["--permute", "100", "--target", "coffee"], "exclude each other"),
    (["--target", "cofee"], "cofee"),
])
def test_04_fool_refuses_a_meaningless_permutation_or_target_before_training(
        tmp_path, monkeypatch, capsys, args, message):
    from fvtrust.empirical.experiments import fooling

    def never(*a, **k):
        raise AssertionError("the gate's photos were loaded before the arguments were checked")
    monkeypatch.setattr(fooling, "calibration_photos", never)
    assert main(["fool", *args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o" / ".stages").exists()


# ------------------------------------------------------------------ 5: afc arguments

@pytest.mark.parametrize("args, message", [
    (["--alpha", "-5"], "--alpha"), (["--alpha", "nan"], "--alpha"),
    (["--observer-model", "efficientnet_lite0"], "is the explained network itself")])
def test_05_afc_refuses_an_inverting_slope_and_a_self_observer(tmp_path, capsys, args, message):
    assert main(["afc", *args, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_05_a_sweep_of_the_default_observer_network_observes_it_with_another(tmp_path):
    from fvtrust.empirical.runs.sweep.plan import ModelRef, SweepPlan
    from fvtrust.empirical.runs.sweep.worker import afc_config

    config = afc_config(SweepPlan(), ModelRef("efficientnet_lite1"), "_blocks.2", [0], "references")
    assert config.observer != config.model


# ------------------------------------------------------------------ 6: sanity's normalizer

def test_06_sanity_warns_when_its_normalizer_is_near_zero(tmp_path, monkeypatch, capsys):
    from fvtrust.empirical.cli import commands
    from fvtrust.empirical.experiments.sanity import MIN_NORMALIZER, normalizer_warning

    assert normalizer_warning("_blocks.3", np.array([0.3, 0.2])) is None
    warning = normalizer_warning("_blocks.3", np.array([0.001, 0.3, -0.01, 0.2]))
    assert warning.startswith("_blocks.3: 2 of 4 classes") and str(MIN_NORMALIZER) in warning

    monkeypatch.setattr(commands, "run_sanity", lambda *a, **k: _FakeSanity())
    assert main(["sanity", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "normalizer" in captured.out.splitlines()[1]  # a header over the table
    assert "wrote" in captured.out and "sanity.json" in captured.out
    assert "warning: _blocks.0: 3 of 4 classes" in captured.err


class _FakeSanity:
    def __init__(self):
        self.classes, self.n_candidate_classes, self.layers = [1, 2], 5, ["_blocks.0"]
        self.score_mean, self.score_ci, self.normalizer = [1.9], [(-0.5, 6.2)], [0.004]
        self.warnings = ["_blocks.0: 3 of 4 classes have s_nat,same - s_nat,other < 0.02"]

    def to_json(self):
        return {"layers": self.layers, "score_mean": self.score_mean, "score_ci": self.score_ci,
                "normalizer": self.normalizer, "warnings": self.warnings, "classes": self.classes,
                "config": {"similarity": "spearman", "model": "efficientnet_lite0"}}


# ------------------------------------------------------------------ 7-9: renders kept

def test_07_a_bad_render_argument_deletes_nothing(tmp_path, capsys):
    assert main([*RENDER, "--units", "0-1", "--out", str(tmp_path)]) == 0
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    for bad, message in ((["--steps", "0"], "--steps must be a positive integer, got 0"),
                         (["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
                         (["--batch-size", "-1"], "--batch-size must be a positive integer, got -1"),
                         (["--size", "-4"], "--size must be a positive integer, got -4")):
        assert main([*RENDER, "--units", "0-1", *bad, "--out", str(tmp_path)]) == 2
        assert message in capsys.readouterr().err
        assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_08_09_min_renders_and_other_batch_sizes_keep_every_finished_png(tmp_path):
    assert main([*RENDER, "--units", "0-3", "--out", str(tmp_path)]) == 0
    kept = {p: p.read_bytes() for p in _folder(tmp_path).glob("unit_*.png")}
    assert main([*RENDER, "--units", "0-1", "--minimize", "--out", str(tmp_path)]) == 0
    assert main([*RENDER, "--units", "0-5", "--batch-size", "4", "--out", str(tmp_path)]) == 0
    assert all(p.read_bytes() == data for p, data in kept.items())  # none replaced or deleted
    assert len(list(_folder(tmp_path).glob("unit_*.png"))) == 6
    assert len(list(_folder(tmp_path, "min").glob("unit_*.png"))) == 2


# ------------------------------------------------------------------ 10: sweep --force

def _user_files(root: Path) -> dict[Path, bytes]:
    files = {root / "units.parquet": b"mine", root / "models.parquet": b"mine too",
             root / "parts" / "x.parquet": b"also mine", root / "notes.txt": b"notes"}
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


@pytest.mark.parametrize("extra", [[], ["--address", "127.0.0.1:1"]])
def test_10_sweep_force_never_touches_a_folder_that_is_not_its_store(tmp_path, capsys, extra):
    files = _user_files(tmp_path)
    assert main(["sweep", "--force", "--units", "0", "--steps", "1", "--size", "16",
                 "--out", str(tmp_path), *extra]) == 2
    assert "holds files fvtrust did not write" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in files} == files
    assert not (tmp_path / IDENTITY).exists()


def test_10_sweep_force_on_its_own_store_keeps_the_old_parts_until_the_new_table(tmp_path):
    from fvtrust.empirical.runs.sweep.store import SweepStore

    store = SweepStore(tmp_path, {"steps": 1}, "aaaa").open()
    store.add("t0", [{"model": "m", "weights": "", "layer": "l", "unit": 0, "status": "ok",
                      "config_hash": "h"}], {"images/m/l/unit_0000_max.png": b"png"})
    (tmp_path / "parts" / "aaaa" / "mine.parquet").write_bytes(b"a user's file")
    with pytest.raises(ValueError, match="other settings"):
        SweepStore(tmp_path, {"steps": 2}, "bbbb")
    new = SweepStore(tmp_path, {"steps": 2}, "bbbb", force=True).open()
    assert (tmp_path / "parts" / "aaaa" / "t0.parquet").exists()  # old results stay for now
    removed = new.drop_stale()
    assert [p.name for p in removed] == ["t0.parquet"]
    assert (tmp_path / "parts" / "aaaa" / "mine.parquet").read_bytes() == b"a user's file"
    assert (tmp_path / "images/m/l/unit_0000_max.png").exists()


# ------------------------------------------------------------------ 11: the bank resumes

def test_11_the_gate_render_bank_resumes_at_the_setting_it_stopped_in(lite0, tmp_path):
    from fvtrust.empirical.circuits.gate_bank import RenderBankConfig, render_bank
    from fvtrust.stages import Stages

    config = RenderBankConfig(settings=3, units_per_setting=1, steps=2, size=32, snapshots=(1, 2))
    whole = render_bank(lite0, config)
    stages, ran = Stages(tmp_path, config), []

    def interrupted(name, compute):
        if name.endswith("002"):
            raise KeyboardInterrupt
        ran.append(name)
        return stages.run(name, compute)
    with pytest.raises(KeyboardInterrupt):
        render_bank(lite0, config, checkpoint=interrupted)
    assert len(list((tmp_path / ".stages").glob("gate_render_bank_setting*"))) == 2

    resumed = Stages(tmp_path, config)
    bank = render_bank(lite0, config, checkpoint=resumed.run)
    assert resumed.reused == ["gate_render_bank_setting000", "gate_render_bank_setting001"]
    assert torch.equal(bank.images, whole.images) and torch.equal(bank.setting, whole.setting)


# ------------------------------------------------------------------ 12: --out checked first

@pytest.mark.parametrize("command", [
    [*RENDER, "--units", "0"], ["proofs"], ["theory"], ["fool"], ["silent"], ["sanity"], ["afc"],
    ["sweep", "--units", "0"], ["appendix", "--parts", "theory"]])
def test_12_an_unusable_out_is_named_in_one_line_before_any_work(tmp_path, capsys, monkeypatch, command):
    from fvtrust.empirical.cli import commands

    for name in ("run_all", "compute_table", "run_fooling", "run_silent", "run_sanity", "run_afc",
                 "load_model"):
        monkeypatch.setattr(commands, name, _never, raising=False)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    # root writes anywhere: the test asks the same question the code asks (os.access)
    monkeypatch.setattr(outputs.os, "access", lambda p, mode: Path(p) != locked)
    cases = [(a_file, "is a file, not a folder"), (a_file / "sub", "which is a file"),
             (locked, "is not writable"), (locked / "new" / "deeper", "is not writable")]
    for out, message in cases:
        assert main([*command, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert a_file.read_text() == "x"


def _never(*args, **kwargs):
    raise AssertionError("work started before --out was checked")


def test_12_theory_writes_before_it_prints_and_survives_an_ascii_terminal(tmp_path, monkeypatch):
    from fvtrust.empirical.cli import commands

    class Table:
        entries = ()

        def to_markdown(self):
            return "| Φ(f) ≤ ε |"

        def write(self, out):
            Path(out, "table.json").write_text("{}")
            return [Path(out, "table.json")]
    monkeypatch.setattr(commands, "compute_table", lambda **k: Table())
    monkeypatch.setattr(commands, "compute_variant_table", lambda *a, **k: type(
        "V", (Table,), {"entries": {}})())
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="ascii"))
    assert main(["theory", "--out", str(tmp_path)]) == 0
    sys.stdout.flush()
    assert (tmp_path / "table.json").exists() and b"\\u03a6" in raw.getvalue()


# ------------------------------------------------------------------ 13: huge images, retries

def test_13_a_decompression_bomb_is_refused_by_name(tmp_path):
    bomb = tmp_path / "bomb.png"
    _png(bomb, 20000, 20000, 8, 0, b"")  # the header is enough: the size is refused on opening
    with pytest.raises(ValueError, match=r"bomb\.png.*400000000 pixels.*limit of 89,478,485") as err:
        read_image_uint8(bomb)
    assert MAX_PIXELS == 89_478_485 and "decompression bombs" in str(err.value)


def test_13_an_input_error_is_not_retried_and_ray_stays_out_of_home(monkeypatch, tmp_path):
    from fvtrust.empirical.runs.sweep import driver, worker

    def bad(*a, **k):
        raise ValueError("cannot read image 'x.png'")
    monkeypatch.setattr(worker, "measure_task", bad)
    with pytest.raises(worker.InputError):
        worker.remote_measure(None, None, "cpu", 1, "h")
    assert not issubclass(worker.InputError, worker.RetryableError)

    # the embedded Ray's session files go to a fresh folder of its own, removed at exit; one
    # left by a driver that was killed (its pid is gone) is removed by the next run
    stale = Path("/tmp") / f"{driver._RAY_PREFIX}999999999-old"
    stale.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(tmp_path / "unwritable-home"))
    with driver._ray_temp_dir() as temp:
        assert Path(temp).is_dir() and len(temp) < 40 and not stale.exists()
    assert not Path(temp).exists()


# ------------------------------------------------------------------ 14: wrong messages

def test_14_image_arguments_get_messages_that_name_the_problem(tmp_path, capsys):
    photo = tmp_path / "some_file.jpg"
    Image.new("RGB", (8, 8)).save(photo)
    assert main(["sanity", "--images", str(photo), "--out", str(tmp_path / "o")]) == 2
    assert f"--images '{photo}' is a file, not a folder of images" in capsys.readouterr().err

    odd = tmp_path / "odd"
    odd.mkdir()
    Image.new("RGB", (8, 8)).save(os.fsdecode(os.fsencode(str(odd)) + b"/caf\xe9.png"))
    with pytest.raises(ValueError, match=r"caf\\xe9\.png.*is not valid UTF-8"):
        image_files(odd)


def test_14_sweep_checks_its_images_before_any_task(tmp_path, monkeypatch, capsys):
    from fvtrust.empirical.runs.sweep import driver

    monkeypatch.setattr(driver, "_start_ray", _never)
    assert main(["sweep", "--units", "0", "--images", "/nonexistent", "--out", str(tmp_path)]) == 2
    assert "--images '/nonexistent' does not exist" in capsys.readouterr().err


# ------------------------------------------------------------------ 15: modes

def test_15_pngs_and_json_are_written_with_the_same_mode(tmp_path):
    assert main([*RENDER, "--units", "0", "--out", str(tmp_path)]) == 0
    folder = _folder(tmp_path)
    mask = os.umask(0)
    os.umask(mask)
    for path in (folder / "unit_0000.png", folder / "contact_sheet.png", folder / "render.json",
                 tmp_path / IDENTITY):
        assert _mode(path) == 0o666 & ~mask, path


# ------------------------------------------------------------------ 16: embedded Ray

def test_16_embedded_ray_listens_on_the_loopback_address_only(tmp_path, monkeypatch):
    """A real embedded Ray, started as the sweep starts it: every listening socket of the
    driver and of every process Ray started is on 127.0.0.1; its files (session, auth token)
    go to a folder of the run's own, never to $HOME."""
    import psutil
    import ray

    from fvtrust.empirical.runs.sweep import driver

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    if ray.is_initialized():
        ray.shutdown()
    with driver._ray_temp_dir() as temp:
        assert driver._start_ray(None, 1, temp)[0]
        try:
            assert ray.get(ray.remote(lambda: 7).remote()) == 7
            me = psutil.Process()
            ours = {p.pid for p in me.children(recursive=True)} | {me.pid}
            listening = [c.laddr for c in psutil.net_connections(kind="inet")
                         if c.status == psutil.CONN_LISTEN and c.pid in ours]
            assert listening and all(a.ip in ("127.0.0.1", "::ffff:127.0.0.1") for a in listening), listening
            assert ray.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"
            assert any(Path(temp).iterdir())  # the session lives in the run's own folder
        finally:
            ray.shutdown()
            driver._loopback_only(False)
    assert not Path(temp).exists() and os.environ.get(driver._CLUSTER_ENV) is None
    assert not list(home.rglob("*")), list(home.rglob("*"))


def test_16_a_killed_driver_leaves_no_ray_process_and_no_folder_behind():
    """SIGKILL a driver holding an embedded Ray started as the sweep starts it: within
    seconds every process Ray started is gone, and so is its session folder."""
    import signal
    import subprocess
    import time

    import psutil

    code = ("import ray; from fvtrust.empirical.runs.sweep import driver\n"
            "temp = driver._ray_temp_dir().__enter__(); driver._start_ray(None, 1, temp)\n"
            "driver._reap_on_death(temp); ray.get(ray.remote(lambda: 1).remote())\n"
            "print(temp, flush=True); import time; time.sleep(300)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    temp = Path(child.stdout.readline().strip())
    ray_processes = psutil.Process(child.pid).children(recursive=True)
    assert temp.is_dir() and len(ray_processes) >= 3
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    deadline = time.time() + 20
    while time.time() < deadline:
        alive = [p for p in ray_processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive and not temp.exists():
            break
        time.sleep(0.5)
    assert not alive, [p.name() for p in alive]
    assert not temp.exists()


# ------------------------------------------------------------------ 17: hygiene

def test_17_help_and_defaults_are_consistent(capsys):
    from fvtrust.empirical.cli.parser import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["afc", "--help"])
    assert "%%" not in capsys.readouterr().out
    sub = next(a for a in parser._actions if a.dest == "command")
    devices = {name: next((a.default for a in p._actions if a.dest == "device"), None)
               for name, p in sub.choices.items()}
    assert {d for d in devices.values() if d is not None} == {"cpu"}, devices


def test_17_the_readme_example_names_its_pngs_by_unit():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "image_000" not in readme


# ------------------------------------------------------------------ the identity file

def test_an_output_folder_is_claimed_only_when_new_empty_or_ours(tmp_path):
    ours = OutputDir(tmp_path / "a", "render").open()
    ours.claim(["x.png"])
    (tmp_path / "a" / "x.png").write_bytes(b"1")
    (tmp_path / "a" / "user.txt").write_text("mine")
    with pytest.raises(OutputRefused, match="not a 'sweep' one"):
        OutputDir(tmp_path / "a", "sweep")
    with pytest.raises(OutputRefused, match="was not written by fvtrust"):
        ours.claim(["user.txt"])
    assert ours.remove(["x.png", "user.txt"]) == [tmp_path / "a" / "x.png"]
    assert (tmp_path / "a" / "user.txt").read_text() == "mine"
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "thesis.tex").write_text("")
    with pytest.raises(OutputRefused, match=r"holds files fvtrust did not write \(thesis.tex\)"):
        OutputDir(tmp_path / "b", "render")
    OutputDir(tmp_path / "c", "render")  # validating creates nothing
    assert not (tmp_path / "c").exists()
