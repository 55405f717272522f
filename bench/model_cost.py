"""FLOPs and live-tensor peak of model configs at their full resolution, counted on fake tensors: no data, no
arithmetic, no memory. For configs that neither fit this machine's memory nor run in useful time on its CPU
(HTCL at 384 x 1280: about 26 TFLOP per forward pass, much of it 3D convolutions over 112 x 48 x 160 depth
volumes); bench/models.py measures what does run.

    python bench/model_cost.py --configs htcl htcl_tiny            # forward and train rows, fp32 and bf16
    python bench/model_cost.py --configs htcl --modes forward --dtypes bf16 --check

The model is built and run under ``torch._subclasses.fake_tensor.FakeTensorMode``: every operator computes only
its output's shape and dtype. ``torch.utils.flop_counter`` counts the FLOPs of matrix products and convolutions
(forward and backward); ``bench.tensor_memory.LiveTensorPeak`` follows every storage the operators make (the CPU
stand-in for ``torch.cuda.max_memory_allocated``; weights, buffers and inputs included). The batch is the one
bench/models.py makes (``make_batch``: a synthetic FrameWindow through ``window_to_sample`` and ``collate``).

Modes: ``forward`` = eval mode under ``no_grad``. ``train`` = train mode, forward (under autocast for bf16) and
the backward pass of a proxy loss, the sum of the means of every floating-point output: a model's real losses
branch on the data (which voxels are valid, which classes are present), which fake tensors do not have. The
peak is set by the activations saved for the backward pass; not counted are the losses' own temporaries (a few
tensors of the output's size), parts that need labelled data (HTCL's point head: the batch has no
``labelled_points``) and the optimizer state (AdamW: two float32 values per trained parameter, given separately).
``--check`` also runs the config for real (it must fit) and prints both counts: they agree exactly on
htcl_tiny (``test/test_htcl.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.models import make_batch  # noqa: E402
from bench.tensor_memory import LiveTensorPeak  # noqa: E402
from ssc_core.config import load_config  # noqa: E402
from ssc_core.models import build_model  # noqa: E402

DTYPES = {"fp32": None, "bf16": torch.bfloat16}


def run_cost(model: torch.nn.Module, batch: dict, mode: str, dtype: torch.dtype | None) -> tuple[float, int]:
    """(GFLOP, peak live-tensor bytes) of one forward (``mode`` 'forward') or forward + proxy backward ('train')
    of ``model`` on ``batch`` (real or fake tensors alike)."""
    from torch.utils.flop_counter import FlopCounterMode

    autocast = torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()
    tracker = LiveTensorPeak()
    counter = FlopCounterMode(display=False)
    model.train(mode == "train")
    with tracker, counter:
        tracker.track(model.parameters())
        tracker.track(model.buffers())
        tracker.track(batch.values())
        if mode == "forward":
            with torch.no_grad(), autocast:
                model(batch)
        else:
            with autocast:
                outputs = model(batch)
            sum(v.float().mean() for v in outputs.values() if torch.is_tensor(v) and v.is_floating_point()).backward()
    return counter.get_total_flops() / 1e9, tracker.peak_bytes


def fake_cost(cfg: dict, mode: str, dtype: torch.dtype | None) -> tuple[float, int, int]:
    """(GFLOP, peak bytes, trained parameters) of ``cfg`` at its full size, on fake tensors."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    batch = make_batch(cfg, 1000, with_targets=False)
    fake = FakeTensorMode(allow_non_fake_inputs=True)
    with fake:
        model = build_model(cfg)
        fake_batch = {k: fake.from_tensor(v) if torch.is_tensor(v) else v for k, v in batch.items()}
        gflop, peak = run_cost(model, fake_batch, mode, dtype)
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return gflop, peak, trained


def real_cost(cfg: dict, mode: str, dtype: torch.dtype | None) -> tuple[float, int]:
    """The same counts from a real run (for ``--check``)."""
    torch.manual_seed(0)
    return run_cost(build_model(cfg), make_batch(cfg, 1000, with_targets=False), mode, dtype)


def main(argv: list[str] | None = None) -> int:
    """Print one row per config, mode and dtype."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["htcl"], help="config names or paths (default: htcl)")
    parser.add_argument("--modes", nargs="+", choices=("forward", "train"), default=["forward", "train"])
    parser.add_argument("--dtypes", nargs="+", choices=tuple(DTYPES), default=list(DTYPES))
    parser.add_argument("--check", action="store_true", help="also run for real and print the real counts")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print("config  mode  dtype  GFLOP  tensor peak GB  AdamW state GB" + ("  real GFLOP  real peak GB" * args.check))
    for name in args.configs:
        cfg = load_config(name, {"data": {"points": {"source": "none"}}})
        for mode in args.modes:
            for dtype_name in args.dtypes:
                gflop, peak, trained = fake_cost(cfg, mode, DTYPES[dtype_name])
                state = f"{8 * trained / 1e9:.2f}" if mode == "train" else "—"
                row = f"{name}  {mode}  {dtype_name}  {gflop:.0f}  {peak / 1e9:.2f}  {state}"
                if args.check:
                    real_gflop, real_peak = real_cost(cfg, mode, DTYPES[dtype_name])
                    row += f"  {real_gflop:.0f}  {real_peak / 1e9:.2f}"
                print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
