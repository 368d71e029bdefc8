import json

from empirical.cli import main


def test_render_command_writes_pngs_sheet_and_traces_and_resumes(tmp_path, capsys):
    args = ["render", "--layer", "_blocks.5", "--units", "0-2", "--steps", "3", "--size", "48",
            "--out", str(tmp_path)]
    assert main(args) == 0
    record = json.loads((tmp_path / "render.json").read_text())
    assert sorted(record["units"]) == ["0", "1", "2"]
    assert len(record["units"]["1"]["trace"]) == 3
    assert (tmp_path / "contact_sheet.png").exists() and (tmp_path / "unit_0002.png").exists()
    stamp = (tmp_path / "unit_0000.png").stat().st_mtime_ns
    assert main(args) == 0  # resumes: nothing re-rendered
    assert (tmp_path / "unit_0000.png").stat().st_mtime_ns == stamp


def test_render_rejects_out_of_range_units(tmp_path, capsys):
    assert main(["render", "--layer", "_blocks.5", "--units", "500", "--steps", "1",
                 "--out", str(tmp_path)]) == 2
    assert "units [500] are out of range" in capsys.readouterr().err


def test_layers_command(capsys):
    assert main(["layers"]) == 0
    assert "_blocks.10" in capsys.readouterr().out
