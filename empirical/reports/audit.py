"""The audit's report and the bench's table and ROC figure, drawn from saved results.

:func:`write_audit_report`: the most suspicious units, each visualization beside its top
natural exemplars, and each detector's standardized scores against the calibration's
threshold (``audit_report.png/.pdf``, ``audit.md``). :func:`write_bench`: the bench's JSON,
Markdown table and ROC figure (``audit_bench.*``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from fvtrust.empirical.data.images import read_image
from fvtrust.empirical.experiments.audit.detectors import DETECTORS
from fvtrust.empirical.reports.figures import save_figure
from fvtrust.io import atomic_write_json, atomic_write_text


def _suspicious_first(verdicts: Any) -> Any:
    order = verdicts.combined.fillna(-np.inf).to_numpy()
    return verdicts.iloc[np.argsort(-order, kind="stable")]


def write_audit_report(verdicts: Any, plan: Any, out: str | Path, calibration: Any | None,
                       n_show: int = 8) -> Path:
    """``audit_report.png/.pdf`` and ``audit.md`` beside the store; returns the Markdown path."""
    from fvtrust.empirical.data.natural import natural_images

    out = Path(out)
    detectors = [c.removeprefix("audit_") for c in verdicts.columns if c.startswith("audit_")
                 and c not in ("audit_png", "audit_render_activation", "audit_exemplar_ids",
                               "audit_exemplar_index")]
    top = _suspicious_first(verdicts).head(n_show)
    pool = natural_images(plan.images, plan.n_natural, plan.size, seed=plan.seed + 17,
                          sources=plan.sources)
    k = min(4, plan.n_references)
    fig = plt.figure(figsize=(1.5 * (k + 1) + 4.5 * 1, 1.5 * max(len(top), len(detectors)) + 0.6))
    grid = fig.add_gridspec(max(len(top), 1), k + 3, width_ratios=[1] * (k + 1) + [0.3, 3])
    for row, (_, rec) in enumerate(top.iterrows()):
        exemplars = (pool.images[int(j)] for j in rec.audit_exemplar_index[:k])
        images = [read_image(out / rec.audit_png), *exemplars]
        for col, image in enumerate(images):
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(image.clamp(0, 1).permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(f"{rec.layer}:{rec.unit}\n{rec.verdict}", fontsize=7)
            if row == 0:
                ax.set_title("visualization" if col == 0 else f"exemplar {col}", fontsize=7)
    ax = fig.add_subplot(grid[:, -1])
    if calibration is not None:
        for i, d in enumerate(detectors):
            r = calibration.standardized(d, verdicts[f"audit_{d}"].to_numpy(dtype=np.float64),
                                         verdicts.layer.tolist())
            ax.scatter(r, np.full(len(r), i) + np.random.default_rng(i).uniform(-0.2, 0.2, len(r)), s=6)
        ax.axvline(calibration.threshold, color="k", ls="--", lw=1, label=f"τ (α = {calibration.alpha:g})")
        ax.set_xlabel("standardized score r_d (clean units of the same layer: median 0, MAD scale)")
        ax.legend(fontsize=7)
    else:
        for i, d in enumerate(detectors):
            v = verdicts[f"audit_{d}"].to_numpy(dtype=np.float64)
            ax.scatter((v - np.nanmedian(v)) / (np.nanstd(v) + 1e-12), np.full(len(v), i), s=6)
        ax.set_xlabel("score (uncalibrated: z within this audit)")
    # the verdict's detectors are the calibration's (without one: the registry's)
    deciding = calibration.verdict_detectors if calibration is not None else _verdict_detectors()
    ax.set_yticks(range(len(detectors)), [d if d in deciding else f"{d}\n(not in verdict)"
                                          for d in detectors], fontsize=7)
    fig.suptitle(f"Audit of {', '.join(sorted(set(verdicts.model)))}: {len(verdicts)} units, "
                 f"most suspicious first", fontsize=9)
    save_figure(fig, out / "audit_report")
    lines = [f"# Audit: {len(verdicts)} units of {', '.join(sorted(set(verdicts.model)))} "
             f"({', '.join(sorted(set(verdicts.layer)))})", ""]
    if calibration is None:
        lines += ["No calibration: scores only (pass --calibration FILE, or --calibrate on a "
                  "network you hold to be clean).", ""]
    else:
        n_flag = int((verdicts.verdict == "suspicious").sum())
        lines += [f"Calibration: {calibration.n_units} clean units of {', '.join(calibration.models)} "
                  f"({', '.join(calibration.layers)}), false-flag rate α = {calibration.alpha:g}, "
                  f"τ = {calibration.threshold:.3g}.", "",
                  f"**{n_flag} of {len(verdicts)} units suspicious.** Natural images: "
                  f"{plan.images or 'the photo corpus'} ({plan.n_natural} crops).", ""]
    lines += ["| layer | unit | verdict | r | fired |", "|---|---|---|---|---|"]
    for _, rec in top.iterrows():
        lines.append(f"| {rec.layer} | {rec.unit} | {rec.verdict} | {rec.combined:.2f} | {rec.fired} |")
    return atomic_write_text(out / "audit.md", "\n".join(lines) + "\n")


def _verdict_detectors() -> list[str]:
    return [d for d, detector in DETECTORS.items() if detector.verdict]


def bench_markdown(table: Sequence[Mapping[str, Any]], clean: Sequence[Mapping[str, Any]],
                   entries: Sequence[Mapping[str, Any]], fit_model: str,
                   timing: Sequence[Mapping[str, Any]] = (),
                   in_verdict: Sequence[str] | None = None) -> str:
    """The bench as Markdown: natural cost and success per entry, detection, the clean
    units' false flags, and what each detector cost per unit; `in_verdict`: the calibration's
    deciding detectors (default: the registry's)."""
    deciding = list(in_verdict) if in_verdict else _verdict_detectors()
    out = ["### Zoo: natural cost (held-out sources) and success", "",
           "| model | entry | units | succeeded | top-1 agr. | top-5 agr. | max Δlogit | unit r (min) "
           "| Kendall τ top-9 | within budget |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        c = e["cost"]
        out.append(f"| {e['model']} | {e['name']} | {e['n_units']} | {e['n_succeeded']} | "
                   f"{c['top1_agreement']:.3f} | {c['top5_agreement']:.3f} | "
                   f"{c['max_abs_logit_change']:.3g} | "
                   f"{c['unit_correlation_min']:.3f} | {c['kendall_tau_topk']:.2f} | "
                   f"{'yes' if c['within_budget'] else '**no**'} |")
    out += ["", f"### Detection on held-out networks (calibrated on {fit_model} only)", "",
            "| model | entry | detector | positives | AUC [95% CI] | TPR at τ [95% CI] |",
            "|---|---|---|---|---|---|"]
    for row in table:
        lo, hi = row["auc_ci"]
        tlo, thi = row["tpr_ci"]
        d = row["detector"]
        name = ("**combined**" if d == "combined" else d if d in deciding
                else f"{d} (reported, not in the verdict)")
        entry = row["entry"] if row["within_budget"] else f"{row['entry']} (over budget)"
        out.append(f"| {row['model']} | {entry} | {name} | {row['n_positive']} of {row['n_units']} | "
                   f"{row['auc']:.2f} [{lo:.2f}, {hi:.2f}] | {row['tpr_at_threshold']:.2f} "
                   f"[{tlo:.2f}, {thi:.2f}] ({row['n_detected']}) |")
    out += ["", "### Clean units flagged by the combined verdict", "",
            "| model | held out | clean units | flagged | rate |", "|---|---|---|---|---|"]
    for c in clean:
        out.append(f"| {c['model']} | {'yes' if c['held_out'] else 'no (fit)'} | {c['n_clean']} | "
                   f"{c['n_flagged']} | {c['false_flag_rate']:.3f} |")
    if timing:
        pieces = list(dict.fromkeys(k for t in timing for k in t["seconds_per_unit"]))
        out += ["", "### Seconds per clean unit (wall clock, this run's machine)", "",
                "| model | layer | units | " + " | ".join(pieces) + " |",
                "|---|---|---|" + "---|" * len(pieces)]
        for t in timing:
            cells = " | ".join(f"{t['seconds_per_unit'].get(k, float('nan')):.2f}" for k in pieces)
            out.append(f"| {t['model']} | {t['layer']} | {t['n_units']} | {cells} |")
    return "\n".join(out) + "\n"


def plot_bench_roc(rows: Sequence[Mapping[str, Any]], fit_model: str, path_stem: str | Path,
                   threshold: float) -> list[Path]:
    """ROC of the combined statistic per entry, held-out networks pooled, against their clean units."""
    import pandas as pd

    df = pd.DataFrame(rows)
    held = df[df.model != fit_model]
    neg = held[held.kind == "clean"].combined.to_numpy()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for kind, group in held[held.kind != "clean"].groupby("kind"):
        pos = group[group.success.astype(bool)].combined.to_numpy()
        if len(pos) == 0:
            continue
        cuts = np.unique(np.concatenate([pos, neg, [np.inf]]))[::-1]
        fpr = [(neg > t).mean() for t in cuts] + [1.0]
        tpr = [(pos > t).mean() for t in cuts] + [1.0]
        ax.plot(fpr, tpr, label=f"{kind} ({len(pos)})")
    ax.axvline(float((neg > threshold).mean()), color="k", ls=":", lw=1, label="calibrated τ")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    ax.set_xlabel(f"false-flag rate (clean units of held-out networks, n = {len(neg)})")
    ax.set_ylabel("true-positive rate (successfully manipulated units)")
    ax.set_title(f"Combined verdict, calibrated on {fit_model}", fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, path_stem)


def write_bench(data: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], out: str | Path) -> list[Path]:
    """``audit_bench.json`` (every number), ``audit_bench.md`` and ``audit_bench_roc.png/.pdf``."""
    out = Path(out)
    fit = data["config"]["fit_model"]
    md = bench_markdown(data["table"], data["clean"], data["entries"], fit, data.get("timing", ()),
                        data["calibration"].get("in_verdict"))
    return [atomic_write_json(out / "audit_bench.json", dict(data)),
            atomic_write_text(out / "audit_bench.md", md),
            *plot_bench_roc(rows, fit, out / "audit_bench_roc", data["calibration"]["threshold"])]


def write_zoo(reports: Sequence[Any], out: str | Path) -> list[Path]:
    """Per entry ``<model>/<name>.json`` (manifest: ground truth, parameters, natural cost,
    success) and, for a weight-space entry, ``<model>/<name>.pt``: the manipulated network's
    state dict, loadable as ``--weights`` of the same model. An architectural entry changes
    the architecture, so a weights file alone cannot carry it: its manifest says how to
    rebuild it (``MANIPULATIONS[name].build``). Plus ``zoo.md`` and ``zoo.png/.pdf``."""
    from fvtrust.empirical.reports.figures import image_grid
    from fvtrust.stages import atomic_torch_save

    out = Path(out)
    paths: list[Path] = []
    lines = ["| model | entry | family | layer | units | succeeded | top-1 agr. | unit r (min) "
             "| within budget |", "|---|---|---|---|---|---|---|---|---|"]
    for report in reports:
        entry = report.entry
        stem = out / entry.model / entry.name
        data = report.to_json()
        if entry.family == "weight-space":
            weights = stem.with_suffix(".pt")
            atomic_torch_save(entry.network.net.state_dict(), weights)
            data["weights"] = weights.name
            data["load"] = f"load_model({entry.model!r}, weights={weights.name!r})"
        else:
            data["weights"] = None
            data["load"] = (f"architectural: rebuild with MANIPULATIONS[{entry.name!r}].build(ZooSetup("
                            f"load_model({entry.model!r}), ZooConfig(...))) and the config in this run")
        paths.append(atomic_write_json(stem.with_suffix(".json"), data))
        if data["weights"]:
            paths.append(stem.with_suffix(".pt"))
        cost = report.cost
        lines.append(f"| {entry.model} | {entry.name} | {entry.family} | {entry.layer} | "
                     f"{len(entry.units)} | {data['n_succeeded']} | {cost.top1_agreement:.3f} | "
                     f"{cost.unit_correlation_min:.3f} | "
                     f"{'yes' if cost.within_budget else '**no**'} |")
    paths.append(atomic_write_text(out / "zoo.md", "\n".join(lines) + "\n"))
    if reports:  # each entry's new visualizations (units differ per entry: numbered columns)
        rows = {f"{r.entry.model}\n{r.entry.name}": r.renders for r in reports}
        n = max(len(r.entry.units) for r in reports)
        paths += image_grid(rows, [f"#{i + 1}" for i in range(n)],
                            "The zoo: visualizations after each manipulation", out / "zoo")
    return paths
