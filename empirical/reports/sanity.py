"""The sanity check's figure, drawn from its saved result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fvtrust.empirical.reports.figures import plt, save_figure


def plot_sanity(result: Any, path_stem: str | Path) -> list[Path]:
    """The paper's Fig. 5 layout: normalized similarity over depth with a 95 % band. `result`:
    a saved result (dict) or anything with ``to_json()``."""
    data = result if isinstance(result, dict) else result.to_json()
    x = np.arange(len(data['layers']))
    lo = np.array([c[0] for c in data['score_ci']])
    hi = np.array([c[1] for c in data['score_ci']])
    fig, ax = plt.subplots(figsize=(8, 3.4))
    ax.axhline(1.0, color="tab:green", lw=1, ls="--", label="natural, same class")
    ax.axhline(0.0, color="tab:red", lw=1, ls="--", label="natural, other classes")
    ax.fill_between(x, lo, hi, color="tab:blue", alpha=0.25, lw=0)
    ax.plot(x, data['score_mean'], "o-", color="tab:blue", ms=3, label="class visualization")
    ax.set_xticks(x)
    ax.set_xticklabels(data['layers'], rotation=70, fontsize=7)
    ax.set_xlabel("layer (input → logits)")
    ax.set_ylabel(f"normalized {data['config']['similarity']} similarity")
    ax.set_title(f"Sanity check: {data['config']['model']}, {len(data['classes'])} classes")
    ax.legend(fontsize=7, loc="upper left")
    return save_figure(fig, path_stem)
