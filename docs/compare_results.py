"""Compare the numbers of a fresh appendix run with the ones in docs/results/ (after a change
that must not move any number). Prints every number that differs, with its path; the
configuration, reused stages and timings are set aside (they describe the run, not the result).

    python docs/compare_results.py appendix        # the run's output folder
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: docs/results/<file> → the appendix part and the file it writes
SOURCES = {"fooling_permute.json": "fooling_permute/fooling_permute.json",
           "fooling_target.json": "fooling_target/fooling_target.json",
           "fooling_classifier.json": "fooling_classifier/fooling_target.json",
           "silent_units.json": "silent/silent_units.json",
           "afc_references.json": "afc_references/afc_references.json",
           "afc_occlusion.json": "afc_occlusion/afc_occlusion.json",
           "audit_bench.json": "audit/audit_bench.json"}
#: keys that describe the run rather than its result
RUN_KEYS = {"config", "reused_stages", "seconds_scoring", "occluded_images_per_second"}


def leaves(data: object, path: str = "") -> dict[str, object]:
    """Every scalar of a JSON document by its path (keys joined by '/')."""
    if isinstance(data, dict):
        out: dict[str, object] = {}
        for k, v in data.items():
            if k not in RUN_KEYS:
                out.update(leaves(v, f"{path}/{k}"))
        return out
    if isinstance(data, list):
        out = {}
        for i, v in enumerate(data):
            out.update(leaves(v, f"{path}[{i}]"))
        return out
    return {path: data}


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def compare(run_dir: Path) -> int:
    differences = 0
    for name, part in SOURCES.items():
        old = leaves(json.loads((HERE / "results" / name).read_text()))
        new = leaves(json.loads((run_dir / "parts" / part).read_text()))
        changed = [p for p in sorted(set(old) | set(new)) if not same(old.get(p), new.get(p))]
        differences += len(changed)
        print(f"{name}: {len(old)} numbers, {len(changed)} differ")
        for p in changed[:20]:
            print(f"  {p}: {old.get(p)!r} -> {new.get(p)!r}")
    return differences


if __name__ == "__main__":
    sys.exit(1 if compare(Path(sys.argv[1] if len(sys.argv) > 1 else "appendix")) else 0)
