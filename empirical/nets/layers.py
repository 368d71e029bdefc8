"""Layers of a :class:`~empirical.nets.registry.Network`: names, hooks, activations and
spatial-mean responses, depths, input checks, batching and unit selections."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from fvtrust.empirical.nets.registry import LOGITS, Network


@torch.no_grad()
def reused_modules(model: Network) -> frozenset[str]:
    """Names of modules that run more than once in one forward pass (EfficientNet's `_swish`
    serves the stem and the head): such a name does not mean one place in the network.
    Found by one probe forward, cached on the model."""
    cached = getattr(model, "_reused_modules", None)
    if cached is not None:
        return cached
    calls: dict[str, int] = {}
    handles = []
    for name, module in model.net.named_modules():
        if name:
            def hook(_m: nn.Module, _i: object, _o: object, name: str = name) -> None:
                calls[name] = calls.get(name, 0) + 1
            handles.append(module.register_forward_hook(hook))
    try:
        model(torch.full((1, 3, 64, 64), 0.5, device=model.device))
    finally:
        for h in handles:
            h.remove()
    reused = frozenset(n for n, c in calls.items() if c > 1)
    object.__setattr__(model, "_reused_modules", reused)
    return reused


def layer_names(model: Network) -> list[str]:
    """Dotted names of the network's layers (modules), in registration order, plus 'logits';
    modules that run more than once are left out (see :func:`reused_modules`)."""
    reused = reused_modules(model)
    return [n for n, m in model.net.named_modules() if _is_layer(n, m) and n not in reused] + [LOGITS]


def main_layers(model: Network) -> list[str]:
    """The blocks a user usually means: the network's children and the members of its
    top-level block lists (``_blocks.3``, ``layer4.1``, ``inception4a``), plus 'logits'."""
    names = []
    for name, child in model.net.named_children():
        if isinstance(child, nn.ModuleList | nn.Sequential):
            names.extend(f"{name}.{sub}" for sub, _ in child.named_children())
        elif _is_layer(name, child):
            names.append(name)
    reused = reused_modules(model)
    return [*(n for n in names if n not in reused), LOGITS]


def get_layer(model: Network, name: str) -> nn.Module:
    """The module called `name`; an unknown name raises a ValueError listing close matches."""
    modules = dict(model.net.named_modules())
    if name in modules and name:
        if name in reused_modules(model):
            raise ValueError(f"layer {name!r} runs more than once in one forward pass of "
                             f"{model.name} (one module reused at several depths), so its name "
                             f"does not mean one place in the network; hook the layer before or "
                             f"after it (fvtrust layers --model {model.name} lists them)")
        return modules[name]
    close = difflib.get_close_matches(name, layer_names(model), n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown layer {name!r} in {model.name}{hint} "
                     f"(fvtrust layers --model {model.name} lists them)")


class _StopForward(Exception):
    """Raised by a hook once every requested layer is captured: the rest is not needed."""


@contextmanager
def capture(model: Network, layers: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of `layers` during forward passes inside the block.

    ``LOGITS`` is filled by :func:`forward_activations`, not by a hook.
    """
    store: dict[str, torch.Tensor] = {}
    handles = []
    for name in dict.fromkeys(layers):
        if name == LOGITS:
            continue
        module = get_layer(model, name)

        def hook(_m: nn.Module, _i: object, out: torch.Tensor, name: str = name) -> None:
            store[name] = out
        handles.append(module.register_forward_hook(hook))
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


def forward_activations(model: Network, images: torch.Tensor,
                        layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Activations of `layers` for `images` in [0, 1]; stops the forward pass early once
    every hooked layer has fired unless the logits are requested."""
    check_images(images)
    wanted = [name for name in dict.fromkeys(layers) if name != LOGITS]
    need_logits = LOGITS in layers
    with capture(model, wanted) as store:
        if need_logits or not wanted:
            logits = model(images)
        else:
            def stop(_m: nn.Module, _i: object, _o: torch.Tensor) -> None:
                if all(n in store for n in wanted):
                    raise _StopForward
            handles = [get_layer(model, n).register_forward_hook(stop) for n in wanted]
            try:
                model(images)
            except _StopForward:
                pass
            finally:
                for h in handles:
                    h.remove()
        missing = [n for n in wanted if n not in store]
        if missing:
            raise ValueError(f"layers {missing} produced no output in a forward pass")
        out = dict(store)
    if need_logits:
        out[LOGITS] = logits
    return out


@torch.no_grad()
def relative_depths(model: Network, layers: Sequence[str], size: int = 64) -> dict[str, float]:
    """Depth in [0, 1] of each of `layers`: its rank in the execution order of the network's
    main layers (which exclude modules that run more than once: they have no single depth),
    divided by the last rank. 'logits' has depth 1."""
    names = [n for n in main_layers(model) if n != LOGITS]
    order: list[str] = []
    handles = []
    for name in names:
        def hook(_m: nn.Module, _i: object, _o: object, name: str = name) -> None:
            order.append(name)
        handles.append(get_layer(model, name).register_forward_hook(hook))
    try:
        model(torch.full((1, 3, size, size), 0.5, device=model.device))
    finally:
        for h in handles:
            h.remove()
    depth = {n: i / max(1, len(order) - 1) for i, n in enumerate(order)}
    depth[LOGITS] = 1.0
    missing = [n for n in layers if n not in depth]
    if missing:
        raise ValueError(f"layers {missing} are not main layers that run once in {model.name}; "
                         f"depth is defined for: {', '.join(order)}")
    return {n: depth[n] for n in layers}


def check_images(images: torch.Tensor, name: str = "images") -> None:
    """Validate a batch of RGB images (B, 3, H, W): floating point, finite, in [0, 1]."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must have shape (B, 3, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be floating point in [0, 1], got dtype {images.dtype} "
                         f"(convert uint8 images with images.float() / 255)")
    # One reduction (one device sync per call): NaN and inf propagate into the extremes.
    lo, hi = (float(v) for v in torch.aminmax(images.detach()))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} contain NaN or infinite values")
    # Transforms resample with a little overshoot; anything beyond that is another scale.
    if lo < -0.01 or hi > 1.01:
        raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}] "
                         f"(0-255 images: divide by 255)")


def check_eval(model: nn.Module) -> None:
    """Feature visualization assumes fixed BatchNorm statistics and no dropout."""
    training = [n for n, m in model.named_modules() if m.training]
    if training:
        raise ValueError(f"model is in training mode (e.g. {training[0] or 'the root'!r}); "
                         f"call model.eval() first")


def layer_channels(model: Network, names: Sequence[str] | None = None,
                   size: int | None = None) -> dict[str, tuple[int, ...]]:
    """Output shape (without batch) of each layer, from one small forward pass; a requested
    layer without a tensor output (a container such as a ModuleList) is refused by name."""
    requested = names is not None
    names = [n for n in (names or layer_names(model)) if n != LOGITS]
    size = size or model.input_size
    probe = torch.full((1, 3, size, size), 0.5, device=model.device)
    shapes: dict[str, tuple[int, ...]] = {}
    with torch.no_grad(), capture(model, names) as store:
        logits = model(probe)
        for n in names:
            out = store.get(n)
            if isinstance(out, torch.Tensor):
                shapes[n] = tuple(out.shape[1:])
            elif requested:
                members = [m for m in layer_names(model) if m.startswith(f"{n}.")][:3]
                hint = f", e.g. {', '.join(members)}" if members else ""
                raise ValueError(f"layer {n!r} has no output tensor of its own (a container of "
                                 f"layers?): pick one of its members{hint} (fvtrust layers "
                                 f"--model {model.name} lists them)")
    shapes[LOGITS] = tuple(logits.shape[1:])
    return shapes


def _is_layer(name: str, module: nn.Module) -> bool:
    # Padding helpers and activations inside blocks are not layers a user asks for.
    return bool(name) and not name.endswith("static_padding") and not isinstance(
        module, nn.Identity | nn.Dropout)


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Logits of `model` for `images` in [0, 1], batched, on the model's device."""
    device = next(model.parameters()).device
    outs = [model(images[i:i + batch_size].to(device)).cpu()
            for i in range(0, len(images), batch_size)]
    return torch.cat(outs)


def spatial_mean(activations: torch.Tensor) -> torch.Tensor:
    """(B, C, …) → (B, C): each channel's mean over its positions (a unit's response); an
    activation without positions (B, C) is returned as it is."""
    return activations.flatten(2).mean(2) if activations.ndim > 2 else activations


def batches(images: torch.Tensor, batch_size: int) -> Iterable[torch.Tensor]:
    for i in range(0, len(images), batch_size):
        yield images[i:i + batch_size]


@torch.no_grad()
def layer_responses(model: Network, layer: str, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """(N, C): spatial-mean activation of every channel of `layer` for each image."""
    out = []
    for start in range(0, len(images), batch_size):
        a = forward_activations(model, images[start:start + batch_size].to(model.device), [layer])[layer]
        out.append(spatial_mean(a).float().cpu())
    return torch.cat(out)


def parse_units(text: str | list[int], what: str = "--units") -> list[int] | None:
    """``"all"`` → None (every unit of the layer); ``"0-7,9"`` → [0, …, 7, 9]."""
    if isinstance(text, list):
        units = [int(u) for u in text]
    elif text.strip() == "all":
        return None
    else:
        units = []
        for part in text.split(","):
            part = part.strip()
            try:
                if "-" in part:
                    lo, hi = (int(p) for p in part.split("-", 1))
                    if hi < lo:
                        raise ValueError
                    units.extend(range(lo, hi + 1))
                elif part:
                    units.append(int(part))
            except ValueError:
                raise ValueError(f"{what}: {part!r} in {text!r} is not a unit index or an ascending "
                                 f"range (syntax: all, or 0,1,2 or 0-7 or 0-3,9)") from None
    if not units:
        raise ValueError(f"{what}: no units in {text!r}")
    if len(set(units)) != len(units):
        raise ValueError(f"{what}: {text!r} names some units twice")
    if min(units) < 0:
        raise ValueError(f"{what}: unit indices are >= 0, got {min(units)}")
    return units
