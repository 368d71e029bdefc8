import pytest

from fvtrust.empirical.cli import main


def test_theory_command_writes_the_table(tmp_path, capsys):
    assert main(["theory", "--out", str(tmp_path), "--samples", "2"]) == 0
    assert "ReLU networks" in capsys.readouterr().out
    assert (tmp_path / "table.json").exists() and (tmp_path / "table.tex").exists()


def test_proofs_command_passes(tmp_path, capsys, cached_proofs):
    from tests.support import use_cached_proofs

    with use_cached_proofs(cached_proofs):  # each proof's report runs once per session
        assert main(["proofs", "--out", str(tmp_path)]) == 0
    from fvtrust.proofs import MODULES

    n = len(MODULES)
    assert f"{n} of {n} proofs pass" in capsys.readouterr().out


def test_theory_refuses_a_sample_count_below_one(capsys):
    for bad in ("0", "-1"):
        assert main(["theory", "--samples", bad]) == 2
        assert "samples must be an integer >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["3-1,2", "0-", "a,b", "1.5", "1,1"])
def test_bad_units_name_the_option(text):
    from fvtrust.empirical.cli.commands import _parse_units

    with pytest.raises(ValueError, match="--units"):
        _parse_units(text)


@pytest.mark.parametrize(("args", "message"), [
    (["render", "--layer", "_blocks.0", "--device", "gpu"], "unknown device 'gpu'"),
    (["render", "--layer", "_blocks.0", "--size", "10000", "--steps", "1"],
     "image size must be an integer in [8, 2048], got size=10000"),
    (["render", "--layer", "_blocks"], "layer '_blocks' has no output tensor of its own"),
    (["silent", "--lock", "bias", "--margin", "-1"],
     "margin must be a finite number >= 0 with the bias lock, got -1.0"),
    (["silent", "--margin", "-2"], "margin must be a finite number >= -1 with the gate lock, got -2.0"),
    (["fool", "--verify-images", "/nonexistent/dir"], "image directory '/nonexistent/dir' does not exist"),
    (["gate-family", "--bank-settings", "4"], "bank_settings must be >= 8"),
    (["gate-family", "--units-per-setting", "0"], "units_per_setting must be a positive integer, got 0"),
    (["gate-family", "--steps", "2"], "bank_steps must be >= 4"),
    (["sweep", "--limit", "0"], "limit (units per layer) must be a positive integer, got 0"),
    (["appendix", "--scale", "quick", "--parts", "afc_full_lite1"],
     "appendix parts ['afc_full_lite1'] are not in the 'quick' scale"),
])
def test_bad_input_is_one_line_naming_the_value(args, message, tmp_path, capsys):
    assert main([*args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_version_and_interrupt(monkeypatch, capsys):
    from fvtrust.empirical.cli import commands

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and "fvtrust 0." in capsys.readouterr().out

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(commands, "_cmd_theory", interrupted)
    assert main(["theory"]) == 130
    assert "interrupted; rerun the same command to resume" in capsys.readouterr().err


def test_every_option_of_every_subcommand_has_help_and_every_subcommand_an_example():
    from fvtrust.empirical.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        missing = [a.option_strings or a.dest for a in p._actions if a.dest != "help" and not a.help]
        assert not missing, (name, missing)
        assert "example" in (p.epilog or ""), name


@pytest.mark.parametrize(("flag", "expected"), [([], True), (["--no-robustness"], False)])
def test_fool_no_robustness_reaches_the_config(flag, expected, monkeypatch, tmp_path):
    from fvtrust.empirical.cli import commands

    seen = []

    def stop(config, *args, **kwargs):
        seen.append(config.robustness)
        raise ValueError("stopped here")
    monkeypatch.setattr(commands, "run_fooling", stop)
    assert main(["fool", "--permute", "100", *flag, "--out", str(tmp_path)]) == 2
    assert seen == [expected]
