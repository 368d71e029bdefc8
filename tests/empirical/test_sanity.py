"""Sanity check (empirical/sanity.py) and its similarity measures."""

import numpy as np
import pytest
import scipy.stats
import torch

from fvtrust.empirical.data.photos import bundled_images
from fvtrust.empirical.experiments.sanity import (
    SanityConfig,
    class_scores,
    run_sanity,
    sanity_layers,
    select_classes,
)
from fvtrust.empirical.observers.similarity import similarity_matrix


@pytest.mark.parametrize("kind", ["spearman", "pearson", "cosine"])
def test_similarities_match_scipy(kind):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 30))
    a[:, :5] = 0.0  # ties, as after a ReLU
    b = rng.normal(size=(3, 30))
    got = similarity_matrix(torch.from_numpy(a), torch.from_numpy(b), kind).numpy()
    for i in range(4):
        for j in range(3):
            if kind == "spearman":
                want = scipy.stats.spearmanr(a[i], b[j]).statistic
            elif kind == "pearson":
                want = scipy.stats.pearsonr(a[i], b[j]).statistic
            else:
                want = a[i] @ b[j] / np.linalg.norm(a[i]) / np.linalg.norm(b[j])
            assert got[i, j] == pytest.approx(want, abs=1e-10)


def test_normalized_score_formula():
    # Two classes; "visualizations" are copies of natural images: same-class copies → 1.
    rng = np.random.default_rng(1)
    nat = np.concatenate([rng.normal(size=(5, 40)) + 3 * np.eye(40)[0],
                          rng.normal(size=(5, 40)) + 3 * np.eye(40)[1]])
    labels = np.array([0] * 5 + [1] * 5)
    sim_nn = similarity_matrix(torch.from_numpy(nat), torch.from_numpy(nat), "pearson").numpy()
    scores = class_scores(sim_nn, sim_nn, labels, labels, [0, 1])
    # vis_same includes the self-similarity 1 on the diagonal; nat_same excludes it
    n = 5
    expected = (scores["nat_same"] * (n - 1) / n + 1 / n - scores["nat_other"]) / (
        scores["nat_same"] - scores["nat_other"])
    assert np.allclose(scores["score"], expected)


@pytest.fixture(scope="module")
def lite0_natural():
    from fvtrust.empirical.nets.registry import load_model

    model = load_model()
    natural = bundled_images(160, size=96, seed=5)
    return model, natural


def test_sanity_score_is_one_for_same_class_and_zero_for_other_class(lite0_natural):
    model, natural = lite0_natural
    kept, classes, _ = select_classes(model, natural, min_per_class=8, min_confidence=0.3)
    labels = kept.labels.numpy()
    # stand-ins for visualizations: held-out natural images, first of the same class...
    idx = np.concatenate([np.flatnonzero(labels == c)[:2] for c in classes])
    rest = np.setdiff1d(np.arange(len(labels)), idx)
    config = SanityConfig(min_per_class=6, size=96)
    natural_rest = kept.subset(rest)
    same = run_sanity(config, natural=natural_rest, visualizations=kept.images[idx],
                      vis_labels=labels[idx])
    # ... then deliberately mislabelled: each stand-in claimed for another class.
    shifted = np.array([classes[(classes.index(c) + 1) % len(classes)] for c in labels[idx]])
    other = run_sanity(config, natural=natural_rest, visualizations=kept.images[idx],
                       vis_labels=shifted)
    late = [i for i, name in enumerate(same.layers) if name in ("_blocks.15", "logits")]
    assert all(same.score_mean[i] > 0.6 for i in late), same.score_mean
    assert all(abs(other.score_mean[i]) < 0.4 for i in late), other.score_mean
    assert sanity_layers(model)[-1] == "logits" and "_bn0" not in sanity_layers(model)


def test_sanity_refuses_settings_that_would_give_an_all_nan_table():
    with pytest.raises(ValueError, match="min_per_class must be >= 2"):
        SanityConfig(min_per_class=1)
