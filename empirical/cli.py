"""The ``fvtrust`` command: a thin layer over functions a notebook can call."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _cmd_theory(args: argparse.Namespace) -> int:
    from theory.table import compute_table

    table = compute_table(eps=args.eps, samples=args.samples, progress=True)
    print(table.to_markdown())
    paths = table.write(args.out)
    print(f"\nwrote {', '.join(str(p) for p in paths)}")
    return 0 if all(e.verdict != "open" for e in table.entries) else 1


def _cmd_proofs(args: argparse.Namespace) -> int:
    from proofs import run_all
    from theory.io import atomic_write_json

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fvtrust", description="Put feature visualizations on trial: theory and experiments.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("theory", help="compute the results table (classes x tasks A-D)")
    p.add_argument("--out", default="theory-results", help="directory for table.{json,md,tex}")
    p.add_argument("--eps", type=float, default=1e-3, help="epsilon of the constructions")
    p.add_argument("--samples", type=int, default=8, help="sampled members per reliable class")
    p.set_defaults(func=_cmd_theory)

    p = sub.add_parser("proofs", help="run every proof's machine-checked steps")
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

