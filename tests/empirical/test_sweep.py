"""`fvtrust sweep` on a real local Ray cluster with 2 workers: a small sweep on the offline
default network, a worker killed mid-sweep, a rerun that recomputes nothing, a changed
config, a task that fails for good, an existing cluster reached with --address."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fvtrust.empirical.cli import main
from fvtrust.empirical.runs.sweep.afc import afc_from_store, stored_observers
from fvtrust.empirical.runs.sweep.driver import ClusterUnreachable, check_address, run_sweep
from fvtrust.empirical.runs.sweep.plan import ModelRef, SweepPlan, check_plan, split_tasks, unit_order
from fvtrust.empirical.runs.sweep.store import StoreMismatch
from fvtrust.empirical.runs.sweep.worker import trial_column

ray = pytest.importorskip("ray")

SMALL = {"layers": ["_blocks.2"], "steps": 6, "size": 32, "n_natural": 40, "n_references": 3}


@pytest.fixture(scope="module")
def local_ray():
    """One embedded Ray with 2 worker slots for the module (run_sweep reuses it)."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _processes() -> dict[int, tuple[int, bytes]]:
    """Every process: pid → (parent pid, command line)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                out[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]),
                                        (entry / "cmdline").read_bytes())
            except (OSError, IndexError, ValueError):
                continue
    return out


def _descendants(roots: set[int], table: dict[int, tuple[int, bytes]]) -> set[int]:
    """`roots` and every process below them."""
    found = set(roots)
    while more := {pid for pid, (ppid, _) in table.items() if ppid in found} - found:
        found |= more
    return found


def _task_processes() -> list[int]:
    """PIDs of this test's Ray workers executing a sweep task right now (Ray sets the process
    title; only this process's descendants: a user's sweep beside the tests is not ours)."""
    table = _processes()
    return sorted(pid for pid in _descendants({os.getpid()}, table)
                  if b"ray::remote_measure" in table[pid][1])


def _stop_processes_naming(text: str, wait: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, every process whose command line contains `text`, and their
    descendants (Ray's agents and workers retitle themselves, so only their parents name it)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        table = _processes()
        pids = _descendants({pid for pid, (_, cmd) in table.items()
                             if text.encode() in cmd and pid != os.getpid()}, table)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)


def _units(table: pd.DataFrame) -> list[tuple[str, int]]:
    return sorted(zip(table["layer"], table["unit"], strict=True))


def test_a_bad_plan_is_refused_before_any_task_starts(tmp_path):
    bad = [({"layers": ["_blocks.99"]}, "_blocks.99"), ({"models": ["vgg"]}, "vgg"),
           ({"units": "0-500"}, "out of range"), ({"units": "3-1"}, "--units"),
           ({"measure": ["render", "saliency"]}, "saliency"), ({"chunk": 0}, "chunk"),
           ({"models": ["resnet50=/no/such/file.pt"]}, "/no/such/file.pt")]
    for change, message in bad:
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            run_sweep(SweepPlan(**{**SMALL, **change}), tmp_path / "store")
    assert not ray.is_initialized() and not (tmp_path / "store" / "parts").exists()


def test_an_unreachable_address_fails_within_seconds(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(ClusterUnreachable, match=f"127.0.0.1:{port}"):
        check_address(f"127.0.0.1:{port}")
    assert time.perf_counter() - t0 < 6
    assert main(["sweep", "--address", f"127.0.0.1:{port}", "--out", str(tmp_path)]) == 2
    with pytest.raises(ValueError, match="host:port"):
        check_address("nowhere")


def test_sweep_survives_a_killed_worker_and_a_rerun_recomputes_nothing(local_ray, tmp_path):
    plan = SweepPlan(**{**SMALL, "steps": 40}, units="0-11", chunk=2)
    out = tmp_path / "store"
    killed: list[int] = []
    summary: dict = {}
    run = threading.Thread(target=lambda: summary.update(s=run_sweep(plan, out, progress=False)))
    run.start()
    deadline = time.time() + 120
    while run.is_alive() and not killed and time.time() < deadline:
        pids = _task_processes()
        time.sleep(0.3)  # well inside the task, not at its first line
        busy = [p for p in pids if p in _task_processes()]
        if busy:
            os.kill(busy[0], signal.SIGKILL)
            killed.append(busy[0])
        time.sleep(0.05)
    run.join(300)
    assert killed, "no worker was running a task to kill"
    first = summary["s"]
    assert (first.n_computed, first.n_failed, first.n_units) == (12, 0, 12)
    table = pd.read_parquet(out / "units.parquet")
    assert _units(table) == [("_blocks.2", u) for u in range(12)]  # nothing lost, nothing twice
    assert (table["status"] == "ok").all()
    assert str(killed[0]) not in {w.split(":")[1] for w in table["worker"]}  # its task was redone
    # Each worker loaded the network once and kept it for the tasks that followed.
    assert set(table["worker_model_loads"]) == {1}
    assert table["worker"].nunique() <= 3
    parts = {p: p.stat().st_mtime_ns for p in (out / "parts").rglob("*.parquet")}
    assert sum(len(pd.read_parquet(p)) for p in parts) == 12
    for u in range(12):
        assert (out / "images" / "efficientnet_lite0" / "_blocks.2" / f"unit_{u:04d}_max.png").is_file()
    # The visualization's final objective is the unit's activation: larger than natural ones.
    assert (table["render_max_activation"] > table["natural_activation_mean"]).mean() >= 0.75

    again = run_sweep(plan, out, progress=False)
    assert (again.n_skipped, again.n_computed, again.n_tasks) == (12, 0, 0)
    assert {p: p.stat().st_mtime_ns for p in (out / "parts").rglob("*.parquet")} == parts

    wider = run_sweep(SweepPlan(**{**SMALL, "steps": 40}, units="0-13", chunk=2), out, progress=False)
    assert (wider.n_skipped, wider.n_computed) == (12, 2)  # the scope grows; settings stay

    changed = SweepPlan(**{**SMALL, "steps": 41}, units="0-11", chunk=2)
    with pytest.raises(StoreMismatch, match="steps"):
        run_sweep(changed, out, progress=False)
    redone = run_sweep(changed, out, force=True, progress=False)
    assert (redone.n_skipped, redone.n_computed) == (0, 12)
    # the old settings' parts went only after the new table was written
    assert [p.name for p in (out / "parts").iterdir()] == [changed.settings_hash()]
    assert len(pd.read_parquet(out / "units.parquet")) == 12


def test_a_task_that_keeps_failing_is_recorded_and_the_others_land(local_ray, tmp_path, monkeypatch):
    """The weights file vanishes after the plan was checked (as on a node without the file):
    that model's tasks fail after their retries; the other model's units land."""
    from fvtrust.empirical.nets.registry import load_model
    from fvtrust.empirical.runs.sweep import driver

    weights = tmp_path / "lite0.pt"
    torch.save(load_model("efficientnet_lite0").net.state_dict(), weights)
    split = driver.split_tasks

    def split_then_lose_the_file(*args, **kwargs):
        tasks = split(*args, **kwargs)
        weights.unlink()
        return tasks
    monkeypatch.setattr(driver, "split_tasks", split_then_lose_the_file)  # where run_sweep looks
    plan = SweepPlan(**{**SMALL, "models": ["efficientnet_lite0", f"efficientnet_lite0={weights}"]},
                     units="0-3", chunk=2, measure=["render"])
    summary = run_sweep(plan, tmp_path / "store", max_retries=1, progress=False)
    assert (summary.n_computed, summary.n_failed) == (4, 4)
    table = pd.read_parquet(tmp_path / "store" / "units.parquet")
    failed = table[table["status"] == "failed"]
    assert len(table) == 8 and len(failed) == 4 and set(failed["weights"]) == {str(weights)}
    assert failed["error"].str.contains("lite0.pt").all()


def test_the_same_network_with_other_weights_keeps_its_own_images(local_ray, tmp_path):
    from fvtrust.empirical.nets.registry import load_model

    weights = tmp_path / "copy.pt"
    torch.save(load_model("efficientnet_lite0").net.state_dict(), weights)
    plan = SweepPlan(**{**SMALL, "models": ["efficientnet_lite0", f"efficientnet_lite0={weights}"]},
                     units="0", measure=["render"])
    assert run_sweep(plan, tmp_path / "store", progress=False).n_computed == 2
    table = pd.read_parquet(tmp_path / "store" / "units.parquet")
    assert len(set(table["render_max_png"])) == 2  # two records, two files
    assert all((tmp_path / "store" / p).is_file() for p in table["render_max_png"])


def test_cli_sweeps_all_units_of_a_layer(local_ray, tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", "--layers", "_blocks.0", "--units", "all", "--steps", "4", "--size", "32",
            "--natural", "40", "--references", "3", "--chunk", "8", "--out", str(out)]
    assert main(args) == 0
    table = pd.read_parquet(out / "units.parquet")
    assert _units(table) == [("_blocks.0", u) for u in range(16)]
    assert (out / "sweep.png").is_file() and (out / "summary.json").is_file()
    assert "16 computed" in capsys.readouterr().out
    assert main(args) == 0 and "16 already done, 0 computed" in capsys.readouterr().out
    assert main([*args[:-2], "--steps", "5", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err


def test_the_sanity_check_runs_once_per_model(local_ray, tmp_path):
    plan = SweepPlan(**{**SMALL, "size": 64}, units="0-1", measure=["render", "sanity"])
    first = run_sweep(plan, tmp_path, progress=False)
    assert (first.n_computed, first.n_failed, first.n_tasks) == (2, 0, 2)  # 1 unit task + 1 model task
    models = pd.read_parquet(tmp_path / "models.parquet")
    assert len(models) == 1 and models["status"].iloc[0] == "ok"
    layers = list(models["sanity_layers"].iloc[0])
    assert layers[-1] == "logits" and "_fc" not in layers  # the classifier's output once, as logits
    assert len(models["sanity_score"].iloc[0]) == len(layers)
    assert run_sweep(plan, tmp_path, progress=False).n_tasks == 0  # the model is done too


def test_the_2afc_scores_of_each_unit_land_in_its_record(local_ray, tmp_path):
    plan = SweepPlan(**{**SMALL, "size": 64}, units="0-1", chunk=2, n_trials=5,
                     measure=["afc_references", "afc_occlusion"])
    summary = run_sweep(plan, tmp_path, progress=False)
    assert (summary.n_computed, summary.n_failed) == (2, 0)
    table = pd.read_parquet(tmp_path / "units.parquet")
    for task in ("references", "occlusion"):
        for condition in ("natural", "synthetic", "random"):
            values = table[f"afc_{task}_{condition}"]
            assert values.between(0, 1).all() and values.notna().all(), (task, condition)
            # 5 trials per unit: accuracies are multiples of 1/10 (a tie scores 1/2)
            assert ((values * 10).round(9) % 1 == 0).all()
    # The same numbers as the single-process API for that unit alone (so chunking cannot matter).
    from fvtrust.empirical.experiments.afc import AFCConfig, run_afc

    alone = run_afc(AFCConfig(task="occlusion", layers=["_blocks.2"], units=[1], observers=["mis"],
                              n_references=3, n_trials=5, n_natural=40, size=64, steps=6), progress=False)
    for condition in ("natural", "synthetic", "random"):
        assert table[f"afc_occlusion_{condition}"].iloc[1] == alone.per_unit["mis"][condition]["_blocks.2:1"]
    # Every observer's trials are kept, the same as the single-process API's for that unit.
    alone = run_afc(AFCConfig(task="occlusion", layers=["_blocks.2"], units=[1], n_references=3,
                              n_trials=5, n_natural=40, size=64, steps=6), progress=False)
    assert set(stored_observers(table, "occlusion")) == set(alone.trials) == {"mis", "spatial", "center",
                                                                                "variance"}
    for name, by_cond in alone.trials.items():
        for condition, by_unit in by_cond.items():
            stored = table[trial_column("occlusion", name, condition, "correct")].iloc[1]
            assert list(stored) == by_unit["_blocks.2:1"]["correct"], (name, condition)
            # P(correct) to float32 rounding: a worker renders with 1 thread, this process with 2
            stored = table[trial_column("occlusion", name, condition, "p")].iloc[1]
            assert np.allclose(stored, by_unit["_blocks.2:1"]["p"], rtol=1e-5, atol=0), (name, condition)
    # Gathered from the store: the per-unit accuracies it stores, and the paired comparisons.
    results = afc_from_store(table, plan, "occlusion")
    assert list(results) == ["efficientnet_lite0"]
    result = results["efficientnet_lite0"]
    assert result.split["units_per_layer"] == {"_blocks.2": 2}
    for condition in ("natural", "synthetic", "random"):
        stored = zip(table["unit"], table[f"afc_occlusion_{condition}"], strict=True)
        assert result.per_unit["mis"][condition] == {f"_blocks.2:{u}": v for u, v in stored}
        assert result.overall["mis"][condition]["n_trials"] == 10
    labels = {c["label"] for c in result.paired}
    assert {"mis/natural − mis/synthetic", "mis/natural − center/natural"} <= labels
    # the store's row order (when each task finished) changes no interval
    reordered = afc_from_store(table.iloc[::-1], plan, "occlusion")["efficientnet_lite0"]
    assert reordered.to_json()["paired"] == result.to_json()["paired"]
    # The command on the same store: nothing recomputed, each task's tables written from it.
    assert main(["sweep", "--layers", "_blocks.2", "--units", "0-1", "--chunk", "2", "--steps", "6",
                 "--size", "64", "--natural", "40", "--references", "3", "--trials", "5",
                 "--measure", "afc_references,afc_occlusion", "--out", str(tmp_path)]) == 0
    written = json.loads((tmp_path / "afc" / "efficientnet_lite0" / "afc_occlusion.json").read_text())
    assert written["paired"] == json.loads(json.dumps(result.to_json()["paired"]))
    assert "trials" not in written and written["split"]["units_per_layer"] == {"_blocks.2": 2}
    assert (tmp_path / "afc" / "efficientnet_lite0" / "afc_references_paired.png").is_file()


def test_the_papers_other_conditions_are_measurements_of_their_own(local_ray, tmp_path):
    """Borowski et al.'s Max-1 and Zimmermann et al.'s 30 % patch beside the default
    conditions: each unit's trials equal the single-process API's for that condition, the
    default measurement's observers are not confused with the variant's columns, and each
    measurement gets its own tables, with the papers' human data for that condition."""
    from fvtrust.empirical.experiments.afc import AFCConfig, run_afc

    plan = SweepPlan(**{**SMALL, "size": 64}, units="1", chunk=1, n_trials=5,
                     measure=["afc_references", "afc_references_max1", "afc_occlusion_patch30"])
    assert run_sweep(plan, tmp_path, progress=False).n_computed == 1
    table = pd.read_parquet(tmp_path / "units.parquet")
    assert stored_observers(table, "references") == stored_observers(table, "references_max1") \
        == ["mis", "spatial"]
    assert set(stored_observers(table, "occlusion_patch30")) == {"mis", "spatial", "center", "variance"}
    assert stored_observers(table, "occlusion") == []  # not measured: no 40 % columns
    small = dict(layers=["_blocks.2"], units=[1], n_references=3, n_trials=5, n_natural=40, size=64,
                 steps=6)
    for key, config in (("references_max1", AFCConfig(reference_sides="max", **small | {"n_references": 1})),
                        ("occlusion_patch30", AFCConfig(task="occlusion", patch=0.3, **small)),
                        ("references", AFCConfig(**small))):
        alone = run_afc(config, progress=False)
        for name, by_cond in alone.trials.items():
            for condition, by_unit in by_cond.items():
                stored = table[trial_column(key, name, condition, "correct")].iloc[0]
                assert list(stored) == by_unit["_blocks.2:1"]["correct"], (key, name, condition)
    # the conditions differ: one reference per side is not nine (here three)
    assert any(list(table[trial_column("references_max1", "mis", c, "p")].iloc[0])
               != list(table[trial_column("references", "mis", c, "p")].iloc[0])
               for c in ("natural", "synthetic"))
    with pytest.raises(ValueError, match="unknown 2-AFC measurement 'references_max2'"):
        afc_from_store(table, plan, "references_max2")
    assert main(["sweep", "--layers", "_blocks.2", "--units", "1", "--chunk", "1", "--steps", "6",
                 "--size", "64", "--natural", "40", "--references", "3", "--trials", "5",
                 "--measure", "afc_references,afc_references_max1,afc_occlusion_patch30",
                 "--out", str(tmp_path)]) == 0
    folder = tmp_path / "afc" / "efficientnet_lite0"
    assert sorted(p.name for p in folder.glob("*.json")) == [
        "afc_occlusion_patch30.json", "afc_references.json", "afc_references_max1.json"]
    max1 = json.loads((folder / "afc_references_max1.json").read_text())
    assert (max1["config"]["reference_sides"], max1["config"]["n_references"]) == ("max", 1)
    assert json.loads((folder / "afc_occlusion_patch30.json").read_text())["config"]["patch"] == 0.3
    # Max-1's human data is Borowski et al.'s Exp. II Max-1 cell (natural 73.0 %, synthetic 65.2 %)
    assert "73.0 %" in (folder / "afc_references_max1.md").read_text()
    assert "73.0 %" not in (folder / "afc_references.md").read_text()


def test_kept_renders_serve_a_later_sweep_of_the_same_units(local_ray, tmp_path, monkeypatch):
    """--renders: the first sweep keeps each unit's synthetic references (listed as ours in
    the folder's identity); a sweep of another condition into another store loads them (the
    file is not rewritten, and with rendering disabled the measurement still runs) and gets
    the trials a single task measuring both conditions gets."""
    from fvtrust.empirical.experiments import afc as afc_module
    from fvtrust.empirical.runs.sweep.plan import SweepTask
    from fvtrust.empirical.runs.sweep.worker import measure_task

    kept = tmp_path / "renders"
    small = {**SMALL, "size": 64, "units": "1", "chunk": 1, "n_trials": 5}
    plan = SweepPlan(**small, measure=["afc_references"], renders=str(kept))
    assert run_sweep(plan, tmp_path / "a", progress=False).n_computed == 1
    identity = json.loads((kept / ".fvtrust.json").read_text())
    (saved,) = kept.glob(".stages/synthetic-*.pt")
    assert identity["kind"] == "renders" and identity["files"] == [f".stages/{saved.name}"]
    stamp = saved.stat().st_mtime_ns
    other = SweepPlan(**small, measure=["afc_references_max"], renders=str(kept))
    assert run_sweep(other, tmp_path / "b", progress=False).n_computed == 1
    assert saved.stat().st_mtime_ns == stamp and len(list(kept.glob(".stages/*"))) == 1

    # In this process: one task measuring both conditions renders once, in memory ...
    task = SweepTask(ModelRef("efficientnet_lite0"), "_blocks.2", (1,))
    (both,), _ = measure_task(SweepPlan(**small, measure=["afc_references", "afc_references_max"]),
                              task, device="cpu")
    # ... and a sweep of Max-K alone, with these renders kept, renders nothing at all.
    fresh = tmp_path / "fresh"
    measure_task(SweepPlan(**small, measure=["afc_references"], renders=str(fresh)), task, device="cpu")

    def no_render(*args, **kwargs):
        raise AssertionError("rendered again")
    monkeypatch.setattr(afc_module, "render", no_render)
    (alone,), _ = measure_task(SweepPlan(**small, measure=["afc_references_max"], renders=str(fresh)),
                               task, device="cpu")
    for name in ("mis", "spatial"):
        for condition in ("natural", "synthetic", "random"):
            column = trial_column("references_max", name, condition, "p")
            assert alone[column] == both[column], (name, condition)
    # a folder of someone else's files is refused by name before anything runs
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("mine")
    assert main(["sweep", "--layers", "_blocks.2", "--units", "1", "--measure", "afc_references",
                 "--renders", str(tmp_path / "theirs"), "--out", str(tmp_path / "c")]) == 2
    assert not (tmp_path / "c").exists() and not (tmp_path / "theirs" / ".fvtrust.json").exists()


def test_renders_of_a_weights_file_are_keyed_by_its_bytes(tmp_path):
    """Synthetic references kept on disk belong to the file's bytes, not to its path."""
    from fvtrust.empirical.experiments.afc import AFCConfig
    from fvtrust.stages import result_fields, stage_key

    weights = tmp_path / "mine.pth"
    weights.write_bytes(b"first")
    config = AFCConfig(weights=str(weights), layers=["_blocks.2"], units=[1])
    first = stage_key(config.synthetic_references("_blocks.2"))
    weights.write_bytes(b"other")
    os.utime(weights, ns=(1, 1))  # another mtime, as an edit gives
    assert stage_key(config.synthetic_references("_blocks.2")) != first
    # the network's own weights: the key of renders kept before this field existed
    plain = AFCConfig(layers=["_blocks.2"], units=[1]).synthetic_references("_blocks.2")
    assert plain.weights_sha256 is None and "weights_sha256" not in result_fields(plain)


def test_an_existing_cluster_is_used_through_address(tmp_path, monkeypatch):
    """`ray start --head` as on a cluster's head node, then `fvtrust sweep --address`."""
    if ray.is_initialized():
        ray.shutdown()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the cluster's token, given to the head and to the driver as a user of a cluster would
    # (not ~/.ray/auth_token, which whatever else ran Ray on this machine may have written)
    token = os.urandom(32).hex()
    for key, value in (("RAY_AUTH_MODE", "token"), ("RAY_AUTH_TOKEN", token)):
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    ray_cli = str(Path(sys.executable).parent / "ray")  # the command the ray wheel installs
    # a temp dir of its own (short: Ray's socket paths must fit in 107 bytes) names this
    # cluster's processes, so the test stops them and nothing else: `ray stop` would also kill
    # every other Ray on the machine (a user's sweep running beside the tests)
    temp = tempfile.mkdtemp(prefix="fvr", dir="/tmp")
    subprocess.run([ray_cli, "start", "--head", f"--port={port}", "--num-cpus=2",
                    "--include-dashboard=false", f"--temp-dir={temp}"],
                   check=True, capture_output=True, env=env)
    try:
        out = tmp_path / "sweep"
        assert main(["sweep", "--address", f"127.0.0.1:{port}", "--layers", "_blocks.2", "--units", "0-3",
                     "--steps", "4", "--size", "32", "--natural", "40", "--references", "3", "--chunk", "2",
                     "--measure", "render", "--out", str(out)]) == 0
        assert len(pd.read_parquet(out / "units.parquet")) == 4
    finally:
        _stop_processes_naming(temp)
        shutil.rmtree(temp, ignore_errors=True)


def test_an_embedded_sweep_starts_a_ray_of_its_own_whatever_ray_address_says(tmp_path, monkeypatch):
    if ray.is_initialized():
        ray.shutdown()
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")  # a cluster that is not there
    plan = SweepPlan(**SMALL, units="0", measure=["render"])
    assert run_sweep(plan, tmp_path / "store", progress=False).n_computed == 1


def test_a_vit_layer_gets_the_same_columns_as_a_cnn_layer(local_ray, tmp_path):
    """User factories (a CNN, a greyscale CNN, a tiny ViT's class token and attention heads)
    and torchvision's vit_b_16 with random weights, through the same sweep."""
    user = Path(__file__).resolve().parent / "user_models.py"  # an absolute spec: every worker finds it
    common = {**SMALL, "units": "0-1", "chunk": 2, "n_trials": 5,
              "measure": ["render", "exemplars", "afc_references", "afc_occlusion", "audit"]}
    cnn = SweepPlan(**{**common, "models": [f"{user}:small_cnn", f"{user}:grey_cnn"],
                       "layers": ["features.3"]})
    block = "encoder.layers.encoder_layer_1"
    vit = SweepPlan(**{**common, "models": [f"{user}:tiny_vit"],
                       "layers": [f"{block}@cls", f"{block}.self_attention@heads"]})
    tables = {}
    for name, plan in (("cnn", cnn), ("vit", vit)):
        summary = run_sweep(plan, tmp_path / name, progress=False)
        assert (summary.n_computed, summary.n_failed) == (4, 0), summary.failures
        tables[name] = table = pd.read_parquet(tmp_path / name / "units.parquet")
        assert (table["status"] == "ok").all() and table["afc_references_natural"].notna().all()
        for path in table["render_max_png"]:  # the spec is slugged: images stay in the store
            assert not Path(path).is_absolute() and (tmp_path / name / path).is_file()
    assert list(tables["vit"].columns) == list(tables["cnn"].columns)
    big = SweepPlan(**{**SMALL, "models": ["torchvision:vit_b_16=random"], "units": "3",
                       "steps": 2, "layers": [f"{block}@cls"], "measure": ["render"]})
    assert run_sweep(big, tmp_path / "vit_b_16", progress=False).n_computed == 1


def test_an_edited_factory_is_another_model(tmp_path):
    source = (Path(__file__).resolve().parent / "user_models.py").read_text()
    factory = tmp_path / "net.py"
    factory.write_text(source)
    plan = SweepPlan(**{**SMALL, "models": [f"{factory}:small_cnn"], "layers": ["features.3"]})
    (ref,) = plan.model_refs
    before = plan.unit_config_hash(ref, "features.3")
    factory.write_text(source.replace("nn.Conv2d(8, 12, 3", "nn.Conv2d(8, 12, 5"))
    assert plan.unit_config_hash(ref, "features.3") != before


def test_tasks_take_the_layers_in_turn_and_a_random_order_is_a_fixed_sample_of_each_layer():
    a, b = ModelRef("efficientnet_lite0"), ModelRef("efficientnet_lite1")
    targets = {(a, "x"): list(range(10)), (a, "y"): list(range(4)), (b, "x"): list(range(6))}
    tasks = split_tasks(targets, 2)
    # round robin: after any three tasks, each (model, layer) has had one while it had units
    assert [(t.model.name[-1], t.layer) for t in tasks[:6]] == [("0", "x"), ("0", "y"), ("1", "x")] * 2
    assert [t.units for t in tasks if t.layer == "y"] == [(0, 1), (2, 3)]
    assert sum(len(t.units) for t in tasks) == 20
    shuffled = {key: unit_order(units, *key, order="random", seed=3) for key, units in targets.items()}
    for key, units in targets.items():
        assert unit_order(units, *key, order="random", seed=3) == shuffled[key]  # a resume: the same
        assert sorted(shuffled[key]) == units and shuffled[key] != units
        assert unit_order(units, *key) == units
    assert unit_order(list(range(10)), a, "x", "random", 4) != shuffled[(a, "x")]
    assert shuffled[(a, "x")] != shuffled[(b, "x")]  # each (model, layer) its own sample
    # finished units are skipped without changing the order of the others
    tasks = split_tasks(shuffled, 2)
    skip = {("efficientnet_lite0", "", "x", u) for u in tasks[0].units}
    rest = split_tasks(shuffled, 2, skip=skip)
    assert [u for t in rest if (t.model, t.layer) == (a, "x") for u in t.units] == shuffled[(a, "x")][2:]
    with pytest.raises(ValueError, match="order must be one of"):
        SweepPlan(order="shuffled")
    with pytest.raises(ValueError, match="limit"):
        SweepPlan(limit=0)


def test_a_limit_takes_the_first_units_of_the_order_and_a_larger_one_extends_the_sample():
    plan = SweepPlan(layers=["_blocks.2", "_blocks.4"], order="random", limit=5)
    targets = check_plan(plan)
    assert [len(u) for u in targets.values()] == [5, 5]
    wider = check_plan(SweepPlan(layers=["_blocks.2", "_blocks.4"], order="random", limit=9))
    for key, units in targets.items():
        assert wider[key][:5] == units
    assert plan.settings_hash() == SweepPlan(layers=["_blocks.2"], order="random").settings_hash()


def test_units_measured_elsewhere_are_merged_with_their_images_and_only_the_rest_run(
        local_ray, tmp_path, capsys):
    from fvtrust.outputs import OutputDir

    small = {**SMALL, "measure": ["render"]}
    assert run_sweep(SweepPlan(**small, units="0-1"), tmp_path / "a", progress=False).n_computed == 2
    run_sweep(SweepPlan(**{**small, "steps": 7}, units="2"), tmp_path / "c", progress=False)
    a = pd.read_parquet(tmp_path / "a" / "units.parquet")
    # another machine's store (and one measured with other settings) into a third store, by the CLI
    args = ["sweep", "--layers", "_blocks.2", "--units", "0-2", "--measure", "render", "--steps", "6",
            "--size", "32", "--natural", "40", "--references", "3", "--out", str(tmp_path / "b")]
    assert main([*args, "--merge", str(tmp_path / "a"), "--merge", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "2 already done, 1 computed" in out
    assert "merged 2 units" in out and "1 measured with other settings" in out
    b = pd.read_parquet(tmp_path / "b" / "units.parquet").set_index("unit")
    for row in a.itertuples():
        # the record measured elsewhere, unchanged, and the PNG it describes beside it
        assert b.loc[row.unit, "config_hash"] == row.config_hash
        assert b.loc[row.unit, "finished"] == row.finished
        assert b.loc[row.unit, "render_max_activation"] == row.render_max_activation
        png = row.render_max_png
        assert (tmp_path / "b" / png).read_bytes() == (tmp_path / "a" / png).read_bytes()
        assert png in OutputDir(tmp_path / "b", "sweep").files()
    assert b.loc[2, "finished"] > a["finished"].max()  # unit 2 ran here: c's has other settings
    again = run_sweep(SweepPlan(**small, units="0-2"), tmp_path / "b", progress=False, merge=[tmp_path / "a"])
    assert (again.n_merged, again.n_tasks, again.merge_left_out) == (0, 0, {"done here already": 2})

    # a published table without its images: a number without the PNG it describes stays out
    (tmp_path / "pub").mkdir()
    (tmp_path / "a" / "units.parquet").rename(tmp_path / "pub" / "units.parquet")
    lone = run_sweep(SweepPlan(**small, units="0"), tmp_path / "d", progress=False,
                     merge=[tmp_path / "pub" / "units.parquet"])
    assert (lone.n_merged, lone.n_computed) == (0, 1)
    assert lone.merge_left_out == {"images missing": 1, "outside this plan": 1}

    # bad sources and contradictions are refused in one line, before the store exists
    (tmp_path / "other.parquet").write_bytes(b"not parquet")
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "table.parquet")
    (tmp_path / "empty").mkdir()
    for source, message in ((tmp_path / "nowhere", "nowhere: no such sweep store"),
                            (tmp_path / "empty", "empty: not a sweep store"),
                            (tmp_path / "other.parquet", "other.parquet: not a readable Parquet"),
                            (tmp_path / "table.parquet", "table.parquet: not a sweep table")):
        with pytest.raises(ValueError, match=message):
            run_sweep(SweepPlan(**small, units="0"), tmp_path / "e", progress=False, merge=[source])
    with pytest.raises(ValueError, match="--merge and --force"):
        run_sweep(SweepPlan(**small, units="0"), tmp_path / "e", progress=False, merge=[tmp_path / "b"],
                  force=True)
    assert not (tmp_path / "e").exists()
