"""Published human psychophysics, as data, for comparison tables and plots only.

Every number here is **human data from the papers**, never ours; each carries its citation.
Layers of the papers' network (Inception-V1 / GoogLeNet) are placed on a relative-depth
axis so that our layers of another network can be shown beside them.
"""

from __future__ import annotations

from dataclasses import dataclass

BOROWSKI = ("Borowski, Zimmermann, Schepers, Geirhos, Wallis, Bethge, Brendel (ICLR 2021), "
            "'Exemplary natural images explain CNN activations better than state-of-the-art "
            "feature visualization'")
ZIMMERMANN = ("Zimmermann, Borowski, Geirhos, Bethge, Wallis, Brendel (NeurIPS 2021), "
              "'How well do feature visualizations support causal understanding of CNN "
              "activations?'")


@dataclass(frozen=True)
class HumanAccuracy:
    """One published human 2-AFC accuracy (± its reported error where there is one)."""

    value: float
    citation: str
    what: str
    error: float | None = None


#: Inception-V1 layers of Borowski et al. Exp. I (9 max + 9 min references), in order.
INCEPTION_LAYERS = ("mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed4c", "mixed4d",
                    "mixed4e", "mixed5a", "mixed5b")
#: Relative depth of those layers: their position in torchvision GoogLeNet's execution order
#: of main layers (conv1 … fc), divided by the last position. Checked against the network in
#: tests/empirical/test_human_data.py.
INCEPTION_RELATIVE_DEPTH = (5 / 17, 6 / 17, 8 / 17, 9 / 17, 10 / 17, 11 / 17, 12 / 17,
                            14 / 17, 15 / 17)

_NATURAL_PER_LAYER = (0.72, 0.96, 0.94, 0.96, 1.00, 0.98, 0.94, 1.00, 0.80)
_SYNTHETIC_PER_LAYER = (0.62, 0.86, 0.74, 0.94, 0.84, 0.80, 0.88, 0.88, 0.82)

#: references task, per layer: condition → layer → accuracy (Borowski et al., Exp. I).
REFERENCES_PER_LAYER: dict[str, dict[str, HumanAccuracy]] = {
    cond: {layer: HumanAccuracy(v, BOROWSKI, f"Exp. I, {cond} references, {layer}")
           for layer, v in zip(INCEPTION_LAYERS, values, strict=True)}
    for cond, values in (("natural", _NATURAL_PER_LAYER), ("synthetic", _SYNTHETIC_PER_LAYER))}

#: references task, overall (Exp. I, 9+9 references).
REFERENCES_OVERALL: dict[str, HumanAccuracy] = {
    "natural": HumanAccuracy(0.922, BOROWSKI, "Exp. I overall, natural references (9 max + 9 min)"),
    "synthetic": HumanAccuracy(0.820, BOROWSKI, "Exp. I overall, synthetic references (9 max + 9 min)"),
}

#: references task, by reference condition (Exp. II): condition → {natural, synthetic}.
REFERENCES_BY_CONDITION: dict[str, dict[str, HumanAccuracy]] = {
    name: {"natural": HumanAccuracy(nat, BOROWSKI, f"Exp. II {name}, natural references"),
           "synthetic": HumanAccuracy(syn, BOROWSKI, f"Exp. II {name}, synthetic references")}
    for name, nat, syn in (("Max-1", 0.730, 0.652), ("Max-9", 0.811, 0.667),
                           ("Min+Max-1", 0.837, 0.759), ("Min+Max-9", 0.909, 0.717))}

#: occlusion task (Zimmermann et al. 2021): our condition name → human accuracy.
OCCLUSION: dict[str, HumanAccuracy] = {
    "synthetic": HumanAccuracy(0.67, ZIMMERMANN, "feature visualizations as references", 0.04),
    "natural": HumanAccuracy(0.665, ZIMMERMANN, "dataset samples as references (66-67 %)", 0.03),
    "random": HumanAccuracy(0.60, ZIMMERMANN, "no references", 0.03),
}


def human_overall(task: str) -> dict[str, HumanAccuracy]:
    """The papers' overall human accuracy per reference condition of `task`."""
    if task == "references":
        return dict(REFERENCES_OVERALL)
    if task == "occlusion":
        return dict(OCCLUSION)
    raise ValueError(f"task must be 'references' or 'occlusion', got {task!r}")


def as_dict() -> dict[str, object]:
    """Every number with its citation, JSON-ready."""
    def flat(h: HumanAccuracy) -> dict[str, object]:
        return {"value": h.value, "error": h.error, "what": h.what, "citation": h.citation}
    return {
        "references_per_layer": {c: {layer: flat(h) for layer, h in d.items()}
                                 for c, d in REFERENCES_PER_LAYER.items()},
        "inception_relative_depth": dict(zip(INCEPTION_LAYERS, INCEPTION_RELATIVE_DEPTH, strict=True)),
        "references_overall": {c: flat(h) for c, h in REFERENCES_OVERALL.items()},
        "references_by_condition": {n: {c: flat(h) for c, h in d.items()}
                                    for n, d in REFERENCES_BY_CONDITION.items()},
        "occlusion": {c: flat(h) for c, h in OCCLUSION.items()},
    }
