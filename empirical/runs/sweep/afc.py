"""2-AFC results from a sweep store: every observer's trials of every unit, gathered per
explained network and task, and summarized as :func:`~empirical.experiments.afc.run_afc`
summarizes its own (accuracy per condition, paired differences with a hierarchical bootstrap
over units, then trials, per layer and overall).

A sweep measures each unit on its own (its references and trials drawn as by
``run_afc(units=[unit])``), so a store finished in any order, by any number of workers or
machines, gives the same numbers; a store still filling gives those of the units finished."""

from __future__ import annotations

from typing import Any

import numpy as np

from fvtrust.empirical.experiments.afc import CONDITIONS, AFCResult, afc_split, summarize_trials
from fvtrust.empirical.nets.layers import relative_depths
from fvtrust.empirical.nets.registry import load_model
from fvtrust.empirical.observers.rules import observers_for
from fvtrust.empirical.runs.sweep.plan import AFC_MEASUREMENTS, ModelRef, SweepPlan, afc_measurement
from fvtrust.empirical.runs.sweep.worker import afc_config, trial_column


def stored_observers(table: Any, key: str) -> list[str]:
    """The observers whose trials of measurement ``afc_<key>`` the store's table holds (in
    column order; ``afc_references_max1_…`` columns are not ``afc_references``'s)."""
    task, _ = afc_measurement(key)
    prefix, suffix = f"afc_{key}_", f"_{CONDITIONS[0]}_correct"
    return [c[len(prefix):-len(suffix)] for c in table.columns
            if c.startswith(prefix) and c.endswith(suffix)
            and c[len(prefix):-len(suffix)] in observers_for(task)]


def afc_from_store(table: Any, plan: SweepPlan, key: str,
                   memo: dict[Any, Any] | None = None) -> dict[str, AFCResult]:
    """Per explained network (``str(ModelRef)``) of `table` (a store's ``units.parquet``), the
    2-AFC result of measurement ``afc_<key>`` (``references``, ``occlusion_patch30``, …) over
    every finished unit that has its trials. Units of a store written before the trials were
    kept (0.3) have none and are counted in ``split``."""
    names = stored_observers(table, key)
    out: dict[str, AFCResult] = {}
    if not names or table.empty:
        return out
    ok = table[table["status"] == "ok"]
    for (name, weights), rows in ok.groupby(["model", "weights"], sort=False):
        ref = ModelRef(name, weights or None)
        have = rows[rows[trial_column(key, names[0], CONDITIONS[0], "correct")].map(
            lambda v: v is not None and not (isinstance(v, float) and np.isnan(v)))]
        if have.empty:
            continue
        # the plan's layers first (its order is the depth order a user gave), then any other
        layers = [la for la in plan.layers if la in set(have["layer"])]
        layers += sorted(set(have["layer"]) - set(layers))
        # units in (layer, unit) order, not the store's row order (which depends on when each
        # task finished): the bootstrap resamples by position, so the same units give the
        # same intervals however the store was filled or read
        depth = {la: i for i, la in enumerate(layers)}
        have = have.iloc[np.lexsort((have["unit"].to_numpy(), have["layer"].map(depth).to_numpy()))]
        trials = {o: {c: {f"{r.layer}:{int(r.unit)}": {
            "correct": list(getattr(r, trial_column(key, o, c, "correct"))),
            "p": list(getattr(r, trial_column(key, o, c, "p")))}
            for r in have.itertuples(index=False)} for c in CONDITIONS} for o in names}
        units = sorted({int(u) for u in have["unit"]})
        config = afc_config(plan, ref, layers[0], units, key)
        config.layers = layers
        # the same for both tasks of a network (`memo`: computed once for both)
        memo = {} if memo is None else memo
        if (ref, tuple(layers)) not in memo:
            try:
                memo[ref, tuple(layers)] = dict(relative_depths(
                    load_model(ref.name, weights=ref.weights, device="cpu"), layers))
            except ValueError:
                memo[ref, tuple(layers)] = dict.fromkeys(layers)
        if "split" not in memo:  # every unit of the plan draws from the same split
            memo["split"] = afc_split(config)
        result = summarize_trials(config, trials, memo[ref, tuple(layers)])
        result.split = {**memo["split"], "n_units_with_trials": len(have),
                        "n_units_without_trials": len(rows) - len(have),
                        "units_per_layer": {la: int((have["layer"] == la).sum()) for la in layers}}
        out[str(ref)] = result
    return out


def afc_reports(table: Any, plan: SweepPlan) -> dict[str, dict[str, dict[str, Any]]]:
    """Per explained network (its folder name), the JSON of each 2-AFC measurement the plan
    takes (by its name: ``afc_references``, ``afc_occlusion_patch30``, …), gathered from the
    store's table, without the per-trial lists (the store keeps those)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    memo: dict[Any, Any] = {}
    for measurement in AFC_MEASUREMENTS:
        if measurement not in plan.measure:
            continue
        for name, result in afc_from_store(table, plan, measurement.removeprefix("afc_"), memo).items():
            data = result.to_json()
            data.pop("trials")
            out.setdefault(ModelRef.parse(name).folder, {})[measurement] = data
    return out
