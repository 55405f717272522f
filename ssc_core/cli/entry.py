"""The shared body of a CLI entry point that runs a job and prints its summary."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ssc_core.errors import ConfigError, SSCError


def run_and_report(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], dict | None],
                   argv: list[str] | None) -> int:
    """Parse ``argv`` with ``parser``, call ``run`` and print its summary as ``key: value`` lines (nothing when
    it returns None, e.g. on the non-zero ranks of a torchrun job). Returns 0, or 2 after printing
    ``error: ...`` when ``run`` raised SSCError (bad input: missing files, bad config, wrong shapes)."""
    args = parser.parse_args(argv)
    try:
        summary = run(args)
    except SSCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if summary is not None:
        print("\n".join(f"{k}: {v}" for k, v in summary.items()))
    return 0


def apply_num_threads(num_threads: int | None) -> None:
    """``torch.set_num_threads(num_threads)`` for a ``--num-threads`` option (None: leave torch's choice);
    ConfigError below 1."""
    if num_threads is None:
        return
    if num_threads < 1:
        raise ConfigError(f"--num-threads must be >= 1, got {num_threads}")
    import torch

    torch.set_num_threads(num_threads)
