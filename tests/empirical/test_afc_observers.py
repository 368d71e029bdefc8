"""Machine observers of the 2-AFC tasks (empirical/afc_observers.py), on problems whose
right answer is known by construction."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fvtrust.empirical.observers.rules import (
    OCCLUSION_OBSERVERS,
    REFERENCE_OBSERVERS,
    OcclusionPair,
    QueryPair,
    ReferenceSet,
    check_observers,
)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.double(), dim=-1)


def _template_world(seed: int = 0, d: int = 16):
    """A unit whose activation IS the cosine to a template, in the observer's own space."""
    rng = np.random.default_rng(seed)
    template = _unit(torch.from_numpy(rng.normal(size=d)))
    emb = _unit(torch.from_numpy(rng.normal(size=(400, d))))
    order = torch.argsort(emb @ template, descending=True)
    return emb, order, rng


def test_mis_rule_is_perfect_on_a_template_unit_and_chance_on_noise():
    emb, order, rng = _template_world()
    refs = ReferenceSet(emb[order[:9]], emb[order[-9:]], emb[order[:9]], emb[order[-9:]])
    q1, q2 = emb[order[20:120]], emb[order[-120:-20]]
    maps = torch.zeros(100, 16, 1, 1, dtype=torch.float64)
    evidence = REFERENCE_OBSERVERS["mis"](QueryPair(q1, q2, maps, maps), refs)
    assert (evidence > 0).all()
    # Per-trial random references (T, K, D): about half right.
    noise = _unit(torch.from_numpy(rng.normal(size=(100, 18, 16))))
    random_refs = ReferenceSet(noise[:, :9], noise[:, 9:], noise[:, :9], noise[:, 9:])
    right = (REFERENCE_OBSERVERS["mis"](QueryPair(q1, q2, maps, maps), random_refs) > 0).double().mean()
    assert abs(float(right) - 0.5) < 0.15


def test_max_only_references_score_by_the_max_side_alone():
    emb, order, _ = _template_world(2)
    both = ReferenceSet(emb[order[:9]], emb[order[-9:]], emb[order[:9]], emb[order[-9:]])
    alone = both.max_only()
    assert not alone.empty and not alone.has_min and both.has_min
    q = emb[order[20:60]]
    assert torch.allclose(alone.score(q), (q @ emb[order[:9]].T).mean(1))
    assert not torch.allclose(both.score(q), alone.score(q))
    maps = q[:, :, None, None].repeat(1, 1, 2, 2)
    p_max = torch.nn.functional.normalize(emb[order[:9]].mean(0), dim=-1)
    assert torch.allclose(alone.relevance(maps), torch.einsum("tchw,c->thw", maps, p_max))
    # the Max-9 observer still ranks a template unit's queries: the max side carries the signal
    pair = QueryPair(emb[order[20:120]], emb[order[-120:-20]], maps[:1].expand(100, -1, -1, -1),
                     maps[:1].expand(100, -1, -1, -1))
    assert (REFERENCE_OBSERVERS["mis"](pair, alone) > 0).all()
    none = ReferenceSet(emb[:0], emb[:0], emb[:0], emb[:0])
    assert none.empty and (none.score(q) == 0).all()


def test_spatial_reference_rule_finds_the_template_anywhere():
    emb, order, _ = _template_world(1)
    refs = ReferenceSet(emb[order[:9]], emb[order[-9:]], emb[order[:9]], emb[order[-9:]])
    # Query 1 holds the best image's features in one corner only; query 2 the worst everywhere.
    first = emb[order[-1]][None, :, None, None].repeat(1, 1, 4, 4)
    first[0, :, 0, 0] = emb[order[0]]
    second = emb[order[-1]][None, :, None, None].repeat(1, 1, 4, 4)
    evidence = REFERENCE_OBSERVERS["spatial"](QueryPair(emb[:1], emb[:1], first, second), refs)
    assert evidence.item() > 0


def _occlusion_pair(boxes1, boxes2, queries=None, maps=None, patch=4):
    queries = torch.rand(len(boxes1), 3, 16, 16) if queries is None else queries
    maps = torch.zeros(len(boxes1), 2, 16, 16) if maps is None else maps
    return OcclusionPair(None, queries, maps, torch.tensor(boxes1), torch.tensor(boxes2), patch)


def test_center_rule_prefers_the_central_patch():
    pair = _occlusion_pair([[6, 6], [0, 0]], [[0, 12], [6, 5]])
    evidence = OCCLUSION_OBSERVERS["center"](pair, None)
    assert evidence[0] > 0 > evidence[1]


def test_variance_rule_prefers_the_busier_patch():
    queries = torch.full((1, 3, 16, 16), 0.5)
    queries[0, :, 0:4, 0:4] = torch.rand(3, 4, 4)
    evidence = OCCLUSION_OBSERVERS["variance"](_occlusion_pair([[8, 8]], [[0, 0]], queries), None)
    assert evidence.item() < 0


def test_spatial_occlusion_rule_picks_the_patch_over_reference_like_content():
    p_max, p_min = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    refs = ReferenceSet(p_max, p_min, p_max, p_min)
    maps = torch.zeros(1, 2, 16, 16)
    maps[0, 1] = 1.0  # min-like everywhere...
    maps[0, :, 10:14, 10:14] = torch.tensor([1.0, 0.0])[:, None, None]  # ...max-like in one corner
    pair = _occlusion_pair([[2, 2]], [[10, 10]], maps=maps)
    assert OCCLUSION_OBSERVERS["spatial"](pair, refs).item() < 0


def test_no_references_give_ties():
    empty = torch.zeros(0, 4)
    refs = ReferenceSet(empty, empty, empty, empty)
    pair = _occlusion_pair([[0, 0]], [[8, 8]], maps=torch.rand(1, 4, 16, 16))
    assert OCCLUSION_OBSERVERS["spatial"](pair, refs).item() == 0
    assert OCCLUSION_OBSERVERS["mis"](pair, refs).item() == 0


def test_unknown_observers_are_named():
    with pytest.raises(ValueError, match=r"unknown observer\(s\) \['center'\] for the references task"):
        check_observers("references", ["mis", "center"])
    check_observers("occlusion", ["mis", "spatial", "center", "variance"])
