from empirical.cli import main


def test_theory_command_writes_the_table(tmp_path, capsys):
    assert main(["theory", "--out", str(tmp_path), "--samples", "2"]) == 0
    assert "ReLU networks" in capsys.readouterr().out
    assert (tmp_path / "table.json").exists() and (tmp_path / "table.tex").exists()


def test_proofs_command_passes(tmp_path, capsys):
    assert main(["proofs", "--out", str(tmp_path)]) == 0
    assert "12 of 12 proofs pass" in capsys.readouterr().out
