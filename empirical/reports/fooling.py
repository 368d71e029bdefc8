"""Tables of the fooling experiment."""

from __future__ import annotations


def robustness_table(rows: list[dict[str, object]]) -> str:
    """A Markdown table of :func:`gate_robustness`'s rows."""
    lines = ["| setting | param | lr | transforms | px | steps | caught, every step ≥ 4 (min) "
             "| decoy shown |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['param']} | {r['lr']} | "
                     f"{'yes' if r['transforms'] else 'no'} | {r['size']} | {r['steps']} | "
                     f"{100 * float(r['min_caught_from_step4']):.0f} % | "  # type: ignore[arg-type]
                     f"{r['decoy_shown']}/{r['units']} |")
    return "\n".join(lines)
