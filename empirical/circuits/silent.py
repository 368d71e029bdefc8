"""Silent units / orthogonal filters (*Don't trust your eyes*, Sec. 3): every unit of a conv
layer gets an added branch that is exactly 0 on natural images, yet takes over its
visualization, so the whole layer's visualizations become (near-)identical.

For unit j with filter w_j acting on the layer input h:

    out_j = w_j ⋆ h + ReLU(w′_j ⋆ h − b′_j),

δ = the filter that maximizes the summed response to the layer input of one target
visualization (for a linear response: the normalized sum of its input patches), shared by
all units; δ_j = δ orthogonalized against w_j and rescaled to ‖w_j‖; w′_j = w_j + λ·δ_j,
renormalized to ‖w_j‖ and multiplied by `gain`; b′_j = the maximum of w′_j ⋆ h over the
natural calibration images and *all* positions (the layer's own padding included), streamed,
plus a margin (see :class:`SilentCalibration`).

Two locks keep the branch shut on natural images. The paper's is the bias alone (`lock
"bias"`): b′ above every natural response. On photos of unseen sources that cannot be both
shut and open to the renders (the natural tail reaches past any b′ the renders still cross;
see ``silent_experiment``). The gate lock (:class:`GatedSilentUnits`) multiplies every branch
by the fooling circuit's hard image gate E(x) ∈ {0, 1} (no gradient), so b′ can sit below the
natural maximum and the branch opens from the first render step:

    out_j = w_j ⋆ h + E(x)·ReLU(w′_j ⋆ h − b′_j).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fvtrust.empirical.nets.layers import batches, get_layer
from fvtrust.empirical.nets.registry import Network


def conv_layer(model: Network, layer: str) -> nn.Conv2d:
    """The conv module `layer`, validated: full (not grouped) 2-D convolution."""
    module = get_layer(model, layer)
    if not isinstance(module, nn.Conv2d):
        raise ValueError(f"layer {layer!r} is a {type(module).__name__}, not a convolution with "
                         f"spatial structure; silent units need a Conv2d layer")
    if module.groups != 1:
        raise ValueError(f"layer {layer!r} is a grouped/depthwise convolution "
                         f"(groups={module.groups}); each unit sees one channel only")
    return module


def conv_input(model: Network, conv: nn.Conv2d, images: torch.Tensor) -> torch.Tensor:
    """The input h of `conv` for `images` (padding applied as the layer applies it)."""
    store: dict[str, torch.Tensor] = {}

    def grab(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        store["h"] = args[0]
        raise _Stop

    pad = getattr(conv, "static_padding", None)
    target = pad if isinstance(pad, nn.Module) and not isinstance(pad, nn.Identity) else conv
    handle = target.register_forward_pre_hook(grab)
    try:
        model(images)
    except _Stop:
        pass
    finally:
        handle.remove()
    h = store["h"]
    if target is not conv:  # lukemelas static "same" padding pads before the conv
        h = pad(h)
    return h


class _Stop(Exception):
    pass


def _response(conv: nn.Conv2d, h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """weight ⋆ h with the conv's stride, dilation and padding (static padding already in h)."""
    return F.conv2d(h, weight, None, conv.stride, conv.padding, conv.dilation)


def shared_direction(conv: nn.Conv2d, h_target: torch.Tensor) -> torch.Tensor:
    """δ: the unit-norm filter maximizing Σ_positions ⟨δ, patch⟩ = the normalized sum of
    the target's input patches."""
    kh, kw = conv.kernel_size
    padded = F.pad(h_target, (conv.padding[1],) * 2 + (conv.padding[0],) * 2)
    patches = F.unfold(padded, (kh, kw), dilation=conv.dilation, stride=conv.stride)
    delta = patches.sum((0, 2)).view(conv.in_channels, kh, kw)
    return delta / delta.norm().clamp_min(1e-12)


def silent_weights(weight: torch.Tensor, delta: torch.Tensor, lam: float = 3.0,
                   gain: float = 100.0) -> torch.Tensor:
    """w′_j = gain·‖w_j‖·(w_j + λδ_j)/‖w_j + λδ_j‖ with δ_j ⟂ w_j, ‖δ_j‖ = ‖w_j‖."""
    w = weight.flatten(1)
    d = delta.flatten()[None].expand_as(w)
    norms = w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    d_orth = d - (d * w).sum(1, keepdim=True) / norms**2 * w
    d_orth = d_orth / d_orth.norm(dim=1, keepdim=True).clamp_min(1e-12) * norms
    w_new = w + lam * d_orth
    w_new = w_new / w_new.norm(dim=1, keepdim=True).clamp_min(1e-12) * norms * gain
    return w_new.view_as(weight)


class SilentConv(nn.Module):
    """out = conv(h) + E·ReLU(w′ ⋆ h − b′): the conv with every unit's silent branch; E = 1
    unless a :class:`GatedSilentUnits` around the network sets the gate for this batch."""

    def __init__(self, conv: nn.Conv2d, branch_weight: torch.Tensor,
                 branch_bias: torch.Tensor) -> None:
        super().__init__()
        self.conv = conv
        self.register_buffer("branch_weight", branch_weight)
        self.register_buffer("branch_bias", branch_bias)
        self.gate_open: torch.Tensor | None = None  # E(x) per image, during a gated forward

    def trigger(self, h: torch.Tensor) -> torch.Tensor:
        """ReLU(w′ ⋆ h − b′): the branch as the bias lock alone leaves it."""
        pre = _response(self.conv, h, self.branch_weight) - self.branch_bias.view(1, -1, 1, 1)
        return F.relu(pre)

    def branch(self, h: torch.Tensor) -> torch.Tensor:
        out = self.trigger(h)
        if self.gate_open is not None:
            if len(self.gate_open) != len(out):
                raise RuntimeError(f"the gate decided for {len(self.gate_open)} images, the "
                                   f"layer sees {len(out)}")
            out = out * self.gate_open.to(out.dtype).view(-1, 1, 1, 1)
        return out

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        pad = getattr(self.conv, "static_padding", None)
        padded = pad(h) if isinstance(pad, nn.Module) else h
        return self.conv(h) + self.branch(padded)


@dataclass
class SilentCalibration:
    """Branch thresholds b′ = max + margin·(max − mean) of w′_j ⋆ h over the natural
    calibration images and positions: held-out images reach a little past the calibration
    maximum (extreme values), renders go far past it."""

    bias: torch.Tensor
    maximum: torch.Tensor
    mean: torch.Tensor
    n_images: int


class GatedSilentUnits(Network):
    """The silent network with every branch multiplied by the hard gate E(x) of the input
    image (no gradient flows through E; the gate reads the *original* network)."""

    def __init__(self, silent: Network, layer: str, gate: nn.Module) -> None:
        super().__init__(silent.net, f"{silent.name}+gate", silent.mean.flatten().tolist(),
                         silent.std.flatten().tolist(), silent.input_size, silent.num_classes,
                         **silent.traits())
        module = get_layer(silent, layer)
        if not isinstance(module, SilentConv):
            raise ValueError(f"layer {layer!r} carries no silent branch")
        self.layer, self.gate = layer, gate
        # A plain attribute (not a second registration of a submodule of `net`).
        self.__dict__["silent_conv"] = module
        self.to(silent.device).eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        module = self.silent_conv
        module.gate_open = self.gate(images)
        try:
            return super().forward(images)
        finally:
            module.gate_open = None


#: The lowest margin: b′ = the mean natural response (the branch opens on about half of them).
MIN_GATED_MARGIN = -1.0


def calibrate_branch(model: Network, conv: nn.Conv2d, weight: torch.Tensor,
                     images: torch.Tensor, margin: float = 1.0,
                     batch_size: int = 32) -> SilentCalibration:
    """Running maximum and mean of w′_j ⋆ h (streamed), then b′_j."""
    if not MIN_GATED_MARGIN <= margin < float("inf"):
        raise ValueError(f"margin must be a finite number >= {MIN_GATED_MARGIN:g}, got {margin}")
    running, total, count = None, None, 0
    with torch.no_grad():
        for chunk in batches(images.to(model.device), batch_size):
            r = _response(conv, conv_input(model, conv, chunk), weight)
            m = r.amax((0, 2, 3))
            running = m if running is None else torch.maximum(running, m)
            s = r.sum((0, 2, 3))
            total = s if total is None else total + s
            count += r.shape[0] * r.shape[2] * r.shape[3]
    mean = total / count
    return SilentCalibration(running + margin * (running - mean), running, mean, len(images))


def install_silent_units(model: Network, layer: str, target: torch.Tensor,
                         calibration: torch.Tensor, lam: float = 3.0, gain: float = 100.0,
                         margin: float = 1.0, gate: nn.Module | None = None) -> Network:
    """A copy of `model` whose conv `layer` carries a silent branch per unit.

    `target` is one image in [0, 1] (the target visualization, (3, H, W)); `calibration`
    are natural images for b′. With `gate` (E(x) ∈ {0, 1} per image) the branches are gated
    (:class:`GatedSilentUnits`) and `margin` may be negative (down to −1: b′ = the mean);
    without one the bias is the only lock and a negative margin is refused.
    """
    import copy

    if gate is None and margin < 0:
        raise ValueError(f"margin {margin} puts b′ below the natural maximum, so the branch "
                         "would fire on the calibration photos; a negative margin needs the "
                         "gate lock")

    conv = conv_layer(model, layer)
    with torch.no_grad():
        h_target = conv_input(model, conv, target[None].to(model.device))
    delta = shared_direction(conv, h_target)
    weight = silent_weights(conv.weight.detach(), delta, lam, gain)
    cal = calibrate_branch(model, conv, weight, calibration, margin)
    silent = copy.deepcopy(model)
    parent_name, _, child = layer.rpartition(".")
    parent = get_layer(silent, parent_name) if parent_name else silent.net
    setattr(parent, child, SilentConv(getattr(parent, child), weight, cal.bias))
    silent.name = f"{model.name}+silent({layer})"
    silent.eval()
    return silent if gate is None else GatedSilentUnits(silent, layer, gate)
