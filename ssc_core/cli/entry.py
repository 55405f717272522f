"""Shared parts of the CLI entry points: the ``--device`` / ``--num-threads`` options every CLI that runs torch
takes (one rule, ``ssc_core.runtime``), and the body of a CLI that runs a job and prints its summary."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ssc_core.errors import Interrupted, SSCError
from ssc_core.runtime import set_num_threads

EXIT_INTERRUPTED = 130  # the shell's code for a process ended by SIGINT

DEVICE_HELP = ("torch device: auto, cpu, cuda, cuda:1, ... (default: auto = cuda when available, else cpu; under "
               "torchrun each process takes cuda:LOCAL_RANK)")
THREADS_HELP = ("torch CPU threads (default: $OMP_NUM_THREADS when set, else the cores the 1-minute load average "
                "leaves idle, at least 1, so a busy machine is not oversubscribed; the count is printed)")


def add_torch_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--device`` (default 'auto') and ``--num-threads`` (default None: the load rule) to ``parser``."""
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--num-threads", type=int, default=None, metavar="N", help=THREADS_HELP)


def apply_num_threads(args: argparse.Namespace) -> int:
    """Set torch's CPU threads from ``args.num_threads`` (see ``ssc_core.runtime``), print one line saying how
    many and why to stderr, and return the count. ConfigError for a value below 1."""
    threads, why = set_num_threads(args.num_threads)
    print(f"torch CPU threads: {threads} ({why})", file=sys.stderr)
    return threads


def run_and_report(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], dict | None],
                   argv: list[str] | None) -> int:
    """Parse ``argv`` with ``parser``, call ``run`` and print its summary as ``key: value`` lines (nothing when
    it returns None, e.g. on the non-zero ranks of a torchrun job). Returns 0; 2 after printing ``error: ...``
    when ``run`` raised SSCError (bad input: missing files, bad config, wrong shapes); 130 after printing
    ``interrupted: ...`` on Ctrl-C (``Interrupted`` says what was kept, else a plain KeyboardInterrupt)."""
    args = parser.parse_args(argv)
    try:
        summary = run(args)
    except SSCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("interrupted: stopped by Ctrl-C", file=sys.stderr)
        return EXIT_INTERRUPTED
    if summary is not None:
        print("\n".join(f"{k}: {v}" for k, v in summary.items()))
    return 0

