"""How far a render step is from its limit: the roofline of the machine it runs on.

FLOPs of one render step (forward to the layer + backward to the image) come from
``torch.utils.flop_counter.FlopCounterMode``; the machine's throughput is measured in the same
run, the better of a large matrix product and a dense 3x3 convolution (float32, and bfloat16
for the bfloat16 render).

Bytes of one step: every operator the step dispatches (forward, backward, the optimizer) reads
its input tensors and writes its outputs, weights included, each time it runs; views move
nothing. That is the traffic of an unfused execution with no reuse between operators, the
usual per-operator roofline count. The machine's memory bandwidth is measured in the same run
(a copy of 512 MiB, read + write). The step's limit is t* = max(FLOPs / peak, bytes /
bandwidth), and the fraction of the binding limit is t* / t(measured).

    python benchmarks/bench_flops.py --out benchmarks/results/flops_cpu.json
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.bench_render import CASES
from fvtrust.empirical.nets.registry import load_model
from fvtrust.empirical.render.loop import render
from fvtrust.empirical.render.objectives import channel
from fvtrust.empirical.render.transform import TransformConfig
from fvtrust.io import atomic_write_json


def matmul_flops_per_second(dtype: torch.dtype, device: str, n: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def _render(model, layer: str, units: list[int], size: int, steps: int, precision: str) -> None:
    render(model, channel(layer, units), steps=steps, size=size, transforms=TransformConfig(output=size),
           precision=precision)


def conv_flops_per_second(dtype: torch.dtype, device: str, repeats: int = 5) -> float:
    """A dense 3x3 convolution, 256 -> 256 channels at 28 px, batch 16, channels-last."""
    x = torch.randn(16, 256, 28, 28, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(256, 256, 3, 3, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.functional.conv2d
    conv(x, w, padding=1)
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        conv(x, w, padding=1)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * 16 * 256 * 28 * 28 * 256 * 9 / best


def bandwidth_bytes_per_second(device: str, mib: int = 512, repeats: int = 5) -> float:
    """A copy of `mib` MiB: it reads and writes every byte once."""
    a = torch.empty(mib * 2**20 // 4, device=device, dtype=torch.float32).uniform_()
    b = torch.empty_like(a)
    b.copy_(a)  # warm-up: pages touched
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        b.copy_(a)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * a.numel() * a.element_size() / best


class ByteCounter(TorchDispatchMode):
    """Bytes every dispatched operator reads (its tensor inputs) and writes (its outputs); an
    output that shares storage with an input (a view) moves nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = [t for t in tree_flatten((args, kwargs or {}))[0] if isinstance(t, torch.Tensor)]
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        storages = {t.untyped_storage().data_ptr() for t in inputs}
        if outputs and all(t.untyped_storage().data_ptr() in storages for t in outputs) \
                and not func._schema.is_mutable:
            return out  # a view: no traffic
        self.bytes += sum(t.numel() * t.element_size() for t in [*inputs, *outputs])
        return out


def step_bytes(model, layer: str, units: list[int], size: int, precision: str) -> int:
    """Bytes of one step: a 2-step render less a 1-step one (the set-up cancels)."""
    counts = []
    for steps in (1, 2):
        with ByteCounter() as counter:
            _render(model, layer, units, size, steps, precision)
        counts.append(counter.bytes)
    return counts[1] - counts[0]


def step_flops(model, layer: str, units: list[int], size: int, precision: str) -> int:
    """FLOPs of one step: a 2-step render less a 1-step one (the set-up, which folds
    BatchNorm and checks the copy with a forward pass, cancels)."""
    counts = []
    for steps in (1, 2):
        with FlopCounterMode(display=False) as counter:
            _render(model, layer, units, size, steps, precision)
        counts.append(counter.get_total_flops())
    return counts[1] - counts[0]


def lucent_step_flops(model, layer: str, units: list[int], size: int) -> int | None:
    """FLOPs of one step of batched lucent on the same network, size and units (a 2-step
    render less a 1-step one), or None without torch-lucent (the bench extra).

    lucent's step over fvtrust's is the speed-up that equal efficiency gives: lucent runs the
    whole network forward, fvtrust stops at the objective's layer."""
    try:
        import lucent  # noqa: F401  (run_lucent imports it only when called)
    except ImportError:
        return None
    from benchmarks.bench_render import run_lucent
    # lucent leaves hooks on every module it rendered through: a copy of its own.
    copy_ = copy.deepcopy(model)
    counts = []
    for steps in (1, 2):
        with FlopCounterMode(display=False) as counter:
            run_lucent(copy_, layer, units, size, steps, batched=True)
        counts.append(counter.get_total_flops())
    return counts[1] - counts[0]


def step_seconds(model, layer: str, units: list[int], size: int, precision: str, steps: int) -> float:
    """Seconds per step: a long render less a short one (set-up cancels)."""
    times = []
    for n in (steps // 4, steps):
        t0 = time.perf_counter()
        _render(model, layer, units, size, n, precision)
        times.append(time.perf_counter() - t0)
    return (times[1] - times[0]) / (steps - steps // 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--units", type=int, default=8)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--models", default=",".join(CASES))
    ap.add_argument("--out", default="benchmarks/results/flops_cpu.json")
    args = ap.parse_args()
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    measured = {k: {"matmul": matmul_flops_per_second(d, args.device),
                    "conv3x3": conv_flops_per_second(d, args.device)} for k, d in dtypes.items()}
    # The machine's measured throughput: the better of a large matmul and a dense convolution.
    peak = {k: max(v.values()) for k, v in measured.items()}
    bandwidth = bandwidth_bytes_per_second(args.device)
    record = {"device": args.device, "threads": torch.get_num_threads(),
              "measured_gflops": {k: {op: f / 1e9 for op, f in v.items()} for k, v in measured.items()},
              "measured_bandwidth_gb_per_s": bandwidth / 1e9, "cases": {}}
    print(f"measured: {peak['float32'] / 1e9:.0f} GFLOP/s float32, {bandwidth / 1e9:.1f} GB/s copy")
    units = list(range(args.units))
    for name in args.models.split(","):
        layer, weights, size = CASES[name]
        model = load_model(name, weights=weights, device=args.device)
        case = {"layer": layer, "size": size}
        for precision in ("float32", "bfloat16"):
            flops = step_flops(model, layer, units, size, precision)
            moved = step_bytes(model, layer, units, size, precision)
            _render(model, layer, units, size, 2, precision)  # warm-up
            seconds = step_seconds(model, layer, units, size, precision, args.steps)
            achieved = flops / seconds
            t_flops, t_bytes = flops / peak[precision], moved / bandwidth
            case[precision] = {"gflop_per_step": flops / 1e9, "seconds_per_step": seconds,
                               "achieved_gflops": achieved / 1e9,
                               "fraction_of_measured_peak": achieved / peak[precision],
                               "gb_per_step": moved / 1e9, "arithmetic_intensity": flops / moved,
                               "fraction_of_bandwidth": t_bytes / seconds,
                               "binding_limit": "memory" if t_bytes > t_flops else "compute",
                               "fraction_of_binding_limit": max(t_flops, t_bytes) / seconds}
            print(f"{name} {precision}: {flops / 1e9:.2f} GFLOP/step, {moved / 1e9:.2f} GB/step, "
                  f"{seconds * 1e3:.0f} ms/step; {100 * t_flops / seconds:.0f} % of peak FLOPs, "
                  f"{100 * t_bytes / seconds:.0f} % of bandwidth: "
                  f"{case[precision]['binding_limit']}-bound at "
                  f"{100 * case[precision]['fraction_of_binding_limit']:.0f} % of its limit")
        lucent = lucent_step_flops(model, layer, units, size)
        if lucent is not None:
            ours = case["float32"]["gflop_per_step"] * 1e9
            # A float32 speed-up of s over lucent needs fvtrust to run its FLOPs
            # s / (lucent / ours) times as fast as lucent runs its own.
            case["lucent_float32"] = {"gflop_per_step": lucent / 1e9,
                                      "flop_ratio_lucent_over_fvtrust": lucent / ours,
                                      "efficiency_needed_for_2x": 2 * ours / lucent}
            print(f"{name}: lucent {lucent / 1e9:.2f} GFLOP/step, {lucent / ours:.2f}x fvtrust's; "
                  f"2x needs {2 * ours / lucent:.2f}x lucent's FLOP rate")
        record["cases"][name] = case
    atomic_write_json(args.out, record)
    print(json.dumps(record["measured_gflops"]))


if __name__ == "__main__":
    main()
