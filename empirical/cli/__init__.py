"""The ``fvtrust`` command: a thin layer over functions a notebook can call. The parser is in
:mod:`~empirical.cli.parser`, what each subcommand does in :mod:`~empirical.cli.commands`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from fvtrust.cpus import reuse_freed_memory, use_threads
from fvtrust.empirical.cli.parser import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    # A terminal or pipe that cannot show some character (Φ, ≤, …) gets an escape, not a crash
    # after the work is done.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    try:
        use_threads(args.threads)
        reuse_freed_memory()  # this process is ours: keep freed blocks for the next step
        return int(args.func(args))
    except ValueError as exc:  # bad input: a clear message, not a traceback
        print(f"fvtrust: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # stages already saved stay saved: a rerun picks them up
        print("\nfvtrust: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
