"""Where torch runs, one rule for every CLI: the device and the number of CPU threads.

Device: ``auto`` (the default of every CLI) is ``cuda`` when a CUDA device is usable, else ``cpu``; under
torchrun each process takes ``cuda:LOCAL_RANK`` (``ssc_core.training.distributed``).

CPU threads: an explicit ``--num-threads N`` wins; else ``OMP_NUM_THREADS`` when it is set; else the cores this
process may use that the 1-minute load average leaves idle, rounded, at least 1 (shared among the processes
of a torchrun job on this machine). torch's own default takes every core even when other jobs keep them
busy, and OpenMP threads that wait for a busy core make each step many times slower (measured in README.md,
"Speed on a shared machine").
"""

from __future__ import annotations

import os

import torch

from ssc_core.errors import ConfigError


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def idle_cores(cores: int, load: float) -> int:
    """Threads that fit ``cores`` cores when the load average is ``load``: ``round(cores - load)``, 1 to
    ``cores``."""
    return max(1, min(cores, int(cores - load + 0.5)))


def default_num_threads() -> tuple[int, str]:
    """(threads, why) by the rule of this module's docstring; ``why`` says which part of the rule decided."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env), "OMP_NUM_THREADS"
    cores = usable_cores()
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this OS: use every core
        load = 0.0
    share = max(1, cores // local)
    threads = idle_cores(share, load / local)
    return threads, f"{cores} core(s), load average {load:.2f}" + (f", {local} processes" if local > 1 else "")


def set_num_threads(requested: int | None) -> tuple[int, str]:
    """Set torch's intra-op CPU threads to ``requested`` (the ``--num-threads`` value) or, when None, to
    ``default_num_threads()``. Returns (threads, why). ConfigError for a value below 1."""
    if requested is not None:
        if requested < 1:
            raise ConfigError(f"--num-threads must be >= 1, got {requested}")
        threads, why = requested, "--num-threads"
    else:
        threads, why = default_num_threads()
    torch.set_num_threads(threads)
    return threads, why
