"""Sanity check and machine-observer psychophysics (empirical/sanity.py, psychophysics.py)."""

import numpy as np
import pytest
import scipy.stats
import torch

from empirical.data import bundled_images
from empirical.psychophysics import AFCConfig, mis_delta, score
from empirical.sanity import SanityConfig, class_scores, run_sanity, sanity_layers, select_classes
from empirical.similarity import similarity_matrix


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
    from empirical.models import load_model

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


def test_observer_rule_is_perfect_on_a_template_unit_and_chance_on_noise():
    # A synthetic unit whose activation IS the similarity to a template: the MIS rule
    # with references at the template's extremes answers every task right.
    rng = np.random.default_rng(0)
    d = 16
    template = torch.from_numpy(rng.normal(size=d))
    template = template / template.norm()
    emb = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(400, d))), dim=1)
    act = emb @ template
    order = torch.argsort(act, descending=True)
    ref_max, ref_min = emb[order[:9]], emb[order[-9:]]
    q1, q2 = emb[order[20:120]], emb[order[-120:-20]]
    sign = torch.ones(100, dtype=torch.float64)
    correct, _ = score(mis_delta(q1, q2, ref_max, ref_min).double(), sign, 10.0)
    assert correct.mean() == 1.0
    noise = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(18, d))), dim=1)
    trials = []
    for seed in range(50):
        perm = np.random.default_rng(seed).permutation(18)
        c, _ = score(mis_delta(q1, q2, noise[perm[:9]], noise[perm[9:]]).double(), sign, 10.0)
        trials.append(c.mean())
    assert abs(np.mean(trials) - 0.5) < 0.1


def test_afc_rejects_units_out_of_range(tmp_path):
    from empirical.psychophysics import run_afc

    with pytest.raises(ValueError, match=r"units \[500\] are out of range for layer '_blocks.5' with 80"):
        run_afc(AFCConfig(units=[500], layers=["_blocks.5"], k=2, n_tasks=2, pool=10, steps=1))


def test_bad_afc_config():
    with pytest.raises(ValueError, match="need at least 58 pool images, the pool has 40"):
        AFCConfig(pool=40)
    with pytest.raises(ValueError, match="task must be"):
        AFCConfig(task="ranking")
