"""The sweep's figure, drawn from its Parquet store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fvtrust.empirical.reports.figures import plt, save_figure


def plot_sweep(table: Any, path_stem: str | Path) -> list[Path]:
    """Per (model, layer): how far each unit's max visualization drives it beyond its most
    activating natural image, and the 2-AFC accuracy per reference condition, one point per
    unit (whatever of these the store measured)."""
    ok = table[table["status"] == "ok"]
    groups = list(ok.groupby(["model", "layer"], sort=False))
    panels: list[tuple[str, dict[str, list[Any]]]] = []
    if "render_max_activation" in ok and "exemplar_max_activations" in ok:
        panels.append(("max visualization / top natural activation", {
            f"{m}\n{layer}": list(g["render_max_activation"]
                                  / g["exemplar_max_activations"].map(lambda a: max(float(a[0]), 1e-6)))
            for (m, layer), g in groups}))
    elif "render_max_activation" in ok:
        panels.append(("max visualization activation", {
            f"{m}\n{layer}": list(g["render_max_activation"]) for (m, layer), g in groups}))
    for task in ("references", "occlusion"):
        cols = [f"afc_{task}_{c}" for c in ("natural", "synthetic", "random")]
        if all(c in ok for c in cols):
            panels.append((f"2-AFC {task}: accuracy per unit (machine observer)", {
                f"{m} {layer}\n{c.rsplit('_', 1)[1]}": list(g[c]) for (m, layer), g in groups for c in cols}))
    if not panels:
        panels.append(("units finished", {f"{m}\n{layer}": [len(g)] for (m, layer), g in groups}))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, (title, series) in zip(axes[0], panels, strict=True):
        for i, values in enumerate(series.values()):
            values = np.asarray(values, dtype=float)
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=8, alpha=0.6)
            ax.hlines(np.nanmean(values), i - 0.3, i + 0.3, color="k")
        ax.set_xticks(range(len(series)), list(series), fontsize=7)
        ax.set_title(title, fontsize=9)
        if "/" in title:
            ax.set_ylabel("ratio (> 1: beyond every natural image)")
        if "2-AFC" in title:
            ax.axhline(0.5, color="grey", ls=":", lw=1)
            ax.set_ylabel("accuracy")
    fig.suptitle(f"Sweep: {len(ok)} units of {len(groups)} layer(s)"
                 f" ({int((table['status'] != 'ok').sum())} failed)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path_stem)
