"""How many CPUs this process may use, and the torch threads every command runs with.

available = min(|affinity mask|, ⌈cgroup CPU quota / period⌉), at least 1: the CPUs a SLURM or
Kubernetes allocation (or ``taskset``) actually grants, not ``os.cpu_count()`` (the machine's).
An explicit ``--threads N`` or ``FVTRUST_THREADS=N`` overrides it. Torch's own default counts
the cores of the affinity mask but not a cgroup quota, so inside a container limited to fewer
CPUs than the machine it oversubscribes them (under load, 2 threads on 2 busy cores rendered
2× slower than 1: benchmarks/bench_threads.py).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

ENV = "FVTRUST_THREADS"
CGROUP_ROOT = Path("/sys/fs/cgroup")

_chosen: int | None = None  # what use_threads() set for this process


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (``os.cpu_count()`` where there is no mask)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows: no affinity API
        return max(1, os.cpu_count() or 1)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _quota_v2(text: str | None) -> float | None:
    """cgroup v2 ``cpu.max``: "max 100000" (no limit) or "<quota> <period>"."""
    if not text:
        return None
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _quota_v1(quota: str | None, period: str | None) -> float | None:
    """cgroup v1 ``cpu.cfs_quota_us`` (−1: no limit) over ``cpu.cfs_period_us``."""
    try:
        q, p = int(quota or ""), int(period or "")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _own_paths(proc_cgroup: str | None) -> dict[str, str]:
    """Controller → this process's cgroup path, from /proc/self/cgroup ("" → the v2 path)."""
    out: dict[str, str] = {}
    for line in (proc_cgroup or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                out[controller] = parts[2]
    return out


def cgroup_cpus(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> float | None:
    """The CPU quota of this process's cgroup and its ancestors (the tightest), in CPUs;
    None where no quota is set or no cgroup is readable. `root` and `proc_cgroup` (the text of
    /proc/self/cgroup) are for tests."""
    if proc_cgroup is None:
        proc_cgroup = _read(Path("/proc/self/cgroup"))
    paths = _own_paths(proc_cgroup)
    limits: list[float] = []

    def walk(base: Path, own: str) -> list[Path]:
        # the process's own cgroup, then each ancestor up to the mount point
        parts = [p for p in own.strip("/").split("/") if p]
        return [base.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]
    if "" in paths or (root / "cpu.max").exists():  # v2 (unified)
        for d in walk(root, paths.get("", "/")):
            if (q := _quota_v2(_read(d / "cpu.max"))) is not None:
                limits.append(q)
    for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):  # v1
        base = root / name
        if base.is_dir():
            own = paths.get("cpu", "/")
            for d in walk(base, own) if (base / own.strip("/")).is_dir() else [base]:
                q = _quota_v1(_read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us"))
                if q is not None:
                    limits.append(q)
            break
    return min(limits) if limits else None


def available_cpus() -> int:
    """min(affinity mask, ⌈cgroup quota⌉), at least 1."""
    quota = cgroup_cpus()
    n = affinity_cpus()
    return max(1, min(n, math.ceil(quota)) if quota is not None else n)


def parse_threads(value: object, what: str = "--threads") -> int:
    """A positive integer number of threads; anything else is refused by name."""
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1 or str(value).strip() != str(n):
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return n


def threads(requested: int | str | None = None) -> int:
    """The thread count: `requested` (``--threads``), else what :func:`use_threads` chose
    for this process, else ``FVTRUST_THREADS``, else :func:`available_cpus`."""
    if requested is not None:
        return parse_threads(requested)
    if _chosen is not None:
        return _chosen
    if os.environ.get(ENV, "").strip():
        return parse_threads(os.environ[ENV], ENV)
    return available_cpus()


def use_threads(requested: int | str | None = None) -> int:
    """Set torch's intra-op threads to :func:`threads` (`requested` first) and remember it,
    so that Ray's embedded node and its workers share out the same number."""
    global _chosen
    n = threads(requested)
    import torch

    torch.set_num_threads(n)
    _chosen = n
    if reproducible_blas() is False and os.environ.get(BLAS_ENV) == "AUTO":  # not a user's choice
        warnings.warn(f"MKL ran before fvtrust could make it reproducible; renders may differ in "
                      f"their last bits between runs (set {BLAS_ENV}=AUTO before starting Python)",
                      RuntimeWarning, stacklevel=2)
    return n


#: ``FVTRUST_KEEP_MEMORY=0`` leaves the C allocator as it is (see :func:`reuse_freed_memory`).
MEMORY_ENV = "FVTRUST_KEEP_MEMORY"
#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_memory_kept = False


def reuse_freed_memory() -> bool:
    """Have glibc serve blocks up to 1 GiB from its heap and keep freed memory (mallopt
    M_MMAP_THRESHOLD and M_TRIM_THRESHOLD), so that the large activations every render step
    frees are reused by the next step instead of being unmapped and page-faulted in anew.

    Why: a render step allocates and frees the same tens of MB each step; with glibc's defaults
    blocks over 32 MB (and, between its adaptive moves, smaller ones) are mmap'd, so every step
    pays the kernel for zeroed pages. benchmarks/bench_allocator.py measures the effect in fresh
    processes. Process-wide and permanent (peak memory is kept, not returned to the OS), so
    every command, Ray worker and the test suite call it; a library user may. True if set;
    False where there is no glibc (macOS, Windows, musl) or ``FVTRUST_KEEP_MEMORY=0``."""
    global _memory_kept
    if _memory_kept:
        return True
    if os.environ.get(MEMORY_ENV, "").strip() == "0":
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # not glibc: mallopt means other things there
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _memory_kept = bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30) and mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    return _memory_kept


#: MKL's Conditional Numerical Reproducibility mode (Intel's variable; a user's value is kept).
BLAS_ENV = "MKL_CBWR"
#: mkl_cbwr.h: the branch field's "off" (MKL's default) and AUTO
_CBWR_BRANCH, _CBWR_BRANCH_OFF, _CBWR_AUTO = 1, 1, 2


def _torch_mkl() -> object | None:
    """torch's statically linked MKL (its CBWR calls), or None: no MKL, or torch not loaded."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.backends.mkl.is_available():
        return None
    import ctypes

    lib_dir = Path(torch.__file__).parent / "lib"
    for name in ("libtorch_cpu.so", "libtorch_cpu.dylib", "torch_cpu.dll"):
        try:
            lib = ctypes.CDLL(str(lib_dir / name))
            get, set_ = lib.mkl_serv_cbwr_get, lib.mkl_serv_cbwr_set
        except (OSError, AttributeError):
            continue
        get.argtypes = set_.argtypes = [ctypes.c_int]
        get.restype = set_.restype = ctypes.c_int
        return lib
    return None


def reproducible_blas() -> bool | None:
    """Put MKL (torch's x86 BLAS) in its reproducible mode, ``MKL_CBWR=AUTO``, for this process
    and the processes it starts (Ray workers), unless the user chose a mode (``MKL_CBWR=`` empty
    keeps MKL's default).

    Why: left alone, MKL picks a GEMM's summation order by the memory alignment of its operands.
    With freed memory kept (:func:`reuse_freed_memory`) the same render then differed in its
    last bit (1 ulp, in a 1×1 convolution's backward on a 1×1 map) from one call to the next in
    one process, so a resumed gate bank was not the uninterrupted one. MKL reads the mode at its
    first call, so this must run before torch computes anything (``import fvtrust`` does it).
    The cost was within the noise of a Lite0 render on this 2-core machine (see the README).

    True if MKL is in a reproducible mode, False if MKL ran before it could be set (results can
    then differ in their last bits between runs), None where torch is not loaded or its MKL
    cannot be reached (no MKL: ARM, macOS)."""
    os.environ.setdefault(BLAS_ENV, "AUTO")
    lib = _torch_mkl()
    if lib is None:
        return None
    if lib.mkl_serv_cbwr_get(_CBWR_BRANCH) == _CBWR_BRANCH_OFF and os.environ[BLAS_ENV] == "AUTO":
        lib.mkl_serv_cbwr_set(_CBWR_AUTO)  # fails (and changes nothing) once MKL has run
    return lib.mkl_serv_cbwr_get(_CBWR_BRANCH) != _CBWR_BRANCH_OFF
