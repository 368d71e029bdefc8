"""Run the mutation suite: ``python -m tests.mutation.harness [--only KEY ...]``.

Each mutant is applied to a fresh copy of the repository's code and tests (PYTHONPATH puts the
copy first), its tests run with pytest, and it is *killed* when they fail. Writes
tests/mutation/results.json: every mutant, killed or survived, seconds, and the kill ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.mutation.mutants import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[2]
COPY = ("fvtrust", "theory", "empirical", "proofs", "tests", "pyproject.toml", "README.md")


def run_mutant(m: Mutant) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix=f"mutant-{m.key}-") as tmp:
        for name in COPY:
            src = ROOT / name
            # symlinks=True: fvtrust/theory etc. stay links to the (mutated) copies beside them
            if src.is_dir():
                shutil.copytree(src, Path(tmp) / name, symlinks=True)
            else:
                shutil.copy2(src, Path(tmp) / name)
        target = Path(tmp) / m.path
        text = target.read_text()
        if text.count(m.old) != 1:
            raise ValueError(f"mutant {m.key}: snippet found {text.count(m.old)} times in {m.path}")
        target.write_text(text.replace(m.old, m.new))
        env = {**os.environ, "PYTHONPATH": tmp, "FVTRUST_HYPOTHESIS_PROFILE": "mutation"}
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                               "-p", "no:nbmake", "-o", "addopts=", *m.tests], cwd=tmp, env=env,
                              capture_output=True, text=True)
        return {"key": m.key, "path": m.path, "killed": proc.returncode != 0,
                "seconds": round(time.perf_counter() - start, 1), "tests": list(m.tests)}


def main() -> int:
    parser = argparse.ArgumentParser(description="run the mutation suite and write its kill ratio")
    parser.add_argument("--only", nargs="*", help="mutant keys to run (default: all)")
    parser.add_argument("--out", default=str(ROOT / "tests" / "mutation" / "results.json"))
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.only or m.key in args.only]
    results = []
    for m in chosen:
        r = run_mutant(m)
        results.append(r)
        print(f"{'killed  ' if r['killed'] else 'SURVIVED'} {m.key:32s} {r['seconds']:6.1f} s", flush=True)
    killed = sum(bool(r["killed"]) for r in results)
    summary = {"mutants": len(results), "killed": killed, "kill_ratio": killed / max(1, len(results)),
               "results": results}
    from fvtrust.io import atomic_write_json

    atomic_write_json(args.out, summary)
    ratio = 100 * summary["kill_ratio"]
    print(f"{killed} of {len(results)} mutants killed ({ratio:.0f} %); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
