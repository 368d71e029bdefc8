"""The ``fvtrust`` command: a thin layer over functions a notebook can call."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _cmd_theory(args: argparse.Namespace) -> int:
    from fvtrust.theory.table import compute_table
    from fvtrust.theory.variants import compute_variant_table

    table = compute_table(eps=args.eps, samples=args.samples, progress=True)
    print(table.to_markdown())
    variants = compute_variant_table(table, eps=args.eps, samples=args.samples)
    print("\nThe same classes under the Φ variants (max-only, approximate extremes):\n")
    print(variants.to_markdown())
    paths = table.write(args.out) + variants.write(args.out)
    print(f"\nwrote {', '.join(str(p) for p in paths)}")
    # Open cells (no proof either way) are reported as such; a construction that fails its
    # own verification is an error.
    cells = [*table.entries, *(e for es in variants.entries.values() for e in es)]
    broken = [f"{e.class_key}/{e.task}" for e in cells if e.checks and not all(e.checks.values())]
    if broken:
        print(f"fvtrust: error: constructions failed their checks: {', '.join(broken)}", file=sys.stderr)
    return 1 if broken else 0


def _cmd_proofs(args: argparse.Namespace) -> int:
    from fvtrust.proofs import run_all
    from fvtrust.theory.io import atomic_write_json

    reports = run_all(progress=True)
    for report in reports:
        status = "PASS" if report.passed else "FAIL"
        print(f"{status}  {report.proof.kind} {report.proof.key}: {report.proof.title} "
              f"({len(report.steps)} steps, {report.seconds:.2f} s)")
        for step in report.steps:
            if args.verbose or not step.passed:
                print(f"      [{'ok' if step.passed else 'FAILED'}] {step.name}: {step.detail}")
    passed = sum(r.passed for r in reports)
    print(f"\n{passed} of {len(reports)} proofs pass every machine-checked step")
    if args.out:
        path = atomic_write_json(Path(args.out) / "proofs.json", [r.to_dict() for r in reports])
        print(f"wrote {path}")
    return 0 if passed == len(reports) else 1


def _parse_units(text: str) -> list[int]:
    """'0,1,2' or '0-7' or a mix ('0-3,9'); a bad part is an error naming --units."""
    from fvtrust.empirical.sweep import parse_units

    units = parse_units(text)
    if units is None:
        raise ValueError("--units: 'all' is for fvtrust sweep; name the units (0-7 or 0,1,2)")
    return units


def _cmd_layers(args: argparse.Namespace) -> int:
    from fvtrust.empirical.models import layer_channels, layer_names, load_model, main_layers

    model = load_model(args.model, weights=args.weights, device=args.device)
    names = layer_names(model) if args.all else main_layers(model)
    for name, shape in layer_channels(model, names).items():
        print(f"{name:40s} units={shape[0]:5d}  shape={shape}")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from fvtrust.empirical.render_job import RenderJob, run_render_job

    job = RenderJob(model=args.model, weights=args.weights, layer=args.layer,
                    units=_parse_units(args.units), steps=args.steps, size=args.size,
                    param=args.param, seed=args.seed, minimize=args.minimize,
                    batch_size=args.batch_size, precision=args.precision)
    out = run_render_job(job, args.out, device=args.device, force=args.force)
    print(f"wrote {out}")
    return 0


def _cmd_fool(args: argparse.Namespace) -> int:
    from fvtrust.empirical.figures import image_grid
    from fvtrust.empirical.fooling_experiment import FoolingConfig, fooling_verdict, run_fooling
    from fvtrust.theory.io import atomic_write_json

    mode = "permute" if args.permute is not None else "target"
    config = FoolingConfig(model=args.model, weights=args.weights, mode=mode,
                           target=args.target, units=_parse_units(args.units),
                           offset=args.permute or 100, gate=args.gate, steps=args.steps,
                           size=args.size, n_natural=args.natural, images=args.images,
                           verify_images=args.verify_images,
                           snapshots=tuple(sorted({1, 2, 4, 8, 16, 32, 64, args.steps}
                                                  - {s for s in (32, 64) if s > args.steps})))
    result, images = run_fooling(config, args.out, device=args.device, force=args.force)
    out = Path(args.out)
    atomic_write_json(out / f"fooling_{mode}.json", result.to_json())
    names = [f"unit {u}" for u in config.units]
    image_grid({"original": images["original"], "fooling circuit": images["manipulated"],
                "target": images["target"]}, names,
               f"Fooling circuit ({mode}, {config.gate} gate) after {config.steps} steps",
               out / f"fooling_{mode}")
    print(json.dumps({k: v for k, v in result.to_json().items() if k != "config"}, indent=2))
    verdict = fooling_verdict(result)
    if not verdict["fooled"]:
        print(f"fvtrust: error: {verdict['summary']}", file=sys.stderr)
        return 1
    print(verdict["summary"])
    return 0


def _cmd_silent(args: argparse.Namespace) -> int:
    from fvtrust.empirical.figures import image_grid
    from fvtrust.empirical.silent_experiment import SilentConfig, run_silent
    from fvtrust.theory.io import atomic_write_json

    config = SilentConfig(model=args.model, weights=args.weights, layer=args.layer,
                          units=_parse_units(args.units), steps=args.steps, size=args.size,
                          n_natural=args.natural, images=args.images,
                          verify_images=args.verify_images, lock=args.lock, gate=args.gate,
                          margin=args.margin)
    result, images = run_silent(config, args.out, device=args.device, force=args.force)
    out = Path(args.out)
    atomic_write_json(out / "silent_units.json", result.to_json())
    image_grid({"original": images["original"], "silent units": images["silent units"],
                "target": images["target"]}, [f"unit {u}" for u in config.units],
               f"Silent units in {config.layer} after {config.steps} steps", out / "silent_units")
    print(json.dumps({k: v for k, v in result.to_json().items() if k != "config"}, indent=2))
    return 0


def _cmd_sanity(args: argparse.Namespace) -> int:
    from fvtrust.empirical.data import image_folder
    from fvtrust.empirical.sanity import SanityConfig, plot_sanity, run_sanity
    from fvtrust.theory.io import atomic_write_json

    config = SanityConfig(model=args.model, weights=args.weights, n_natural=args.natural,
                          steps=args.steps, size=args.size, similarity=args.similarity,
                          vis_per_class=args.vis_per_class, min_per_class=args.min_per_class)
    natural = (image_folder(args.images, size=args.size, limit=args.natural)
               if args.images else None)
    result = run_sanity(config, args.out, device=args.device, force=args.force, natural=natural)
    out = Path(args.out)
    atomic_write_json(out / "sanity.json", result.to_json())
    plot_sanity(result, out / "sanity")
    print(f"{len(result.classes)} classes kept of {result.n_candidate_classes} seen")
    for layer, m, (lo, hi) in zip(result.layers, result.score_mean, result.score_ci, strict=True):
        print(f"{layer:28s} {m:6.3f}  [{lo:6.3f}, {hi:6.3f}]")
    return 0


def _cmd_afc(args: argparse.Namespace) -> int:
    from fvtrust.empirical.afc_figures import afc_table, per_layer_table, plot_afc
    from fvtrust.empirical.psychophysics import AFCConfig, run_afc
    from fvtrust.theory.io import atomic_write_json, atomic_write_text

    config = AFCConfig(model=args.model, weights=args.weights, task=args.task,
                       layers=[s.strip() for s in args.layers.split(",") if s.strip()],
                       units=_parse_units(args.units), k=args.k, n_tasks=args.n, steps=args.steps,
                       size=args.size, pool=args.pool, observer=args.observer_model,
                       observers=[s.strip() for s in args.observers.split(",")] if args.observers else None,
                       images=args.images, query_selection=args.query_selection,
                       quantile=args.quantile, patch=args.patch, stride=args.stride,
                       alpha=args.alpha, seed=args.seed)
    result = run_afc(config, args.out, device=args.device, force=args.force, shared_dir=args.renders)
    out = Path(args.out)
    data = result.to_json()
    atomic_write_json(out / f"afc_{args.task}.json", data)
    table = afc_table(data) + "\n\n" + "\n\n".join(
        f"Per layer, `{o}` observer:\n\n{per_layer_table(data, o)}"
        for o in data["observers"] if o not in ("center", "variance"))
    atomic_write_text(out / f"afc_{args.task}.md", table + "\n")
    plot_afc(data, out / f"afc_{args.task}")
    print(table)
    print(f"\nwrote {out / f'afc_{args.task}'}.{{json,md,png,pdf}}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from fvtrust.empirical.sweep import SweepPlan, run_sweep
    from fvtrust.empirical.sweep_store import plot_sweep, read_sweep
    from fvtrust.theory.io import atomic_write_json

    def names(text: str, option: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise ValueError(f"{option}: no names in {text!r}")
        return items

    plan = SweepPlan(models=names(args.models, "--models"), layers=names(args.layers, "--layers"),
                     units=args.units, measure=names(args.measure, "--measure"), steps=args.steps,
                     size=args.size, seed=args.seed, chunk=args.chunk, k=args.k, pool=args.pool,
                     images=args.images, afc_trials=args.afc_trials, precision=args.precision)
    summary = run_sweep(plan, args.out, address=args.address, workers=args.workers,
                        device=args.device, force=args.force)
    out = Path(args.out)
    atomic_write_json(out / "summary.json", asdict(summary))
    table = read_sweep(out)
    plot_sweep(table, out / "sweep")
    print(f"{summary.n_units} units: {summary.n_skipped} already done, {summary.n_computed} computed, "
          f"{summary.n_failed} failed ({summary.units_per_second:.2f} units/s on {summary.workers} "
          f"workers); wrote {out / 'units.parquet'}, {out / 'sweep.png'}")
    for task, error in summary.failures.items():
        print(f"  failed: {task}: {error}", file=sys.stderr)
    return 1 if summary.n_failed else 0


def _cmd_appendix(args: argparse.Namespace) -> int:
    from fvtrust.empirical.appendix import build_appendix

    parts = args.parts.split(",") if args.parts else None
    if args.pdf and args.no_pdf:
        raise ValueError("--pdf and --no-pdf contradict each other: choose one")
    from fvtrust.empirical.appendix import PDFNotBuilt

    try:
        tex = build_appendix(args.out, scale=args.scale, device=args.device, force=args.force,
                             parts=parts, pdf="require" if args.pdf else not args.no_pdf)
    except PDFNotBuilt as exc:
        print(f"fvtrust: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {tex} (numbers: {tex.parent / 'results.json'}, "
          f"manifest: {tex.parent / 'MANIFEST.json'})")
    return 0


def _add_run_args(p: argparse.ArgumentParser, config: object, out: str) -> None:
    """--steps, --size, --natural (where the experiment has it), --out and --force, with the
    defaults of the experiment's config dataclass (the documented quick scale)."""
    p.add_argument("--steps", type=int, default=config.steps,
                   help="optimization steps of each visualization; default %(default)s")
    p.add_argument("--size", type=int, default=config.size,
                   help="image side in px (renders and natural images); default %(default)s")
    if hasattr(config, "n_natural"):
        p.add_argument("--natural", type=int, default=config.n_natural,
                       help="natural images drawn (split by source: calibration and held-out parts)")
        p.add_argument("--images", default=None,
                       help="ImageFolder/ImageNet directory or any tree of images (default: the "
                            "photo corpus, see README)")
    p.add_argument("--out", default=out, help="output directory (resumable)")
    p.add_argument("--force", action="store_true", help="recompute saved stages")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="efficientnet_lite0",
                   help="efficientnet_lite0 (default, offline), efficientnet_lite1/2, googlenet, resnet50")
    p.add_argument("--weights", default=None,
                   help="'imagenet' (default), 'random', or a path to a state dict")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, or auto")


def build_parser() -> argparse.ArgumentParser:
    from fvtrust.empirical.fooling_experiment import FoolingConfig
    from fvtrust.empirical.psychophysics import AFCConfig
    from fvtrust.empirical.sanity import SanityConfig
    from fvtrust.empirical.silent_experiment import SilentConfig

    from fvtrust import theory

    parser = argparse.ArgumentParser(
        prog="fvtrust", description="Put feature visualizations on trial: theory and experiments.")
    parser.add_argument("--version", action="version", version=f"fvtrust {theory.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    from fvtrust.empirical.appendix import PARTS

    p = sub.add_parser("appendix", help="regenerate the paper-style appendix (the main job)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="example:\n  fvtrust appendix --parts theory,proofs --out appendix")
    p.add_argument("--out", default="appendix", help="output directory (resumable); default %(default)s")
    p.add_argument("--scale", default="quick", choices=["tiny", "quick", "paper"],
                   help="quick: < 15 min on 2 CPU cores; paper: full settings (GPU)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, or auto; default %(default)s")
    p.add_argument("--parts", default=None,
                   help=f"comma-separated subset of parts: {', '.join(PARTS)}; default: all")
    p.add_argument("--force", action="store_true", help="recompute parts already done")
    p.add_argument("--no-pdf", action="store_true", help="write the .tex only")
    p.add_argument("--pdf", action="store_true",
                   help="demand the PDF: exit 1 when pdflatex is missing or fails (default: try, "
                        "and say why when it cannot)")
    p.set_defaults(func=_cmd_appendix)

    p = sub.add_parser("theory", help="compute the results table (classes x tasks A-D)",
                       epilog="example: fvtrust theory --out theory-results")
    p.add_argument("--out", default="theory-results", help="directory for table.{json,md,tex}")
    p.add_argument("--eps", type=float, default=1e-3, help="epsilon of the constructions")
    p.add_argument("--samples", type=int, default=8, help="sampled members per reliable class")
    p.set_defaults(func=_cmd_theory)

    p = sub.add_parser("layers", help="list a model's layer names with their number of units",
                       epilog="example: fvtrust layers --model efficientnet_lite0")
    _add_model_args(p)
    p.add_argument("--all", action="store_true", help="every module, not only the main blocks")
    p.set_defaults(func=_cmd_layers)

    p = sub.add_parser("render", help="render feature visualizations of units of a layer",
                       epilog="example: fvtrust render --layer _blocks.10 --units 0-7 --steps 256 --size 224")
    _add_model_args(p)
    p.add_argument("--layer", required=True, help="layer name (see fvtrust layers), or logits")
    p.add_argument("--units", default="0",
                   help="units (channels): 0,1,2 or 0-7 or a mix; default %(default)s")
    p.add_argument("--steps", type=int, default=512, help="optimization steps; default %(default)s")
    p.add_argument("--size", type=int, default=224, help="image side in px; default %(default)s")
    p.add_argument("--param", default="fourier", choices=["fourier", "pixel"],
                   help="image parametrization: Fourier with decorrelated colour (lucid) or raw "
                        "pixels; default %(default)s")
    p.add_argument("--seed", type=int, default=0, help="seed of the start images; default %(default)s")
    p.add_argument("--minimize", action="store_true", help="render the min visualization")
    p.add_argument("--batch-size", type=int, default=16, help="units rendered per batch")
    p.add_argument("--precision", default="float32", choices=["float32", "bfloat16"],
                   help="the network's arithmetic while rendering: float32 (exact) or bfloat16 "
                        "autocast (faster on GPUs and bfloat16 CPUs; see README, Benchmarks); "
                        "default %(default)s")
    p.add_argument("--out", default="renders", help="output directory")
    p.add_argument("--force", action="store_true", help="re-render units already on disk")
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("fool", help="fooling circuit: visualizations show a target or a permutation",
                       epilog="example: fvtrust fool --target coffee   or   fvtrust fool --permute 100")
    _add_model_args(p)
    p.add_argument("--target", default="coffee", help="bundled photo name or image path")
    p.add_argument("--permute", type=int, default=None, metavar="OFFSET",
                   help="unit i shows unit i+OFFSET's visualization (instead of a target)")
    p.add_argument("--units", default="285,417,980",
                   help="logit units to visualize: 0,1,2 or 0-7; default %(default)s")
    p.add_argument("--gate", default="features", choices=["features", "classifier", "nearest"],
                   help="the detector E that switches the circuit: a learned boundary on early "
                        "feature statistics (features), the paper's small CNN on pixels "
                        "(classifier), or distance to the calibration photos (nearest: flags every "
                        "unseen photo, closed-world only); default %(default)s")
    p.add_argument("--verify-images", default=None, metavar="DIR",
                   help="also measure natural behaviour on this directory of images (any layout); "
                        "it must share no file with the calibration images")
    _add_run_args(p, FoolingConfig(), "results/fooling")
    p.set_defaults(func=_cmd_fool)

    p = sub.add_parser("silent", help="silent units: one layer's visualizations collapse",
                       epilog="example: fvtrust silent --layer _conv_head --units 0-5")
    _add_model_args(p)
    p.add_argument("--layer", default="_conv_head",
                   help="layer whose units get the silent branch (see fvtrust layers); default %(default)s")
    p.add_argument("--units", default="0-31",
                   help="units to manipulate: 0,1,2 or 0-7; default %(default)s")
    p.add_argument("--lock", default="gate", choices=["gate", "bias"],
                   help="what keeps the branches shut on natural images: the fooling gate E(x) "
                        "times the branch (gate), or the branch bias alone, as in the paper "
                        "(bias: cannot be both shut on unseen photos and open on renders); "
                        "default %(default)s")
    p.add_argument("--gate", default="features", choices=["features", "classifier", "nearest"],
                   help="which gate, with --lock gate (see fvtrust fool --help); default %(default)s")
    p.add_argument("--margin", type=float, default=None,
                   help="branch threshold b' = max + MARGIN * (max - mean) of the calibration "
                        "responses: larger stays silent on more unseen photos, opens on fewer "
                        "renders; default -0.5 with --lock gate (>= -1), 1 with --lock bias (>= 0)")
    p.add_argument("--verify-images", default=None, metavar="DIR",
                   help="also measure natural behaviour on this directory of images (any layout); "
                        "it must share no file with the calibration images")
    _add_run_args(p, SilentConfig(), "results/silent")
    p.set_defaults(func=_cmd_silent)

    p = sub.add_parser("sanity", help="layerwise sanity check of class visualizations",
                       epilog="example: fvtrust sanity --images /data/imagenet/val --natural 2000")
    _add_model_args(p)
    p.add_argument("--vis-per-class", type=int, default=2,
                   help="class visualizations rendered per class (count); default %(default)s")
    p.add_argument("--min-per-class", type=int, default=8,
                   help="natural images a class needs to be kept (count, >= 2); default %(default)s")
    p.add_argument("--similarity", default="spearman", choices=["spearman", "pearson", "cosine"],
                   help="similarity of activation vectors; default %(default)s")
    _add_run_args(p, SanityConfig(), "results/sanity")
    p.set_defaults(func=_cmd_sanity)

    afc = AFCConfig()
    p = sub.add_parser(
        "afc", help="machine-observer 2-AFC: references or occlusion task",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Machine observers take the 2-AFC tasks of Borowski et al. (references: which "
                    "of two queries activates the unit more?) and Zimmermann et al. 2021 (occlusion: "
                    "which of two occlusions changes the activation more?). References and queries "
                    "come from source-disjoint halves of the natural images; 95 %% CIs are "
                    "hierarchical bootstraps over units, then trials.",
        epilog="example:\n  fvtrust afc --task occlusion --layers _blocks.2,_blocks.10 --units 0-3 "
               "--stride 8\n  fvtrust afc --task references --query-selection mis")
    _add_model_args(p)
    p.add_argument("--task", default=afc.task, choices=["references", "occlusion"],
                   help="references (Borowski et al.) or occlusion (Zimmermann et al. 2021); "
                        "default %(default)s")
    p.add_argument("--layers", default=",".join(afc.layers),
                   help="comma-separated layer names of the explained network (see fvtrust layers); "
                        "default %(default)s")
    p.add_argument("--units", default="0-3",
                   help="units (channels) of every layer: 0,1,2 or 0-7 or a mix; default %(default)s")
    p.add_argument("--observers", default=None,
                   help="comma-separated observers: mis, spatial (both tasks), center, variance "
                        "(occlusion only, reference-free); default: all of the task's")
    p.add_argument("--observer-model", default=afc.observer,
                   help="network whose features the observers compare images in (a different "
                        "network from --model); default %(default)s")
    p.add_argument("--k", type=int, default=afc.k,
                   help="references per side: K max and K min (count); default %(default)s")
    p.add_argument("--n", type=int, default=afc.n_tasks,
                   help="trials (tasks) per unit (count); default %(default)s")
    p.add_argument("--pool", type=int, default=afc.pool,
                   help="natural images drawn (bundled crops or --images), split by source into "
                        "references and queries (count); default %(default)s")
    p.add_argument("--query-selection", default=afc.query_selection, choices=["quantile", "mis"],
                   help="references task: queries drawn at random from the top/bottom --quantile "
                        "(quantile), or the least activating of K+1 drawn there (mis, as in MIS); "
                        "default %(default)s")
    p.add_argument("--quantile", type=float, default=afc.quantile,
                   help="fraction of query images forming the top and the bottom quantile; "
                        "default %(default)s")
    p.add_argument("--patch", type=float, default=afc.patch,
                   help="occlusion square, as a fraction of the image side (paper: 0.3, 0.4, 0.5); "
                        "default %(default)s")
    p.add_argument("--stride", type=int, default=afc.stride,
                   help="occlusion stride in px (paper: 2 px at 224 px; quick scale is coarser); "
                        "default %(default)s")
    p.add_argument("--alpha", type=float, default=afc.alpha,
                   help="slope of P(correct) = sigmoid(alpha * evidence), reported beside accuracy; "
                        "default %(default)s")
    p.add_argument("--seed", type=int, default=afc.seed, help="seed of splits, trials and renders; "
                   "default %(default)s")
    p.add_argument("--steps", type=int, default=afc.steps,
                   help="optimization steps of each synthetic reference; default %(default)s")
    p.add_argument("--size", type=int, default=afc.size,
                   help="image side in px (natural images and renders); default %(default)s")
    p.add_argument("--images", default=None,
                   help="a directory of natural images (ImageFolder/ImageNet layout or any tree); "
                        "default: crops of the photo corpus")
    p.add_argument("--out", default="results/afc", help="output directory (resumable); default %(default)s")
    p.add_argument("--renders", default=None, metavar="DIR",
                   help="where the synthetic references are kept, shared by both tasks (the "
                        "occlusion run reuses the references run's renders); default: --out")
    p.add_argument("--force", action="store_true", help="recompute saved stages")
    p.set_defaults(func=_cmd_afc)

    from fvtrust.empirical.sweep import MEASUREMENTS, SweepPlan

    plan = SweepPlan()
    p = sub.add_parser(
        "sweep", help="every unit of many layers of many models, on Ray, into a Parquet store",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  fvtrust sweep --layers _blocks.10 --units all --steps 64 --size 64 --out sweep\n"
               "  fvtrust sweep --address 10.0.0.1:6379 --models efficientnet_lite0,resnet50=w.pt "
               "--layers _blocks.10 --out /shared/sweep")
    p.add_argument("--models", default=",".join(plan.models),
                   help="comma-separated registry names, each optionally NAME=WEIGHTS_FILE; "
                        "default %(default)s")
    p.add_argument("--layers", default=",".join(plan.layers),
                   help="comma-separated layer names, applied to every model; default %(default)s")
    p.add_argument("--units", default=str(plan.units),
                   help="'all' or units of every layer: 0,1,2 or 0-7 or 0-3,9; default %(default)s")
    p.add_argument("--measure", default=",".join(plan.measure),
                   help=f"comma-separated subset of {', '.join(MEASUREMENTS)}; default %(default)s")
    p.add_argument("--steps", type=int, default=plan.steps,
                   help="optimization steps per visualization; default %(default)s")
    p.add_argument("--size", type=int, default=plan.size, help="image side in px; default %(default)s")
    p.add_argument("--seed", type=int, default=plan.seed,
                   help="base seed (unit u uses seed+u); default %(default)s")
    p.add_argument("--chunk", type=int, default=plan.chunk,
                   help="units per Ray task (the unit of retry); default %(default)s")
    p.add_argument("--k", type=int, default=plan.k,
                   help="natural exemplars (and 2-AFC references) per side; default %(default)s")
    p.add_argument("--pool", type=int, default=plan.pool,
                   help="natural images the exemplars and 2-AFC trials are drawn from; default %(default)s")
    p.add_argument("--afc-trials", type=int, default=plan.afc_trials,
                   help="2-AFC trials per unit (afc_* measurements); default %(default)s")
    p.add_argument("--images", default=None,
                   help="ImageFolder/ImageNet directory or any tree of images (default: the photo corpus)")
    p.add_argument("--precision", default=plan.precision, choices=["float32", "bfloat16"],
                   help="arithmetic of the visualizations' renders (bfloat16: autocast); default %(default)s")
    p.add_argument("--workers", type=int, default=None,
                   help="tasks at once on the local Ray (default: one per CPU core); ignored with --address")
    p.add_argument("--address", default=None,
                   help="an existing Ray cluster, host:port or ray://host:port or auto "
                        "(default: start an embedded local Ray)")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA in each worker where present, one GPU per task), cpu or cuda; "
                        "default %(default)s")
    p.add_argument("--out", default="sweep", help="the results store (resumable); default %(default)s")
    p.add_argument("--force", action="store_true",
                   help="recompute a store written with other settings")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("proofs", help="run every proof's machine-checked steps",
                       epilog="example: fvtrust proofs -v --out proofs-results")
    p.add_argument("--out", default=None, help="directory for proofs.json")
    p.add_argument("-v", "--verbose", action="store_true", help="print every step")
    p.set_defaults(func=_cmd_proofs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValueError as exc:  # bad input: a clear message, not a traceback
        print(f"fvtrust: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # stages already saved stay saved: a rerun picks them up
        print("\nfvtrust: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

