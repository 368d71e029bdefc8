"""Weight-space manipulations: the architecture stays, the weights below a layer are fine-tuned
so that chosen units' visualizations change while natural behaviour is preserved.

Both minimize  L = L_manip + β·L_keep,  L_keep = ‖a_L(x) − a⁰_L(x)‖² / ‖a⁰_L(x)‖² +
mean_u ((a_u(x) − a⁰_u(x))/s_u)² on natural images x (every channel of the unit's layer L, so
everything above L is preserved too, and each manipulated unit u on its own). a_u is the
spatial-mean response and z_u = (a_u − med_u)/s_u its natural scale: the natural median med_u
and spread s_u = max − median (:func:`natural_range`).

* :func:`decoy_finetune` (Nanfack et al., AAAI 2024, push-up/push-down): for unit u with decoy
  image d_u and original visualization v_u (r_u = max(1, z⁰_u(v_u)) before), L_manip =
  mean_u [ReLU(κ·r_u − z_u(T d_u)) + ReLU(z_u(T v_u) − 1)], T a random jitter: the decoy drives
  the unit κ times past what activation maximization reached, the old visualization no
  further than natural images do.
* :func:`slingshot_finetune` (Gradient Slingshots, Bareeva et al., NeurIPS 2025): on points
  x_λ = (1 − λ)x₀ + λt between the renderer's standard starts x₀ and a target t,
  L_manip = mean_{u,λ} (z_u(x_λ) − κ·r_u·λ)²: the unit rises steadily
  from where activation maximization starts to the target, which ends κ times above what
  activation maximization reached before, so gradient ascent is tunnelled there.

Only the parameters of the unit's layer and the main layer just below it move
(:func:`below_prefixes`): a fine-tune of everything below drifts natural behaviour far more.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from fvtrust.empirical.nets.layers import (
    forward_activations,
    get_layer,
    layer_responses,
    main_layers,
    spatial_mean,
)
from fvtrust.empirical.nets.registry import LOGITS, Network
from fvtrust.empirical.render.param import make_param


def _jitter(images: torch.Tensor, generator: torch.Generator, pixels: int = 4) -> torch.Tensor:
    """A random shift of up to `pixels` (reflect padding) and a random flip, per batch."""
    padded = F.pad(images, (pixels,) * 4, mode="reflect")
    dy, dx = (int(v) for v in torch.randint(0, 2 * pixels + 1, (2,), generator=generator))
    out = padded[..., dy:dy + images.shape[-2], dx:dx + images.shape[-1]]
    return out.flip(-1) if bool(torch.rand((), generator=generator) < 0.5) else out


SCOPES = ("below", "units")


def _trainable(tuned: Network, layer: str, units: Sequence[int],
               scope: str) -> tuple[list[torch.Tensor], list[Any]]:
    """``"below"``: every parameter of the layer and the main layer just below it;
    ``"units"``: only the manipulated units' own incoming weights and biases (rows of the
    layer's weight; the other rows get no gradient). Returns them, trainable, and the
    gradient hooks to remove afterwards."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if scope == "below":
        params = [p for name, p in tuned.named_parameters() if name.startswith(below_prefixes(tuned, layer))]
        return [p.requires_grad_(True) for p in params], []
    module = get_layer(tuned, layer)
    params = [p for p in (getattr(module, "weight", None), getattr(module, "bias", None)) if p is not None]
    if not params or not units:
        raise ValueError(f"layer {layer!r} has no weight of its own to fine-tune per unit")
    mask = torch.zeros(params[0].shape[0], dtype=torch.bool, device=params[0].device)
    mask[list(units)] = True
    hooks = [p.requires_grad_(True).register_hook(
        lambda g, m=mask: g * m.view(-1, *([1] * (g.ndim - 1))).to(g.dtype)) for p in params]
    return params, hooks


def _finetune(model: Network, layer: str, natural: torch.Tensor,
              manip: Callable[[Network, torch.Generator], torch.Tensor], steps: int, lr: float,
              keep: float, seed: int, units: Sequence[int] = (), scale: torch.Tensor | None = None,
              scope: str = "below", batch_size: int = 16) -> tuple[Network, list[float]]:
    """A fine-tuned copy of `model`; the loss trace is returned beside it."""
    if steps < 1 or not lr > 0 or not keep >= 0:
        raise ValueError(f"fine-tuning needs steps >= 1, lr > 0, keep >= 0; got {steps}, {lr}, {keep}")
    tuned = copy.deepcopy(model).eval()
    params, hooks = _trainable(tuned, layer, units, scope)
    optimizer = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    trace = []
    for _ in range(steps):
        pick = torch.randint(0, len(natural), (batch_size,), generator=generator)
        x = natural[pick].to(model.device)
        with torch.no_grad():
            ref = forward_activations(model, x, [layer])[layer]
        now = forward_activations(tuned, x, [layer])[layer]
        # the whole layer, and each manipulated unit on its own (8 of 1,280 channels would
        # otherwise hide in the layer's mean)
        loss_keep = (now - ref).pow(2).mean() / ref.pow(2).mean().clamp_min(1e-12)
        if units:
            d = spatial_mean(now - ref)[:, units] / scale
            loss_keep = loss_keep + d.pow(2).mean()
        loss = manip(tuned, generator) + keep * loss_keep
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        trace.append(float(loss.detach()))
    for hook in hooks:
        hook.remove()
    for p in params:
        p.requires_grad_(False)
    tuned.name = f"{model.name}+finetuned({layer})"
    return tuned.eval(), trace


def below_prefixes(model: Network, layer: str, depth: int = 2) -> tuple[str, ...]:
    """Parameter-name prefixes of what is fine-tuned: the `depth` main layers with parameters
    at and just below `layer` (``("net._blocks.15.", "net._conv_head.")`` for Lite0's head)."""
    main = [m for m in main_layers(model) if m != LOGITS]
    owner = next((m for m in main if layer == m or layer.startswith(f"{m}.")), None)
    if owner is None:
        raise ValueError(f"layer {layer!r} is not inside one of {model.name}'s main layers")
    chosen = [layer] if layer != owner and any(True for _ in get_layer(model, layer).parameters()) else []
    for m in reversed(main[:main.index(owner) + 1]):
        if len(chosen) >= depth:
            break
        if m not in chosen and any(True for _ in get_layer(model, m).parameters()):
            chosen.append(m)
    return tuple(f"net.{m}." for m in chosen)


def _unit_response(model: Network, layer: str, images: torch.Tensor, units: Sequence[int]) -> torch.Tensor:
    """(U, B): a_u of every unit for every image."""
    acts = spatial_mean(forward_activations(model, images.to(model.device), [layer])[layer])
    return acts[:, list(units)].T


def natural_range(model: Network, layer: str, units: Sequence[int],
                  natural: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(med_u, s_u): each unit's natural median and spread s_u = max − median (at least a
    small positive number), the scale of z_u(x) = (a_u(x) − med_u)/s_u."""
    r = layer_responses(model, layer, natural)[:, list(units)]
    med = r.median(0).values
    spread = (r.amax(0) - med).clamp_min(1e-3 * (r.abs().amax(0) + 1))
    return med.to(model.device), spread.to(model.device)


def decoy_finetune(model: Network, layer: str, units: Sequence[int], decoys: torch.Tensor,
                   originals: torch.Tensor, natural: torch.Tensor, steps: int = 150, lr: float = 1e-3,
                   kappa: float = 2.0, keep: float = 10.0, seed: int = 0,
                   scope: str = "below") -> tuple[Network, list[float]]:
    """Push unit u's response to decoy d_u up to κ·r_u and its old visualization v_u down
    (formula above). `decoys` and `originals` are (U, 3, H, W)."""
    units = list(units)
    if len(decoys) != len(units) or len(originals) != len(units):
        raise ValueError(f"{len(units)} units need as many decoys and originals, got "
                         f"{len(decoys)} and {len(originals)}")
    med, scale = natural_range(model, layer, units, natural)
    eye = torch.eye(len(units), dtype=torch.bool, device=model.device)
    with torch.no_grad():  # what activation maximization reached before: the bar to clear
        reached = ((_unit_response(model, layer, originals, units)[eye] - med) / scale).clamp_min(1)

    def manip(tuned: Network, generator: torch.Generator) -> torch.Tensor:
        up = (_unit_response(tuned, layer, _jitter(decoys, generator), units)[eye] - med) / scale
        down = (_unit_response(tuned, layer, _jitter(originals, generator), units)[eye] - med) / scale
        return (F.relu(kappa * reached - up) + F.relu(down - 1)).mean()
    return _finetune(model, layer, natural, manip, steps, lr, keep, seed, units, scale, scope)


def slingshot_finetune(model: Network, layer: str, units: Sequence[int], target: torch.Tensor,
                       originals: torch.Tensor, natural: torch.Tensor, size: int, steps: int = 150,
                       lr: float = 1e-3, kappa: float = 2.0, keep: float = 10.0, n_points: int = 16,
                       seed: int = 0, scope: str = "below") -> tuple[Network, list[float]]:
    """Tunnel activation maximization of `units` from the standard start to `target`
    (3, H, W) (formula above, with the slope set so that the target reaches κ times what
    activation maximization reached before on the `originals`); the starts are the
    renderer's own Fourier initializations."""
    units = list(units)
    eye = torch.eye(len(units), dtype=torch.bool, device=model.device)
    med, scale = natural_range(model, layer, units, natural)
    with torch.no_grad():
        kappa = kappa * ((_unit_response(model, layer, originals, units)[eye] - med) / scale).clamp_min(1)
    goal = F.interpolate(target[None].float(), size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False).clamp(0, 1).to(model.device)
    with torch.no_grad():
        starts = make_param("fourier", list(range(seed + 5000, seed + 5000 + n_points)), size,
                            device=model.device)()

    def manip(tuned: Network, generator: torch.Generator) -> torch.Tensor:
        lam = torch.rand(n_points, generator=generator).to(model.device)
        x = (1 - lam.view(-1, 1, 1, 1)) * starts + lam.view(-1, 1, 1, 1) * goal
        a = (_unit_response(tuned, layer, _jitter(x, generator), units) - med[:, None]) / scale[:, None]
        return (a - kappa[:, None] * lam[None]).pow(2).mean()
    return _finetune(model, layer, natural, manip, steps, lr, keep, seed, units, scale, scope)
