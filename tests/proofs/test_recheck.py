"""Every SMT query z3 decides in a proof is kept as SMT-LIB 2 and cvc5 agrees with it; every
step says what kind of evidence it is (proofs/recheck.py, proofs/base.py)."""

import json
import re
from pathlib import Path

import pytest
import sympy as sp

from fvtrust.empirical.cli import main
from fvtrust.proofs import MODULES, STEP_KINDS, all_proofs
from fvtrust.proofs.base import Step, _checked_links, follows_step, numeric_step, reals, z3_step
from fvtrust.proofs.recheck import cvc5_answer, recheck, summary
from fvtrust.theory.classes.lipschitz import afc_margins
from fvtrust.theory.symbolic import SmtQuery, prove, recording_queries

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reports(cached_proofs):
    return {proof.key: cached_proofs(proof) for proof in all_proofs()}


@pytest.fixture(scope="module")
def rechecks(reports, cached_proofs):
    from tests.support import use_cached_proofs

    with use_cached_proofs(cached_proofs):  # cvc5 answers each script once per session
        return {key: list(recheck(r.queries)) for key, r in reports.items()}


@pytest.mark.parametrize("key", MODULES)
def test_cvc5_agrees_with_z3_on_every_query(key, rechecks):
    wrong = [(r.query.label, r.query.expected, r.answer) for r in rechecks[key] if not r.agrees]
    assert not wrong, wrong


def test_every_z3_step_and_every_optimum_is_kept(reports):
    for key, report in reports.items():
        labels = [q.label for q in report.queries]
        for step in report.steps:
            if step.detail.startswith("z3: negation unsatisfiable"):  # a z3_step
                assert step.name in labels, (key, step.name)
    # the exact 2-AFC margins are optima: kept as "nothing above" (unsat) + "attained" (sat)
    lip = [q for q in reports["lipschitz"].queries if q.label.startswith("2-AFC")]
    assert {q.expected for q in lip} == {"sat", "unsat"} and len(lip) >= 16
    assert sum(len(r.queries) for r in reports.values()) >= 100


def test_each_query_is_a_complete_benchmark_with_z3s_answer(reports):
    for report in reports.values():
        for q in report.queries:
            assert q.script.startswith("(set-logic ALL)")
            assert f"(set-info :status {q.expected})" in q.script
            assert q.script.count("(check-sat)") == 1
            assert not re.search(r"\(\+ [^()\s]+\)", q.script)  # no one-term sums (cvc5 refuses them)


def test_d1_cube_program_sums_are_valid_smtlib():
    with recording_queries() as queries:
        margins = afc_margins(1.2, 1)
    assert margins is not None and queries
    assert all(cvc5_answer(q.script) == q.expected for q in queries)


def test_a_wrong_answer_is_a_disagreement_not_an_agreement():
    x = sp.Symbol("x", real=True)
    with recording_queries() as queries:
        assert not prove(x**2 >= x, [x], [x >= 0, x <= 2]).proved  # sat: a counterexample
        assert prove(x**2 >= 0, [x]).proved  # unsat
    assert [q.expected for q in queries] == ["sat", "unsat"]
    tampered = SmtQuery("tampered", "unsat", queries[0].script)
    got = list(recheck([*queries, tampered]))
    assert [r.agrees for r in got] == [True, True, False]
    assert summary(got) | {"seconds": 0} == {"queries": 3, "agree": 2, "disagree": 1, "unknown": 0,
                                             "seconds": 0}


def test_out_of_time_is_unknown_and_never_agreement(reports):
    # the tent's Lipschitz lemma is non-linear (1/r): cvc5 needs seconds, not a millisecond
    slow = next(q for q in reports["tent"].queries if "tau(x) - tau(y)" in q.label)
    got = list(recheck([slow], timeout_s=0.001))
    assert got[0].answer == "unknown" and not got[0].agrees
    assert summary(got)["unknown"] == 1 and summary(got)["agree"] == 0


def test_an_unreadable_script_is_an_error_answer_not_a_crash():
    assert cvc5_answer("(assert (< x 1))\n(check-sat)").startswith("error:")
    assert cvc5_answer("(set-logic ALL)\n(declare-fun x () Real)").startswith("error: 0 check-sat")


def test_no_query_is_recorded_outside_a_recording():
    x = sp.Symbol("x", real=True)
    with recording_queries() as queries:
        pass
    prove(x >= 0, [x], [x >= 1])
    assert queries == []


def test_step_kinds_are_labelled_and_counted(reports):
    counts = {k: sum(s.kind == k for r in reports.values() for s in r.steps) for k in STEP_KINDS}
    assert all(counts.values()), counts
    for report in reports.values():
        for step in report.steps:
            assert step.kind in STEP_KINDS
            if step.kind == "follows":
                assert report.follows_from(step) and all(
                    i < report.steps.index(step) + 1 for i in report.follows_from(step))
    # z3 on the implementation's own expressions is not a lemma
    assert {s.kind for s in reports["monotone"].steps if "strictly monotone" in s.name} == {"implementation"}
    assert {s.kind for s in reports["tent"].steps if s.name.startswith("0 <= tau")} == {"lemma"}
    # the README states the same counts
    readme = " ".join(ROOT.joinpath("README.md").read_text().split())
    total = sum(counts.values())
    assert (f"{total} steps: {counts['implementation']} check the implemented object, "
            f"{counts['lemma']} are mathematical lemmas, {counts['follows']} follow from earlier "
            f"steps") in readme
    n_queries = sum(len(r.queries) for r in reports.values())
    assert f"all {n_queries} SMT queries" in readme


def test_a_step_that_follows_from_nothing_shown_fails():
    x, = reals("x")
    steps = _checked_links([
        z3_step("a", x**2 >= 0, [x]),
        follows_step("b", True, "", after=("a",)),
        follows_step("c", True, "", after=("later",)),
        numeric_step("later", True, ""),
        follows_step("d", True, "", after=()),
        Step("e", True, "", "guess"),
    ])
    assert [s.passed for s in steps] == [True, True, False, True, False, False]
    assert "not shown before" in steps[2].detail and "unknown step kind" in steps[5].detail


def test_proofs_command_rechecks_and_writes_every_query(tmp_path, capsys, cached_proofs):
    from tests.support import use_cached_proofs

    with use_cached_proofs(cached_proofs):
        assert main(["proofs", "--recheck", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "proofs.json").read_text())
    smt = data["smt"]
    assert smt["rechecked"] and smt["queries"] == smt["agree"] > 0 and smt["disagree"] == 0
    assert f"cvc5 re-checked {smt['queries']} SMT queries that z3 decided: {smt['agree']} agree" in out
    files = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "smt").rglob("*.smt2"))
    listed = sorted(q["file"] for p in data["proofs"] for q in p["smt"])
    assert files == listed and len(files) == smt["queries"]
    assert all(q["cvc5"] == q["z3"] for p in data["proofs"] for q in p["smt"])
    assert data["step_kinds"] == {k: sum(p["step_kinds"][k] for p in data["proofs"]) for k in STEP_KINDS}
    identity = json.loads((tmp_path / ".fvtrust.json").read_text())
    assert set(files) <= set(identity["files"])


def test_a_later_run_removes_only_the_stale_queries_it_wrote(tmp_path, cached_proofs, monkeypatch):
    from fvtrust.empirical.reports.writers import write_proofs
    from fvtrust.outputs import OutputDir
    from fvtrust.proofs.base import ProofReport
    from tests.support import use_cached_proofs

    OutputDir(tmp_path, "proofs").open()
    proof = next(p for p in all_proofs() if p.key == "tent")
    with use_cached_proofs(cached_proofs):
        report = cached_proofs(proof)
    write_proofs([report], tmp_path)
    n = len(report.queries)
    assert (tmp_path / f"smt/tent/{n:03d}.smt2").exists()
    users = tmp_path / "smt" / "tent" / "notes.smt2"
    users.write_text("(check-sat)\n")  # the user's own file beside ours
    shorter = ProofReport(report.proof, report.steps, report.seconds, report.queries[:1])
    write_proofs([shorter], tmp_path)
    assert (tmp_path / "smt/tent/001.smt2").exists()
    assert not (tmp_path / f"smt/tent/{n:03d}.smt2").exists()  # ours, no longer described
    assert users.read_text() == "(check-sat)\n"  # never ours: left alone


def test_recheck_without_cvc5_is_one_line(monkeypatch, capsys):
    import fvtrust.empirical.cli.commands as commands

    def missing():
        raise ImportError("--recheck needs cvc5: pip install 'fvtrust[proofs]' (or: pip install cvc5)")
    monkeypatch.setattr(commands, "require_cvc5", missing)
    assert main(["proofs", "--recheck"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "needs cvc5" in err
    assert main(["proofs", "--recheck-timeout", "0"]) == 2
    assert "--recheck-timeout must be > 0 seconds, got 0.0" in capsys.readouterr().err
