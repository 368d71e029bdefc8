"""Threads from the CPUs this process may use: the affinity mask, the cgroup quota, and the
explicit overrides, with bad values refused by name."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from fvtrust import cpus
from fvtrust.empirical.cli import main


@pytest.fixture(autouse=True)
def _restore(monkeypatch):
    """Each test leaves torch's threads and the module's choice as it found them."""
    before, chosen = torch.get_num_threads(), cpus._chosen
    monkeypatch.delenv(cpus.ENV, raising=False)
    yield
    torch.set_num_threads(before)
    cpus._chosen = chosen


def _tree(tmp_path, files: dict[str, str]):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_cgroup_v2_quota_is_read_from_the_process_cgroup_and_its_ancestors(tmp_path):
    root = _tree(tmp_path, {"cpu.max": "max 100000\n", "job/cpu.max": "350000 100000\n",
                            "job/step/cpu.max": "max 100000\n"})
    assert cpus.cgroup_cpus(root, "0::/job/step\n") == 3.5  # the ancestor's quota binds
    assert cpus.cgroup_cpus(root, "0::/\n") is None  # "max": no limit
    _tree(tmp_path, {"job/step/cpu.max": "150000 100000\n"})
    assert cpus.cgroup_cpus(root, "0::/job/step\n") == 1.5  # the tightest


def test_cgroup_v1_quota_and_no_quota(tmp_path):
    root = _tree(tmp_path, {"cpu,cpuacct/cpu.cfs_quota_us": "200000\n",
                            "cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert cpus.cgroup_cpus(root, "4:cpu,cpuacct:/\n") == 2.0
    _tree(tmp_path, {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n"})
    assert cpus.cgroup_cpus(root, "4:cpu,cpuacct:/\n") is None
    assert cpus.cgroup_cpus(tmp_path / "absent", "") is None


def test_available_cpus_is_the_smaller_of_the_mask_and_the_quota(monkeypatch):
    monkeypatch.setattr(cpus, "affinity_cpus", lambda: 8)
    monkeypatch.setattr(cpus, "cgroup_cpus", lambda: 2.5)
    assert cpus.available_cpus() == 3  # a fractional quota still gets its last CPU
    monkeypatch.setattr(cpus, "cgroup_cpus", lambda: None)
    assert cpus.available_cpus() == 8
    monkeypatch.setattr(cpus, "affinity_cpus", lambda: 2)
    monkeypatch.setattr(cpus, "cgroup_cpus", lambda: 16.0)
    assert cpus.available_cpus() == 2


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no affinity API on this platform")
def test_an_affinity_mask_smaller_than_the_machine_sets_the_threads():
    """A real mask of one CPU (``taskset``): the process counts 1 CPU while os.cpu_count()
    counts the machine, and a command runs on 1 torch thread."""
    code = textwrap.dedent("""
        import os, torch
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        from fvtrust import cpus
        print(os.cpu_count(), cpus.available_cpus(), cpus.use_threads(), torch.get_num_threads())
    """)
    env = {k: v for k, v in os.environ.items() if k != cpus.ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, check=True).stdout.split()
    machine, available, chosen, torch_threads = map(int, out)
    assert machine >= 2, "this check needs a machine with at least 2 CPUs to mask one of them"
    assert (available, chosen, torch_threads) == (1, 1, 1)


def test_explicit_threads_override_the_cpus_and_bad_values_are_named(monkeypatch, capsys):
    assert cpus.use_threads(1) == 1 and torch.get_num_threads() == 1
    assert cpus.threads() == 1  # what Ray's embedded node and its workers share out
    cpus._chosen = None
    monkeypatch.setenv(cpus.ENV, "3")
    assert cpus.threads() == 3
    assert cpus.threads(2) == 2  # --threads wins over the environment
    for bad in ("0", "-2", "two", "1.5", ""):
        with pytest.raises(ValueError, match="--threads must be a positive integer"):
            cpus.threads(bad)
    monkeypatch.setenv(cpus.ENV, "many")
    with pytest.raises(ValueError, match=f"{cpus.ENV} must be a positive integer, got 'many'"):
        cpus.threads()


def test_every_command_takes_threads_and_refuses_a_bad_value_in_one_line(capsys, tmp_path):
    assert main(["layers", "--model", "efficientnet_lite0", "--threads", "1"]) == 0
    assert torch.get_num_threads() == 1
    capsys.readouterr()
    assert main(["layers", "--model", "efficientnet_lite0", "--threads", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "fvtrust: error: --threads must be a positive integer, got '0'"
    from fvtrust.empirical.cli.parser import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    missing = [name for name, p in sub.choices.items()
               if not any(a.dest == "threads" for a in p._actions)]
    assert not missing, missing


def _faults_of_repeated_allocations(keep: str) -> tuple[bool, list[int]]:
    """In a fresh interpreter: reuse_freed_memory()'s answer and the minor page faults of each
    of 20 allocate-fill-free rounds of a 64 MB tensor (a render step's largest activations),
    after 10 rounds of warm-up (torch's 64-byte-aligned blocks settle into the heap after a few)."""
    code = textwrap.dedent("""
        import resource, torch
        from fvtrust import cpus
        kept = cpus.reuse_freed_memory()
        for _ in range(10):  # the first rounds map their pages either way
            torch.ones(16 << 20)
        faults = []
        for _ in range(20):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            torch.ones(16 << 20)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        print(kept, *faults)
    """)
    env = {**os.environ, cpus.MEMORY_ENV: keep}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, check=True).stdout.split()
    return out[0] == "True", [int(n) for n in out[1:]]


def _glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (AttributeError, ValueError, OSError):  # not glibc (macOS, Windows, musl)
        return False


@pytest.mark.skipif(not _glibc(), reason="mallopt's thresholds are glibc's (no glibc here)")
def test_freed_memory_is_reused_instead_of_faulted_in_every_step():
    kept, faults = _faults_of_repeated_allocations("1")
    default_kept, default_faults = _faults_of_repeated_allocations("0")  # FVTRUST_KEEP_MEMORY=0
    assert kept and not default_kept
    pages = (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    fresh = sum(n >= 0.5 * pages for n in faults)  # rounds that mapped their tensor anew
    assert sum(n >= 0.5 * pages for n in default_faults) >= 18, default_faults  # glibc's default
    # Kept: rounds reuse the heap. Once in a while the heap grows one more time (a small block
    # carved from the freed 64 MB leaves it too short: seen once in 20 rounds on CI, 64 MB in all).
    assert fresh <= 2, faults


_REPEATED_BACKWARD = """
import os, sys, warnings
if sys.argv[1] == "late":  # torch's MKL runs before fvtrust is imported
    import torch
    torch.rand(64, 64) @ torch.rand(64, 64)
from fvtrust import cpus
import torch
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    cpus.use_threads(2)
cpus.reuse_freed_memory()
torch.manual_seed(0)
# the op that made a resumed gate bank differ: a 1x1 conv's backward on a 1x1 map
conv = torch.nn.Conv2d(672, 192, 1, bias=False)
x0, upstream = torch.rand(1, 672, 1, 1), torch.randn(1, 192, 1, 1)
grads = []
for k in range(200):
    shift = torch.rand(1000 * (k * 37 % 11) + 7)  # moves where the next blocks land
    x = x0.clone().requires_grad_()
    conv(x).backward(upstream)
    grads.append(x.grad)
print(cpus.reproducible_blas(), len(caught), max((g - grads[0]).abs().max().item() for g in grads))
"""


def _repeated_backward(order: str) -> tuple[str, int, float]:
    env = {k: v for k, v in os.environ.items() if k != cpus.BLAS_ENV}
    out = subprocess.run([sys.executable, "-c", _REPEATED_BACKWARD, order], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return out[0], int(out[1]), float(out[2])


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="torch without MKL (ARM, macOS)")
def test_the_same_backward_is_the_same_to_the_last_bit_wherever_memory_lands():
    # MKL's default picks the summation order by alignment: 1-ulp differences on this machine
    assert _repeated_backward("first") == ("True", 0, 0.0)
    reproducible, warned, _ = _repeated_backward("late")
    assert (reproducible, warned) == ("False", 1)  # too late to set: said, not hidden


def test_a_users_blas_mode_is_kept(monkeypatch):
    monkeypatch.setenv(cpus.BLAS_ENV, "COMPATIBLE")
    cpus.reproducible_blas()
    assert os.environ[cpus.BLAS_ENV] == "COMPATIBLE"
