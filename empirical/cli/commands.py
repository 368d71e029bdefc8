"""What each ``fvtrust`` subcommand does: build the config from the arguments, call the
function a notebook would call, and hand the result to its writer (reports.writers)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from fvtrust.empirical.circuits.silent import conv_layer
from fvtrust.empirical.data.folders import check_sources_option, image_folder
from fvtrust.empirical.experiments.afc import AFCConfig, run_afc
from fvtrust.empirical.experiments.audit.bench import BenchConfig, combined_summary, run_bench
from fvtrust.empirical.experiments.audit.detectors import AuditConfig, check_layer, default_observer
from fvtrust.empirical.experiments.audit.zoo import (
    MANIPULATIONS,
    ZooConfig,
    ZooSetup,
    build_zoo,
    check_manipulations,
)
from fvtrust.empirical.experiments.fooling import FoolingConfig, fooling_verdict, run_fooling
from fvtrust.empirical.experiments.gate_family import GateFamilyConfig, run_gate_family
from fvtrust.empirical.experiments.sanity import SanityConfig, run_sanity
from fvtrust.empirical.experiments.silent import SilentConfig, run_silent
from fvtrust.empirical.nets.layers import (
    describe_layers,
    layer_channels,
    layer_names,
    main_layers,
    parse_units,
)
from fvtrust.empirical.nets.registry import LOGITS, load_model
from fvtrust.empirical.render.job import RenderJob, run_render_job
from fvtrust.empirical.reports.audit import write_bench, write_zoo
from fvtrust.empirical.reports.gate_family import family_table
from fvtrust.empirical.reports.latex import PDFNotBuilt
from fvtrust.empirical.reports.writers import (
    afc_markdown,
    write_afc,
    write_fooling,
    write_gate_family,
    write_proofs,
    write_sanity,
    write_silent,
    write_sweep,
)
from fvtrust.empirical.runs.appendix import build_appendix
from fvtrust.empirical.runs.audit import AuditPlan, run_audit
from fvtrust.empirical.runs.sweep.afc import afc_reports
from fvtrust.empirical.runs.sweep.driver import run_sweep
from fvtrust.empirical.runs.sweep.plan import SweepPlan
from fvtrust.empirical.runs.sweep.store import read_sweep
from fvtrust.outputs import OutputDir, check_out, shared_folder
from fvtrust.proofs import STEP_KINDS, run_all
from fvtrust.proofs.base import kind_totals
from fvtrust.proofs.recheck import recheck_reports, require_cvc5
from fvtrust.proofs.recheck import summary as recheck_summary
from fvtrust.theory.table import compute_table
from fvtrust.theory.variants import compute_variant_table

#: fool, silent, sanity and afc share one kind of output folder: their files have distinct
#: names, and runs into one --out share their saved stages (the gate, the references' renders)
EXPERIMENTS = "experiments"


def _claim_out(args: argparse.Namespace, kind: str) -> OutputDir:
    """Validate --out before any work (a file, under a file, read-only, or holding files
    fvtrust did not write: refused in one line), then claim it for this kind of output."""
    return OutputDir(args.out, kind).open()


def _cmd_theory(args: argparse.Namespace) -> int:
    if not args.eps > 0:
        raise ValueError(f"--eps must be > 0, got {args.eps}")
    if args.samples < 1:
        raise ValueError(f"--samples must be an integer >= 1, got {args.samples}")
    _claim_out(args, "theory")
    table = compute_table(eps=args.eps, samples=args.samples, progress=True)
    variants = compute_variant_table(table, eps=args.eps, samples=args.samples)
    paths = table.write(args.out) + variants.write(args.out)  # written before anything is printed
    print(table.to_markdown())
    print("\nThe same classes under the Φ variants (max-only, approximate extremes):\n")
    print(variants.to_markdown())
    print(f"\nwrote {', '.join(str(p) for p in paths)}")
    # Open cells (no proof either way) are reported as such; a construction that fails its
    # own verification is an error.
    cells = [*table.entries, *(e for es in variants.entries.values() for e in es)]
    broken = [f"{e.class_key}/{e.task}" for e in cells if e.checks and not all(e.checks.values())]
    if broken:
        print(f"fvtrust: error: constructions failed their checks: {', '.join(broken)}", file=sys.stderr)
    return 1 if broken else 0


def _cmd_proofs(args: argparse.Namespace) -> int:
    if not args.recheck_timeout > 0:
        raise ValueError(f"--recheck-timeout must be > 0 seconds, got {args.recheck_timeout}")
    if args.recheck:
        try:
            require_cvc5()  # before any work: one line naming the missing solver
        except ImportError as exc:
            raise ValueError(str(exc)) from None
    if args.out:
        _claim_out(args, "proofs")
    reports = run_all(progress=True)
    rechecks = recheck_reports(reports, args.recheck_timeout, progress=True) if args.recheck else None
    if args.out:
        written = write_proofs(reports, args.out, rechecks)[0]
    for report in reports:
        status = "PASS" if report.passed else "FAIL"
        print(f"{status}  {report.proof.kind} {report.proof.key}: {report.proof.title} "
              f"({len(report.steps)} steps, {report.seconds:.2f} s)")
        for i, step in enumerate(report.steps, 1):
            if args.verbose or not step.passed:
                print(f"  {i:3d} [{'ok' if step.passed else 'FAILED'}] ({report.kind_label(step)}) "
                      f"{step.name}: {step.detail}")
        for item in (rechecks or {}).get(report.proof.key, []):
            if not item.agrees:
                print(f"      [cvc5 {item.answer}, z3 {item.query.expected}] {item.query.label}")
    passed = sum(r.passed for r in reports)
    totals = kind_totals(reports)
    print(f"\n{passed} of {len(reports)} proofs pass every machine-checked step")
    print(f"{sum(totals.values())} steps: " + ", ".join(f"{n} {STEP_KINDS[k]}" for k, n in totals.items()))
    agree = True
    if rechecks is not None:
        count = recheck_summary(item for items in rechecks.values() for item in items)
        agree = count["agree"] == count["queries"]
        print(f"cvc5 re-checked {count['queries']} SMT queries that z3 decided: {count['agree']} agree, "
              f"{count['disagree']} disagree, {count['unknown']} unknown ({count['seconds']:.1f} s)")
    if args.out:
        print(f"wrote {written} and {sum(len(r.queries) for r in reports)} SMT-LIB files under "
              f"{Path(args.out) / 'smt'}")
    return 0 if passed == len(reports) and agree else 1


def _cmd_layers(args: argparse.Namespace) -> int:
    model = load_model(args.model, weights=args.weights, device=args.device)
    names = layer_names(model) if args.all else main_layers(model)
    print(f"{model.name}: {model.weights_note}; input {model.in_channels}x{model.input_size}x"
          f"{model.input_size}{' (fixed)' if model.fixed_size else ''}")
    for row in describe_layers(model, names):
        units = f"{row.units:5d}" if row.units is not None else "    -"
        print(f"{row.name:40s} units={units}  {row.kind:7s} shape={row.shape}"
              + (f"  {row.note}" if row.note else ""))
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    job = RenderJob(model=args.model, weights=args.weights, layer=args.layer,
                    units=_parse_units(args.units), steps=args.steps, size=args.size,
                    param=args.param, seed=args.seed, minimize=args.minimize,
                    batch_size=args.batch_size, precision=args.precision)
    out = run_render_job(job, args.out, device=args.device, force=args.force)
    print(f"wrote {len(job.units)} PNGs, contact_sheet.png and {out.name} to {out.parent}")
    return 0


def _cmd_fool(args: argparse.Namespace) -> int:
    if args.permute is not None and args.target is not None:
        raise ValueError(f"--target {args.target!r} and --permute {args.permute} exclude each other: "
                         f"the visualizations show either a target or a permutation")
    mode = "permute" if args.permute is not None else "target"
    config = FoolingConfig(model=args.model, weights=args.weights, mode=mode,
                           target=args.target or FoolingConfig.target, units=_parse_units(args.units),
                           offset=args.permute if args.permute is not None else FoolingConfig.offset,
                           gate=args.gate, steps=args.steps,
                           size=args.size, n_natural=args.natural, images=args.images,
                           sources=args.sources, verify_images=args.verify_images,
                           robustness=not args.no_robustness)
    _claim_out(args, EXPERIMENTS)
    result, images = run_fooling(config, args.out, device=args.device, force=args.force)
    write_fooling(result.to_json(), images, args.out)
    print(json.dumps({k: v for k, v in result.to_json().items() if k != "config"}, indent=2))
    verdict = fooling_verdict(result)
    if not verdict["fooled"]:
        print(f"fvtrust: error: {verdict['summary']}", file=sys.stderr)
        return 1
    print(verdict["summary"])
    return 0


def _cmd_gate_family(args: argparse.Namespace) -> int:
    config = GateFamilyConfig(model=args.model, weights=args.weights, n_natural=args.natural,
                              images=args.images, sources=args.sources, size=args.size,
                              bank_settings=args.bank_settings, bank_steps=args.steps,
                              eval_settings=args.eval_settings,
                              units_per_setting=args.units_per_setting, classic=not args.no_default)
    _claim_out(args, EXPERIMENTS)
    result = run_gate_family(config, args.out, device=args.device, force=args.force)
    data = result.to_json()
    paths = write_gate_family(data, args.out)
    print(family_table(data))
    print(f"\nwrote {', '.join(str(p) for p in paths)}")
    return 0


def _cmd_silent(args: argparse.Namespace) -> int:
    config = SilentConfig(model=args.model, weights=args.weights, layer=args.layer,
                          units=_parse_units(args.units), steps=args.steps, size=args.size,
                          n_natural=args.natural, images=args.images, sources=args.sources,
                          verify_images=args.verify_images, lock=args.lock, gate=args.gate,
                          margin=args.margin)
    _claim_out(args, EXPERIMENTS)
    result, images = run_silent(config, args.out, device=args.device, force=args.force)
    write_silent(result.to_json(), images, args.out)
    print(json.dumps({k: v for k, v in result.to_json().items() if k != "config"}, indent=2))
    return 0


def _cmd_sanity(args: argparse.Namespace) -> int:
    config = SanityConfig(model=args.model, weights=args.weights, n_natural=args.natural,
                          steps=args.steps, size=args.size, similarity=args.similarity,
                          vis_per_class=args.vis_per_class, min_per_class=args.min_per_class)
    check_sources_option(args.images, args.sources)
    _claim_out(args, EXPERIMENTS)
    natural = (image_folder(args.images, size=args.size, limit=args.natural, option="--images",
                            sources=args.sources) if args.images else None)
    result = run_sanity(config, args.out, device=args.device, force=args.force, natural=natural)
    paths = write_sanity(result.to_json(), args.out)
    print(f"{len(result.classes)} classes kept of {result.n_candidate_classes} seen; score: 1 = "
          f"processed like natural images of the class, 0 = like other classes")
    print(f"{'layer':28s} {'score':>6s}  {'95% CI':^18s}  {'normalizer':>10s}")
    for layer, m, (lo, hi), norm in zip(result.layers, result.score_mean, result.score_ci,
                                        result.normalizer, strict=True):
        print(f"{layer:28s} {m:6.3f}  [{lo:6.3f}, {hi:6.3f}]  {norm:10.3f}")
    for warning in result.warnings:
        print(f"fvtrust: warning: {warning}", file=sys.stderr)
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def _cmd_afc(args: argparse.Namespace) -> int:
    config = AFCConfig(model=args.model, weights=args.weights, task=args.task,
                       layers=[s.strip() for s in args.layers.split(",") if s.strip()],
                       units=_parse_units(args.units), n_references=args.references,
                       reference_sides=args.reference_sides,
                       n_trials=args.trials, steps=args.steps, size=args.size,
                       n_natural=args.natural, observer=args.observer_model,
                       observers=([s.strip() for s in args.observers.split(",")]
                                  if args.observers else None),
                       images=args.images, sources=args.sources,
                       query_selection=args.query_selection,
                       quantile=args.quantile, patch=args.patch, stride=args.stride,
                       alpha=args.alpha, seed=args.seed)
    renders = shared_folder(args.renders) if args.renders is not None else None  # checked first
    _claim_out(args, EXPERIMENTS)
    if renders is not None:
        renders.open()  # its files are listed as ours, as --out's are
    result = run_afc(config, args.out, device=args.device, force=args.force, shared_dir=args.renders)
    out = Path(args.out)
    data = result.to_json()
    write_afc(data, out)
    print(afc_markdown(data))
    print(f"\nwrote {out / f'afc_{args.task}'}.{{json,md,png,pdf}}")
    return 0


def _names(text: str, option: str) -> list[str]:
    """A comma-separated list of names; an empty one is refused, naming the option."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"{option}: no names in {text!r}")
    return items


def _cmd_sweep(args: argparse.Namespace) -> int:
    plan = SweepPlan(models=_names(args.models, "--models"), layers=_names(args.layers, "--layers"),
                     units=args.units, measure=_names(args.measure, "--measure"), steps=args.steps,
                     size=args.size, seed=args.seed, chunk=args.chunk, order=args.order, limit=args.limit,
                     n_references=args.references,
                     n_natural=args.natural, images=args.images, sources=args.sources,
                     n_trials=args.trials,
                     precision=args.precision, renders=args.renders)
    summary = run_sweep(plan, args.out, address=args.address, workers=args.workers,
                        device=args.device, force=args.force, merge=args.merge)
    out = Path(args.out)
    table = read_sweep(out)
    afc = afc_reports(table, plan)
    write_sweep(asdict(summary), table, out, afc)
    print(f"{summary.n_units} units: {summary.n_skipped} already done, {summary.n_computed} computed, "
          f"{summary.n_failed} failed ({summary.units_per_second:.2f} units/s on {summary.workers} "
          f"workers); wrote {out / 'units.parquet'}, {out / 'sweep.png'}"
          + (f", the 2-AFC paired comparisons in {out / 'afc'}" if afc else ""))
    if args.merge:
        left = ", ".join(f"{n} {why}" for why, n in summary.merge_left_out.items())
        print(f"merged {summary.n_merged} units from {', '.join(args.merge)}"
              + (f" (left out: {left})" if left else ""))
    for task, error in summary.failures.items():
        print(f"  failed: {task}: {error}", file=sys.stderr)
    return 1 if summary.n_failed else 0


def _cmd_audit(args: argparse.Namespace) -> int:
    model = args.model if args.weights is None else f"{args.model}={args.weights}"
    plan = AuditPlan(models=[model], layers=_names(args.layers, "--layers"), units=args.units,
                     steps=args.steps, size=args.size, audit_seeds=args.seeds, n_natural=args.natural,
                     images=args.images, sources=args.sources, seed=args.seed, chunk=args.chunk)
    summary = run_audit(plan, args.out, calibration=args.calibration, calibrate_here=args.calibrate,
                        alpha=args.alpha, force=args.force, address=args.address,
                        workers=args.workers, device=args.device)
    sweep = summary.sweep
    judged = (f"{summary.n_suspicious} of {summary.n_units} units suspicious"
              if summary.n_suspicious is not None else
              f"{summary.n_units} units scored, not judged (no --calibration or --calibrate)")
    print(f"{judged}; {sweep.n_skipped} already done, {sweep.n_computed} computed, {sweep.n_failed} "
          f"failed; wrote {summary.verdicts}, {summary.report}"
          + (f", {summary.calibration}" if args.calibrate else ""))
    for task, error in sweep.failures.items():
        print(f"  failed: {task}: {error}", file=sys.stderr)
    return 1 if sweep.n_failed else 0


def _cmd_audit_bench(args: argparse.Namespace) -> int:
    config = BenchConfig(models=_names(args.models, "--models"), fit_model=args.fit_model,
                         manipulations=_names(args.manipulations, "--manipulations"))
    _claim_out(args, EXPERIMENTS)
    result = run_bench(config, args.out, device=args.device, force=args.force)
    paths = write_bench(result.to_json(), result.rows, args.out)
    for row in combined_summary(result):
        print(f"{row['entry']}: {row['n_detected']} of {row['n_positive']} successfully manipulated "
              f"units flagged on held-out networks ({row['n_succeeded']} of {row['n_units']} succeeded)")
    for c in result.clean:
        print(f"{c['model']}{'' if c['held_out'] else ' (fit)'}: {c['n_flagged']} of {c['n_clean']} "
              f"clean units flagged")
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def _cmd_zoo(args: argparse.Namespace) -> int:
    names = check_manipulations(_names(args.manipulations, "--manipulations"), "--manipulations")
    config = ZooConfig(logit_units=tuple(_parse_units(args.logit_units)), conv_layer=args.conv_layer,
                       conv_units=tuple(_parse_units(args.conv_units)), mid_layer=args.mid_layer,
                       mid_units=tuple(_parse_units(args.mid_units)))
    check_out(args.out, "--out")
    model = load_model(args.model, device=args.device)
    n_logits = layer_channels(model, [LOGITS])[LOGITS][0]
    checks = [("--logit-units", config.logit_units, n_logits),
              ("--conv-units", config.conv_units, check_layer(model, config.conv_layer))]
    if any(MANIPULATIONS[n].place == "mid" for n in names):
        checks.append(("--mid-units", config.mid_units, check_layer(model, config.mid_layer)))
    for what, units, n in checks:
        if max(units) >= n:
            raise ValueError(f"{what}: {max(units)} is out of range ({n} units)")
    if any(n.startswith("silent") for n in names):
        conv_layer(model, config.conv_layer)  # silent units need a full convolution: said now
    out = _claim_out(args, EXPERIMENTS)
    setup = ZooSetup(model, config, gate_root=out.root, force=args.force)
    reports = build_zoo(setup, names, default_observer(AuditConfig(), model.name, args.device))
    paths = write_zoo(reports, out.root)
    for r in reports:
        budget = "" if r.cost.within_budget else " (natural cost over budget)"
        print(f"{r.entry.name}: {sum(r.succeeded)} of {len(r.succeeded)} units manipulated successfully; "
              f"top-1 agreement {r.cost.top1_agreement:.3f} on {r.cost.n_images} held-out images "
              f"of {r.cost.n_sources} sources{budget}")
    print(f"wrote {len(paths)} files under {out.root}")
    return 0


def _cmd_appendix(args: argparse.Namespace) -> int:
    parts = args.parts.split(",") if args.parts else None
    if args.pdf and args.no_pdf:
        raise ValueError("--pdf and --no-pdf contradict each other: choose one")
    try:
        tex = build_appendix(args.out, scale=args.scale, device=args.device, force=args.force,
                             parts=parts, pdf="require" if args.pdf else not args.no_pdf,
                             merge=args.merge)
    except PDFNotBuilt as exc:
        print(f"fvtrust: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {tex} (numbers: {tex.parent / 'results.json'}, "
          f"manifest: {tex.parent / 'MANIFEST.json'})")
    return 0


def _parse_units(text: str) -> list[int]:
    """'0,1,2' or '0-7' or a mix ('0-3,9'); a bad part is an error naming --units."""
    units = parse_units(text)
    if units is None:
        raise ValueError("--units: 'all' is for fvtrust sweep; name the units (0-7 or 0,1,2)")
    return units
