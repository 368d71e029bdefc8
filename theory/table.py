"""The results table: which function classes let a decoder beat chance, task by task.

Every entry is computed, never looked up. For class F and task T:

* if F yields a witness pair for T (a closed-form construction, or for polyhedral classes
  the exact grid LP), the pair is verified (both members in F, equal Φ) and its bound is
  the entry: no decoder can do better, so "impossible" when the bound reaches chance
  (within ε/R for A, B, D; exactly 1/2 for C);
* otherwise the entry is the class's *proven* worst case of its decoder over every Φ and
  every member (:meth:`FunctionClass.proven_worst_case`): "reliable" when it beats chance.
  The decoder's worst score on sampled members only cross-checks the bound; a task without
  a proof stays "open", whatever the samples say.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fvtrust.theory.classes import all_classes
from fvtrust.theory.classes.base import FunctionClass
from fvtrust.theory.decoders import standard_decoders
from fvtrust.theory.tasks import (
    CHANCE,
    Task,
    Witness,
    afc_accuracy,
    local_points,
    sup_error,
)

#: Default ε of the no-go constructions in the table.
TABLE_EPS = 1e-3


@dataclass(frozen=True)
class TableEntry:
    """One cell: the verdict and the measured worst-case score behind it."""

    class_key: str
    task: str
    verdict: str  # "impossible" | "reliable" | "open"
    score: float  # normalized error (A, B, D) or accuracy (C)
    chance: float
    source: str   # "construction", "LP", or "decoder: <name>"
    checks: dict[str, bool] = field(default_factory=dict)
    #: For a network's pair: the MILP's certified optimality gap over the range, η/R (its
    #: extremes are exact up to η: max f ∈ [incumbent, incumbent + η]); None elsewhere.
    eta_over_R: float | None = None

    @property
    def cell(self) -> str:
        if self.verdict == "open":
            return "? open"  # no proof either way: a sampled score would read as a bound
        mark = {"impossible": "✗", "reliable": "✓"}[self.verdict]
        return f"{mark} {self.score:.3f}"

    def latex_cell(self, open_text: str = "?~open") -> str:
        """The cell in LaTeX (pifont marks); `open_text` where no proof either way."""
        if self.verdict == "open":
            return open_text
        mark = {"impossible": r"\ding{55}", "reliable": r"\ding{51}"}[self.verdict]
        return f"{mark}~{self.score:.3f}"


@dataclass
class ResultsTable:
    """Rows = classes, columns = tasks A–D."""

    entries: list[TableEntry]
    titles: dict[str, str]
    eps: float

    def entry(self, class_key: str, task: Task | str) -> TableEntry:
        task = Task(task)
        for e in self.entries:
            if e.class_key == class_key and e.task == task.value:
                return e
        raise KeyError(f"no entry for class {class_key!r}, task {task.value}")

    def pattern(self) -> dict[str, str]:
        """class → verdict letters, e.g. 'IIIR' (I impossible, R reliable, ? open), A–D."""
        out: dict[str, str] = {}
        for key in self.titles:
            out[key] = "".join(self.entry(key, t).verdict[0].upper().replace("O", "?")
                               for t in Task)
        return out

    @property
    def max_eta_over_R(self) -> float | None:
        """The largest certified MILP gap η/R of any network cell (None without one)."""
        etas = [e.eta_over_R for e in self.entries if e.eta_over_R is not None]
        return max(etas) if etas else None

    def to_json(self) -> str:
        return json.dumps({"eps": self.eps, "titles": self.titles,
                           "max_eta_over_R": self.max_eta_over_R,
                           "entries": [asdict(e) for e in self.entries]}, indent=2)

    def to_markdown(self) -> str:
        head = "| class | " + " | ".join(f"({t.value}) {t.title}" for t in Task) + " |"
        lines = [head, "|---" * (len(Task) + 1) + "|"]
        for key, title in self.titles.items():
            cells = " | ".join(self.entry(key, t).cell for t in Task)
            lines.append(f"| {title} | {cells} |")
        lines.append("")
        lines.append("✗ impossible (a verified pair forces every decoder to this worst-case "
                     "normalized error, or accuracy for C), ✓ reliable (score = the class "
                     "decoder's proven worst case over every Φ and member), ? open (no proof "
                     f"either way). Chance: 0.5. ε = {self.eps:g}."
                     + (f" Network extremes (MILP) are exact up to a certified η/R ≤ "
                        f"{self.max_eta_over_R:.1e}." if self.max_eta_over_R is not None else ""))
        return "\n".join(lines)

    def to_latex(self) -> str:
        from fvtrust.io import latex_escape

        lines = [r"\begin{tabular}{l" + "c" * len(Task) + "}", r"\toprule",
                 "class & " + " & ".join(f"({t.value}) {latex_escape(t.title)}" for t in Task)
                 + r" \\", r"\midrule"]
        for key, title in self.titles.items():
            lines.append(latex_escape(title) + " & "
                         + " & ".join(self.entry(key, t).latex_cell() for t in Task) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines)

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write table.json, table.md and table.tex atomically; return the paths."""
        from fvtrust.io import atomic_write_text

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "table.json", out / "table.md", out / "table.tex"]
        for path, text in zip(paths, (self.to_json(), self.to_markdown(), self.to_latex()),
                              strict=True):
            atomic_write_text(path, text)
        return paths


def verify_witness(cls: FunctionClass, w: Witness) -> dict[str, bool]:
    """Both members in the class, equal Φ, and every standard decoder held to the bound."""
    bound = w.lower_bound()
    decoders_held = all(
        (w.decoder_score(dec) <= bound + 1e-9) if w.task is Task.AFC
        else (w.decoder_score(dec) >= bound - 1e-9)
        for dec in standard_decoders())
    return {
        "f_plus in class": bool(cls.membership(w.f_plus)),
        "f_minus in class": bool(cls.membership(w.f_minus)),
        "same visualization": (cls.shares_visualization(w.f_plus, w.phi)
                               and cls.shares_visualization(w.f_minus, w.phi)),
        "standard decoders held to the bound": decoders_held,
    }


def decoder_score(cls: FunctionClass, task: Task, samples: int) -> tuple[float, str]:
    """The class decoder's worst score over `samples` members and all of the task's queries."""
    dec = cls.decoder()
    if dec is None:
        return float("nan"), "no decoder"
    pts = cls.grid.points
    worst = 1.0 if task is Task.AFC else 0.0
    for seed in range(samples):
        f = cls.sample(seed)
        phi = cls.visualize(f)
        if task is Task.AFC:
            i, j = np.triu_indices(len(pts), k=1)
            score = afc_accuracy(dec, f, phi, np.stack([pts[i], pts[j]], axis=1))
            worst = min(worst, score)
        elif task is Task.LOCAL:
            near = local_points(pts, phi)
            worst = max(worst, sup_error(dec, f, phi, near)) if len(near) else worst
        else:
            worst = max(worst, sup_error(dec, f, phi, pts))
    return worst, f"decoder: {dec.name}"


def compute_entry(cls: FunctionClass, task: Task, eps: float = TABLE_EPS,
                  samples: int = 8) -> TableEntry:
    """One cell of the table, computed (see the module docstring)."""
    w = cls.witness(task, eps)
    if w is not None:
        checks = verify_witness(cls, w)
        bound = w.lower_bound()
        at_chance = bound <= 0.5 if task is Task.AFC else bound >= 0.5 - eps / w.R - 1e-9
        verdict = "impossible" if at_chance and all(checks.values()) else "open"
        # Where the pair's claims were verified: on the continuous cube (MILP for networks,
        # z3 for closed forms) or exactly on the class grid (LP optima are grid functions).
        source = w.source
        eta_over_r = None
        if w.phi.method == "milp":
            eta_over_r = float(w.phi.eta / w.R)
            source += f" (on the cube: MILP, certified eta/R = {eta_over_r:.1e})"
        elif w.f_plus.expression is not None and w.f_minus.expression is not None:
            source += " (on the cube: z3)"
        else:
            source += f" (exact on the {cls.grid.n}-point-per-axis grid)"
        return TableEntry(cls.key, task.value, verdict, bound, CHANCE[task], source, checks,
                          eta_over_r)
    # Reliable only by a proven bound over every Φ and member; samples merely cross-check it.
    proven = cls.proven_worst_case(task)
    sampled, source = decoder_score(cls, task, samples)
    if proven is None:
        return TableEntry(cls.key, task.value, "open", sampled, CHANCE[task],
                          f"{source} on {samples} samples (no proven bound)")
    within = (sampled >= proven.score - 1e-9) if task is Task.AFC else (sampled <= proven.score + 1e-9)
    beats = proven.score > CHANCE[task] if task is Task.AFC else proven.score < CHANCE[task] - 1e-6
    verdict = "reliable" if beats and (within or np.isnan(sampled)) else "open"
    kind = "proven worst case" if proven.tight else "proven bound"
    return TableEntry(cls.key, task.value, verdict, proven.score, CHANCE[task],
                      f"{kind} ({proven.proof})",
                      {"sampled decoder within the proven bound": bool(within or np.isnan(sampled))})


def compute_table(classes: list[FunctionClass] | None = None, eps: float = TABLE_EPS,
                  samples: int = 8, progress: bool = False) -> ResultsTable:
    """The full table over the registered classes (or `classes`)."""
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1 (members drawn to cross-check each "
                         f"proven bound), got {samples!r}")
    classes = all_classes() if classes is None else classes
    entries: list[TableEntry] = []
    iterator = classes
    if progress:
        from tqdm import tqdm

        iterator = tqdm(classes, desc="theory table", unit="class")
    for cls in iterator:
        entries.extend(compute_entry(cls, task, eps, samples) for task in Task)
    return ResultsTable(entries, {c.key: c.title for c in classes}, eps)
