"""One writer per result: the JSON (every number) and what a person would rather look at (PNG
and PDF figures, Markdown tables), written the same way by the CLI, the appendix and the sweep.

Each writer takes the experiment's saved form (``result.to_json()``, a dict) plus, where the
figure shows images, the images; figures are drawn from those, never recomputed. Every file
is written atomically. ``WRITERS`` maps a result kind to its writer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from fvtrust.empirical.reports.afc import afc_table, paired_table, per_layer_table, plot_afc, plot_paired
from fvtrust.empirical.reports.figures import image_grid
from fvtrust.empirical.reports.gate_family import family_table, plot_gate_family
from fvtrust.empirical.reports.sanity import plot_sanity
from fvtrust.empirical.reports.sweep import plot_sweep
from fvtrust.io import atomic_write_json, atomic_write_text


def write_fooling(data: Mapping[str, Any], images: Mapping[str, torch.Tensor], out: str | Path) -> list[Path]:
    """``fooling_<mode>.json`` and the figure: originals, the circuit's renders, the target."""
    out, config = Path(out), data["config"]
    mode, gate = config["mode"], config["gate"]
    json_path = atomic_write_json(out / f"fooling_{mode}.json", dict(data))
    figures = image_grid({"original": images["original"], "fooling circuit": images["manipulated"],
                          "target": images["target"]}, [f"unit {u}" for u in config["units"]],
                         f"Fooling circuit ({mode}, {gate} gate) after {config['steps']} steps",
                         out / f"fooling_{mode}")
    return [json_path, *figures]


def write_silent(data: Mapping[str, Any], images: Mapping[str, torch.Tensor], out: str | Path) -> list[Path]:
    """``silent_units.json`` and the figure: the layer's renders before and after, the target."""
    out, config = Path(out), data["config"]
    json_path = atomic_write_json(out / "silent_units.json", dict(data))
    figures = image_grid({"original": images["original"], "silent units": images["silent units"],
                          "target": images["target"]}, [f"unit {u}" for u in config["units"]],
                         f"Silent units in {config['layer']} after {config['steps']} steps",
                         out / "silent_units")
    return [json_path, *figures]


def write_gate_family(data: Mapping[str, Any], out: str | Path) -> list[Path]:
    """``gate_family.json``, its Markdown table (every escaping render listed) and the
    catch-rate-per-region figure."""
    out = Path(out)
    return [atomic_write_json(out / "gate_family.json", dict(data)),
            atomic_write_text(out / "gate_family.md", family_table(dict(data)) + "\n"),
            *plot_gate_family(dict(data), out / "gate_family")]


def write_sanity(data: Mapping[str, Any], out: str | Path) -> list[Path]:
    """``sanity.json`` and the score-over-depth figure."""
    out = Path(out)
    return [atomic_write_json(out / "sanity.json", dict(data)), *plot_sanity(dict(data), out / "sanity")]


def afc_markdown(data: Mapping[str, Any]) -> str:
    """The 2-AFC tables: the paired differences first, then each cell's accuracy, then per
    layer for every observer that uses references."""
    return paired_table(dict(data)) + "\n\n" + afc_table(data) + "\n\n" + "\n\n".join(
        f"Per layer, `{o}` observer:\n\n{per_layer_table(data, o)}"
        for o in data["observers"] if o not in ("center", "variance"))


def write_afc(data: Mapping[str, Any], out: str | Path, stem: str | None = None) -> list[Path]:
    """``<stem>.json`` (default ``afc_<task>``), its Markdown tables and the figures (accuracy
    per condition and over depth, human data beside it; the paired differences)."""
    out = Path(out)
    stem = stem or f"afc_{data['config']['task']}"
    json_path = atomic_write_json(out / f"{stem}.json", dict(data))
    md = atomic_write_text(out / f"{stem}.md", afc_markdown(data) + "\n")
    return [json_path, md, *plot_paired(dict(data), out / f"{stem}_paired"),
            *plot_afc(dict(data), out / stem)]


def write_proofs(reports: Sequence[Any], out: str | Path,
                 rechecks: Mapping[str, Sequence[Any]] | None = None) -> list[Path]:
    """``proofs.json``: every proof's steps with their kinds, how many proofs pass, and every
    SMT query z3 decided, written as ``smt/<proof>/<n>.smt2`` (a complete SMT-LIB 2 script
    whose ``:status`` is z3's answer) with cvc5's answer where `rechecks` (proof key → its
    :class:`~proofs.recheck.Recheck` list, in query order) has one. SMT files of an earlier
    run that this run did not write are removed afterwards (only files fvtrust wrote)."""
    from fvtrust.outputs import OutputDir
    from fvtrust.proofs.base import kind_totals

    out = Path(out)
    written, proofs = [], []
    for report in reports:
        entry = report.to_dict()
        checked = list((rechecks or {}).get(report.proof.key, []))
        entry["smt"] = []
        for i, query in enumerate(report.queries, 1):
            rel = f"smt/{report.proof.key}/{i:03d}.smt2"
            written.append(atomic_write_text(out / rel, query.script))
            item = {"file": rel, "label": query.label, "z3": query.expected}
            if i <= len(checked):
                item |= {"cvc5": checked[i - 1].answer, "cvc5_seconds": round(checked[i - 1].seconds, 3)}
            entry["smt"].append(item)
        proofs.append(entry)
    smt = {"queries": sum(len(p["smt"]) for p in proofs), "rechecked": rechecks is not None}
    if rechecks is not None:
        from fvtrust.proofs.recheck import summary

        smt |= summary(r for rs in rechecks.values() for r in rs)
    data = {"proofs": proofs, "passed": sum(r.passed for r in reports), "total": len(reports),
            "steps": sum(len(r.steps) for r in reports), "step_kinds": kind_totals(reports), "smt": smt}
    written.insert(0, atomic_write_json(out / "proofs.json", data))
    owner = OutputDir.around(out)
    if owner is not None:  # queries of an earlier, longer run: ours, and no longer described
        folder, keep = owner.relative(out / "smt") + "/", {owner.relative(p) for p in written}
        owner.remove([f for f in owner.files() if f.startswith(folder) and f not in keep])
    return written


def write_sweep(summary: Mapping[str, Any], table: Any, out: str | Path,
                afc: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None) -> list[Path]:
    """``summary.json`` (what the run did, with counts) and the plot of the whole store; with
    `afc` (network folder → 2-AFC measurement → its result gathered from the store), each
    network's 2-AFC tables and figures under ``afc/<network>/<measurement>.*`` (the paired
    comparisons first)."""
    out = Path(out)
    written = [atomic_write_json(out / "summary.json", dict(summary)), *plot_sweep(table, out / "sweep")]
    for folder, results in (afc or {}).items():
        for measurement, data in results.items():
            written += write_afc(data, out / "afc" / folder, stem=measurement)
    return written


#: result kind → its writer (the CLI, the appendix and the sweep call these and nothing else).
WRITERS: dict[str, Callable[..., list[Path]]] = {
    "fooling": write_fooling, "gate_family": write_gate_family, "silent": write_silent,
    "sanity": write_sanity, "afc": write_afc, "proofs": write_proofs, "sweep": write_sweep}
