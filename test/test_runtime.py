"""One rule for where torch runs, in every CLI that runs torch: --device auto and a --num-threads default that
does not oversubscribe a loaded machine."""

from __future__ import annotations

import pytest
import torch

from ssc_core import runtime
from ssc_core.cli import bag, demo, infer, precompute_depth, train
from ssc_core.errors import ConfigError


@pytest.mark.parametrize(("cores", "load", "threads"), [(2, 0.0, 2), (2, 0.4, 2), (2, 1.0, 1), (2, 7.5, 1),
                                                        (16, 3.2, 13), (16, 0.0, 16), (1, 0.0, 1)])
def test_idle_cores_leaves_the_busy_ones_to_others(cores, load, threads):
    assert runtime.idle_cores(cores, load) == threads


def test_default_threads_follow_omp_num_threads_else_the_load_average(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert runtime.default_num_threads() == (3, "OMP_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(runtime, "usable_cores", lambda: 8)
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (5.2, 1.0, 1.0))
    threads, why = runtime.default_num_threads()
    assert threads == 3 and "8 core(s), load average 5.20" in why
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two torchrun processes on this machine share the idle cores
    assert runtime.default_num_threads()[0] == 1


def test_set_num_threads_sets_torch_and_rejects_zero():
    previous = torch.get_num_threads()
    try:
        assert runtime.set_num_threads(1) == (1, "--num-threads")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)
    with pytest.raises(ConfigError, match="--num-threads must be >= 1"):
        runtime.set_num_threads(0)


def test_every_cli_that_runs_torch_has_the_same_device_and_thread_defaults():
    parsers = {
        "ssc-train": (train.build_parser(), ["--config", "sgn_tiny"]),
        "ssc-infer": (infer.build_parser(), ["--checkpoint", "k", "--sequence", "00", "--output", "o"]),
        "ssc-bag run": (bag.build_parser(), ["run", "--input", "i", "--output", "o", "--checkpoint", "k"]),
        "ssc-demo": (demo.build_parser(), []),
        "ssc-precompute-depth": (precompute_depth.build_parser(),
                                 ["--weights", "w", "--data-root", "d", "--sequence", "00", "--output", "o"]),
    }
    for name, (parser, argv) in parsers.items():
        args = parser.parse_args(argv)
        assert (args.device, args.num_threads) == ("auto", None), name
