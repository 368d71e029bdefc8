"""Tables and figures of a 2-AFC result, drawn from its saved JSON (no recomputation).

Human numbers are drawn as human data from the papers, labelled so, never mixed with ours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fvtrust.empirical.reports.figures import plt, save_figure

CONDITION_NAMES = {"references": {"natural": "natural exemplars", "synthetic": "feature visualizations",
                                  "random": "uninformative (random natural)"},
                   "occlusion": {"natural": "natural exemplars", "synthetic": "feature visualizations",
                                 "random": "none (random natural)"}}
HUMAN_LABEL = {"references": "humans (Borowski et al.)", "occlusion": "humans (Zimmermann et al. 2021)"}


def human_cells(data: dict[str, Any]) -> dict[str, Any]:
    """The papers' human data for this run's condition → value: Borowski et al.'s Exp. II cell
    (Max-1, Max-9, Min+Max-1) when the run has K = 1 or 9 references of those sides, else the
    task's overall numbers (references task: Exp. I, 9 max + 9 min)."""
    config, human = data["config"], data["human"]
    sides = "Max" if config.get("reference_sides", "min+max") == "max" else "Min+Max"
    name = f"{sides}-{config.get('n_references')}"
    if config["task"] == "references" and name != "Min+Max-9" and name in human.get("by_condition", {}):
        return human["by_condition"][name]
    return human["overall"]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _human(data: dict[str, Any], cond: str) -> str:
    h = human_cells(data).get(cond)
    if h is None:
        return "—"
    err = f" ± {100 * h['error']:.0f}" if h.get("error") else ""
    return f"{100 * h['value']:.1f}{err} %"


def human_difference(data: dict[str, Any], entry: dict[str, Any]) -> str:
    """The papers' difference of the same two conditions (human data; unpaired there)."""
    human = human_cells(data)
    if entry["kind"] not in ("natural − synthetic", "references − none"):
        return "—"
    a, b = entry["a"][1], entry["b"][1]
    if a not in human or b not in human:
        return "—"
    return f"{100 * (human[a]['value'] - human[b]['value']):+.1f} pp"


def paired_table(data: dict[str, Any]) -> str:
    """Markdown: every paired comparison (same units, same trials), its difference in pp with
    the 95 % hierarchical-bootstrap interval, whether the interval excludes 0, the units it
    needs for ±3 pp, and the papers' difference of the same conditions (human data)."""
    entries = data.get("paired") or []
    if not entries:
        return "(no paired comparisons: this result was saved before they were computed)"
    task = data["config"]["task"]
    lines = ["| comparison (a − b) | difference [95 % CI] | CI excludes 0 | units for ±3 pp "
             f"| {HUMAN_LABEL[task]} — human data |", "|---|---|---|---|---|"]
    for e in entries:
        power = e.get("power")
        need = "—" if power is None else f"{power['units_needed']}"
        lines.append(f"| {e['label']} | {100 * e['mean']:+.1f} pp [{100 * e['ci'][0]:+.1f}, "
                     f"{100 * e['ci'][1]:+.1f}] | {'yes' if e['decided'] else 'no'} | {need} | "
                     f"{human_difference(data, e)} |")
    first = entries[0]
    trials = first["n_trials"] // max(1, first["n_units"])
    lines += ["", f"Paired: both cells are scored on the same {first['n_units']} units × {trials} "
                  f"trials (queries and units shared; `random` references stand for none). 95 % CI: "
                  f"hierarchical bootstrap of the per-trial differences over units, then trials. "
                  f"Units for ±3 pp: n = ⌈z²(σ_b² + 2σ_w²/m)/0.03²⌉ at m = {trials} trials per unit, "
                  f"from this run's variance components. Human differences are the papers' (between "
                  f"their conditions, Inception-V1), shown beside ours, not paired with them."]
    return "\n".join(lines)


def plot_paired(data: dict[str, Any], path_stem: str | Path) -> list[Path]:
    """Every paired difference with its 95 % interval (0: no difference), the papers' human
    difference of the same conditions as a black mark where there is one."""
    entries = data.get("paired") or []
    fig, ax = plt.subplots(figsize=(7, 0.32 * max(4, len(entries)) + 1))
    y = np.arange(len(entries))[::-1]
    for yi, e in zip(y, entries, strict=True):
        colour = "C0" if e["decided"] else "C7"
        ax.errorbar(100 * e["mean"], yi, xerr=[[100 * (e["mean"] - e["ci"][0])],
                                               [100 * (e["ci"][1] - e["mean"])]],
                    fmt="o", color=colour, capsize=2, ms=4)
        human = human_difference(data, e)
        if human != "—":
            ax.plot(float(human.split()[0]), yi, "k|", ms=12, mew=2)
    ax.axvline(0, color="gray", ls=":", lw=1)
    ax.set_yticks(y, [e["label"] for e in entries], fontsize=7)
    ax.set_xlabel("difference in 2-AFC accuracy (pp), paired: same units and trials")
    task = data["config"]["task"]
    ax.set_title(f"{task} task: paired differences (ours; blue: CI excludes 0; "
                 f"black: {HUMAN_LABEL[task]}, human data)", fontsize=8)
    return save_figure(fig, path_stem)


def afc_table(data: dict[str, Any]) -> str:
    """Markdown: accuracy [95 % unit-clustered CI] per reference condition (rows) and observer
    (columns), with the papers' human data in the last column."""
    task = data["config"]["task"]
    observers = data["observers"]
    head = ["reference condition", *[f"`{o}` observer" for o in observers],
            HUMAN_LABEL[task] + " — human data"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cond in data["conditions"]:
        cells = []
        for o in observers:
            est = data["overall"][o][cond]
            cells.append(f"{_pct(est['mean'])} % [{_pct(est['ci'][0])}–{_pct(est['ci'][1])}]")
        lines.append(f"| {CONDITION_NAMES[task][cond]} | " + " | ".join(cells) + f" | {_human(data, cond)} |")
    any_est = data["overall"][observers[0]][data["conditions"][0]]
    lines.append("")
    lines.append(f"{any_est['n_units']} units × {any_est['n_trials'] // max(1, any_est['n_units'])} trials "
                 f"({any_est['n_trials']} trials per cell); 95 % CI: hierarchical bootstrap over units, "
                 f"then trials. References and queries are source-disjoint "
                 f"({data['split']['n_reference_images']} reference images from "
                 f"{len(data['split']['reference_sources'])} sources, {data['split']['n_query_images']} "
                 f"query images from {len(data['split']['query_sources'])} other sources).")
    return "\n".join(lines)


def per_layer_table(data: dict[str, Any], observer: str) -> str:
    """Markdown: one row per layer (relative depth), natural and synthetic accuracy with CIs."""
    lines = ["| layer | depth | natural | synthetic | random |", "|---|---|---|---|---|"]
    for layer in data["config"]["layers"]:  # the run's order (saved JSON sorts its keys)
        depth = data["layer_depth"][layer]
        cells = []
        for cond in ("natural", "synthetic", "random"):
            est = data["per_layer"][observer][cond][layer]
            cells.append(f"{_pct(est['mean'])} % [{_pct(est['ci'][0])}–{_pct(est['ci'][1])}]")
        d = "—" if depth is None else f"{depth:.2f}"
        lines.append(f"| `{layer}` | {d} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_afc(data: dict[str, Any], path_stem: str | Path) -> list[Path]:
    """Left: accuracy per condition and observer (95 % clustered CIs), human data as marks.
    Right: accuracy over relative depth for each observer that looks at references, natural
    (solid) and synthetic (dashed), beside the papers' human data per Inception-V1 layer."""
    task = data["config"]["task"]
    observers, conditions = data["observers"], data["conditions"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.2))
    width = 0.8 / len(observers)
    x = np.arange(len(conditions))
    for j, o in enumerate(observers):
        est = [data["overall"][o][c] for c in conditions]
        mean = np.array([e["mean"] for e in est])
        err = np.array([[e["mean"] - e["ci"][0], e["ci"][1] - e["mean"]] for e in est]).T
        ax.bar(x + (j - (len(observers) - 1) / 2) * width, mean, width, yerr=err, capsize=3, label=o)
    for i, c in enumerate(conditions):
        h = human_cells(data).get(c)
        if h is not None:
            ax.plot([i - 0.4, i + 0.4], [h["value"]] * 2, color="k", lw=2,
                    label=HUMAN_LABEL[task] + " (human data)" if i == 0 else None)
    ax.axhline(0.5, color="gray", ls=":", lw=1)
    ax.set_xticks(x, [CONDITION_NAMES[task][c].replace(" (", "\n(") for c in conditions], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("2-AFC accuracy")
    ax.set_title(f"{task} task: machine observers (ours)", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)

    layers = list(data["config"]["layers"])  # the run's order (saved JSON sorts its keys)
    depth = [data["layer_depth"][layer] for layer in layers]
    xs = (np.array(depth, dtype=float) if all(d is not None for d in depth)
          else np.linspace(0, 1, len(layers)))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, o in enumerate(observers):
        if o in ("center", "variance"):
            continue
        for cond, style in (("natural", "-o"), ("synthetic", "--s")):
            est = [data["per_layer"][o][cond][layer] for layer in layers]
            mean = np.array([e["mean"] for e in est])
            err = np.array([[e["mean"] - e["ci"][0], e["ci"][1] - e["mean"]] for e in est]).T
            bx.errorbar(xs + 0.006 * j, mean, yerr=err, fmt=style, color=colours[j % len(colours)],
                        capsize=2, ms=4, label=f"ours, {o}, {cond}")
    if task == "references":
        hd = data["human"]["inception_relative_depth"]
        for cond, style in (("natural", "-^"), ("synthetic", "--v")):
            per = data["human"]["per_layer"][cond]
            names = sorted(per, key=hd.__getitem__)
            bx.plot([hd[layer] for layer in names], [per[layer]["value"] for layer in names], style,
                    color="k", ms=5, label=f"humans, {cond} (Borowski et al., Inception-V1; human data)")
    else:
        for cond, ls in (("natural", "-"), ("synthetic", "--"), ("random", ":")):
            h = human_cells(data)[cond]
            bx.axhline(h["value"], color="k", ls=ls, lw=1,
                       label=f"humans, {cond}, all layers (Zimmermann et al.; human data)")
    bx.axhline(0.5, color="gray", ls=":", lw=1)
    bx.set_xlabel(f"relative depth ({data['config']['model']} layers: ours; Inception-V1 layers: humans)",
                  fontsize=8)
    bx.set_ylabel("2-AFC accuracy")
    bx.set_ylim(0, 1.05)
    bx.set_title("per layer", fontsize=10)
    bx.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    return save_figure(fig, path_stem)
