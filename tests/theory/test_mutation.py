"""Wrong claims must be refuted by the verifier with a concrete counterexample."""

import numpy as np

from fvtrust.theory.classes import Affine, Convex, Lipschitz
from fvtrust.theory.decoders import InterpolatingDecoder, LipschitzBandDecoder, NearestExtremeDecoder
from fvtrust.theory.minimax import refute_decoder
from fvtrust.theory.table import compute_entry
from fvtrust.theory.tasks import Task


def test_claim_affine_d2_reliable_is_refuted():
    cls = Affine(2, n=5)
    phi = cls.canonical_phi()
    # Claim: the band decoder with L = R beats chance by a margin (error ≤ 0.4 R).
    ref = refute_decoder(cls.grid_constraints(cls.grid), cls.grid, phi,
                         LipschitzBandDecoder(relative=1.0), claimed_error=0.4)
    assert ref is not None and ref.error > 0.4
    assert cls.membership(ref.member)


def test_claim_decoder_beats_chance_on_convex_is_refuted():
    cls = Convex(n=5)
    from fvtrust.theory.visualization import from_extremes

    phi = from_extremes([0.25, 0.25], [1, 1], 0.0, 1.0)
    for dec in (InterpolatingDecoder(), NearestExtremeDecoder()):
        ref = refute_decoder(cls.grid_constraints(cls.grid), cls.grid, phi, dec, 0.45)
        assert ref is not None
        assert cls.membership(ref.member)
        assert abs(dec(phi, ref.query)[0] - ref.member(ref.query)[0]) > 0.45


def test_true_claim_is_not_refuted():
    cls = Lipschitz(1.2, n=6)
    phi = cls.canonical_phi()
    dec = cls.decoder()
    bound = dec.bound(phi, cls.grid.points)
    assert refute_decoder(cls.grid_constraints(cls.grid, phi), cls.grid, phi, dec, bound) is None


def test_table_would_not_call_a_wrong_row_reliable():
    # Pretend affine (d = 2) had no construction: the LP still finds the witness.
    cls = Affine(2)
    cls.explicit_witness = lambda task, eps: None  # type: ignore[method-assign]
    entry = compute_entry(cls, Task.QUERY)
    assert entry.verdict == "impossible" and entry.source.startswith("LP (exact on the")
    assert np.isclose(entry.score, 0.5, atol=1e-3)
