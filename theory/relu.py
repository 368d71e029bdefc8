"""ReLU-network building blocks: the tent and the closure operations, as real networks.

After the "simple ReLU" and "network" lemmas of *Don't trust your eyes* (Sec. 5); code ours.
Every function returns a :class:`~theory.functions.ReLUNetwork` whose module is a plain
``torch.nn.Sequential`` of Linear and ReLU layers, so closure is shown by construction:

* tent  τ_{z,r}(x) = ReLU(1 − (1/r)·Σ_i [ReLU(x_i − z_i) + ReLU(z_i − x_i)]);
* affine combinations Σ_k c_k f_k + c₀;
* max(u, v) = v + ReLU(u − v) = ReLU(u − v) + ReLU(v) − ReLU(−v), and min(u, v) = −max(−u, −v).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike

from fvtrust.theory.domain import check_dimension, check_in_cube
from fvtrust.theory.functions import ReLUNetwork, linear_layer

Layer = tuple[np.ndarray, np.ndarray]  # (W of shape (out, in), b of shape (out,))


def _layers(net: ReLUNetwork) -> list[Layer]:
    return [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy())
            for m in net.linears]


def _network(layers: Sequence[Layer], name: str) -> ReLUNetwork:
    modules: list[torch.nn.Module] = []
    for k, (w, b) in enumerate(layers):
        if k:
            modules.append(torch.nn.ReLU())
        modules.append(linear_layer(w, b))
    return ReLUNetwork(torch.nn.Sequential(*modules), name=name)


def _deepen(layers: list[Layer], depth: int) -> list[Layer]:
    """Pad to `depth` linear layers with identities y = ReLU(y) − ReLU(−y)."""
    layers = list(layers)
    while len(layers) < depth:
        w, b = layers[-1]
        m = w.shape[0]
        layers[-1] = (np.vstack([w, -w]), np.concatenate([b, -b]))
        layers.append((np.hstack([np.eye(m), -np.eye(m)]), np.zeros(m)))
    return layers


def _stack_layers(nets: Sequence[ReLUNetwork]) -> list[Layer]:
    """Layers of one network computing all `nets` side by side (outputs concatenated)."""
    if not nets:
        raise ValueError("need at least one network to combine")
    d = nets[0].d
    if any(n.d != d for n in nets):
        raise ValueError(f"networks have different input dimensions {[n.d for n in nets]}")
    depth = max(len(n.linears) for n in nets)
    padded = [_deepen(_layers(n), depth) for n in nets]
    stacked: list[Layer] = []
    for k in range(depth):
        ws = [p[k][0] for p in padded]
        bs = np.concatenate([p[k][1] for p in padded])
        if k == 0:
            w = np.vstack(ws)
        else:
            w = np.zeros((sum(x.shape[0] for x in ws), sum(x.shape[1] for x in ws)))
            r = c = 0
            for x in ws:
                w[r:r + x.shape[0], c:c + x.shape[1]] = x
                r, c = r + x.shape[0], c + x.shape[1]
        stacked.append((w, bs))
    return stacked


def _with_head(layers: list[Layer], mix: np.ndarray, mix_bias: np.ndarray,
               head: np.ndarray | None, name: str) -> ReLUNetwork:
    """Apply `mix` to the stacked outputs, then optionally ReLU and a linear `head`."""
    w, b = layers[-1]
    layers = [*layers[:-1], (mix @ w, mix @ b + mix_bias)]
    if head is not None:
        layers.append((head[None, :], np.zeros(1)))
    return _network(layers, name)


def constant_network(d: int, c: float, name: str = "const") -> ReLUNetwork:
    """The constant c as a network (one Linear with zero weights)."""
    return _network([(np.zeros((1, check_dimension(d))), np.array([float(c)]))], name)


def affine_network(w: ArrayLike, c: float, name: str = "affine") -> ReLUNetwork:
    """x ↦ ⟨w, x⟩ + c as a network."""
    w = np.asarray(w, dtype=np.float64).reshape(1, -1)
    return _network([(w, np.array([float(c)]))], name)


def tent_network(z: ArrayLike, r: float, name: str = "tent") -> ReLUNetwork:
    """τ_{z,r}: 0 ≤ τ ≤ 1, τ(z) = 1, τ = 0 off the open ℓ1 ball B(z, r), slope 1/r in ℓ1."""
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    d = check_dimension(z.shape[0])
    if not np.isfinite(r) or r <= 0:
        raise ValueError(f"tent radius r must be > 0, got r={r!r}")
    eye = np.eye(d)
    layers: list[Layer] = [
        (np.vstack([eye, -eye]), np.concatenate([-z, z])),  # ReLU(x − z), ReLU(z − x)
        (np.full((1, 2 * d), -1.0 / r), np.ones(1)),          # ReLU(1 − ‖x − z‖₁ / r)
        (np.ones((1, 1)), np.zeros(1)),
    ]
    return _network(layers, name)


def affine_combination(nets: Sequence[ReLUNetwork], coefficients: Sequence[float],
                       bias: float = 0.0, name: str = "combination") -> ReLUNetwork:
    """Σ_k c_k f_k + c₀ as one network."""
    coeffs = np.asarray(coefficients, dtype=np.float64).reshape(1, -1)
    if coeffs.shape[1] != len(nets):
        raise ValueError(f"{len(nets)} networks but {coeffs.shape[1]} coefficients")
    return _with_head(_stack_layers(nets), coeffs, np.array([float(bias)]), None, name)


def maximum(u: ReLUNetwork, v: ReLUNetwork, name: str = "max") -> ReLUNetwork:
    """max(u, v) = ReLU(u − v) + ReLU(v) − ReLU(−v), one hidden layer deeper."""
    mix = np.array([[1.0, -1.0], [0.0, 1.0], [0.0, -1.0]])
    return _with_head(_stack_layers([u, v]), mix, np.zeros(3), np.array([1.0, 1.0, -1.0]), name)


def minimum(u: ReLUNetwork, v: ReLUNetwork, name: str = "min") -> ReLUNetwork:
    """min(u, v) = ReLU(u) − ReLU(−u) − ReLU(u − v), one hidden layer deeper."""
    mix = np.array([[1.0, 0.0], [-1.0, 0.0], [1.0, -1.0]])
    return _with_head(_stack_layers([u, v]), mix, np.zeros(3), np.array([1.0, -1.0, -1.0]), name)


def random_relu_network(d: int, widths: Sequence[int], rng: np.random.Generator,
                        name: str = "net") -> ReLUNetwork:
    """A ReLU network d → widths → 1 with He-normal weights and small biases."""
    sizes = [check_dimension(d), *[int(w) for w in widths], 1]
    if any(s < 1 for s in sizes):
        raise ValueError(f"layer widths must be >= 1, got {list(widths)}")
    layers = [(rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_out, fan_in)),
               rng.normal(0.0, 0.1, size=fan_out))
              for fan_in, fan_out in itertools.pairwise(sizes)]
    return _network(layers, name)


def bump(base_min: float, height: float, z: ArrayLike, r: float) -> ReLUNetwork:
    """x ↦ base_min + height·τ_{z,r}(x), the raised tent the no-go pairs graft onto f."""
    z = check_in_cube(z, np.asarray(z).size, name="tent centre")[0]
    return affine_combination([tent_network(z, r)], [height], base_min, name="bump")
