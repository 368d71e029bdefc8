"""The mutation suite: deliberate bugs the tests must catch (a small harness of our own).

Each mutant replaces one snippet in one file of a copy of the repository and names the tests
that should fail. `python -m tests.mutation.harness` runs them all and writes the kill ratio
to tests/mutation/results.json; tests/mutation/test_mutants.py keeps every snippet present, so
the suite cannot rot silently. The first four are the mutants that survived v0.1's suite.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    key: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


T = "tests/theory/"
E = "tests/empirical/"
MUTANTS: tuple[Mutant, ...] = (
    Mutant("decoder-score-reads-nothing", "theory/table.py",
           "worst = max(worst, sup_error(dec, f, phi, pts))", "worst = max(worst, 0.0)",
           (T + "test_table.py",)),
    Mutant("construction-floor-halved", "proofs/base.py",
           "floor = pair.phi.range / 2 - pair.eps", "floor = pair.phi.range / 4 - pair.eps",
           ("tests/proofs/test_proofs.py",)),
    Mutant("reliable-threshold-0.7", "theory/table.py",
           "else proven.score < CHANCE[task] - 1e-6", "else proven.score < 0.7",
           (T + "test_table.py",)),
    Mutant("lipschitz-membership-without-d", "theory/classes/lipschitz.py",
           "if lip * self.d > self.kappa * R + MEMBERSHIP_TOL:", "if lip > self.kappa * R + MEMBERSHIP_TOL:",
           (T + "test_lipschitz.py",)),
    Mutant("milp-big-m-sign", "theory/milp.py",
           "rows.append(({h: 1.0, delta: -float(hi[j])}, -np.inf, 0.0))",
           "rows.append(({h: 1.0, delta: float(hi[j])}, -np.inf, 0.0))", (T + "test_milp.py",)),
    Mutant("milp-interval-bounds", "theory/milp.py",
           "pre_lo, pre_hi = wp @ lo + wn @ hi + b, wp @ hi + wn @ lo + b",
           "pre_lo, pre_hi = wp @ lo + wn @ lo + b, wp @ hi + wn @ hi + b", (T + "test_milp.py",)),
    Mutant("milp-ball-radius", "theory/milp.py",
           "rows.append(({t_index + i: 1.0 for i in range(d)}, -np.inf, r))",
           "rows.append(({t_index + i: 1.0 for i in range(d)}, -np.inf, 2 * r))", (T + "test_milp.py",)),
    Mutant("relu-pair-without-eps", "theory/classes/relu_networks.py",
           "height = hi - lo - eps", "height = hi - lo", (T + "test_relu_networks.py",)),
    Mutant("relu-phi-on-the-grid", "theory/classes/relu_networks.py",
           "        return network_visualization(f)\n\n    def shares_visualization",
           "        from fvtrust.theory.visualization import grid_visualization\n"
           "        return grid_visualization(f, self.grid)\n\n    def shares_visualization",
           (T + "test_relu_networks.py",)),
    Mutant("relu-ball-not-certified", "theory/classes/relu_networks.py",
           "if lo.bound > phi.v_min and hi.bound < phi.v_max:", "if True:",
           (T + "test_relu_networks.py", T + "test_network_pairs_independent.py")),
    Mutant("shares-ignores-certificate", "theory/classes/relu_networks.py",
           "and ext.minimum.bound >= phi.v_min - slack and ext.maximum.bound <= phi.v_max + slack)",
           ")", (T + "test_relu_networks.py",)),
    Mutant("erm-loss-tolerance", "theory/classes/erm.py",
           "if loss > f.reference_loss + LOSS_TOL:", "if loss > f.reference_loss + 1e-3:",
           (T + "test_erm.py",)),
    Mutant("lipschitz-closed-form-d2", "theory/classes/lipschitz.py",
           "return min(0.5, kappa - 1), True", "return min(0.5, (kappa - 1) / 2), True",
           (T + "test_table.py", T + "test_lipschitz.py")),
    Mutant("lipschitz-threshold", "theory/classes/lipschitz.py",
           "return 2.0 if d == 1 else 1.5", "return 2.0", (T + "test_lipschitz.py",)),
    Mutant("nan-units-accepted", "theory/functions.py", "        if bad.any():", "        if False:",
           (T + "test_bad_input.py",)),
    Mutant("affine-invents-R", "theory/classes/affine.py",
           "R = float(np.abs(f.w).sum())\n", "R = float(np.abs(f.w).sum()) or 1.0\n",
           (T + "test_affine.py", T + "test_bad_input.py")),
    Mutant("bootstrap-ignores-units", "empirical/observers/statistics.py",
           "units = rng.integers(0, n_units, size=(n_boot, n_units))",
           "units = np.tile(np.arange(n_units), (n_boot, 1))", (E + "test_clustered_stats.py",)),
    Mutant("center-baseline-reversed", "empirical/observers/rules.py",
           "return distance(pair.boxes2) - distance(pair.boxes1)",
           "return distance(pair.boxes1) - distance(pair.boxes2)", (E + "test_afc_observers.py",)),
    Mutant("variance-baseline-reversed", "empirical/observers/rules.py",
           "return (spread(pair.boxes1) - spread(pair.boxes2)).double()",
           "return (spread(pair.boxes2) - spread(pair.boxes1)).double()", (E + "test_afc_observers.py",)),
    Mutant("occlusion-grey-fill", "empirical/observers/occlusion.py",
           "region[:] = region.mean(dim=(1, 2), keepdim=True)", "region[:] = 0.5",
           (E + "test_occlusion.py",)),
    Mutant("occlusion-extremes-swapped", "empirical/observers/occlusion.py",
           "hi, lo = int(responses.argmax()), int(responses.argmin())",
           "lo, hi = int(responses.argmax()), int(responses.argmin())", (E + "test_occlusion.py",)),
    Mutant("answer-sign-constant", "empirical/experiments/afc.py",
           "return torch.where(flip, -1.0, 1.0).double()", "return torch.ones(len(flip)).double()",
           (E + "test_psychophysics.py::test_the_right_option_is_the_one_the_sign_points_to",)),
    Mutant("split-shares-sources", "empirical/data/splits.py",
           "second = np.array([i for i, key in enumerate(keys) if key not in first_sources], dtype=np.int64)",
           "second = np.array([i for i, key in enumerate(keys)], dtype=np.int64)",
           (E + "test_psychophysics.py::test_split_by_source_never_shares_a_photo",)),
    Mutant("human-data-typo", "empirical/observers/human_data.py",
           "_NATURAL_PER_LAYER = (0.72, 0.96,", "_NATURAL_PER_LAYER = (0.72, 0.69,",
           (E + "test_human_data.py",)),
    Mutant("reused-modules-missed", "empirical/nets/layers.py",
           "reused = frozenset(n for n, c in calls.items() if c > 1)",
           "reused = frozenset(n for n, c in calls.items() if c > 2)",
           (E + "test_models.py", E + "test_human_data.py")),
    Mutant("silent-gate-ignored", "empirical/circuits/silent.py",
           "out = out * self.gate_open.to(out.dtype).view(-1, 1, 1, 1)", "out = out",
           (E + "test_fooling.py::test_gated_silent_branches_open_only_where_the_gate_opens",)),
    Mutant("afc-margins-without-lipschitz", "theory/classes/lipschitz.py",
           'prog.opt.add(t <= upper("z") - lower("w"), t <= s * prog.dist("z", "w"))',
           'prog.opt.add(t <= upper("z") - lower("w"))', (T + "test_lipschitz.py",)),
    Mutant("convex-local-ramp-not-flat", "theory/classes/convex.py",
           "n = [sp.Integer(1)] * (d - 1) + [eta]", "n = [sp.Integer(1)] * d",
           (T + "test_convex.py",)),
    Mutant("variants-eta-ignored", "theory/variants.py",
           "cls.kappa / (1 - 2 * eta) - 1)", "cls.kappa - 1)", (T + "test_variants.py",)),
    Mutant("variants-no-carry-over", "theory/variants.py",
           'if base.verdict == "impossible":', "if False:", (T + "test_variants.py",)),
)
