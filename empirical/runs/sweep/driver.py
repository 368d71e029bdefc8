"""The sweep's driver: start (or reach) Ray, run the tasks, land each result in the store."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

import torch

from fvtrust import cpus
from fvtrust.empirical.nets.registry import resolve_device
from fvtrust.empirical.runs.sweep.plan import (
    MODEL_MEASUREMENTS,
    ModelRef,
    SweepPlan,
    SweepSummary,
    SweepTask,
    check_plan,
    split_tasks,
    store_key,
)
from fvtrust.empirical.runs.sweep.store import SweepStore, read_merge_source
from fvtrust.empirical.runs.sweep.worker import RetryableError, failed_records, remote_measure
from fvtrust.outputs import shared_folder


class ClusterUnreachable(ValueError):
    """Nothing answers at the Ray address given."""


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail within `timeout` seconds when nothing listens at a ``host:port`` address
    (``ray.init`` would otherwise keep retrying)."""
    if address == "auto":
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--address {address!r} is not host:port (or ray://host:port, or auto)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterUnreachable(f"--address {address!r}: no Ray cluster answers there "
                                 f"({exc.strerror or exc}); start one with `ray start --head` or "
                                 f"leave out --address for a local one") from None


def _start_ray(address: str | None, workers: int | None, temp_dir: str | None = None) -> tuple[bool, int]:
    """(whether we started Ray, how many tasks can run at once)."""
    import logging

    import ray

    if ray.is_initialized():
        return False, int(ray.cluster_resources().get("CPU", 1))
    if address is not None:
        check_address(address)
        # Something listens there; Ray would try it for ~20 s before giving up. A running
        # cluster answers at once, so a few seconds decide (the user's own setting wins).
        os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "5")
        _reread_auth()
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError) as exc:
            raise ClusterUnreachable(f"--address {address!r}: no Ray cluster answers there "
                                     f"({str(exc).splitlines()[0][:200]})") from None
    else:
        # Embedded: every Ray process listens on the loopback address only (Ray's own
        # single-machine mode, as on macOS: its node address is 127.0.0.1, so its gRPC servers
        # bind there), and keeps its session files in this run's own temporary folder (removed
        # at exit), never under $HOME.
        _loopback_only(True)
        try:
            # address="local": a new Ray, always (not a cluster that RAY_ADDRESS or a
            # `ray start` on this machine left behind)
            ray.init(address="local", num_cpus=workers or cpus.threads(), include_dashboard=False,
                     logging_level=logging.WARNING, log_to_driver=False,
                     _node_ip_address="127.0.0.1", _temp_dir=temp_dir)
        except (OSError, RuntimeError, ConnectionError) as exc:
            _loopback_only(False)
            raise ValueError(f"the embedded Ray could not start ({str(exc).splitlines()[0][:200]})"
                             ) from None
    return True, int(ray.cluster_resources().get("CPU", 1))


_RAY_PREFIX = "fvtrust-ray-"
_CLUSTER_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
#: what the embedded Ray is started with: single-machine mode (node address 127.0.0.1) and a
#: token of its own in the environment (Ray would otherwise write one to ~/.ray)
_EMBEDDED_ENV = ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")
_saved_env: list[dict[str, str | None]] = []


def _loopback_only(on: bool) -> None:
    """Switch the embedded Ray's settings on (for the driver and, through the environment,
    every process Ray starts) or back to what they were."""
    import secrets

    from ray._private import ray_constants

    if on:
        _saved_env.append({k: os.environ.get(k) for k in _EMBEDDED_ENV})
        os.environ[_CLUSTER_ENV] = "0"
        # Token authentication stays on (unless the user turned it off), with a token of its
        # own unless the user gave one: Ray would otherwise write one to ~/.ray.
        if os.environ.get("RAY_AUTH_MODE", "token").lower() != "disabled":
            os.environ["RAY_AUTH_MODE"] = "token"
            if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
                os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    elif _saved_env:
        for key, old in _saved_env.pop().items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
    ray_constants.ENABLE_RAY_CLUSTER = ray_constants.env_bool(
        _CLUSTER_ENV, not ray_constants.IS_WINDOWS_OR_OSX)
    _reread_auth()


def _reread_auth() -> None:
    """Make Ray read its auth mode and token from the environment again: it caches both per
    process, so a token set (or an embedded run's token dropped) after Ray first looked would
    otherwise be ignored, and a cluster would refuse the driver as unauthenticated."""
    try:  # Ray >= 2.5x has token authentication; older releases write no token anywhere
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@contextmanager
def _ray_temp_dir() -> Iterator[str]:
    """A fresh folder for an embedded Ray's session files, removed at exit; folders left by
    drivers that were killed (their pid is gone) are removed first. Short, under /tmp when it
    can be: Ray's socket paths must stay under 107 characters."""
    base = "/tmp" if os.access("/tmp", os.W_OK) else None
    for old in Path(base or tempfile.gettempdir()).glob(f"{_RAY_PREFIX}*"):
        pid = old.name[len(_RAY_PREFIX):].split("-")[0]
        if pid.isdigit() and old.is_dir() and old.stat().st_uid == os.getuid() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    path = tempfile.mkdtemp(prefix=f"{_RAY_PREFIX}{os.getpid()}-", dir=base)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


#: a watchdog, run as its own process: it waits until the driver's end of a pipe closes (the
#: driver exited or was killed), then stops the Ray processes it was given (only those still
#: running with the same start time: a recycled pid is left alone) and removes the folder.
_REAPER = r"""
import os, shutil, signal, sys, time
folder, targets = sys.argv[1], [a.split(":") for a in sys.argv[2:]]
sys.stdin.buffer.read()  # returns when the driver is gone
def start(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None
left = [int(p) for p, t in targets if start(p) == t]
for sig in (signal.SIGTERM, signal.SIGKILL):
    for pid in left:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    for _ in range(20):
        left = [p for p in left if start(p) is not None]
        if not left:
            break
        time.sleep(0.1)
shutil.rmtree(folder, ignore_errors=True)
"""


def _descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, start time) of every process below `pid`, read from /proc (Linux; [] elsewhere)."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append((int(entry.name), fields[19]))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child[0])
    return out


def _reap_on_death(temp_dir: str) -> subprocess.Popen | None:
    """Start the watchdog over the embedded Ray's processes: if this driver is killed, they
    stop within seconds instead of lingering (Ray's own agents outlive a killed driver)."""
    targets = [f"{pid}:{start}" for pid, start in _descendants(os.getpid())]
    if not targets:
        return None
    return subprocess.Popen([sys.executable, "-c", _REAPER, temp_dir, *targets],
                            stdin=subprocess.PIPE, start_new_session=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_sweep(plan: SweepPlan, out_dir: str | Path, address: str | None = None,
              workers: int | None = None, device: str = "auto", force: bool = False,
              max_retries: int = 2, progress: bool = True,
              merge: Sequence[str | Path] = ()) -> SweepSummary:
    """Run every unit of `plan` not yet in the store at `out_dir`; returns the counts.

    `workers` tasks run at once on a local Ray (default: one per CPU core); with `address`
    the cluster's own resources decide. On CUDA every task holds one GPU. `merge` (other
    stores, or their ``units.parquet``) first brings in the units measured elsewhere with the
    settings asked for now, so only the rest run here."""
    import ray
    from tqdm import tqdm


    # Everything is checked before the store is touched or a task starts.
    if device != "auto":
        resolve_device(device)  # an unknown device fails here, in one line
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"--workers must be a positive integer, got {workers!r}")
    if merge and force:
        raise ValueError("--merge and --force contradict each other: --force recomputes every "
                         "unit, so nothing merged would be kept")
    store = SweepStore(out_dir, plan.settings(), plan.settings_hash(), force=force)
    targets = check_plan(plan)
    sources = [read_merge_source(path) for path in merge]
    kept = None
    if plan.renders is not None and plan.measures_afc:
        kept = shared_folder(plan.renders)
        # absolute: a Ray worker need not share the driver's working directory
        plan = replace(plan, renders=str(kept.root.absolute()))
    if address is not None and not ray.is_initialized():
        check_address(address)
    store.open()
    if kept is not None:
        kept.open()
    layer_hash = {(ref, layer): plan.unit_config_hash(ref, layer) for ref, layer in targets}
    model_hash = {ref: plan.model_config_hash(ref) for ref in plan.model_refs}
    hashes = {store_key(ref, layer, u): layer_hash[(ref, layer)]
              for (ref, layer), units in targets.items() for u in units}
    done = set() if force else store.done(hashes)
    merged = store.merge(sources, hashes, done) if sources else None
    done |= merged.merged if merged else set()
    tasks: list[SweepTask | ModelRef] = list(split_tasks(targets, plan.chunk, skip=done))
    if any(m in plan.measure for m in MODEL_MEASUREMENTS):
        finished = set() if force else store.done({store_key(ref): h for ref, h in model_hash.items()},
                                                  models=True)
        tasks += [ref for ref in plan.model_refs if store_key(ref) not in finished]
    unit_tasks = [t for t in tasks if isinstance(t, SweepTask)]
    n_units = len(hashes)
    failures: dict[str, str] = {}
    t0 = time.perf_counter()
    n_computed = n_failed = 0
    started, slots = False, 0
    completed = False
    cleanup = ExitStack()  # the embedded Ray's own temporary folder, removed at exit
    try:
        if tasks:
            embedded = address is None and not ray.is_initialized()
            temp = cleanup.enter_context(_ray_temp_dir()) if embedded else None
            started, slots = _start_ray(address, workers, temp)
            if embedded and started and (reaper := _reap_on_death(temp)) is not None:
                cleanup.callback(reaper.wait)
                cleanup.callback(reaper.stdin.close)  # a clean exit: Ray is down, nothing to stop
            use_gpu = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
            # One task per slot; on a local Ray the CPUs this process may use (or --threads)
            # are shared out between the slots.
            threads = max(1, cpus.threads() // slots) if address is None else 1
            remote = ray.remote(remote_measure).options(
                num_cpus=1, num_gpus=1 if use_gpu else 0, max_retries=max_retries,
                retry_exceptions=[RetryableError])
            def task_hash(t: SweepTask | ModelRef) -> str:
                return model_hash[t] if isinstance(t, ModelRef) else layer_hash[(t.model, t.layer)]
            pending = {remote.remote(plan, t, device, threads, task_hash(t)): t for t in tasks}
            with tqdm(total=n_units, initial=n_units - sum(len(t.units) for t in unit_tasks),
                      desc=f"sweep {len(tasks)} tasks", unit="unit", disable=not progress) as bar:
                while pending:
                    ready, _ = ray.wait(list(pending), num_returns=1)
                    task = pending.pop(ready[0])
                    key = f"model-{task.tag}-{task_hash(task)}" if isinstance(task, ModelRef) else task.key
                    try:
                        records, images = ray.get(ready[0])
                        failed = False
                    except Exception as exc:  # after max_retries: record the failure, keep the rest
                        message = str(getattr(exc, "cause", None) or exc).strip().splitlines()
                        error = message[0] if message else type(exc).__name__
                        records = failed_records(plan, task, error, task_hash(task))
                        images, failed = {}, True
                        failures[key] = error
                    if isinstance(task, ModelRef):
                        store.add(key, records, images, models=True)
                        bar.set_postfix_str(f"{task.name} sanity {'failed' if failed else 'done'}")
                        continue
                    n_failed += len(records) if failed else 0
                    n_computed += 0 if failed else len(records)
                    store.add(key, records, images)
                    bar.set_postfix_str(f"{task.model.name} {task.layer}")
                    bar.update(len(task.units))
        completed = True
    finally:
        store.consolidate()
        if started:
            ray.shutdown()
            if address is None:
                _loopback_only(False)
        cleanup.close()
    if completed:
        store.drop_stale()  # the old settings' parts go only after the new table is written
    seconds = time.perf_counter() - t0
    return SweepSummary(str(out_dir), n_units, n_units - sum(len(t.units) for t in unit_tasks), n_computed,
                        n_failed, len(tasks), seconds, n_computed / seconds if n_computed else 0.0,
                        workers or slots, address, failures,
                        n_merged=len(merged.merged) if merged else 0,
                        merge_left_out=merged.left_out if merged else {})
