"""The gate-family experiment's table and figure, drawn from its saved result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fvtrust.empirical.reports.figures import plt, save_figure


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def family_table(data: dict[str, Any]) -> str:
    """One row per held-out region: catch rates (image / as seen), renders that pass the gate
    at some step and at every step, and the same for the default (classic) gate."""
    classic = data["natural"]["classic_flagged"] is not None
    head = ("| held-out region | gate trained without it | renders | caught (image / as seen) "
            "| renders passing some step ≥ 4 | passing every step (as seen) | natural flagged |")
    rule = "|---|---|---|---|---|---|---|"
    if classic:
        head += " default gate: caught | default: passing every step |"
        rule += "---|---|"
    lines = [head, rule]
    for r in data["regions"]:
        row = (f"| {r['region']} | {'yes' if r['trained_without_region'] else 'no bank draws it'} "
               f"| {r['renders']} | **{_pct(r['caught'])}** ({_pct(r['caught_image'])} / "
               f"{_pct(r['caught_as_seen'])}) | {len(r['escaped'])} | "
               f"{r['passed_every_step_as_seen']} | {_pct(r['natural_flagged'])} |")
        if classic:
            row += f" {_pct(r['classic']['caught'])} | {r['classic']['passed_every_step_as_seen']} |"
        lines.append(row)
    nat = data["natural"]
    lines += ["", f"Lowest region (gate trained without it): **{data['lowest_region']}**."
              + (f" Lowest for the default gate: **{data['lowest_region_classic']}**." if classic else ""),
              f"Natural false alarms on {nat['images']} crops of {nat['sources']} {nat['what']}: "
              f"gate trained on every bank setting {_pct(nat['all_settings_gate_flagged'])}"
              + (f", default gate {_pct(nat['classic_flagged'])}." if classic else ".")]
    escapes = [(r["region"], e, "family") for r in data["regions"] for e in r["escaped"]]
    if classic:
        escapes += [(r["region"], e, "default") for r in data["regions"] for e in r["classic"]["escaped"]]
    if escapes:
        lines += ["", "Renders that pass a gate at some step ≥ 4 (every one is listed):", "",
                  "| region | gate | unit | setting | steps passed | every step (as seen) |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {region} | {gate} | {e['unit']} | {e['setting']} | "
                  f"{', '.join(map(str, e['steps_passed']))} | "
                  f"{'yes' if e['as_seen_passed_every_step'] else 'no'} |" for region, e, gate in escapes]
    return "\n".join(lines)


def plot_gate_family(data: dict[str, Any], path_stem: str | Path) -> list[Path]:
    """Catch rate per held-out region: the gate trained without the region beside the
    default gate, the lowest region marked."""
    regions = data["regions"]
    y = np.arange(len(regions))
    classic = data["natural"]["classic_flagged"] is not None
    fig, ax = plt.subplots(figsize=(7.5, 0.38 * len(regions) + 1.4))
    h = 0.38 if classic else 0.7
    ax.barh(y - (h / 2 if classic else 0), [100 * r["caught"] for r in regions], height=h,
            color="tab:blue", label="wide-family gate, region held out")
    if classic:
        ax.barh(y + h / 2, [100 * r["classic"]["caught"] for r in regions], height=h,
                color="tab:gray", label="default gate (classic family)")
    ax.set_yticks(y)
    ax.set_yticklabels([r["region"] + (" *" if r["region"] == data["lowest_region"] else "")
                        for r in regions], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("gate decisions that flag the render (%): every step ≥ 4, image and as seen")
    ax.set_title(f"Gate over a render family: {data['config']['model']}; * lowest region",
                 fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.6 / len(regions)), ncol=2)
    return save_figure(fig, path_stem)
