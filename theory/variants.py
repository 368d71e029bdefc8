"""The results table under the Φ variants the theory names (after Sec. 5 of *Don't trust
your eyes*; formulation ours):

* **max-only**: Φ_max(f) = (x_max, f(x_max));
* **approximate extremes**: Φ_η(f) = (x̂_min, x̂_max, f(x̂_min), f(x̂_max)) for *any* points with
  f(x̂_max) ≥ max f − ηR and f(x̂_min) ≤ min f + ηR (what an optimizer returns; η relative to
  the range R, 0 ≤ η < 1/2). A decoder must cope with every admissible answer.

Carry-over lemma: Φ_max is a function of Φ, and the exact extremes are one admissible Φ_η
answer, so two members with equal Φ also look alike under both variants: every impossible
cell stays impossible, with the same verified pair. The other cells have their own arguments:

* constant: every variant shows the value — error 0, 2-AFC accuracy 1.
* affine, d = 1, Φ_η: f(x̂_max) − f(x̂_min) ≥ (1 − 2η)R > 0, so the shown points differ and
  determine f (:class:`SecantDecoder`): error 0 for every task.
* max-only, a scale family: f_s(x) = f_max − s‖x − b‖₁/d (b the vertex x_max; affine, and
  Lipschitz with L = R/d ≤ κR/d) share Φ_max for every s > 0. Normalized by each member's own
  range, a prediction p at z errs on f_1 or f_ε by at least |f_1(z) − f_ε(z)|/(R_1 + R_ε) =
  (‖z − b‖₁/d)(1 − ε)/(1 + ε): at z = 1 − b that is (1 − ε)/(1 + ε) ≥ 1/2 — impossible for A
  and B (worse than chance: the chance decoder needs f_min). Near x_max (D),
  p ≡ f_max errs by (f_max − f(z))/R ≤ Lρ/R: κρ/d for Lipschitz, ρ for affine units (any d:
  Σ s_i|z_i − b_i|/Σ s_i ≤ ‖z − b‖₁); for d = 1 the scale pair attains ρ. Affine, d = 1, 2-AFC:
  f decreases with |x − x_max|, so "nearer to x_max activates more" is always right.
* L-Lipschitz (d ≥ 2), Φ_η: with R̂ = f(x̂_max) − f(x̂_min) ≥ (1 − 2η)R, L = κR/d ≤
  L̂ = κR̂/((1 − 2η)d), f_max ≤ f(x̂_max) + η̂R̂ and f_min ≥ f(x̂_min) − η̂R̂ (η̂ = η/(1 − 2η)), the
  band from the shown points with L̂ and that slack contains f; as for Φ its normalized
  half-width is at most κ′ − 1, κ′ = κ/(1 − 2η), because ‖x̂_min − x̂_max‖₁ ≥ R̂/L ≥ (1 − 2η)d/κ
  (:class:`ApproxBandDecoder`; tasks A, B). 2-AFC: f(z) − f(z′) ≤ min(û(z) − ℓ̂(z′), L̂‖z − z′‖₁),
  and z3 maximizes that over every shown view and pair the band decoder misorders, exactly
  on the cube (:func:`~theory.classes.lipschitz.afc_margins` with κ′ and the widened caps):
  11/49 R̂ < R/4 for κ = 1.2, η = 0.01, d = 2, so it answers every trial correctly.
* Φ_η near x_max (D), affine (d ≥ 2) and Lipschitz units: f(x̂_max) − f(z) lies in
  [−ηR, f_max − f(z)], so p ≡ f(x̂_max) errs by at most max(η, ρ) (affine) or max(η, κρ/d)
  (Lipschitz), normalized.

Every other cell is open (none is, at the table's κ and η). Each reliable cell is
cross-checked like the main table: the decoder's worst score on sampled members, with
admissible Φ_η answers drawn at random.
Tests: ``tests/theory/test_variants.py``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from fvtrust.theory.classes import all_classes
from fvtrust.theory.classes.affine import Affine
from fvtrust.theory.classes.base import FunctionClass, ProvenBound, cube_certified_extremes
from fvtrust.theory.classes.closed_form import l1_expr, rational
from fvtrust.theory.classes.constant import Constant
from fvtrust.theory.classes.lipschitz import Lipschitz
from fvtrust.theory.decoders import Decoder
from fvtrust.theory.domain import Array, l1
from fvtrust.theory.functions import ExpressionFunction, UnitFunction
from fvtrust.theory.table import TABLE_EPS, ResultsTable, TableEntry, compute_table
from fvtrust.theory.tasks import CHANCE, LOCAL_RADIUS, Task, afc_accuracy, local_points
from fvtrust.theory.visualization import Visualization, from_extremes

#: The relative optimality gap of the approximate-extremes column.
TABLE_ETA = 0.01


class Variant(StrEnum):
    MAX_ONLY = "max-only"
    APPROX = "approximate"


# -- decoders for the variants ---------------------------------------------------------------
class MaxValueDecoder(Decoder):
    """p ≡ f(x_max): all a max-only visualization says about the value."""

    name = "f(x_max)"

    def predict(self, phi: Visualization, pts: Array) -> Array:
        return np.full(pts.shape[0], float(phi.v_max))


class NearerToMaxDecoder(Decoder):
    """p(x) = f(x_max) − ‖x − x_max‖₁: orders queries by their distance to x_max."""

    name = "nearer to x_max"

    def predict(self, phi: Visualization, pts: Array) -> Array:
        return float(phi.v_max) - l1(pts, phi.x_max)


class SecantDecoder(Decoder):
    """d = 1: the line through the two shown points (exact for affine units)."""

    name = "secant (d=1)"

    def predict(self, phi: Visualization, pts: Array) -> Array:
        lo, hi = float(phi.x_min[0]), float(phi.x_max[0])
        if lo == hi:
            return np.full(pts.shape[0], float(phi.v_max))
        slope = (phi.v_max - phi.v_min) / (hi - lo)
        return phi.v_min + slope * (pts[:, 0] - lo)


@dataclass(frozen=True)
class ApproxBandDecoder(Decoder):
    """The Lipschitz band from approximate extremes: L̂ = κR̂/((1 − 2η)d), slack η̂R̂."""

    kappa: float
    eta: float

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"Lipschitz band from approximate extremes (eta={self.eta:g})"

    def predict(self, phi: Visualization, pts: Array) -> Array:
        r_hat = phi.range
        if r_hat == 0:
            return np.full(pts.shape[0], float(phi.v_max))
        L = self.kappa * r_hat / ((1 - 2 * self.eta) * phi.d)
        slack = self.eta / (1 - 2 * self.eta) * r_hat
        upper = np.minimum(phi.v_max + slack, phi.v_min + L * l1(pts, phi.x_min))
        lower = np.maximum(phi.v_min - slack, phi.v_max - L * l1(pts, phi.x_max))
        return 0.5 * (lower + upper)


# -- the max-only scale pair -----------------------------------------------------------------
@dataclass(frozen=True)
class ScalePair:
    """f_s = f_max − s‖x − b‖₁/d for s = 1 and s = ε: equal Φ_max, ranges 1 and ε."""

    f_one: ExpressionFunction
    f_eps: ExpressionFunction
    phi_one: Visualization
    phi_eps: Visualization
    z: Array
    eps: float

    def lower_bound(self) -> float:
        """min over predictions p of max(|p − f_1(z)|/R_1, |p − f_ε(z)|/R_ε)."""
        gap = abs(float(self.f_one(self.z[None])[0] - self.f_eps(self.z[None])[0]))
        return gap / (self.phi_one.range + self.phi_eps.range)

    source = ("scale pair f_max - s||x - x_max||_1/d, s = 1 and eps (normalized by each "
              "member's own range; on the cube: z3)")

    def at_chance(self) -> bool:
        return self.lower_bound() >= 0.5

    def verify(self, cls: FunctionClass) -> dict[str, bool]:
        return max_only_checks(cls, ((self.f_one, self.phi_one), (self.f_eps, self.phi_eps)))


def max_only_checks(cls: FunctionClass,
                    members: tuple[tuple[ExpressionFunction, Visualization], ...]) -> dict[str, bool]:
    """Each member in the class, and one max-only view: each member's full Φ certified on
    the cube by z3 (unique argmin and argmax), with the same x_max and f(x_max)."""
    (f1, p1), (f2, p2) = members
    same = bool(np.array_equal(p1.x_max, p2.x_max) and p1.v_max == p2.v_max)
    return {
        f"{f1.name} in class": bool(cls.membership(f1)),
        f"{f2.name} in class": bool(cls.membership(f2)),
        "same max-only visualization (on the cube: z3)": same and all(
            cube_certified_extremes(f, p) for f, p in members),
    }


def scale_pair(d: int, z: Array, eps: float) -> ScalePair:
    b = np.ones(d)
    a = np.zeros(d)

    def member(s: float, name: str) -> tuple[ExpressionFunction, Visualization]:
        f = ExpressionFunction(1 - rational(s) * l1_expr(b) / d, d, name)
        return f, from_extremes(a, b, 1.0 - s, 1.0)
    f1, p1 = member(1.0, "f_1")
    fe, pe = member(eps, "f_eps")
    return ScalePair(f1, fe, p1, pe, np.asarray(z, dtype=float), eps)


@dataclass(frozen=True)
class MaxOnlyFlip:
    """Two members with one Φ_max (their minima elsewhere) ordering (z, z′) oppositely, each
    by ≥ AFC_MARGIN of its own range: every 2-AFC decoder is at chance."""

    f_one: ExpressionFunction
    f_two: ExpressionFunction
    phi_one: Visualization
    phi_two: Visualization
    z: Array
    z2: Array
    source = ("two members with one max-only view, minima at different points (z3 on the "
              "cube: optimum of the flip, then the tilted upper envelopes)")

    def flip(self) -> float:
        """min((f₁(z) − f₁(z′))/R₁, (f₂(z′) − f₂(z))/R₂)."""
        z, z2 = self.z[None], self.z2[None]
        return min(float(self.f_one(z)[0] - self.f_one(z2)[0]) / self.phi_one.range,
                   float(self.f_two(z2)[0] - self.f_two(z)[0]) / self.phi_two.range)

    def lower_bound(self) -> float:
        from fvtrust.theory.tasks import AFC_MARGIN

        return 0.5 if self.flip() >= AFC_MARGIN - 1e-12 else 1.0

    def at_chance(self) -> bool:
        return self.lower_bound() <= 0.5

    def verify(self, cls: FunctionClass) -> dict[str, bool]:
        return max_only_checks(cls, ((self.f_one, self.phi_one), (self.f_two, self.phi_two)))


def max_only_afc_pair(cls: Lipschitz, eps: float = TABLE_EPS) -> MaxOnlyFlip | None:
    """Maximize the max-only 2-AFC flip exactly with z3 over x_max = b, two minima a₁, a₂ and a
    pair (z, z′) (R = 1): min(u_{a₁}(z) − ℓ_b(z′), u_{a₂}(z′) − ℓ_b(z), L‖z − z′‖₁); when it
    reaches AFC_MARGIN, the members are the tilted upper envelopes
    min(1 − δ‖x − b‖₁, L‖x − a_i‖₁) (:func:`~theory.classes.lipschitz.band_pair`). None: z3
    missing or undecided, or the flip stays below the margin."""
    from fvtrust.theory.classes.lipschitz import CubeProgram, band_pair
    from fvtrust.theory.tasks import AFC_MARGIN

    try:
        prog = CubeProgram(("a1", "a2", "b", "z", "w"), cls.d)
    except ImportError:
        return None
    d, dist = cls.d, prog.dist
    s = prog.real(cls.kappa) / d

    def upper(p: str, a: str) -> Any:
        return prog.clip(s * dist(p, a), prog.real(0.0), prog.real(1.0))

    def lower(p: str) -> Any:
        return prog.clip(1 - s * dist(p, "b"), prog.real(0.0), prog.real(1.0))
    prog.opt.add(s * dist("a1", "b") >= 1, s * dist("a2", "b") >= 1)
    t = prog.var("t")
    prog.opt.add(t <= upper("z", "a1") - lower("w"), t <= upper("w", "a2") - lower("z"),
                 t <= s * dist("z", "w"))
    solved = prog.maximize(t, f"max-only 2-AFC, kappa = {cls.kappa:g}, d = {d}: largest flip")
    if solved is None or solved[0] < AFC_MARGIN + 2 * eps:  # the tilt costs up to 2ε of the flip
        return None
    at = solved[1]
    L = cls.kappa / d
    members = []
    for key, name in (("a1", "f_1"), ("a2", "f_2")):
        phi = from_extremes(at[key], at["b"], 0.0, 1.0)
        plus, _ = band_pair(phi, L, eps)
        members.append((ExpressionFunction(plus.expression, d, name), phi))
    (f1, p1), (f2, p2) = members
    return MaxOnlyFlip(f1, f2, p1, p2, at["z"], at["w"])


# -- per-class arguments ---------------------------------------------------------------------
@dataclass(frozen=True)
class VariantArgument:
    """What settles a cell that is not carried over: a proven bound of a decoder (reliable)
    or a scale pair (impossible)."""

    bound: ProvenBound | None = None
    decoder: Decoder | None = None
    pair: ScalePair | MaxOnlyFlip | None = None


def variant_argument(cls: FunctionClass, task: Task, variant: Variant,
                     eps: float = TABLE_EPS, eta: float = TABLE_ETA) -> VariantArgument | None:
    """The argument of the module docstring for this cell, or None (open)."""
    doc = "theory/variants.py"
    if isinstance(cls, Constant):
        score = 1.0 if task is Task.AFC else 0.0
        dec = MaxValueDecoder()
        return VariantArgument(ProvenBound(score, True, doc), dec)
    affine_d1 = isinstance(cls, Affine) and cls.d == 1
    if variant is Variant.APPROX:
        if affine_d1:
            return VariantArgument(ProvenBound(1.0 if task is Task.AFC else 0.0, True, doc),
                                   SecantDecoder())
        if task is Task.LOCAL and isinstance(cls, Affine | Lipschitz):
            # f(x̂_max) − f(z) = (f(x̂_max) − f_max) + (f_max − f(z)) ∈ [−ηR, (near-max bound)·R]
            near = cls.kappa * LOCAL_RADIUS / cls.d if isinstance(cls, Lipschitz) else LOCAL_RADIUS
            return VariantArgument(ProvenBound(max(eta, near), False, doc), MaxValueDecoder())
        if isinstance(cls, Lipschitz) and task is Task.AFC:
            return _approx_afc_argument(cls, eta, doc)
        if isinstance(cls, Lipschitz) and cls.d >= 2 and task is not Task.AFC:
            bound = min(0.5 + eta / (1 - 2 * eta), cls.kappa / (1 - 2 * eta) - 1)
            return VariantArgument(ProvenBound(bound, False, doc), ApproxBandDecoder(cls.kappa, eta))
        return None
    # max-only
    if isinstance(cls, Affine | Lipschitz):
        if task in (Task.SUP, Task.QUERY):
            return VariantArgument(pair=scale_pair(cls.d, np.zeros(cls.d), eps))
        if task is Task.LOCAL:
            rho = LOCAL_RADIUS
            bound = cls.kappa * rho / cls.d if isinstance(cls, Lipschitz) else rho
            return VariantArgument(ProvenBound(bound, affine_d1, doc), MaxValueDecoder())
        if affine_d1:
            return VariantArgument(ProvenBound(1.0, True, doc), NearerToMaxDecoder())
        if isinstance(cls, Lipschitz):
            pair = max_only_afc_pair(cls, eps)
            return None if pair is None else VariantArgument(pair=pair)
    return None


def _approx_afc_argument(cls: Lipschitz, eta: float, doc: str) -> VariantArgument | None:
    """2-AFC from approximate extremes: z3 bounds the largest gap the band from the shown
    points misorders (κ′ = κ/(1 − 2η), caps widened by η̂, R̂ = 1); below γ = 1/4 ≤ γR/R̂ it
    answers every trial correctly."""
    from fvtrust.theory.classes.lipschitz import afc_margins
    from fvtrust.theory.tasks import AFC_MARGIN

    margins = afc_margins(cls.kappa / (1 - 2 * eta), cls.d, slack=eta / (1 - 2 * eta))
    if margins is None or margins.band_decoder_wrong >= AFC_MARGIN:
        return None
    return VariantArgument(ProvenBound(1.0, True, f"{doc}, z3 on the cube: largest misordered "
                                       f"gap {margins.band_decoder_wrong} R_hat"),
                           ApproxBandDecoder(cls.kappa, eta))


# -- cross-checks on sampled members ---------------------------------------------------------
def admissible_view(f: UnitFunction, phi: Visualization, pts: Array, variant: Variant,
                    eta: float, rng: np.random.Generator) -> Visualization:
    """What the variant shows of f: max-only, or a random admissible approximate answer
    among the grid points within ηR of each extreme (the exact extremes included)."""
    if variant is Variant.MAX_ONLY:
        return phi.max_only()
    values = f(pts)
    R = phi.range
    near_max = np.flatnonzero(values >= phi.v_max - eta * R - 1e-12)
    near_min = np.flatnonzero(values <= phi.v_min + eta * R + 1e-12)
    i, j = int(rng.choice(near_min)), int(rng.choice(near_max))
    return from_extremes(pts[i], pts[j], float(values[i]), float(values[j]))


def sampled_score(cls: FunctionClass, task: Task, variant: Variant, decoder: Decoder,
                  samples: int, eta: float = TABLE_ETA) -> float:
    """The decoder's worst score over `samples` members (each seen through the variant),
    normalized by each member's own range; 2-AFC over all grid pairs."""
    pts = cls.grid.points
    rng = np.random.default_rng(0)
    worst = 1.0 if task is Task.AFC else 0.0
    for seed in range(samples):
        f = cls.sample(seed)
        phi = cls.visualize(f)
        view = admissible_view(f, phi, pts, variant, eta, rng)
        if task is Task.AFC:
            i, j = np.triu_indices(len(pts), k=1)
            worst = min(worst, afc_accuracy(decoder, f, phi, np.stack([pts[i], pts[j]], axis=1),
                                            view=view))
            continue
        queries = local_points(pts, phi) if task is Task.LOCAL else pts
        if len(queries) == 0:
            continue
        err = np.abs(decoder(view, queries) - f(queries))
        R = phi.range
        worst = max(worst, float(err.max() / R) if R > 0 else float(err.max() > 1e-12))
    return worst


# -- the table -------------------------------------------------------------------------------
def variant_entry(cls: FunctionClass, task: Task, variant: Variant, base: TableEntry,
                  eps: float = TABLE_EPS, eta: float = TABLE_ETA, samples: int = 8) -> TableEntry:
    """One cell: carried over when the full-Φ cell is impossible, else the class argument."""
    if base.verdict == "impossible":
        return TableEntry(cls.key, task.value, "impossible", base.score, base.chance,
                          f"carried over (the same verified pair: {base.source})", base.checks)
    arg = variant_argument(cls, task, variant, eps, eta)
    if arg is None:
        return TableEntry(cls.key, task.value, "open", float("nan"), CHANCE[task],
                          "no proof either way")
    if arg.pair is not None:
        checks = arg.pair.verify(cls)
        verdict = "impossible" if arg.pair.at_chance() and all(checks.values()) else "open"
        return TableEntry(cls.key, task.value, verdict, arg.pair.lower_bound(), CHANCE[task],
                          arg.pair.source, checks)
    assert arg.bound is not None and arg.decoder is not None
    sampled = sampled_score(cls, task, variant, arg.decoder, samples, eta)
    within = sampled >= arg.bound.score - 1e-9 if task is Task.AFC else sampled <= arg.bound.score + 1e-9
    beats = arg.bound.score > CHANCE[task] if task is Task.AFC else arg.bound.score < CHANCE[task] - 1e-6
    kind = "proven worst case" if arg.bound.tight else "proven bound"
    return TableEntry(cls.key, task.value, "reliable" if beats and within else "open",
                      arg.bound.score, CHANCE[task],
                      f"{kind} of {arg.decoder.name} ({arg.bound.proof})",
                      {"sampled decoder within the proven bound": bool(within)})


@dataclass
class VariantTable:
    """Rows = classes; for each variant, columns = tasks A–D."""

    base: ResultsTable
    entries: dict[str, list[TableEntry]] = field(default_factory=dict)
    eta: float = TABLE_ETA

    def entry(self, variant: Variant | str, class_key: str, task: Task | str) -> TableEntry:
        task = Task(task)
        for e in self.entries[Variant(variant).value]:
            if e.class_key == class_key and e.task == task.value:
                return e
        raise KeyError(f"no {variant} entry for class {class_key!r}, task {task.value}")

    def pattern(self, variant: Variant | str) -> dict[str, str]:
        return {key: "".join(self.entry(variant, key, t).verdict[0].upper().replace("O", "?")
                             for t in Task) for key in self.base.titles}

    def to_markdown(self) -> str:
        heads = [f"{v.value} ({t.value})" for v in Variant for t in Task]
        lines = ["| class | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
        for key, title in self.base.titles.items():
            cells = [self.entry(v, key, t).cell for v in Variant for t in Task]
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
        lines += ["", f"max-only: only (x_max, f(x_max)) is shown; approximate: any x̂ within "
                  f"η·R of the extremes, η = {self.eta:g}. Scores are normalized by each "
                  "member's own range; impossible cells of the full table carry over."]
        return "\n".join(lines)

    def to_latex(self) -> str:
        from fvtrust.io import latex_escape
        lines = [r"\begin{tabular}{l" + "c" * (2 * len(Task)) + "}", r"\toprule",
                 " & " + " & ".join(rf"\multicolumn{{{len(Task)}}}{{c}}{{{v.value}}}" for v in Variant)
                 + r" \\", "class & " + " & ".join(f"({t.value})" for _ in Variant for t in Task)
                 + r" \\", r"\midrule"]
        for key, title in self.base.titles.items():
            lines.append(latex_escape(title) + " & " + " & ".join(
                self.entry(v, key, t).latex_cell("?") for v in Variant for t in Task) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines)

    def to_json(self) -> str:
        def plain(e: TableEntry) -> dict[str, object]:
            row = asdict(e)
            row["score"] = None if np.isnan(e.score) else e.score  # open: no score (valid JSON)
            return row
        return json.dumps({"eta": self.eta, "titles": self.base.titles,
                           "entries": {v: [plain(e) for e in es] for v, es in self.entries.items()}},
                          indent=2)

    def write(self, out_dir: str | Path) -> list[Path]:
        from fvtrust.io import atomic_write_text

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "table_variants.json", out / "table_variants.md", out / "table_variants.tex"]
        for path, text in zip(paths, (self.to_json(), self.to_markdown(), self.to_latex()),
                              strict=True):
            atomic_write_text(path, text)
        return paths


def compute_variant_table(base: ResultsTable | None = None, classes: list[FunctionClass] | None = None,
                          eps: float = TABLE_EPS, eta: float = TABLE_ETA,
                          samples: int = 8) -> VariantTable:
    """The variant columns for every class of `base` (computed when not given)."""
    if not 0 <= eta < 0.5:
        raise ValueError(f"eta must lie in [0, 0.5), got {eta!r}")
    classes = all_classes() if classes is None else classes
    base = compute_table(classes, eps, samples) if base is None else base
    table = VariantTable(base, eta=eta)
    for variant in Variant:
        table.entries[variant.value] = [
            variant_entry(cls, task, variant, base.entry(cls.key, task), eps, eta, samples)
            for cls in classes for task in Task]
    return table


