"""Natural behaviour of a manipulated network, measured on images it was never calibrated on.

:func:`natural_behaviour` runs the original and the manipulated network on the same natural
images and counts what changed: top-1 and (ordered) top-5 predictions, the largest logit
change (relative to a known offset: a fooling circuit outputs F + c on natural input), and how
often the gate fired. (Verification images that share a file with the calibration data are
refused in :mod:`empirical.data.folders`.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from fvtrust.empirical.circuits.gates import Gate
from fvtrust.empirical.data.splits import source_of
from fvtrust.empirical.nets.layers import batches

Logits = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class NaturalBehaviour:
    """What the manipulation changed on natural images, with the counts behind each rate."""

    data: str
    n_images: int
    n_sources: int
    top1_identical: float
    n_top1_changed: int
    top5_identical: float
    n_top5_changed: int
    max_abs_logit_change: float
    gate_false_alarms: float | None
    n_gate_flagged: int | None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@torch.no_grad()
def natural_behaviour(original: Logits, manipulated: Logits, images: torch.Tensor,
                      sources: Sequence[str], data: str, gate: Gate | None = None,
                      offset: float = 0.0, device: torch.device | str = "cpu",
                      batch_size: int = 32) -> NaturalBehaviour:
    """Compare `manipulated(x)` with `original(x) + offset` on every image."""
    if len(images) == 0:
        raise ValueError("no natural images to verify on")
    if len(images) != len(sources):
        raise ValueError(f"{len(images)} images but {len(sources)} source ids")
    top1_changed = top5_changed = flagged = 0
    change = 0.0
    for chunk in batches(images, batch_size):
        x = chunk.to(device)
        f, a = original(x), manipulated(x)
        top1_changed += int((f.argmax(1) != a.argmax(1)).sum())
        k = min(5, f.shape[1])
        top5_changed += int((f.topk(k, 1).indices != a.topk(k, 1).indices).any(1).sum())
        change = max(change, float((a - (f + offset)).abs().max()))
        if gate is not None:
            flagged += int(gate(x).sum())
    n = len(images)
    return NaturalBehaviour(
        data=data, n_images=n, n_sources=len({source_of(s) for s in sources}),
        top1_identical=1 - top1_changed / n, n_top1_changed=top1_changed,
        top5_identical=1 - top5_changed / n, n_top5_changed=top5_changed,
        max_abs_logit_change=change,
        gate_false_alarms=None if gate is None else flagged / n,
        n_gate_flagged=None if gate is None else flagged)




