"""``fvtrust appendix``: regenerate the paper-style appendix — theory table, machine-checked
proofs, and every experiment — from code in this repository.

Writes to ``out/``: ``appendix.tex`` (and ``appendix.pdf`` when pdflatex is installed),
``results.json`` (every number), ``MANIFEST.json`` (versions, seeds, device, wall time and
settings hash per part) and ``parts/<name>/`` (each part's JSON and figures as PNG and PDF).
A part already done with the same settings is reused unless ``force``; figures and tables
are drawn from the saved JSON and images, so they can be redrawn without recomputing.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fvtrust._version import __version__
from fvtrust.empirical.experiments.afc import AFCConfig, run_afc
from fvtrust.empirical.experiments.audit.bench import BenchConfig, bench_config, combined_summary, run_bench
from fvtrust.empirical.experiments.fooling import PAPER_TOP1, FoolingConfig, run_fooling
from fvtrust.empirical.experiments.sanity import SanityConfig, run_sanity
from fvtrust.empirical.experiments.silent import SilentConfig, run_silent
from fvtrust.empirical.nets.registry import resolve_device
from fvtrust.empirical.reports.afc import CONDITION_NAMES, HUMAN_LABEL, human_cells, human_difference
from fvtrust.empirical.reports.audit import write_bench
from fvtrust.empirical.reports.latex import (
    CHECK,
    CROSS,
    LATEX_HEAD,
    LATEX_TAIL,
    PDFNotBuilt,
    build_pdf,
    figure,
    natural_rows,
    tabular,
)
from fvtrust.empirical.reports.writers import (
    write_afc,
    write_fooling,
    write_proofs,
    write_sanity,
    write_silent,
)
from fvtrust.empirical.runs.sweep.afc import afc_reports
from fvtrust.empirical.runs.sweep.driver import run_sweep
from fvtrust.empirical.runs.sweep.plan import SweepPlan, check_plan
from fvtrust.empirical.runs.sweep.store import read_merge_source, read_sweep
from fvtrust.io import atomic_write_json, atomic_write_text, latex_escape
from fvtrust.outputs import OutputDir
from fvtrust.proofs import ProofReport, run_all
from fvtrust.proofs.base import kind_totals
from fvtrust.proofs.recheck import recheck_reports
from fvtrust.proofs.recheck import summary as recheck_summary
from fvtrust.stages import RUN_ONLY, StageDamaged, read_record, stage_key
from fvtrust.theory.table import compute_table
from fvtrust.theory.variants import compute_variant_table

#: Settings per scale. "quick" is the documented CPU scale (< 15 min on 2 cores, plus about
#: 45 min for the audit bench); "full" is where the 2-AFC comparisons decide (issue #22);
#: "tiny" exists for tests; "paper" is for a GPU and a user's ImageNet / weights. A part
#: whose group a scale leaves out (or whose config is None there) is not in that scale.
SCALES: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "theory": {"samples": 2},
        "fooling": {"steps": 8, "size": 64, "n_natural": 48, "units": [417],
                    "early_step": 4, "bank_settings": 4,
                    "bank_steps": 8, "robustness": False},
        "silent": {"steps": 8, "size": 64, "n_natural": 48, "units": [0, 1], "bank_settings": 4,
                   "bank_steps": 8},
        "sanity": {"steps": 4, "size": 64, "n_natural": 80, "min_per_class": 3,
                   "min_confidence": 0.2, "vis_per_class": 1},
        "afc": {"steps": 4, "size": 64, "n_references": 2, "n_trials": 3, "n_natural": 40, "units": [0, 1],
                "layers": ["_blocks.5", "_blocks.10"], "stride": 16},
        "afc_full": {"networks": {"efficientnet_lite0": ["_blocks.2", "_blocks.4"]}, "units_per_layer": 2,
                     "steps": 4, "size": 64, "n_references": 2, "n_trials": 3, "n_natural": 40},
        "audit": {"models": ["efficientnet_lite0", "efficientnet_lite1"],
                  "manipulations": ["silent_bias", "decoy_finetune"], "n_clean_logits": 10,
                  "n_clean_conv": 10, "alpha": 0.1, "n_boot": 50,
                  "zoo": {"logit_units": [1, 9], "conv_units": [3, 41], "n_natural": 200, "size": 32,
                          "steps": 6, "finetune_steps": 3},
                  "audit": {"steps": 6, "size": 32, "n_random": 16, "n_gradient": 8}},
    },
    "quick": {
        "theory": {"samples": 8},
        # quick scale is every config's defaults (fooling: 64 steps, silent: 96, 128 px)
        "fooling": {},
        "silent": {},
        "sanity": {},
        "afc": {},
        "audit": {},  # the bench's defaults: Lite0/1/2, every manipulation, 64 px
    },
    # quick for theory, sanity and the audit bench; the manipulations and the 2-AFC at the
    # scale where their intervals decide (issue #22): about 2 h 15 min of the 2-AFC per
    # network on 2 CPU cores, each network's part resumable and runnable on its own machine
    "full": {
        "theory": {"samples": 8},
        "fooling": {"units": list(range(7, 1000, 20)), "robustness": False},  # 50 units
        "silent": {"layer": "_blocks.15._project_conv", "units": list(range(320))},  # the layer
        "sanity": {},
        # FULL_AFC_LAYERS, the first units of each layer's seeded order: the sizes the power
        # analysis asked for (±3 pp; Lite0's run went to 70 in one layer, so 70 there), so
        # that the published tables (docs/results/afc_full_*/units.parquet, --merge) are these
        # parts' units; a larger number extends them, None is every unit
        "afc_full": {"units_per_layer": {"efficientnet_lite0": 70, "efficientnet_lite1": 68,
                                         "efficientnet_lite2": 62}},
        # the papers' other conditions: the same layers, 32 units per layer (of the same
        # seeded order, so a subset of the main parts' units); a larger units_per_layer extends it
        "afc_conditions": {"units_per_layer": 32},
        "audit": {},
    },
    "paper": {
        "theory": {"samples": 32},
        "fooling": {"steps": 512, "size": 224, "n_natural": 2000},
        "silent": {"steps": 512, "size": 224, "n_natural": 2000, "units": list(range(64))},
        "sanity": {"steps": 512, "size": 224, "n_natural": 5000, "vis_per_class": 4},
        "afc": {"steps": 512, "size": 224, "n_natural": 2000, "units": list(range(8)), "stride": 2,
                "layers": ["_blocks.2", "_blocks.5", "_blocks.8", "_blocks.10", "_blocks.12",
                           "_blocks.14", "_blocks.15"]},
        "audit": {"n_clean_logits": 256, "n_clean_conv": 256,
                  "zoo": {"size": 128, "steps": 256, "finetune_steps": 1000},
                  "audit": {"steps": 256, "size": 128, "n_seeds": 4}},
    },
}


@dataclass
class PartOutput:
    """What a part contributes: its numbers, figure stems (relative to out/) and LaTeX."""

    results: dict[str, Any]
    figures: list[str]
    latex: str


# -- parts --------------------------------------------------------------------------------

@dataclass(frozen=True)
class TheoryConfig:
    """The results table's settings: sampled members per class (cross-checks)."""

    samples: int = 8


@dataclass(frozen=True)
class ProofsConfig:
    """The proofs take no settings: every run checks every step."""


def part_theory(out: Path, config: TheoryConfig, device: str) -> PartOutput:
    table = compute_table(samples=config.samples, progress=True)
    table.write(out)
    variants = compute_variant_table(table, samples=config.samples)
    variants.write(out)
    text = ("Every entry is computed by \\texttt{fvtrust theory}. \\ding{55} impossible: a pair of "
            "class members with equal $\\Phi$, verified on the continuous cube (ReLU and ERM "
            "networks: MILP extremes, exact up to a certified gap "
            + (f"$\\eta_{{\\mathrm{{MILP}}}}/R \\le {table.max_eta_over_R:.1e}$"
               if table.max_eta_over_R is not None else "$\\eta_{\\mathrm{MILP}}$")
            + "; closed forms: z3), "
            "forces every decoder to the score shown. \\ding{51} reliable: the "
            "class decoder's proven worst case over every $\\Phi$ and member, cross-checked by the "
            "grid LP maximized over all placements of $\\Phi$. ? open: no proof either way. Scores "
            "are normalized errors, accuracies for 2-AFC; chance $=0.5$.\n\n"
            "\\begin{center}\\scriptsize\n" + table.to_latex() + "\n\\end{center}\n"
            "\n\\noindent The same classes under the $\\Phi$ variants: max-only "
            "($x_{\\max}$, $f(x_{\\max})$) and approximate extremes (any $\\hat x$ within "
            f"$\\eta R$ of the extremes, $\\eta = {variants.eta:g}$). Impossible cells carry over "
            "(the same pair); scores are normalized by each member's own range "
            "(\\texttt{theory/variants.py}; the proof ``$\\Phi$ variants'' below).\n\n"
            "\\begin{center}\\scriptsize\\setlength{\\tabcolsep}{2pt}\n" + variants.to_latex()
            + "\n\\end{center}\n")
    results = json.loads(table.to_json())
    results["variants"] = json.loads(variants.to_json())
    return PartOutput(results, [], text)


def part_proofs(out: Path, config: ProofsConfig, device: str) -> PartOutput:
    reports = run_all(progress=True)
    try:
        rechecks = recheck_reports(reports, progress=True)
    except ImportError:  # cvc5 is optional here: the part says the queries were not re-checked
        rechecks = None
    chunks = [_proof_kinds_text(reports, rechecks)]
    for r in reports:
        p = r.proof
        steps = "\n".join(f"  \\item[{CHECK if s.passed else CROSS}] [{i}, {r.kind_label(s)}] "
                          f"{latex_escape(s.name)} \\emph{{({latex_escape(s.detail)[:90]})}}"
                          for i, s in enumerate(r.steps, 1))
        chunks.append(
            f"\\subsection*{{{p.kind}: {latex_escape(p.title)}}}\n\\label{{proof:{p.key}}}\n"
            f"\\textbf{{Statement.}} {p.statement}\n\n\\textbf{{Proof.}} {p.proof}\n\n"
            f"\\noindent\\textbf{{Machine-checked steps}} ({len(r.steps)}, "
            f"{'all pass' if r.passed else 'FAILED'}; code: \\texttt{{{latex_escape(p.code)}}}, "
            f"test: \\texttt{{{latex_escape(p.test)}}}):\n"
            f"\\begin{{itemize}}\\footnotesize\n{steps}\n\\end{{itemize}}\n")
    write_proofs(reports, out, rechecks)
    results = json.loads((out / "proofs.json").read_text())
    return PartOutput(results, [], "\n".join(chunks))


def _proof_kinds_text(reports: list[ProofReport], rechecks: dict | None) -> str:
    """The paragraph that counts the steps by kind and says what cvc5 found."""
    counts = kind_totals(reports)
    n_queries = sum(len(r.queries) for r in reports)
    if rechecks is None:
        second = (f"The {n_queries} SMT queries z3 decided are written as SMT-LIB 2 files "
                  "(\\texttt{smt/}); cvc5 was not installed, so they were not re-checked.")
    else:
        c = recheck_summary(x for xs in rechecks.values() for x in xs)
        second = (f"Every one of the {n_queries} SMT queries z3 decided is written as an SMT-LIB 2 "
                  f"file (\\texttt{{smt/}}) and re-checked by a second solver, cvc5: {c['agree']} agree, "
                  f"{c['disagree']} disagree, {c['unknown']} undecided.")
    return (f"\\noindent The {sum(counts.values())} machine-checked steps are of three kinds, labelled "
            f"on each step: {counts['implementation']} check the implemented object (the code in "
            f"\\texttt{{theory/}} and what it returns), {counts['lemma']} are mathematical lemmas (z3 "
            f"on a formula written in the proof), and {counts['follows']} follow from earlier steps "
            f"(they are re-checked, but add no evidence of their own). {second}\n")


def part_fooling(out: Path, config: FoolingConfig, device: str) -> PartOutput:
    # The fooling parts share one gate (and render bank): trained once, in parts/fooling_shared.
    result, images = run_fooling(config, out, device=device, shared_dir=out.parent / "fooling_shared")
    data = result.to_json()
    write_fooling(data, images, out)
    mode, gate = config.mode, config.gate
    split = data["split"]
    rows = natural_rows(data["natural_heldout"], "held-out photos")
    rows += [["paper (ImageNet val, Inception-V1): top-1 original / fooled",
              f"{PAPER_TOP1['original']} / {PAPER_TOP1['fooled']} \\%"],
             ["gate: renders caught (this run's units, every step)",
              f"{100 * data['gate']['visualizations_caught']:.1f} \\%"],
             ["similarity to target, manipulated (pixel / observer)",
              f"{np.mean(data['similarity_manipulated']):.3f} / "
              f"{np.mean(data['observer_similarity_manipulated']):.3f}"],
             ["similarity to target, original (pixel / observer)",
              f"{np.mean(data['similarity_original']):.3f} / "
              f"{np.mean(data['observer_similarity_original']):.3f}"]]
    text = (f"Natural photos split by source: the gate trains on {split['train_sources']} "
            f"sources, sets its threshold on {split['threshold_sources']} others, and the "
            f"numbers below come from {split['held_out_sources']} sources it never saw.\n"
            + tabular(["quantity", "value"], rows))
    if data["gate_robustness"]:
        rob = [[latex_escape(r["setting"]), r["param"], f"{r['lr']}",
                "yes" if r["transforms"] else "no", str(r["size"]), str(r["steps"]),
                f"{100 * r['min_caught_from_step4']:.0f} \\%",
                f"{r['decoy_shown']}/{r['units']}"] for r in data["gate_robustness"]]
        text += ("Gate on render settings it never trained on (renders of the manipulated "
                 "network, fresh seeds): the lowest fraction caught over steps $\\geq 4$ (on "
                 "the image and as the network saw it), and for how many units the final "
                 "render shows the decoy.\n"
                 + tabular(["setting", "param", "lr", "transforms", "px", "steps",
                             "caught", "decoy shown"], rob))
    text += figure(f"parts/{out.name}/fooling_{mode}",
                    f"Fooling circuit, {mode} mode, {gate} gate: originals (top) and the "
                    "circuit's visualizations (middle) of the same units; bottom: the target.")
    return PartOutput(data, [f"parts/{out.name}/fooling_{mode}"], text)


def part_silent(out: Path, config: SilentConfig, device: str) -> PartOutput:
    # The gate lock uses the fooling parts' gate (same split and settings): trained once.
    result, images = run_silent(config, out, device=device, shared_dir=out.parent / "fooling_shared")
    data = result.to_json()
    write_silent(data, images, out)
    rows = natural_rows(data["natural_heldout"], "held-out photos")
    shifts = data["branch_active_natural"]
    along = data["gate_along_optimization"]
    rows += [["lock (margin)", f"{config.lock} ({config.margin:g})"],
             ["max $|$activation change$|$ (held-out photos)",
              f"{data['max_abs_activation_change']:.1e}"],
             ["held-out photos with a firing branch, per shift (the bias alone would let)",
              ", ".join(f"{latex_escape(k)}: {v['images_with_a_firing_branch']}/{v['images']} "
                        f"({v['images_firing_without_the_gate']})" for k, v in shifts.items())],
             ["gate catch on the silent network's renders, per step",
              "no gate" if along is None else
              ", ".join(f"{k[4:]}: {100 * v:.0f} \\%" for k, v in along.items())],
             ["units that collapse onto the target (observer)",
              f"{sum(data['collapsed'])}/{len(data['collapsed'])}"],
             ["observer similarity between units, before / after",
              f"{data['observer_pairwise_before']:.3f} / {data['observer_pairwise_after']:.3f}"],
             ["observer similarity to target, before / after",
              f"{np.mean(data['observer_to_target_before']):.3f} / "
              f"{np.mean(data['observer_to_target_after']):.3f}"]]
    text = (tabular(["quantity", "value"], rows)
            + figure("parts/silent/silent_units", "Silent units: the layer's visualizations "
                      "before (top) and after (middle) adding the branches; bottom: target."))
    return PartOutput(data, ["parts/silent/silent_units"], text)


def part_sanity(out: Path, config: SanityConfig, device: str) -> PartOutput:
    result = run_sanity(config, out, device=device)
    data = result.to_json()
    write_sanity(data, out)
    rows = [[latex_escape(layer), f"{m:.3f}", f"[{lo:.3f}, {hi:.3f}]"]
            for layer, m, (lo, hi) in zip(result.layers, result.score_mean, result.score_ci,
                                          strict=True)]
    text = (f"{len(result.classes)} classes with enough confident natural images "
            f"(of {result.n_candidate_classes} seen).\n"
            + figure("parts/sanity/sanity", "Sanity check: normalized similarity of class "
                      "visualizations to natural images of their class (1) versus other "
                      "classes (0), per layer, with 95\\,\\% bootstrap intervals over classes.")
            + tabular(["layer", "score", "95 \\% CI"], rows))
    return PartOutput(data, ["parts/sanity/sanity"], text)


def part_afc(out: Path, config: AFCConfig, device: str) -> PartOutput:
    # Both tasks share the synthetic references: rendered once, in parts/afc_shared.
    result = run_afc(config, out, device=device, shared_dir=out.parent / "afc_shared")
    data = result.to_json()
    write_afc(data, out)
    return PartOutput(data, [f"parts/{out.name}/afc_{config.task}"],
                      _afc_text(data, f"parts/{out.name}/afc_{config.task}"))


def _afc_text(data: dict[str, Any], figure_stem: str) -> str:
    """One task's LaTeX: the paired comparisons first, then each cell, then the figure."""
    task = data["config"]["task"]
    observers = data["observers"]

    def cell(est: dict[str, Any]) -> str:
        return (f"{100 * est['mean']:.1f} [{100 * est['ci'][0]:.1f}, {100 * est['ci'][1]:.1f}]")
    human = human_cells(data)
    rows = [[latex_escape(CONDITION_NAMES[task][c])] + [cell(data["overall"][o][c]) for o in observers]
            + [f"{100 * human[c]['value']:.1f}" if c in human else "--"] for c in data["conditions"]]
    est = data["overall"][observers[0]]["natural"]
    occ = data["occlusion"]
    occ_text = ("" if occ is None else
                f" Occlusions: a {occ['patch_px']}\\,px square (fill: its own mean colour) at every "
                f"position on a {occ['stride_px']}\\,px stride ({occ['positions']} positions); "
                f"{occ['n_occluded_images_scored']} occluded images scored at "
                f"{occ['occluded_images_per_second']:.0f} images/s.")
    paired_rows = [[latex_escape(e["label"]),
                    f"{100 * e['mean']:+.1f} [{100 * e['ci'][0]:+.1f}, {100 * e['ci'][1]:+.1f}]",
                    "yes" if e["decided"] else "no",
                    "--" if e["power"] is None else str(e["power"]["units_needed"]),
                    latex_escape(human_difference(data, e))]
                   for e in data["paired"]]
    trials = est["n_trials"] // max(1, est["n_units"])
    split = data["split"]
    source = (f"References and queries come from source-disjoint photos "
              f"({split['n_reference_images']} and {split['n_query_images']} images).")
    return (tabular(["comparison (a $-$ b)", "difference (pp) [95\\,\\% CI]", "CI excludes 0",
                     "units for $\\pm$3\\,pp", "human data (pp)"], paired_rows)
            + f"Paired comparisons (they lead): both cells on the same {est['n_units']} units "
              f"$\\times$ {trials} trials; CI from a hierarchical bootstrap of the per-trial "
              f"differences; units for $\\pm$3\\,pp from this run's variance components at "
              f"{trials} trials per unit. Human differences are the papers' (Inception-V1), beside "
              f"ours, not paired with them.\n\n"
            + tabular(["reference condition", *[latex_escape(o) for o in observers],
                      latex_escape(HUMAN_LABEL[task]) + " (human data)"], rows)
            + f"Accuracy in \\% with 95\\,\\% CIs from a hierarchical bootstrap (units, then "
              f"trials): {est['n_units']} units, {est['n_trials']} trials per cell. {source}"
              f"{occ_text} Human numbers are human data from the papers, not ours.\n"
            + figure(figure_stem,
                      f"Machine-observer 2-AFC, {task} task. Left: accuracy per reference "
                      f"condition and observer (human data from the papers as black bars). "
                      f"Right: accuracy over relative depth beside the papers' human data."))


#: The full scale's explained networks and layers: the last block of the four stages with
#: 40/48, 80/88, 112/120 and 192/208 channels (the same stage ends in each network; every
#: layer has >= 40 units, so a per-layer estimate can rest on >= 25).
FULL_AFC_LAYERS: dict[str, list[str]] = {
    "efficientnet_lite0": ["_blocks.4", "_blocks.7", "_blocks.10", "_blocks.14"],
    "efficientnet_lite1": ["_blocks.6", "_blocks.10", "_blocks.14", "_blocks.19"],
    "efficientnet_lite2": ["_blocks.6", "_blocks.10", "_blocks.14", "_blocks.19"],
}
#: where the full-scale parts keep their sweep store, under the appendix's folder: one store
#: for every network's part, so that parts run on different machines (a shared --out) fill it
AFC_STORE = "afc_store"
#: what the main full-scale parts measure: both tasks at the plan's settings
AFC_MAIN = ("afc_references", "afc_occlusion")
#: the papers' other conditions (Borowski et al.'s Max-K, Max-1, Min+Max-1; Zimmermann et al.'s
#: 30 and 50 % patches): parts of their own, with a store of their own (``AFC_CONDITIONS_STORE``)
#: so that the main store's units need not be measured again
AFC_CONDITIONS = ("afc_references_max", "afc_references_max1", "afc_references_minmax1",
                  "afc_occlusion_patch30", "afc_occlusion_patch50")
AFC_CONDITIONS_STORE = "afc_conditions_store"
#: where both kinds of part keep each unit's synthetic references (about 3.5 MB per unit), so
#: that a conditions part loads the main part's renders of its units instead of rendering again
AFC_RENDERS = "afc_renders"


@dataclass
class AFCFullConfig:
    """One explained network's two 2-AFC tasks through the sweep engine: every unit of its
    layers (or the first `units_per_layer` of each layer's seeded random order), K references
    per side, `n_trials` trials per unit, each unit measured on its own (sweep ``afc_*``)."""

    model: str = "efficientnet_lite0"
    layers: tuple[str, ...] = tuple(FULL_AFC_LAYERS["efficientnet_lite0"])
    units_per_layer: int | None = None  # None: every unit
    # the 2-AFC measurements (sweep names) and the store they go to, under the appendix folder;
    # left out of the key at their defaults, so parts saved before they existed keep theirs
    measure: tuple[str, ...] = field(default=AFC_MAIN,
                                     metadata={"omit_from_key": lambda c: tuple(c.measure) == AFC_MAIN})
    store: str = field(default=AFC_STORE, metadata=RUN_ONLY)
    renders: str | None = field(default=AFC_RENDERS, metadata=RUN_ONLY)  # None: not kept
    # stores or units.parquet tables measured elsewhere (``fvtrust appendix --merge``): their
    # units at these settings join the store instead of being measured again
    merge: tuple[str, ...] = field(default=(), metadata=RUN_ONLY)
    steps: int = 128
    size: int = 128
    n_references: int = 9
    n_trials: int = 20
    n_natural: int = 240
    seed: int = 0

    def plan(self) -> SweepPlan:
        return SweepPlan(models=[self.model], layers=list(self.layers), units="all",
                         measure=list(self.measure), steps=self.steps, size=self.size,
                         seed=self.seed, chunk=2, order="random", limit=self.units_per_layer,
                         n_references=self.n_references, n_natural=self.n_natural,
                         n_trials=self.n_trials)


def part_afc_full(out: Path, config: AFCFullConfig, device: str) -> PartOutput:
    # The sweep resumes: a part interrupted (or extended to more units) computes only the rest.
    root = out.parent.parent  # the appendix folder: the parts of every network share its stores
    plan = config.plan()
    if config.renders is not None:
        plan = replace(plan, renders=str(root / config.renders))
    store = root / config.store
    summary = run_sweep(plan, store, device=device, merge=config.merge)
    if summary.n_failed:
        raise RuntimeError(f"{summary.n_failed} units of {config.model} failed (see {store}); "
                           f"rerun the part to retry them")
    wanted = {(layer, u) for (_, layer), units in check_plan(plan).items() for u in units}
    table = read_sweep(store)
    mine = np.array([(la, int(u)) in wanted for la, u in zip(table["layer"], table["unit"], strict=True)],
                    dtype=bool)
    table = table[(table["model"] == config.model).to_numpy() & mine]
    worker_seconds = float(table["seconds"].sum())
    results: dict[str, Any] = {"sweep": {"n_units": len(table), "units_per_layer": {
        la: int((table["layer"] == la).sum()) for la in config.layers},
        "worker_seconds": worker_seconds, "seconds_per_unit": worker_seconds / max(1, len(table)),
        "this_run": asdict(summary)}}
    text, figures = "", []
    (gathered,) = afc_reports(table, plan).values()  # the trials stay in the store
    for measurement, data in gathered.items():
        key = measurement.removeprefix("afc_")
        write_afc(data, out, stem=measurement)
        results[key] = data
        stem = f"parts/{out.name}/{measurement}"
        figures.append(stem)
        text += (f"\\subsection*{{{latex_escape(MEASUREMENT_TITLES.get(measurement, key))}}}\n"
                 + _afc_text(data, stem))
    n = results["sweep"]["units_per_layer"]
    observer = next(iter(gathered.values()))["config"]["observer"]
    head = (f"{latex_escape(config.model)} explained, observer {latex_escape(observer)}"
            f" (a different network); layers "
            + ", ".join(f"\\texttt{{{latex_escape(la)}}} ({k} units)" for la, k in n.items())
            + f"; {config.steps} render steps at {config.size}\\,px; {worker_seconds / 3600:.1f} "
              f"worker-hours in all.\n\n")
    return PartOutput(results, figures, head + text)


@dataclass(frozen=True)
class Part:
    """One section of the appendix: its title, the scale group that holds its settings, the
    config it runs (from those settings; its fields key the saved part) and how it runs."""

    title: str
    group: str
    config: Callable[[dict[str, Any]], Any]
    run: Callable[[Path, Any, str], PartOutput]


def part_audit(out: Path, config: BenchConfig, device: str) -> PartOutput:
    result = run_bench(config, out, device=device)
    data = result.to_json()
    write_bench(data, result.rows, out)
    rows = [[latex_escape(e["entry"]), f"{e['n_succeeded']} of {e['n_units']}",
             f"{e['n_detected']} of {e['n_positive']}",
             f"{100 * e['tpr']:.0f}" if e["n_positive"] else "--"] for e in combined_summary(result)]
    clean = [[latex_escape(c["model"]), "no (fit)" if not c["held_out"] else "yes", str(c["n_clean"]),
              str(c["n_flagged"])] for c in result.clean]
    cost = [[latex_escape(e["model"]), latex_escape(e["name"]), f"{e['cost']['top1_agreement']:.3f}",
             f"{e['cost']['unit_correlation_min']:.2f}", f"{e['n_succeeded']}/{e['n_units']}",
             CHECK if e["cost"]["within_budget"] else CROSS] for e in data["entries"]]
    text = (f"Every detector and the combined verdict against the manipulation zoo. Thresholds are "
            f"calibrated on the clean units of {latex_escape(config.fit_model)} only "
            f"($\\alpha = {config.alpha:g}$; each unit standardized among the clean units of its "
            f"own layer) and applied unchanged to the held-out networks; "
            f"natural images come from photo sources no manipulation was built on. Positives are "
            f"the units whose manipulation succeeded (the observer finds the new visualization "
            f"more like the decoy than like the original). The per-unit sanity score is reported "
            f"but not part of the verdict (its clean level moves between networks).\n"
            + tabular(["manipulation", "succeeded", "flagged (held-out nets)", "TPR \\%"], rows)
            + tabular(["network", "held out", "clean units", "flagged"], clean)
            + tabular(["network", "manipulation", "top-1 agreement", "unit $r$ (min)", "succeeded",
                       "within budget"], cost)
            + figure("parts/audit/audit_bench_roc", "ROC of the combined statistic per manipulation "
                     "on the held-out networks against their clean units; the dotted line is the "
                     "false-flag rate of the calibrated threshold."))
    return PartOutput(data, ["parts/audit/audit_bench_roc"], text)


def _fooling(mode: str, gate: str = "features") -> Callable[[dict[str, Any]], FoolingConfig]:
    def config(settings: dict[str, Any]) -> FoolingConfig:
        # The robustness table belongs to the decisive test (permutation mode, default gate).
        robust = settings.get("robustness", True) and mode == "permute" and gate == "features"
        return FoolingConfig(mode=mode, gate=gate, **{**settings, "robustness": robust})
    return config


def _afc(task: str) -> Callable[[dict[str, Any]], AFCConfig]:
    return lambda settings: AFCConfig(task=task, **settings)


def _afc_full(model: str, conditions: bool = False) -> Callable[[dict[str, Any]], AFCFullConfig | None]:
    def config(settings: dict[str, Any]) -> AFCFullConfig | None:
        networks = settings.get("networks", FULL_AFC_LAYERS)
        if model not in networks:
            return None  # this network is not part of the scale
        rest = {k: v for k, v in settings.items() if k != "networks"}
        if isinstance(rest.get("units_per_layer"), dict):  # a size per network
            rest["units_per_layer"] = rest["units_per_layer"].get(model)
        if conditions:
            rest |= {"measure": AFC_CONDITIONS, "store": AFC_CONDITIONS_STORE}
        return AFCFullConfig(model=model, layers=tuple(networks[model]), **rest)
    return config


#: the subsection title of each 2-AFC measurement in a full-scale part
MEASUREMENT_TITLES = {
    "afc_references": "references task (Min+Max-K)", "afc_occlusion": "occlusion task (40 % patch)",
    "afc_references_max": "references task, Max-K", "afc_references_max1": "references task, Max-1",
    "afc_references_minmax1": "references task, Min+Max-1",
    "afc_occlusion_patch30": "occlusion task, 30 % patch",
    "afc_occlusion_patch50": "occlusion task, 50 % patch"}


PARTS: dict[str, Part] = {
    "theory": Part("Results table", "theory", lambda s: TheoryConfig(**s), part_theory),
    "proofs": Part("Theorems and machine-checked proofs", "theory", lambda s: ProofsConfig(),
                   part_proofs),
    "fooling_permute": Part("Fooling circuit: permuted visualizations", "fooling",
                            _fooling("permute"), part_fooling),
    "fooling_target": Part("Fooling circuit: target image", "fooling", _fooling("target"),
                           part_fooling),
    "fooling_classifier": Part("Fooling circuit: the paper's trained classifier gate", "fooling",
                               _fooling("target", gate="classifier"), part_fooling),
    "silent": Part("Silent units", "silent", lambda s: SilentConfig(**s), part_silent),
    "sanity": Part("Sanity check", "sanity", lambda s: SanityConfig(**s), part_sanity),
    "afc_references": Part("2-AFC with references (Borowski et al.)", "afc", _afc("references"),
                           part_afc),
    "afc_occlusion": Part("2-AFC with occlusions (Zimmermann et al.)", "afc", _afc("occlusion"),
                          part_afc),
    "audit": Part("Auditing units: detectors against planted manipulations", "audit", bench_config,
                  part_audit),
    **{f"afc_full_{net[-5:]}": Part(f"2-AFC at full scale: {net}", "afc_full", _afc_full(net), part_afc_full)
       for net in FULL_AFC_LAYERS},
    **{f"afc_conditions_{net[-5:]}": Part(f"2-AFC, the papers' other conditions, at full scale: {net}",
                                          "afc_conditions", _afc_full(net, conditions=True), part_afc_full)
       for net in FULL_AFC_LAYERS},
}


def scale_configs(scale: str) -> dict[str, Any]:
    """The parts of `scale`, in appendix order, each with the config it runs."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; known: {', '.join(SCALES)}")
    out = {}
    for name, part in PARTS.items():
        settings = SCALES[scale].get(part.group)
        config = None if settings is None else part.config(settings)
        if config is not None:
            out[name] = config
    return out


def build_appendix(out_dir: str | Path = "appendix", scale: str = "quick", device: str = "cpu",
                   force: bool = False, parts: list[str] | None = None,
                   pdf: bool | str = True, merge: Sequence[str | Path] = ()) -> Path:
    """Run (or reuse) the parts, then write appendix.tex, results.json and MANIFEST.json.

    With `parts`, only those run; other parts already done at this scale are still included.
    ``pdf``: True tries pdflatex and says why when it cannot; ``"require"`` raises
    :class:`PDFNotBuilt` instead; False writes the .tex only. `merge`: sweep stores or their
    ``units.parquet`` (the published ``docs/results/afc_full_*/units.parquet``) whose units the
    full-scale 2-AFC parts take instead of measuring them again.
    """
    configs = scale_configs(scale)
    names = parts or list(configs)
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        raise ValueError(f"unknown appendix parts {unknown}; known: {', '.join(PARTS)}")
    outside = [n for n in names if n not in configs]
    if outside:
        raise ValueError(f"appendix parts {outside} are not in the {scale!r} scale; its parts: "
                         f"{', '.join(configs)}")
    if merge:
        takers = [n for n in names if isinstance(configs[n], AFCFullConfig)]
        if not takers:
            raise ValueError(f"--merge is for the full-scale 2-AFC parts (afc_full_*, "
                             f"afc_conditions_*), and none is asked for: {', '.join(names)}")
        for path in merge:  # every source is read before anything is written
            read_merge_source(path)
        paths = tuple(str(Path(path).resolve()) for path in merge)
        configs |= {n: replace(configs[n], merge=paths) for n in takers}
    out = OutputDir(out_dir, "appendix").open()  # refuses a file, a read-only or a foreign folder
    out = out.root
    manifest: dict[str, Any] = {
        "scale": scale, "device": device, "seed": 0,
        "versions": {"fvtrust": __version__, "python": platform.python_version(),
                     "torch": torch.__version__, "numpy": np.__version__},
        "parts": {}}
    results: dict[str, Any] = {}
    sections = []
    for name, config in configs.items():
        part = PARTS[name]
        part_dir = out / "parts" / name
        key = stage_key(config, part=name)
        record = _read_part(part_dir / "part.json")
        done = record is not None and record.get("hash") == key
        if name not in names and not done:
            continue  # not asked for, and no result at these settings to include
        start = time.perf_counter()
        if done and (name not in names or not force):
            reused = True
        else:
            position = [n for n in PARTS if n in names].index(name) + 1
            print(f"part {position}/{len(names)} {name}: {part.title}", flush=True)
            if force:  # recompute the part's own saved stages (renders, gates) too: only
                # the stage files this package wrote there (listed in the identity) go
                owner = OutputDir.around(out)
                stale = [rel for rel in owner.files() if (out / rel).parent == part_dir / ".stages"]
                owner.remove(stale)
            output = part.run(part_dir, config, device)
            # Theory and proofs never touch a network: they ran on the CPU whatever --device said.
            used = "cpu" if part.group == "theory" else str(resolve_device(device))
            record = {"hash": key, "results": output.results, "figures": output.figures,
                      "latex": output.latex, "seconds": round(time.perf_counter() - start, 2),
                      "device": used}
            atomic_write_json(part_dir / "part.json", record)
            reused = False
        missing = [f for f in record["figures"] if not (out / f"{f}.pdf").exists()]
        if missing:
            raise RuntimeError(f"part {name} references missing figures {missing}")
        manifest["parts"][name] = {"hash": key, "reused": reused, "settings": asdict(config),
                                   "seconds": record.get("seconds"),
                                   "device": record.get("device", device)}
        results[name] = record["results"]
        sections.append(f"\\section{{{latex_escape(part.title)}}}\n{record['latex']}")
    atomic_write_json(out / "results.json", results)
    atomic_write_json(out / "MANIFEST.json", manifest)
    tex = out / "appendix.tex"
    atomic_write_text(tex, LATEX_HEAD.replace("SCALE", scale) + "\n".join(sections) + LATEX_TAIL)
    if pdf:
        built = build_pdf(tex)
        if built is None and pdf == "require":
            raise PDFNotBuilt(f"no PDF was built from {tex} (see the message above)")
    return tex


def _read_part(saved: Path) -> dict[str, Any] | None:
    """A part's saved record, or None when there is none or it is damaged (then recomputed
    when asked for, left out otherwise, and said so)."""
    try:
        return read_record(saved, ("hash", "results", "figures", "latex"))
    except StageDamaged:
        print(f"{saved} is damaged: the part is recomputed when asked for (--parts {saved.parent.name})")
        return None






