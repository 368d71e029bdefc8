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
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fvtrust.empirical.checkpoint import config_hash
from fvtrust.theory.io import atomic_write_json, atomic_write_text, latex_escape

#: Settings per scale. "quick" is the documented CPU scale (< 15 min on 2 cores);
#: "tiny" exists for tests; "paper" is for a GPU and a user's ImageNet / weights.
SCALES: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "theory": {"samples": 2},
        "fooling": {"steps": 8, "size": 64, "n_natural": 48, "units": [417],
                    "snapshots": (1, 2, 4, 8), "early_step": 4, "bank_settings": 4,
                    "bank_steps": 8, "robustness": False},
        "silent": {"steps": 8, "size": 64, "n_natural": 48, "units": [0, 1], "bank_settings": 4,
                   "bank_steps": 8},
        "sanity": {"steps": 4, "size": 64, "n_natural": 80, "min_per_class": 3,
                   "min_confidence": 0.2, "vis_per_class": 1},
        "afc": {"steps": 4, "size": 64, "k": 2, "n_tasks": 3, "pool": 40, "units": [0, 1],
                "layers": ["_blocks.5", "_blocks.10"], "stride": 16},
    },
    "quick": {
        "theory": {"samples": 8},
        "fooling": {"steps": 64, "size": 128, "snapshots": (1, 2, 4, 8, 16, 32, 64)},
        "silent": {"steps": 96, "size": 128},
        "sanity": {},
        "afc": {},
    },
    "paper": {
        "theory": {"samples": 32},
        "fooling": {"steps": 512, "size": 224, "n_natural": 2000,
                    "snapshots": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)},
        "silent": {"steps": 512, "size": 224, "n_natural": 2000, "units": list(range(64))},
        "sanity": {"steps": 512, "size": 224, "n_natural": 5000, "vis_per_class": 4},
        "afc": {"steps": 512, "size": 224, "pool": 2000, "units": list(range(8)), "stride": 2,
                "layers": ["_blocks.2", "_blocks.5", "_blocks.8", "_blocks.10", "_blocks.12",
                           "_blocks.14", "_blocks.15"]},
    },
}


@dataclass
class PartOutput:
    """What a part contributes: its numbers, figure stems (relative to out/) and LaTeX."""

    results: dict[str, Any]
    figures: list[str]
    latex: str


CHECK, CROSS = r"\ding{51}", r"\ding{55}"


tex_escape = latex_escape


def _figure(stem: str, caption: str) -> str:
    # Bounded in both directions: a one-unit, three-row figure is tall and would be "too large".
    return ("\\begin{figure}[h]\n\\centering\n"
            f"\\includegraphics[width=0.95\\linewidth,height=0.7\\textheight,keepaspectratio]{{{stem}.pdf}}\n"
            f"\\caption{{{caption}}}\n\\end{{figure}}\n")


def _tabular(header: list[str], rows: list[list[str]]) -> str:
    lines = ["\\begin{center}\\small", "\\begin{tabular}{" + "l" * len(header) + "}",
             "\\toprule", " & ".join(header) + r" \\", "\\midrule"]
    lines += [" & ".join(r) + r" \\" for r in rows]
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{center}"]
    return "\n".join(lines) + "\n"


# -- parts --------------------------------------------------------------------------------

def part_theory(out: Path, settings: dict[str, Any], device: str) -> PartOutput:
    from fvtrust.theory.table import compute_table
    from fvtrust.theory.variants import compute_variant_table

    table = compute_table(samples=settings["samples"], progress=True)
    table.write(out)
    variants = compute_variant_table(table, samples=settings["samples"])
    variants.write(out)
    text = ("Every entry is computed by \\texttt{fvtrust theory}. \\ding{55} impossible: a pair of "
            "class members with equal $\\Phi$, verified on the continuous cube (ReLU and ERM "
            "networks: exact MILP extremes with a certified gap $\\eta$; closed forms: z3), "
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


def part_proofs(out: Path, settings: dict[str, Any], device: str) -> PartOutput:
    from fvtrust.proofs import run_all

    reports = run_all(progress=True)
    chunks = []
    for r in reports:
        p = r.proof
        steps = "\n".join(f"  \\item[{CHECK if s.passed else CROSS}] {tex_escape(s.name)} "
                          f"\\emph{{({tex_escape(s.detail)[:90]})}}" for s in r.steps)
        chunks.append(
            f"\\subsection*{{{p.kind}: {tex_escape(p.title)}}}\n\\label{{proof:{p.key}}}\n"
            f"\\textbf{{Statement.}} {p.statement}\n\n\\textbf{{Proof.}} {p.proof}\n\n"
            f"\\noindent\\textbf{{Machine-checked steps}} ({len(r.steps)}, "
            f"{'all pass' if r.passed else 'FAILED'}; code: \\texttt{{{tex_escape(p.code)}}}, "
            f"test: \\texttt{{{tex_escape(p.test)}}}):\n"
            f"\\begin{{itemize}}\\footnotesize\n{steps}\n\\end{{itemize}}\n")
    results = {"proofs": [r.to_dict() for r in reports],
               "passed": sum(r.passed for r in reports), "total": len(reports)}
    atomic_write_json(out / "proofs.json", results)
    return PartOutput(results, [], "\n".join(chunks))


def natural_rows(nat: dict[str, Any], what: str) -> list[list[str]]:
    """Table rows for a :class:`~empirical.verify.NaturalBehaviour` (with its counts)."""
    rows = [[f"{what}: images (sources)", f"{nat['n_images']} ({nat['n_sources']})"],
            [f"{what}: top-1 identical", f"{100 * nat['top1_identical']:.2f} \\% "
                                         f"({nat['n_top1_changed']} changed)"],
            [f"{what}: top-5 identical", f"{100 * nat['top5_identical']:.2f} \\% "
                                         f"({nat['n_top5_changed']} changed)"],
            [f"{what}: max logit change", f"{nat['max_abs_logit_change']:.2e}"]]
    if nat.get("gate_false_alarms") is not None:
        rows.append([f"{what}: gate false alarms",
                     f"{100 * nat['gate_false_alarms']:.2f} \\% ({nat['n_gate_flagged']} flagged)"])
    return rows


def _fooling(mode: str, gate: str = "features") -> Callable[[Path, dict[str, Any], str], PartOutput]:
    def run(out: Path, settings: dict[str, Any], device: str) -> PartOutput:
        from fvtrust.empirical.figures import image_grid
        from fvtrust.empirical.fooling_experiment import PAPER_TOP1, FoolingConfig, run_fooling

        # The robustness table belongs to the decisive test (permutation mode, default gate).
        settings = {**settings, "robustness": settings.get("robustness", True)
                    and mode == "permute" and gate == "features"}
        config = FoolingConfig(mode=mode, gate=gate, **settings)
        result, images = run_fooling(config, out, device=device,
                                     shared_dir=out.parent / "fooling_shared")
        data = result.to_json()
        atomic_write_json(out / f"fooling_{mode}.json", data)
        image_grid({"original": images["original"], "fooling circuit": images["manipulated"],
                    "target": images["target"]}, [f"unit {u}" for u in config.units],
                   f"Fooling circuit ({mode}, {gate} gate) after {config.steps} steps",
                   out / f"fooling_{mode}")
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
                + _tabular(["quantity", "value"], rows))
        if data["gate_robustness"]:
            rob = [[tex_escape(r["setting"]), r["param"], f"{r['lr']}",
                    "yes" if r["transforms"] else "no", str(r["size"]), str(r["steps"]),
                    f"{100 * r['min_caught_from_step4']:.0f} \\%",
                    f"{r['decoy_shown']}/{r['units']}"] for r in data["gate_robustness"]]
            text += ("Gate on render settings it never trained on (renders of the manipulated "
                     "network, fresh seeds): the lowest fraction caught over steps $\\geq 4$ (on "
                     "the image and as the network saw it), and for how many units the final "
                     "render shows the decoy.\n"
                     + _tabular(["setting", "param", "lr", "transforms", "px", "steps",
                                 "caught", "decoy shown"], rob))
        text += _figure(f"parts/{out.name}/fooling_{mode}",
                        f"Fooling circuit, {mode} mode, {gate} gate: originals (top) and the "
                        "circuit's visualizations (middle) of the same units; bottom: the target.")
        return PartOutput(data, [f"parts/{out.name}/fooling_{mode}"], text)
    return run


def part_silent(out: Path, settings: dict[str, Any], device: str) -> PartOutput:
    from fvtrust.empirical.figures import image_grid
    from fvtrust.empirical.silent_experiment import SilentConfig, run_silent

    config = SilentConfig(**settings)
    # The gate lock uses the fooling parts' gate (same split and settings): trained once.
    result, images = run_silent(config, out, device=device,
                                shared_dir=out.parent / "fooling_shared")
    data = result.to_json()
    atomic_write_json(out / "silent_units.json", data)
    image_grid({"original": images["original"], "silent units": images["silent units"],
                "target": images["target"]}, [f"unit {u}" for u in config.units],
               f"Silent units in {config.layer} after {config.steps} steps", out / "silent_units")
    rows = natural_rows(data["natural_heldout"], "held-out photos")
    shifts = data["branch_active_natural"]
    along = data["gate_along_optimization"]
    rows += [["lock (margin)", f"{config.lock} ({config.margin:g})"],
             ["max $|$activation change$|$ (held-out photos)",
              f"{data['max_abs_activation_change']:.1e}"],
             ["held-out photos with a firing branch, per shift (the bias alone would let)",
              ", ".join(f"{tex_escape(k)}: {v['images_with_a_firing_branch']}/{v['images']} "
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
    text = (_tabular(["quantity", "value"], rows)
            + _figure("parts/silent/silent_units", "Silent units: the layer's visualizations "
                      "before (top) and after (middle) adding the branches; bottom: target."))
    return PartOutput(data, ["parts/silent/silent_units"], text)


def part_sanity(out: Path, settings: dict[str, Any], device: str) -> PartOutput:
    from fvtrust.empirical.sanity import SanityConfig, plot_sanity, run_sanity

    result = run_sanity(SanityConfig(**settings), out, device=device)
    data = result.to_json()
    atomic_write_json(out / "sanity.json", data)
    plot_sanity(result, out / "sanity")
    rows = [[tex_escape(layer), f"{m:.3f}", f"[{lo:.3f}, {hi:.3f}]"]
            for layer, m, (lo, hi) in zip(result.layers, result.score_mean, result.score_ci,
                                          strict=True)]
    text = (f"{len(result.classes)} classes with enough confident natural images "
            f"(of {result.n_candidate_classes} seen).\n"
            + _figure("parts/sanity/sanity", "Sanity check: normalized similarity of class "
                      "visualizations to natural images of their class (1) versus other "
                      "classes (0), per layer, with 95\\,\\% bootstrap intervals over classes.")
            + _tabular(["layer", "score", "95 \\% CI"], rows))
    return PartOutput(data, ["parts/sanity/sanity"], text)


def _afc(task: str) -> Callable[[Path, dict[str, Any], str], PartOutput]:
    def run(out: Path, settings: dict[str, Any], device: str) -> PartOutput:
        from fvtrust.empirical.afc_figures import CONDITION_NAMES, HUMAN_LABEL, plot_afc
        from fvtrust.empirical.psychophysics import AFCConfig, run_afc

        # Both tasks share the synthetic references: rendered once, in parts/afc_shared.
        result = run_afc(AFCConfig(task=task, **settings), out, device=device,
                         shared_dir=out.parent / "afc_shared")
        data = result.to_json()
        atomic_write_json(out / f"afc_{task}.json", data)
        plot_afc(data, out / f"afc_{task}")
        observers = data["observers"]

        def cell(est: dict[str, Any]) -> str:
            return (f"{100 * est['mean']:.1f} [{100 * est['ci'][0]:.1f}, {100 * est['ci'][1]:.1f}]")
        rows = [[tex_escape(CONDITION_NAMES[task][c])] + [cell(data["overall"][o][c]) for o in observers]
                + [(f"{100 * data['human']['overall'][c]['value']:.1f}"
                    if c in data["human"]["overall"] else "--")] for c in data["conditions"]]
        est = data["overall"][observers[0]]["natural"]
        occ = data["occlusion"]
        occ_text = ("" if occ is None else
                    f" Occlusions: a {occ['patch_px']}\\,px square (fill: its own mean colour) at every "
                    f"position on a {occ['stride_px']}\\,px stride ({occ['positions']} positions); "
                    f"{occ['n_occluded_images_scored']} occluded images scored at "
                    f"{occ['occluded_images_per_second']:.0f} images/s.")
        text = (_tabular(["reference condition", *[tex_escape(o) for o in observers],
                          tex_escape(HUMAN_LABEL[task]) + " (human data)"], rows)
                + f"Accuracy in \\% with 95\\,\\% CIs from a hierarchical bootstrap (units, then "
                  f"trials): {est['n_units']} units, {est['n_trials']} trials per cell. References "
                  f"and queries come from source-disjoint photos "
                  f"({data['split']['n_reference_images']} and {data['split']['n_query_images']} "
                  f"images).{occ_text} Human numbers are human data from the papers, not ours.\n"
                + _figure(f"parts/afc_{task}/afc_{task}",
                          f"Machine-observer 2-AFC, {task} task. Left: accuracy per reference "
                          f"condition and observer (human data from the papers as black bars). "
                          f"Right: accuracy over relative depth beside the papers' human data."))
        return PartOutput(data, [f"parts/afc_{task}/afc_{task}"], text)
    return run


PARTS: dict[str, tuple[str, str, Callable[[Path, dict[str, Any], str], PartOutput]]] = {
    "theory": ("Results table", "theory", part_theory),
    "proofs": ("Theorems and machine-checked proofs", "theory", part_proofs),
    "fooling_permute": ("Fooling circuit: permuted visualizations", "fooling", _fooling("permute")),
    "fooling_target": ("Fooling circuit: target image", "fooling", _fooling("target")),
    "fooling_classifier": ("Fooling circuit: the paper's trained classifier gate", "fooling",
                           _fooling("target", gate="classifier")),
    "silent": ("Silent units", "silent", part_silent),
    "sanity": ("Sanity check", "sanity", part_sanity),
    "afc_references": ("2-AFC with references (Borowski et al.)", "afc", _afc("references")),
    "afc_occlusion": ("2-AFC with occlusions (Zimmermann et al.)", "afc", _afc("occlusion")),
}


def build_appendix(out_dir: str | Path = "appendix", scale: str = "quick", device: str = "cpu",
                   force: bool = False, parts: list[str] | None = None,
                   pdf: bool | str = True) -> Path:
    """Run (or reuse) the parts, then write appendix.tex, results.json and MANIFEST.json.

    With `parts`, only those run; other parts already done at this scale are still included.
    ``pdf``: True tries pdflatex and says why when it cannot; ``"require"`` raises
    :class:`PDFNotBuilt` instead; False writes the .tex only.
    """
    import torch
    from fvtrust.empirical.models import resolve_device

    from fvtrust import theory

    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; known: {', '.join(SCALES)}")
    names = parts or list(PARTS)
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        raise ValueError(f"unknown appendix parts {unknown}; known: {', '.join(PARTS)}")
    out = Path(out_dir)
    manifest: dict[str, Any] = {
        "scale": scale, "device": device, "seed": 0,
        "versions": {"fvtrust": theory.__version__, "python": platform.python_version(),
                     "torch": torch.__version__, "numpy": np.__version__},
        "parts": {}}
    results: dict[str, Any] = {}
    sections = []
    for name, (title, group, run) in PARTS.items():
        settings = SCALES[scale][group]
        part_dir = out / "parts" / name
        key = config_hash({"part": name, "scale": scale, "settings": settings})
        saved = part_dir / "part.json"
        record = _read_part(saved)
        done = record is not None and record.get("hash") == key
        if name not in names and not done:
            continue  # not asked for, and no result at these settings to include
        start = time.perf_counter()
        if done and (name not in names or not force):
            reused = True
        else:
            position = [n for n in PARTS if n in names].index(name) + 1
            print(f"part {position}/{len(names)} {name}: {title}", flush=True)
            if force:  # recompute the part's own saved stages (renders, gates) too
                shutil.rmtree(part_dir / ".stages", ignore_errors=True)
            output = run(part_dir, settings, device)
            # Theory and proofs never touch a network: they ran on the CPU whatever --device said.
            used = "cpu" if group == "theory" else str(resolve_device(device))
            record = {"hash": key, "results": output.results, "figures": output.figures,
                      "latex": output.latex, "seconds": round(time.perf_counter() - start, 2),
                      "device": used}
            atomic_write_json(saved, record)
            reused = False
        missing = [f for f in record["figures"] if not (out / f"{f}.pdf").exists()]
        if missing:
            raise RuntimeError(f"part {name} references missing figures {missing}")
        # The full configuration the part ran with (its results carry it), not only the overrides.
        full = record["results"].get("config") if isinstance(record["results"], dict) else None
        manifest["parts"][name] = {"hash": key, "reused": reused,
                                   "settings": full if isinstance(full, dict) else settings,
                                   "seconds": record.get("seconds"),
                                   "device": record.get("device", device)}
        results[name] = record["results"]
        sections.append(f"\\section{{{tex_escape(title)}}}\n{record['latex']}")
    atomic_write_json(out / "results.json", results)
    atomic_write_json(out / "MANIFEST.json", manifest)
    tex = out / "appendix.tex"
    atomic_write_text(tex, LATEX_HEAD.replace("SCALE", scale) + "\n".join(sections) + LATEX_TAIL)
    if pdf:
        built = build_pdf(tex)
        if built is None and pdf == "require":
            raise PDFNotBuilt(f"no PDF was built from {tex} (see the message above)")
    return tex


class PDFNotBuilt(RuntimeError):
    """``--pdf`` demanded a PDF and pdflatex could not make one."""


def _read_part(saved: Path) -> dict[str, Any] | None:
    """A part's saved record, or None when there is none or it is damaged (then recomputed
    when asked for, left out otherwise, and said so)."""
    if not saved.exists():
        return None
    try:
        record = json.loads(saved.read_text())
        if isinstance(record, dict) and {"hash", "results", "figures", "latex"} <= set(record):
            return record
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    print(f"{saved} is damaged: the part is recomputed when asked for (--parts {saved.parent.name})")
    return None


LATEX_HEAD = r"""\documentclass[10pt]{article}
\usepackage[margin=2cm]{geometry}
\usepackage[T1]{fontenc}
\usepackage{amsmath,amssymb,graphicx,booktabs,pifont,hyperref}
\title{fvtrust appendix: can feature visualizations be trusted?}
\author{Generated by \texttt{fvtrust appendix} (scale: SCALE)}
\date{\today}
\begin{document}
\maketitle
\noindent Every number, table and figure below was produced by code in the fvtrust
repository; \texttt{results.json} holds the numbers and \texttt{MANIFEST.json} the versions,
seeds and wall time per part. Theory after Sec.~5 of \emph{Don't trust your eyes} (Geirhos
et al., ICML 2024), formulation ours; experiments after Secs.~3--4 of that paper, Borowski et
al.\ and Zimmermann et al.\ (2021), with a machine observer in place of human participants.
"""
LATEX_TAIL = "\n\\end{document}\n"


def build_pdf(tex: Path) -> Path | None:
    """pdflatex twice (references), when installed; say plainly when it is not."""
    compiler = shutil.which("pdflatex")
    if compiler is None:
        print(f"pdflatex not found: wrote the LaTeX source only ({LATEX_PACKAGES})")
        return None
    for _ in range(2):
        proc = subprocess.run([compiler, "-interaction=nonstopmode", "-halt-on-error", tex.name],
                              cwd=tex.parent, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            log = tex.with_suffix(".log")
            text = log.read_text(errors="replace") if log.exists() else proc.stdout
            missing = sorted(set(re.findall(r"File `([^']+)' not found", text)))
            why = (f"missing LaTeX file(s) {', '.join(missing)}: {LATEX_PACKAGES}" if missing
                   else f"see {log}")
            print(f"pdflatex failed; {why}")
            return None
    return tex.with_suffix(".pdf")


LATEX_PACKAGES = ("Debian: apt-get install texlive-latex-recommended texlive-latex-extra "
                  "texlive-fonts-recommended")
