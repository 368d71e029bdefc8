import json
from dataclasses import dataclass

import numpy as np
import pytest

from fvtrust.empirical.cli import main


def _set(out, layer="_blocks.5", side="max"):
    """The one settings folder of `layer` and `side` under a render --out."""
    (folder,) = out.glob(f"{layer}-{side}-*")
    return folder


@dataclass
class _Settings:
    a: int


def test_render_command_writes_pngs_sheet_and_traces_and_resumes(tmp_path, capsys):
    args = ["render", "--layer", "_blocks.5", "--units", "0-2", "--steps", "3", "--size", "48",
            "--out", str(tmp_path)]
    assert main(args) == 0
    out = _set(tmp_path)
    record = json.loads((out / "render.json").read_text())
    assert sorted(record["units"]) == ["0", "1", "2"]
    assert len(record["units"]["1"]["trace"]) == 3
    assert (out / "contact_sheet.png").exists() and (out / "unit_0002.png").exists()
    stamp = (out / "unit_0000.png").stat().st_mtime_ns
    assert main(args) == 0  # resumes: nothing re-rendered
    assert (out / "unit_0000.png").stat().st_mtime_ns == stamp


def test_render_rejects_out_of_range_units(tmp_path, capsys):
    assert main(["render", "--layer", "_blocks.5", "--units", "500", "--steps", "1",
                 "--out", str(tmp_path)]) == 2
    assert "units [500] are out of range" in capsys.readouterr().err


def test_layers_command(capsys):
    assert main(["layers"]) == 0
    assert "_blocks.10" in capsys.readouterr().out


def test_two_jobs_into_one_out_merge_and_other_settings_live_side_by_side(tmp_path):
    base = ["render", "--layer", "_blocks.5", "--steps", "2", "--size", "32", "--out", str(tmp_path)]
    assert main([*base, "--units", "0-1"]) == 0
    assert main([*base, "--units", "2"]) == 0  # another job, same settings: units merge
    first = _set(tmp_path)
    record = json.loads((first / "render.json").read_text())
    assert sorted(record["units"]) == ["0", "1", "2"]
    pngs = {p: p.read_bytes() for p in first.glob("unit_*.png")}
    assert main([*base[:-2], "--steps", "3", "--units", "1", "--out", str(tmp_path)]) == 0
    assert main([*base, "--units", "1", "--minimize"]) == 0
    assert len(list(tmp_path.glob("_blocks.5-max-*"))) == 2 and _set(tmp_path, side="min")
    assert {p: p.read_bytes() for p in first.glob("unit_*.png")} == pngs  # nothing replaced
    stamp = (first / "unit_0001.png").stat().st_mtime_ns
    assert main([*base, "--units", "0-2", "--batch-size", "1"]) == 0  # batch: speed, not a setting
    assert (first / "unit_0001.png").stat().st_mtime_ns == stamp


def test_damaged_record_png_weights_and_stage_files_are_named(tmp_path, capsys):
    import torch

    from fvtrust.stages import StageDamaged, Stages

    base = ["render", "--layer", "_blocks.5", "--units", "0", "--steps", "2", "--size", "32"]
    out = tmp_path / "r"
    assert main([*base, "--out", str(out)]) == 0
    folder = _set(out)
    (folder / "unit_0000.png").write_bytes(b"\x89PNG\r\n garbage")
    assert main([*base, "--out", str(out)]) == 2
    assert "unit_0000.png is damaged" in capsys.readouterr().err
    (folder / "render.json").write_text('{"settings_hash": ')
    assert main([*base, "--out", str(out)]) == 2
    assert "render.json is damaged" in capsys.readouterr().err
    assert main([*base, "--out", str(out), "--force"]) == 0

    garbage, wrong = tmp_path / "garbage.pt", tmp_path / "wrong.pt"
    garbage.write_bytes(b"not a checkpoint")
    torch.save({"fc.weight": torch.zeros(3, 3)}, wrong)
    cases = ((garbage, "is not a PyTorch state dict"), (wrong, "does not fit efficientnet_lite0"))
    for path, message in cases:
        assert main([*base, "--weights", str(path), "--out", str(tmp_path / "w")]) == 2
        err = capsys.readouterr().err
        assert message in err and str(path) in err and "Traceback" not in err

    stages = Stages(tmp_path / "s", _Settings(1))
    assert stages.run("renders", lambda: 41) == 41
    assert Stages(tmp_path / "s", _Settings(1)).run("renders", lambda: 0) == 41  # reused
    path = tmp_path / "s" / ".stages" / f"renders-{stages.key}.pt"
    other = Stages(tmp_path / "s", _Settings(2))
    other.run("gate", lambda: 7)
    (tmp_path / "s" / ".stages" / f"gate-{other.key}.pt").replace(path)  # another stage's file
    with pytest.raises(StageDamaged, match="does not hold stage 'renders'"):
        Stages(tmp_path / "s", _Settings(1)).run("renders", lambda: 0)
    path.write_bytes(b"cut sh")
    with pytest.raises(StageDamaged, match="cannot be read"):
        Stages(tmp_path / "s", _Settings(1)).run("renders", lambda: 0)
    assert Stages(tmp_path / "s", _Settings(1), force=True).run("renders", lambda: 5) == 5


def test_a_run_that_did_not_fool_says_so_and_exits_nonzero(tmp_path, monkeypatch, capsys):
    from dataclasses import asdict

    import torch

    from fvtrust.empirical.cli import commands
    from fvtrust.empirical.experiments.fooling import FoolingResult, fooling_verdict

    def result(caught, manipulated, original, config=None):
        return FoolingResult(config or {}, {}, {}, {}, None, None, {"visualizations_caught": caught}, {},
                             [], [], [], manipulated, original, {}, 0.0, [])
    assert fooling_verdict(result(1.0, [0.7, 0.2], [0.3, 0.3]))["fooled"]
    for bad in (result(0.0, [0.7], [0.3]), result(1.0, [0.2, 0.1], [0.3, 0.3])):
        verdict = fooling_verdict(bad)
        assert not verdict["fooled"] and "did not fool" in verdict["summary"]
    images = {k: torch.zeros(1, 3, 8, 8) for k in ("original", "manipulated", "target")}
    # the command looks run_fooling up where it imported it
    monkeypatch.setattr(commands, "run_fooling",
                        lambda config, out, **kw: (result(0.0, [0.2], [0.3], asdict(config)), images))
    assert main(["fool", "--units", "417", "--out", str(tmp_path)]) == 1
    assert "did not fool" in capsys.readouterr().err


def test_contact_sheets_name_units_and_classes(tmp_path):
    from PIL import Image

    from fvtrust.empirical.nets.registry import class_names

    assert class_names()[285] == "Egyptian cat" and len(class_names()) == 1000
    assert main(["render", "--layer", "logits", "--units", "285", "--steps", "1", "--size", "64",
                 "--out", str(tmp_path)]) == 0
    sheet = Image.open(_set(tmp_path, layer="logits") / "contact_sheet.png")
    assert sheet.size == (64 + 4, 64 + 12 + 4)  # a 12 px label strip above the image
    strip = np.asarray(sheet)[2:14, 2:66]
    assert (strip < 128).any()  # the label is written there
