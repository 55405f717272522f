"""CUDA checks of issue #4: SGN on a GPU gives what it gives on the CPU, trains under AMP through the shared
Trainer, and (with two GPUs) trains under DDP over NCCL. Every test skips cleanly without CUDA; CI has no GPU,
so these run when a GPU machine is lent (docs/benchmarks.md, "GPU session")."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from ssc_core.config import load_config
from ssc_core.data.downsample import downsample_labels
from ssc_core.data.transforms import collate, window_to_sample
from ssc_core.models import build_model
from ssc_core.training.checkpoint import load_checkpoint, load_model_state
from ssc_core.training.trainer import Trainer
from ssc_core.types import GridSpec

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
BENCH = Path(__file__).resolve().parents[1] / "bench" / "models.py"
POINTS = 4000


def _bench():
    """bench/models.py as a module (its synthetic FrameWindow is the data path's real input)."""
    spec = importlib.util.spec_from_file_location("bench_models_gpu", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _tiny_cfg(**model) -> dict:
    return load_config("sgn_tiny", {"data": {"points": {"source": "lidar"}},
                                    "model": {"sparse_backend": "torch", **model},
                                    "train": {"epochs": 1, "batch_size": 1, "lr": 1e-3, "warmup_iters": 1,
                                              "val_interval": 1, "log_interval": 1}})


class WindowData(Dataset):
    """Samples from bench/models.py's synthetic FrameWindows through window_to_sample, with random targets."""

    def __init__(self, cfg: dict, n: int = 2) -> None:
        self.cfg, self.n, self.bench = cfg, n, _bench()
        self.grid = GridSpec.from_dict(cfg["data"]["grid"])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        sample = window_to_sample(self.bench.make_window(self.cfg, POINTS, seed=i), self.cfg["data"])
        rng = np.random.default_rng(i)
        target = np.where(rng.random(self.grid.dims) < 0.7, 0, rng.integers(1, 20, self.grid.dims))
        sample["target"] = torch.from_numpy(target.astype(np.int64))
        sample["target_1_2"] = torch.from_numpy(downsample_labels(target, 2).astype(np.int64))
        return sample


@pytest.fixture(autouse=True)
def exact_float32():
    """TF32 off, so CPU and GPU float32 results agree to float32 rounding."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_sgn_on_cuda_matches_cpu(backend):
    cfg = _tiny_cfg(sparse_backend=backend)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    model.seed_threshold = -1e9  # every voxel a seed on both devices, so float noise cannot change the seeds
    batch = collate([WindowData(cfg)[0]])
    with torch.no_grad():
        cpu = model(batch)
        gpu = model.cuda()(_bench().move_to(batch, torch.device("cuda")))
    torch.testing.assert_close(gpu["pts_logits"].cpu(), cpu["pts_logits"], rtol=1e-3, atol=1e-3)
    assert torch.equal(gpu["seed_coords"].cpu(), cpu["seed_coords"])
    torch.testing.assert_close(gpu["ssc_logits"].cpu(), cpu["ssc_logits"], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("amp", ["bf16", "fp16", "none"])
def test_trainer_trains_sgn_on_cuda_and_its_checkpoint_reproduces_on_cpu(tmp_path, amp):
    cfg = _tiny_cfg()
    cfg["train"]["amp"] = amp
    torch.manual_seed(0)
    model = build_model(cfg)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    data = WindowData(cfg)
    trainer = Trainer(model, cfg, data, data, work_dir=tmp_path, device="cuda", progress=False)
    history = trainer.fit()
    assert trainer.step == 2 and trainer.skipped_steps == 0
    assert all(np.isfinite(v) for v in history[0]["train"].values())
    moved = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v.cpu(), before[k])]
    assert moved, "no parameter changed on the GPU"
    cpu_model = build_model(cfg).eval()
    load_model_state(cpu_model, load_checkpoint(tmp_path / "last.pt")["model"])
    model.eval().seed_threshold = cpu_model.seed_threshold = -1e9
    batch = collate([data[1]])
    with torch.no_grad():
        torch.testing.assert_close(model(_bench().move_to(batch, torch.device("cuda")))["ssc_logits"].cpu(),
                                   cpu_model(batch)["ssc_logits"], rtol=1e-3, atol=1e-3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nccl_worker(rank: int, world: int, port: int, work_dir: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    from ssc_core.training.distributed import cleanup_distributed, init_distributed

    info = init_distributed("cuda")
    cfg = _tiny_cfg()
    torch.manual_seed(0)
    trainer = Trainer(build_model(cfg), cfg, WindowData(cfg, n=4), None, work_dir=work_dir, dist_info=info,
                      progress=False)
    trainer.fit()
    params = {k: v.detach().cpu() for k, v in trainer.core_model.named_parameters()}
    torch.save({"steps": trainer.step, "params": params}, f"{out}_{rank}.pt")
    cleanup_distributed(info)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP over NCCL needs two GPUs")
def test_ddp_over_nccl_on_two_gpus_keeps_replicas_identical(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_nccl_worker, args=(2, _free_port(), str(tmp_path / "run"), str(tmp_path / "r")), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"r_{r}.pt", weights_only=True) for r in range(2))
    assert r0["steps"] == r1["steps"] == 2  # 4 samples over 2 ranks at batch 1
    for key, value in r0["params"].items():  # BatchNorm running statistics are per rank, as upstream
        assert torch.equal(value, r1["params"][key]), key
