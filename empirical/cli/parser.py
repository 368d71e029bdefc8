"""The ``fvtrust`` argument parser, built from the registries: every ``choices`` list and
default is read from the module that defines it (configs, GATES, PRECISIONS, TASKS, …)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

from fvtrust import cpus
from fvtrust._version import __version__
from fvtrust.empirical.circuits.gate_setup import GATES
from fvtrust.empirical.cli import commands
from fvtrust.empirical.experiments.afc import QUERY_SELECTIONS, REFERENCE_SIDES, TASKS, AFCConfig
from fvtrust.empirical.experiments.audit.bench import BenchConfig
from fvtrust.empirical.experiments.audit.calibration import DEFAULT_ALPHA
from fvtrust.empirical.experiments.audit.zoo import MANIPULATIONS, ZooConfig
from fvtrust.empirical.experiments.fooling import FoolingConfig
from fvtrust.empirical.experiments.gate_family import GateFamilyConfig
from fvtrust.empirical.experiments.sanity import SanityConfig
from fvtrust.empirical.experiments.silent import DEFAULT_MARGIN, SilentConfig
from fvtrust.empirical.nets.registry import DEFAULT_MODEL, REGISTRY
from fvtrust.empirical.observers.similarity import KINDS
from fvtrust.empirical.render.loop import PRECISIONS
from fvtrust.empirical.render.param import PARAMETRIZATIONS
from fvtrust.empirical.runs.appendix import PARTS, SCALES
from fvtrust.empirical.runs.audit import AuditPlan
from fvtrust.empirical.runs.sweep.plan import MEASUREMENTS, ORDERS, SweepPlan


class _Deprecated(argparse.Action):
    """An old flag kept for one release: it sets the new flag's value and says which to use."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        print(f"fvtrust: warning: {option_string} is deprecated and will be removed in the next "
              f"release; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _deprecated(p: argparse.ArgumentParser, aliases: Mapping[str, str]) -> None:
    """Old flag → new flag, each hidden from --help and warned about when used."""
    for old, new in aliases.items():
        p.add_argument(old, dest=new.lstrip("-").replace("-", "_"), type=int, action=_Deprecated,
                       new=new, help=argparse.SUPPRESS)


SOURCES_HELP = ("how the files of --images group into sources, which a held-out split keeps on "
                "one side: file (each file), folder (the files of a folder), or a regular "
                "expression searched in each file's path under DIR whose first group (or match) "
                "is the source, e.g. '^([^_]+)_'; default auto: folder when the files sit in "
                "subfolders other than ImageNet's class folders, else file")


def _images_args(p: argparse.ArgumentParser, help_text: str) -> None:
    """--images DIR and its --sources rule (every command that reads natural images)."""
    p.add_argument("--images", default=None, metavar="DIR", help=help_text)
    p.add_argument("--sources", default="auto", metavar="RULE", help=SOURCES_HELP)


def _add_run_args(p: argparse.ArgumentParser, config: object, out: str) -> None:
    """--steps, --size, --natural and --images, --verify-images (where the experiment has them),
    --out and --force, with the defaults of the experiment's config dataclass (the documented
    quick scale)."""
    p.add_argument("--steps", type=int, default=config.steps,
                   help="optimization steps of each visualization; default %(default)s")
    p.add_argument("--size", type=int, default=config.size,
                   help="image side in px (renders and natural images); default %(default)s")
    if hasattr(config, "n_natural"):
        p.add_argument("--natural", type=int, default=config.n_natural,
                       help="natural images drawn (split by source: calibration and held-out parts)")
        _images_args(p, "ImageFolder/ImageNet directory or any tree of images (default: the "
                        "photo corpus, see README)")
    if hasattr(config, "verify_images"):
        p.add_argument("--verify-images", default=None, metavar="DIR",
                       help="also measure natural behaviour on this directory of images (any layout); "
                            "it must share no file with the calibration images")
    p.add_argument("--out", default=out, help="output directory (resumable)")
    p.add_argument("--force", action="store_true", help="recompute saved stages")


MODEL_HELP = (f"a network: {', '.join(REGISTRY)}, torchvision:<arch> (e.g. torchvision:vit_b_16), "
              f"or your factory: package.module:make or path/to/net.py:make (README: your own "
              f"model)")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"{MODEL_HELP}; default %(default)s (offline)")
    p.add_argument("--weights", default=None,
                   help="'imagenet' (default), 'random', or a path to a state dict")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, or auto")


def _appendix_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("appendix", help="regenerate the paper-style appendix (the main job)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="example:\n  fvtrust appendix --parts theory,proofs --out appendix")
    p.add_argument("--out", default="appendix", help="output directory (resumable); default %(default)s")
    p.add_argument("--scale", default="quick", choices=list(SCALES),
                   help="quick: < 15 min on 2 CPU cores, plus about 45 min for the audit bench; "
                        "full: the manipulations over 50 units and a whole layer, and the 2-AFC "
                        "over 234-250 units of four layers of EfficientNet-Lite0/1/2 through the "
                        "sweep engine (parts afc_full_lite0/1/2: each resumable, and runnable on "
                        "its own machine into a shared --out); paper: full settings (GPU)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, or auto; default %(default)s")
    p.add_argument("--parts", default=None,
                   help=f"comma-separated subset of parts: {', '.join(PARTS)}; default: all "
                        f"of the scale's")
    p.add_argument("--force", action="store_true", help="recompute parts already done")
    p.add_argument("--merge", action="append", default=[], metavar="STORE",
                   help="the full-scale 2-AFC parts take the units of another sweep store (a "
                        "folder, or a units.parquet such as docs/results/afc_full_lite0/"
                        "units.parquet; repeatable) measured at their settings, and measure only "
                        "the rest")
    p.add_argument("--no-pdf", action="store_true", help="write the .tex only")
    p.add_argument("--pdf", action="store_true",
                   help="demand the PDF: exit 1 when pdflatex is missing or fails (default: try, "
                        "and say why when it cannot)")
    p.set_defaults(func=commands._cmd_appendix)


def _theory_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("theory", help="compute the results table (classes x tasks A-D)",
                       epilog="example: fvtrust theory --out theory-results")
    p.add_argument("--out", default="theory-results", help="directory for table.{json,md,tex}")
    p.add_argument("--eps", type=float, default=1e-3, help="epsilon of the constructions")
    p.add_argument("--samples", type=int, default=8, help="sampled members per reliable class")
    p.set_defaults(func=commands._cmd_theory)


def _layers_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("layers", help="list a model's layer names with their number of units",
                       epilog="example: fvtrust layers --model efficientnet_lite0")
    _add_model_args(p)
    p.add_argument("--all", action="store_true", help="every module, not only the main blocks")
    p.set_defaults(func=commands._cmd_layers)


def _render_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render feature visualizations of units of a layer",
                       epilog="example: fvtrust render --layer _blocks.10 --units 0-7 --steps 256 --size 224")
    _add_model_args(p)
    p.add_argument("--layer", required=True, help="layer name (see fvtrust layers), or logits")
    p.add_argument("--units", default="0",
                   help="units (channels): 0,1,2 or 0-7 or a mix; default %(default)s")
    p.add_argument("--steps", type=int, default=512, help="optimization steps; default %(default)s")
    p.add_argument("--size", type=int, default=224, help="image side in px; default %(default)s")
    p.add_argument("--param", default="fourier", choices=list(PARAMETRIZATIONS),
                   help="image parametrization: Fourier with decorrelated colour (lucid) or raw "
                        "pixels; default %(default)s")
    p.add_argument("--seed", type=int, default=0, help="seed of the start images; default %(default)s")
    p.add_argument("--minimize", action="store_true", help="render the min visualization")
    p.add_argument("--batch-size", type=int, default=16,
                   help="units rendered per batch (speed only: the same renders, up to float rounding); "
                        "default %(default)s")
    p.add_argument("--precision", default="float32", choices=PRECISIONS,
                   help="the network's arithmetic while rendering: float32 (exact) or bfloat16 "
                        "autocast (faster on GPUs and bfloat16 CPUs; see README, Benchmarks); "
                        "default %(default)s")
    p.add_argument("--out", default="renders",
                   help="output directory: one subfolder <layer>-<max|min>-<settings hash> per set "
                        "of settings, so renders never replace each other; default %(default)s")
    p.add_argument("--force", action="store_true",
                   help="re-render this job's units (each PNG is replaced once its new render is "
                        "written)")
    p.set_defaults(func=commands._cmd_render)


def _fool_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fool", help="fooling circuit: visualizations show a target or a permutation",
                       epilog="example: fvtrust fool --target coffee   or   fvtrust fool --permute 100")
    _add_model_args(p)
    p.add_argument("--target", default=None,
                   help=f"bundled photo name or image path; default {FoolingConfig.target}")
    p.add_argument("--permute", type=int, default=None, metavar="OFFSET",
                   help="unit i shows unit i+OFFSET's visualization (instead of a target)")
    p.add_argument("--units", default="285,417,980",
                   help="logit units to visualize: 0,1,2 or 0-7; default %(default)s")
    p.add_argument("--gate", default="features", choices=list(GATES),
                   help="the detector E that switches the circuit: a learned boundary on early "
                        "feature statistics (features), the paper's small CNN on pixels "
                        "(classifier), or distance to the calibration photos (nearest: flags every "
                        "unseen photo, closed-world only); default %(default)s")
    p.add_argument("--no-robustness", action="store_true",
                   help="skip the catch rates under other render settings (7 settings, each "
                        "rendering every unit three times: the long part with many --units)")
    _add_run_args(p, FoolingConfig(), "results/fooling")
    p.set_defaults(func=commands._cmd_fool)


def _gate_family_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gate-family",
                       help="the fooling gate over a family of render settings: catch rate per "
                            "held-out region, every escaping render named",
                       epilog="example: fvtrust gate-family --out results/gate-family")
    _add_model_args(p)
    defaults = GateFamilyConfig()
    p.add_argument("--bank-settings", type=int, default=defaults.bank_settings,
                   help="wide-family render settings the gates learn from; default %(default)s")
    p.add_argument("--eval-settings", type=int, default=defaults.eval_settings,
                   help="settings drawn inside each held-out region; default %(default)s")
    p.add_argument("--units-per-setting", type=int, default=defaults.units_per_setting,
                   help="held-out class units rendered per setting; default %(default)s")
    p.add_argument("--no-default", action="store_true",
                   help="do not test the default (classic-family) gate on the same renders")
    p.add_argument("--steps", type=int, default=defaults.bank_steps,
                   help="steps of the bank's renders; default %(default)s")
    p.add_argument("--size", type=int, default=defaults.size,
                   help="image side in px; default %(default)s")
    p.add_argument("--natural", type=int, default=defaults.n_natural,
                   help="natural images drawn (split by source); default %(default)s")
    _images_args(p, "ImageFolder/ImageNet directory or any tree of images (default: the photo "
                    "corpus, see README)")
    p.add_argument("--out", default="results/gate-family", help="output directory (resumable)")
    p.add_argument("--force", action="store_true", help="recompute saved stages")
    p.set_defaults(func=commands._cmd_gate_family)


def _silent_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("silent", help="silent units: one layer's visualizations collapse",
                       epilog="example: fvtrust silent --layer _conv_head --units 0-5")
    _add_model_args(p)
    p.add_argument("--layer", default="_conv_head",
                   help="layer whose units get the silent branch (see fvtrust layers); default %(default)s")
    p.add_argument("--units", default="0-31",
                   help="units to manipulate: 0,1,2 or 0-7; default %(default)s")
    p.add_argument("--lock", default="gate", choices=list(DEFAULT_MARGIN),
                   help="what keeps the branches shut on natural images: the fooling gate E(x) "
                        "times the branch (gate), or the branch bias alone, as in the paper "
                        "(bias: cannot be both shut on unseen photos and open on renders); "
                        "default %(default)s")
    p.add_argument("--gate", default="features", choices=list(GATES),
                   help="which gate, with --lock gate (see fvtrust fool --help); default %(default)s")
    p.add_argument("--margin", type=float, default=None,
                   help="branch threshold b' = max + MARGIN * (max - mean) of the calibration "
                        "responses: larger stays silent on more unseen photos, opens on fewer "
                        "renders; default -0.5 with --lock gate (>= -1), 1 with --lock bias (>= 0)")
    _add_run_args(p, SilentConfig(), "results/silent")
    p.set_defaults(func=commands._cmd_silent)


def _sanity_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sanity", help="layerwise sanity check of class visualizations",
                       epilog="example: fvtrust sanity --images /data/imagenet/val --natural 2000")
    _add_model_args(p)
    p.add_argument("--vis-per-class", type=int, default=2,
                   help="class visualizations rendered per class (count); default %(default)s")
    p.add_argument("--min-per-class", type=int, default=8,
                   help="natural images a class needs to be kept (count, >= 2); default %(default)s")
    p.add_argument("--similarity", default="spearman", choices=KINDS,
                   help="similarity of activation vectors; default %(default)s")
    _add_run_args(p, SanityConfig(), "results/sanity")
    p.set_defaults(func=commands._cmd_sanity)


def _afc_command(sub: argparse._SubParsersAction) -> None:
    afc = AFCConfig()
    p = sub.add_parser(
        "afc", help="machine-observer 2-AFC: references or occlusion task",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Machine observers take the 2-AFC tasks of Borowski et al. (references: which "
                    "of two queries activates the unit more?) and Zimmermann et al. 2021 (occlusion: "
                    "which of two occlusions changes the activation more?). References and queries "
                    "come from source-disjoint halves of the natural images; 95 % CIs are "
                    "hierarchical bootstraps over units, then trials.",
        epilog="example:\n  fvtrust afc --task occlusion --layers _blocks.2,_blocks.10 --units 0-3 "
               "--stride 8\n  fvtrust afc --task references --query-selection mis")
    _add_model_args(p)
    p.add_argument("--task", default=afc.task, choices=TASKS,
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
    p.add_argument("--references", type=int, default=afc.n_references,
                   help="references per side: K max and K min (count); default %(default)s")
    p.add_argument("--trials", type=int, default=afc.n_trials,
                   help="trials per unit (count); default %(default)s")
    p.add_argument("--reference-sides", default=afc.reference_sides, choices=REFERENCE_SIDES,
                   help="min+max: K max and K min references (Borowski et al.'s Min+Max-K); max: "
                        "the K max alone (Max-K), on the same trials; default %(default)s")
    p.add_argument("--natural", type=int, default=afc.n_natural,
                   help="natural images drawn (photo corpus crops or --images), split by source "
                        "into references and queries (count); default %(default)s")
    _deprecated(p, {"--k": "--references", "--n": "--trials", "--pool": "--natural"})
    p.add_argument("--query-selection", default=afc.query_selection, choices=QUERY_SELECTIONS,
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
    _images_args(p, "a directory of natural images (ImageFolder/ImageNet layout or any tree); "
                    "default: crops of the photo corpus")
    p.add_argument("--out", default="results/afc", help="output directory (resumable); default %(default)s")
    p.add_argument("--renders", default=None, metavar="DIR",
                   help="where the synthetic references are kept, shared by both tasks (the "
                        "occlusion run reuses the references run's renders); default: --out")
    p.add_argument("--force", action="store_true", help="recompute saved stages")
    p.set_defaults(func=commands._cmd_afc)


def _ray_options(p: argparse.ArgumentParser) -> None:
    """Where a command on the sweep engine runs: the sweep's and the audit's options."""
    p.add_argument("--workers", type=int, default=None,
                   help="tasks at once on the local Ray (default: one per CPU this process may use, "
                        "or --threads); ignored with --address")
    p.add_argument("--address", default=None,
                   help="an existing Ray cluster, host:port or ray://host:port or auto "
                        "(default: start an embedded local Ray)")
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda, or auto (CUDA in each worker where present, one GPU per task); "
                        "default %(default)s, as every command")


def _sweep_command(sub: argparse._SubParsersAction) -> None:
    plan = SweepPlan()
    p = sub.add_parser(
        "sweep", help="every unit of many layers of many models, on Ray, into a Parquet store",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  fvtrust sweep --layers _blocks.10 --units all --steps 64 --size 64 --out sweep\n"
               "  fvtrust sweep --address 10.0.0.1:6379 --models efficientnet_lite0,resnet50=w.pt "
               "--layers _blocks.10 --out /shared/sweep")
    p.add_argument("--models", default=",".join(plan.models),
                   help="comma-separated networks (names, torchvision:<arch>, factories), each "
                        "optionally NAME=WEIGHTS (a file, random or imagenet); a factory file "
                        "must be at the same path on every node; default %(default)s")
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
    p.add_argument("--order", choices=ORDERS, default=plan.order,
                   help="the order units are handed out in: by index, or at random within each "
                        "layer (seeded; the layers in turn either way), so that the units finished "
                        "when a long run stops are a random sample of every layer; default %(default)s")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="at most N units per layer, the first N in --order (a larger N later "
                        "extends the same sample); default every unit --units names")
    p.add_argument("--references", type=int, default=plan.n_references,
                   help="natural exemplars (and 2-AFC references) per side; default %(default)s")
    p.add_argument("--natural", type=int, default=plan.n_natural,
                   help="natural images the exemplars and 2-AFC trials are drawn from; default %(default)s")
    p.add_argument("--trials", type=int, default=plan.n_trials,
                   help="2-AFC trials per unit (afc_* measurements); default %(default)s")
    _deprecated(p, {"--k": "--references", "--pool": "--natural", "--afc-trials": "--trials"})
    _images_args(p, "ImageFolder/ImageNet directory or any tree of images (default: the photo corpus)")
    p.add_argument("--precision", default=plan.precision, choices=PRECISIONS,
                   help="arithmetic of the visualizations' renders (bfloat16: autocast); default %(default)s")
    _ray_options(p)
    p.add_argument("--out", default="sweep", help="the results store (resumable); default %(default)s")
    p.add_argument("--renders", default=None, metavar="DIR",
                   help="keep the 2-AFC measurements' visualizations in DIR (about 3.5 MB per unit "
                        "at K = 9 and 128 px), keyed by their settings: a later sweep of the same "
                        "units (the papers' other conditions, into another store) loads them instead "
                        "of rendering again. On a cluster, a folder every worker can reach; default: "
                        "not kept")
    p.add_argument("--merge", action="append", default=[], metavar="STORE",
                   help="first bring in the units another store measured with these settings (a "
                        "store folder, or a units.parquet with its images beside it; repeatable), "
                        "so only the rest run here: stores filled on machines that share no "
                        "folder become one")
    p.add_argument("--force", action="store_true",
                   help="recompute a store written with other settings")
    p.set_defaults(func=commands._cmd_sweep)


def _audit_command(sub: argparse._SubParsersAction) -> None:
    plan = AuditPlan()
    p = sub.add_parser(
        "audit", help="per-unit trust verdicts for a network's visualizations (on Ray, resumable)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  fvtrust audit --model efficientnet_lite0 --layers _blocks.8 --units all --calibrate "
               "--out audit-lite0\n"
               "  fvtrust audit --model efficientnet_lite0 --weights mine.pt --layers _blocks.8 "
               "--calibration audit-lite0/calibration.json --out audit-mine")
    p.add_argument("--model", default=plan.models[0], help=f"{MODEL_HELP}; default %(default)s")
    p.add_argument("--weights", default=None,
                   help="a state-dict file for --model, or random (default: its own weights)")
    p.add_argument("--layers", default=",".join(plan.layers),
                   help="comma-separated layers; default %(default)s")
    p.add_argument("--units", default="all", help="'all' or 0,1,2 or 0-7 or 0-3,9; default %(default)s")
    p.add_argument("--calibration", default=None,
                   help="a calibration.json made on clean units of a clean network (same network, "
                        "layers and settings, unless --force)")
    p.add_argument("--calibrate", action="store_true",
                   help="fit the calibration on the audited units themselves (only for a network you "
                        "hold to be clean); writes calibration.json")
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                   help="false-flag rate of clean units, with --calibrate; default %(default)s")
    p.add_argument("--steps", type=int, default=plan.steps, help="render steps; default %(default)s")
    p.add_argument("--size", type=int, default=plan.size, help="render side in px; default %(default)s")
    p.add_argument("--seeds", type=int, default=plan.audit_seeds,
                   help="renders per unit (>= 2); default %(default)s")
    p.add_argument("--natural", type=int, default=plan.n_natural,
                   help="natural images the exemplars and the null are drawn from; default %(default)s")
    _images_args(p, "a directory of natural images (default: the photo corpus)")
    p.add_argument("--seed", type=int, default=plan.seed, help="base seed; default %(default)s")
    p.add_argument("--chunk", type=int, default=plan.chunk, help="units per Ray task; default %(default)s")
    _ray_options(p)
    p.add_argument("--out", default="audit", help="the audit's store (resumable); default %(default)s")
    p.add_argument("--force", action="store_true",
                   help="recompute a store of other settings, or use a calibration made for another "
                        "network, layer or settings")
    p.set_defaults(func=commands._cmd_audit)


def _audit_bench_command(sub: argparse._SubParsersAction) -> None:
    config = BenchConfig()
    p = sub.add_parser(
        "audit-bench", help="every audit detector against every manipulation of the zoo "
                            "(held out by model)",
        epilog="example: fvtrust audit-bench --out audit-bench")
    p.add_argument("--models", default=",".join(config.models),
                   help="comma-separated networks; default %(default)s")
    p.add_argument("--fit-model", default=config.fit_model,
                   help="the network whose clean units set the thresholds; default %(default)s")
    p.add_argument("--manipulations", default=",".join(config.manipulations),
                   help=f"comma-separated subset of {', '.join(MANIPULATIONS)}; default all")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto; default %(default)s")
    p.add_argument("--out", default="audit-bench", help="output folder (resumable); default %(default)s")
    p.add_argument("--force", action="store_true", help="recompute saved stages")
    p.set_defaults(func=commands._cmd_audit_bench)


def _zoo_command(sub: argparse._SubParsersAction) -> None:
    config = ZooConfig()
    p = sub.add_parser(
        "zoo", help="build planted manipulations of a network, with ground truth, natural cost and "
                    "success (manifest + weights)",
        epilog="example: fvtrust zoo --model efficientnet_lite0 --out zoo")
    p.add_argument("--model", default="efficientnet_lite0", help="registry name; default %(default)s")
    p.add_argument("--manipulations", default=",".join(MANIPULATIONS),
                   help=f"comma-separated subset of {', '.join(MANIPULATIONS)}; default all")
    p.add_argument("--logit-units", default=",".join(map(str, config.logit_units)),
                   help="the logits the fooling circuits manipulate; default %(default)s")
    p.add_argument("--conv-layer", default=config.conv_layer,
                   help="the convolution of the silent units and the fine-tunes; default %(default)s")
    p.add_argument("--conv-units", default=",".join(map(str, config.conv_units)),
                   help="its units the audit and the fine-tunes look at; default %(default)s")
    p.add_argument("--mid-layer", default=config.mid_layer,
                   help="the intermediate layer of fooling_permute_mid; default %(default)s")
    p.add_argument("--mid-units", default=",".join(map(str, config.mid_units)),
                   help="its channels that fooling_permute_mid manipulates; default %(default)s")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto; default %(default)s")
    p.add_argument("--out", default="zoo", help="output folder (resumable gate); default %(default)s")
    p.add_argument("--force", action="store_true", help="retrain the saved gate")
    p.set_defaults(func=commands._cmd_zoo)


def _proofs_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("proofs", help="run every proof's machine-checked steps",
                       epilog="example: fvtrust proofs -v --recheck --out proofs-results")
    p.add_argument("--out", default=None,
                   help="directory for proofs.json and every SMT query as smt/<proof>/<n>.smt2")
    p.add_argument("--recheck", action="store_true",
                   help="re-check every SMT query z3 decided with a second solver, cvc5 "
                        "(pip install cvc5); fails unless cvc5 agrees on all")
    p.add_argument("--recheck-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="cvc5's time limit per query; default %(default)s")
    p.add_argument("-v", "--verbose", action="store_true", help="print every step")
    p.set_defaults(func=commands._cmd_proofs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fvtrust", description="Put feature visualizations on trial: theory and experiments.")
    parser.add_argument("--version", action="version", version=f"fvtrust {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_appendix_command, _theory_command, _layers_command, _render_command, _fool_command,
                _gate_family_command, _silent_command, _sanity_command, _afc_command, _sweep_command,
                _audit_command, _audit_bench_command, _zoo_command, _proofs_command):
        add(sub)
    for p in sub.choices.values():  # every command: one place decides its threads
        p.add_argument("--threads", default=None, metavar="N",
                       help=f"torch threads (Ray: shared out among its workers); default "
                            f"${cpus.ENV}, else the CPUs this process may use (affinity mask, "
                            f"cgroup quota): {cpus.available_cpus()} here")
    return parser
