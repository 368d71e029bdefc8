"""Layers of a :class:`~empirical.nets.registry.Network`: names, hooks, activations and
spatial-mean responses, depths, input checks, batching and unit selections.

A layer is addressed as ``module[#element][@view]``. Every captured activation is put in
one form, (B, units, *positions), so a unit means the same to every consumer:

* a convolution's (B, C, H, W) and a vector (B, C) are kept as they are;
* ``#0`` / ``#key`` picks one element of a module that returns a tuple or a dict;
* a transformer's tokens (B, T, D) (a network with an attention module, or ``tokens = True``
  on its factory; other 3-d outputs are (B, C, L)): unit d is feature d over the patch tokens, laid out on
  their √P × √P grid (the default, ``@patches``), at the class token (``@cls``) or at one
  token (``@token7``); the tokens before the patches (a class token) are the network's
  ``prefix_tokens``, inferred from T when unset (T − 1 a square: one class token);
* ``@heads`` on an ``nn.MultiheadAttention``: unit h is head h's output z_h = softmax(q_h
  k_hᵀ/√d_h) v_h, as its root mean square over d_h at each patch token.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
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
            continue
        # A block list one level down (a ViT's encoder.layers) is what a user means.
        lists = [(sub, m) for sub, m in child.named_children()
                 if isinstance(m, nn.ModuleList | nn.Sequential) and len(m) >= 2]
        if len(lists) == 1:
            sub, blocks = lists[0]
            names.extend(f"{name}.{sub}.{b}" for b, _ in blocks.named_children())
        elif _is_layer(name, child):
            names.append(name)
    reused = reused_modules(model)
    return [*(n for n in names if n not in reused), LOGITS]


@dataclass(frozen=True)
class LayerAddress:
    """``module#element@view`` taken apart (see the module docstring)."""

    module: str
    element: str | None = None
    view: str | None = None

    @classmethod
    def parse(cls, name: str) -> LayerAddress:
        if not isinstance(name, str):
            raise ValueError(f"a layer name must be a string, got {name!r}")
        match = re.fullmatch(r"([^#@]*)(?:#([^#@]+))?(?:@([^#@]+))?", name)
        if not match or not match.group(1):
            raise ValueError(f"layer {name!r} is not module[#element][@view] (e.g. "
                             f"encoder.layers.encoder_layer_3@cls)")
        module, element, view = match.groups()
        if view is not None and not re.fullmatch(r"patches|cls|heads|token\d+", view):
            raise ValueError(f"layer {name!r}: unknown view @{view} (use @patches, @cls, "
                             f"@token<N> or @heads)")
        return cls(module, element, view)


def module_name(layer: str) -> str:
    """The module part of a layer address: ``"blocks.3@cls"`` → ``"blocks.3"``."""
    return layer if layer == LOGITS else LayerAddress.parse(layer).module


def has_tokens(model: Network) -> bool:
    """Whether the network's 3-d activations are tokens (B, T, D) rather than (B, C, L):
    its ``tokens`` attribute, else whether it has an attention module (cached)."""
    declared = getattr(model, "tokens", None)
    if declared is None:
        declared = any(isinstance(m, nn.MultiheadAttention) or "attention" in type(m).__name__.lower()
                       for m in model.net.modules())
        object.__setattr__(model, "tokens", declared)
    return bool(declared)


def count_prefix_tokens(model: Network, n_tokens: int) -> int:
    """Tokens before the patch tokens: the network's ``prefix_tokens``, else 1 when T − 1 is
    a square and T is not (a class token before √P × √P patches), else 0."""
    if getattr(model, "prefix_tokens", None) is not None:
        return int(model.prefix_tokens)
    square = math.isqrt(n_tokens) ** 2 == n_tokens
    return 1 if not square and math.isqrt(n_tokens - 1) ** 2 == n_tokens - 1 else 0


def _tokens_view(x: torch.Tensor, view: str | None, prefix: int, name: str) -> torch.Tensor:
    """(B, U, T) per-token unit values → the view's (B, U[, s, s | P])."""
    t = x.shape[2]
    if view in (None, "patches", "heads"):
        patches = x[:, :, prefix:]
        side = math.isqrt(patches.shape[2])
        if side * side == patches.shape[2]:
            return patches.unflatten(2, (side, side))
        return patches
    if view == "cls":
        if prefix < 1:
            raise ValueError(f"layer {name!r}: this network has no class token before its {t} "
                             f"patch tokens; use @patches or @token<N>")
        return x[:, :, 0]
    index = int(view[len("token"):])
    if index >= t:
        raise ValueError(f"layer {name!r}: token {index} is out of range for {t} tokens")
    return x[:, :, index]


def attention_heads(mha: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor,
                    value: torch.Tensor) -> torch.Tensor:
    """(B, H, T, d_h): each head's output z_h = softmax(q_h k_hᵀ / √d_h) v_h, before the
    output projection (concatenated and projected, they are the module's output)."""
    if mha.bias_k is not None or mha.add_zero_attn:
        raise ValueError("@heads supports nn.MultiheadAttention without bias_k/add_zero_attn")
    if not mha.batch_first:
        query, key, value = (t.transpose(0, 1) for t in (query, key, value))
    e, h = mha.embed_dim, mha.num_heads
    if mha._qkv_same_embed_dim:
        wq, wk, wv = mha.in_proj_weight.chunk(3)
    else:
        wq, wk, wv = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
    bq, bk, bv = mha.in_proj_bias.chunk(3) if mha.in_proj_bias is not None else (None,) * 3

    def heads(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        return F.linear(x, w, b).unflatten(-1, (h, e // h)).transpose(1, 2)
    q, k, v = heads(query, wq, bq), heads(key, wk, bk), heads(value, wv, bv)
    return F.scaled_dot_product_attention(q, k, v)


def _units_form(model: Network, address: LayerAddress, name: str, out: object,
                inputs: tuple, kwargs: dict, module: nn.Module) -> torch.Tensor:
    """A module's output in the one form (B, units, *positions)."""
    if address.view == "heads":
        if not isinstance(module, nn.MultiheadAttention):
            raise ValueError(f"layer {name!r}: @heads needs an nn.MultiheadAttention, "
                             f"{address.module!r} is a {type(module).__name__}")
        if kwargs.get("attn_mask") is not None or kwargs.get("key_padding_mask") is not None:
            raise ValueError(f"layer {name!r}: @heads does not support attention masks")
        args = list(inputs) + [kwargs.get(k) for k in ("query", "key", "value")[len(inputs):]]
        z = attention_heads(module, *args[:3])
        rms = z.square().mean(-1).clamp_min(1e-12).sqrt()  # (B, H, T)
        return _tokens_view(rms, "heads", count_prefix_tokens(model, rms.shape[2]), name)
    if isinstance(out, tuple | list | dict):
        if address.element is None:
            keys = list(out) if isinstance(out, dict) else list(range(len(out)))
            raise ValueError(f"layer {name!r} returns a {type(out).__name__} of {len(keys)} "
                             f"(keys {keys[:6]}); choose one with {address.module}#"
                             f"{keys[0] if keys else 0}")
        try:
            out = out[address.element] if isinstance(out, dict) else out[int(address.element)]
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"layer {name!r}: its output has no element "
                             f"{address.element!r}") from None
    elif address.element is not None:
        raise ValueError(f"layer {name!r}: #{address.element} picks an element of a tuple or "
                         f"dict, but {address.module!r} returns a {type(out).__name__}")
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"layer {name!r} returns a {type(out).__name__}, not a tensor")
    if out.ndim == 3 and has_tokens(model):  # tokens (B, T, D) → (B, D, T)
        return _tokens_view(out.transpose(1, 2), address.view,
                            count_prefix_tokens(model, out.shape[1]), name)
    if address.view is not None:
        raise ValueError(f"layer {name!r}: @{address.view} applies to a transformer's (B, T, "
                         f"D) tokens; {address.module!r} has shape {tuple(out.shape)}")
    return out


def get_layer(model: Network, name: str) -> nn.Module:
    """The module of layer `name` (an address ``module#element@view`` names its module); an
    unknown name raises a ValueError listing close matches."""
    name = module_name(name)
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
    addresses = {name: LayerAddress.parse(name) for name in layers if name != LOGITS}

    def record(name: str, module: nn.Module, args: tuple, kwargs: dict, out: object) -> None:
        store[name] = _units_form(model, addresses[name], name, out, args, kwargs, module)
    with _hooked(model, addresses, record):
        yield store


@contextmanager
def _hooked(model: Network, names: Iterable[str],
            record: Callable[[str, nn.Module, tuple, dict, object], None]) -> Iterator[None]:
    """Inside the block, each forward of the module of layer `name` calls
    record(name, module, args, kwargs, output)."""
    handles = []
    for name in dict.fromkeys(names):
        def hook(m: nn.Module, args: tuple, kwargs: dict, out: object, name: str = name) -> None:
            record(name, m, args, kwargs, out)
        handles.append(get_layer(model, name).register_forward_hook(hook, with_kwargs=True))
    try:
        yield
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
            handles = [get_layer(model, n).register_forward_hook(stop)
                       for n in dict.fromkeys(module_name(n) for n in wanted)]
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
    missing = [n for n in layers if module_name(n) not in depth]
    if missing:
        raise ValueError(f"layers {missing} are not main layers that run once in {model.name}; "
                         f"depth is defined for: {', '.join(order)}")
    return {n: depth[module_name(n)] for n in layers}


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


@contextmanager
def _raw_outputs(model: Network, modules: Iterable[str]) -> Iterator[dict[str, tuple]]:
    """(module, args, kwargs, output) of each named module's last call inside the block."""
    store: dict[str, tuple] = {}

    def record(name: str, module: nn.Module, args: tuple, kwargs: dict, out: object) -> None:
        store[name] = (module, args, kwargs, out)
    with _hooked(model, modules, record):
        yield store


def _probe_layers(model: Network, names: Sequence[str], size: int | None
                  ) -> tuple[dict[str, tuple], torch.Tensor]:
    size = size or model.input_size
    probe = torch.full((1, 3, size, size), 0.5, device=model.device)
    with torch.no_grad(), _raw_outputs(model, [module_name(n) for n in names]) as store:
        logits = model(probe)
    return dict(store), logits


def layer_channels(model: Network, names: Sequence[str] | None = None,
                   size: int | None = None) -> dict[str, tuple[int, ...]]:
    """Shape (without batch) of each layer in the one form (units, *positions), from one
    small forward pass; a requested layer without a tensor of its own (a container such as a
    ModuleList, a tuple without ``#element``) is refused by name, others are left out."""
    requested = names is not None
    names = [n for n in (names or layer_names(model)) if n != LOGITS]
    raw, logits = _probe_layers(model, names, size)
    shapes: dict[str, tuple[int, ...]] = {}
    for n in names:
        got = raw.get(module_name(n))
        if got is None:
            if requested:
                members = [m for m in layer_names(model) if m.startswith(f"{n}.")][:3]
                hint = f", e.g. {', '.join(members)}" if members else ""
                raise ValueError(f"layer {n!r} has no output tensor of its own (a container of "
                                 f"layers?): pick one of its members{hint} (fvtrust layers "
                                 f"--model {model.name} lists them)")
            continue
        module, args, kwargs, out = got
        try:
            with torch.no_grad():
                form = _units_form(model, LayerAddress.parse(n), n, out, args, kwargs, module)
        except ValueError:
            if requested:
                raise
            continue
        shapes[n] = tuple(form.shape[1:])
    shapes[LOGITS] = tuple(logits.shape[1:])
    return shapes


@dataclass(frozen=True)
class LayerInfo:
    """One row of ``fvtrust layers``: a layer, its units and how to address them."""

    name: str
    units: int | None
    kind: str  # conv, vector, tokens, tuple, ...
    shape: tuple[int, ...]
    note: str = ""


def describe_layers(model: Network, names: Sequence[str], size: int | None = None
                    ) -> list[LayerInfo]:
    """Each layer's kind, unit count and raw output shape (without batch); transformer
    layers say how their tokens and heads are addressed."""
    names = [n for n in names if n != LOGITS]
    raw, logits = _probe_layers(model, names, size)
    rows = []
    for n in names:
        if n not in raw:
            continue
        module, _args, _kwargs, out = raw[n]
        note = ""
        if isinstance(module, nn.MultiheadAttention):
            note = f"{module.num_heads} heads as units: {n}@heads; "
        if isinstance(out, tuple | list | dict):
            keys = list(out) if isinstance(out, dict) else list(range(len(out)))
            first = out[keys[0]] if keys else None
            shape = tuple(first.shape[1:]) if isinstance(first, torch.Tensor) else ()
            rows.append(LayerInfo(n, None, type(out).__name__, shape,
                                  note + f"an element by {n}#{keys[0] if keys else 0}"))
        elif isinstance(out, torch.Tensor) and out.ndim == 3 and has_tokens(model):
            t, d = out.shape[1:]
            prefix = count_prefix_tokens(model, t)
            extra = ", @cls" if prefix else ""
            attention = [(f"{n}.{sub}", m) for sub, m in module.named_modules()
                         if sub and isinstance(m, nn.MultiheadAttention)]
            if len(attention) == 1:
                note += f"{attention[0][1].num_heads} heads as units: {attention[0][0]}@heads; "
            rows.append(LayerInfo(n, d, "tokens", (t, d),
                                  note + f"{t} tokens ({prefix} before {t - prefix} patches): unit = "
                                  f"feature over the patches; also @token<N>{extra}"))
        elif isinstance(out, torch.Tensor) and out.ndim >= 2:
            kind = "conv" if out.ndim == 4 else "vector" if out.ndim == 2 else f"{out.ndim}-d"
            rows.append(LayerInfo(n, int(out.shape[1]), kind, tuple(out.shape[1:]), note))
    rows.append(LayerInfo(LOGITS, int(logits.shape[1]), "vector", tuple(logits.shape[1:])))
    return rows


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
