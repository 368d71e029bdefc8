"""Tasks A–D (theory/tasks.py); the indistinguishability lemma in proofs/indistinguishability.py."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fvtrust.theory.classes import all_classes
from fvtrust.theory.decoders import ChanceDecoder, TableDecoder, standard_decoders
from fvtrust.theory.tasks import Task, afc_accuracy, normalized

CLASSES = {c.key: c for c in all_classes()}
IMPOSSIBLE = [("relu", t) for t in Task] + [("monotone", Task.AFC), ("convex", Task.LOCAL)]


@pytest.mark.parametrize(("key", "task"), IMPOSSIBLE)
def test_witness_holds_every_decoder_to_chance(key, task):
    w = CLASSES[key].witness(task, 1e-3)
    bound = w.lower_bound()
    for dec in standard_decoders():
        score = w.decoder_score(dec)
        assert score <= bound + 1e-9 if task is Task.AFC else score >= bound - 1e-9


@given(st.floats(-5, 5, allow_nan=False))
def test_arbitrary_decoders_cannot_beat_a_witness(p):
    w = CLASSES["relu"].witness(Task.QUERY, 1e-3)
    assert w.decoder_score(TableDecoder((p,))) >= w.lower_bound() - 1e-12


def test_afc_accuracy_counts_only_pairs_with_margin():
    from fvtrust.theory.functions import AffineFunction
    from fvtrust.theory.visualization import from_extremes

    f = AffineFunction([1.0], 0.0)
    phi = from_extremes([0.0], [1.0], 0.0, 1.0)
    pairs = np.array([[[0.9], [0.1]], [[0.5], [0.45]]])  # the second has margin 0.05 < 0.25
    assert afc_accuracy(CLASSES["affine_d1"].decoder(), f, phi, pairs) == 1.0
    assert afc_accuracy(ChanceDecoder(), f, phi, pairs) == 0.5


def test_normalized_conventions():
    assert normalized(0.0, 0.0) == 0.0 and normalized(1.0, 0.0) == float("inf")
    with pytest.raises(ValueError, match="R must be >= 0"):
        normalized(1.0, -1.0)
