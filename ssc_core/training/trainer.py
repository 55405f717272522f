"""The Trainer every model shares: AdamW + warm-up/cosine or one-cycle schedule, gradient clipping, AMP, DDP,
TensorBoard, periodic validation with SSCMetrics, atomic best/last checkpoints, exact resume and gradient accumulation.

It knows nothing of any particular model: it needs ``model(batch) -> {"ssc_logits": (B, C, X, Y, Z), ...}`` and
``model.losses(outputs, batch) -> {name: scalar tensor}`` (summed for the backward pass, each logged), and
datasets whose samples collate (``ssc_core.data.transforms.collate``) to batches holding ``target`` (B, X, Y, Z)
int64 train ids with 255 = ignore. Training schemes extend it through ``TrainerHook``s.

Files in ``work_dir`` (``RUN_FILES``; ``ssc-train`` adds ``config.yaml``): ``last.pt`` (full training state,
rewritten every ``checkpoint_interval`` epochs), ``best.pt`` (weights + metadata of the best validation
``best_metric``), ``history.jsonl`` (one line per epoch) and ``tb/`` (TensorBoard events).

Reproducibility: the same seed, config, data, thread count and torch version give bit-identical weights on CPU
(``train.deterministic: auto`` turns torch's deterministic algorithms on there: without them two threads already
gave different weights; the data order comes from a seeded sampler, each DataLoader worker's numpy/random from a
seeded generator); on CUDA only with ``train.deterministic: true`` and what torch documents for it
(docs/training.md).

Gradient accumulation (``train.effective_batch_size``): one optimizer step sums the gradients of
``accumulate_steps = effective_batch_size / (batch_size x world_size)`` micro-batches, each loss divided by that
count, so the step sees the mean over the effective batch. Steps, the schedule, warm-up, logging and
``max_iters_per_epoch`` all count optimizer steps; an epoch's trailing micro-batches that do not fill a group are
not used.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from ssc_core.data.label_maps import SEMANTIC_KITTI, ClassSet
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.evaluation.eval_range import FULL_RANGE, eval_range_mask, range_suffix
from ssc_core.training.checkpoint import check_compatible, load_checkpoint, load_model_state, save_checkpoint
from ssc_core.training.distributed import DistInfo, resolve_device
from ssc_core.training.hooks import TrainerHook
from ssc_core.training.schedule import build_schedule
from ssc_core.training.settings import TrainSettings
from ssc_core.types import GridSpec

LOG = logging.getLogger(__name__)


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Recursively move the tensors of a batch (dicts, lists, tuples) to ``device``; other values unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


RUN_FILES = ("last.pt", "best.pt", "history.jsonl", "tb")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed numpy and python's random from the worker's torch seed (which the
    loader derives from its seeded generator), so workers draw different but reproducible numbers."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def rng_state() -> dict[str, Any]:
    """This process's RNG states as tensors and plain data (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore ``rng_state()`` output."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    npst = state["numpy"]
    np.random.set_state(("MT19937", npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["cached_gaussian"]))
    random.setstate(_as_tuples(state["python"]))


def _as_tuples(value: Any) -> Any:
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list | tuple) else value


def plain(value: Any) -> Any:
    """Numpy scalars/arrays and tensors -> python numbers/lists (so metrics fit a weights_only checkpoint)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray | torch.Tensor):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def accumulate_steps(settings: TrainSettings, world_size: int) -> int:
    """Micro-batches per optimizer step: ``effective_batch_size / (batch_size x world_size)`` (1 when
    ``train.effective_batch_size`` is null). ConfigError when it does not divide exactly."""
    effective = settings.effective_batch_size
    if effective is None:
        return 1
    per_step = settings.batch_size * world_size
    if effective % per_step:
        raise ConfigError(f"train.effective_batch_size {effective} is not a multiple of batch_size "
                          f"{settings.batch_size} x {world_size} process{'es' if world_size != 1 else ''} "
                          f"(= {per_step} samples per micro-batch)")
    return effective // per_step


def _default_collate() -> Callable[[list[dict]], dict]:
    from ssc_core.data.transforms import collate

    return collate


class Trainer:
    """Trains ``model`` on ``train_dataset`` and validates on ``val_dataset`` (may be None).

    cfg: the whole config (``train:`` parsed by TrainSettings; ``data.grid`` gives the grid).
    work_dir: where checkpoints, history and TensorBoard events go. dist_info: from ``init_distributed``
    (single process on ``device`` when None). class_set: the label set (defaults to the train dataset's
    ``class_set`` attribute, else SemanticKITTI). hooks: TrainerHook instances. progress: show tqdm bars.
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: dict,
        train_dataset: Dataset,
        val_dataset: Dataset | None = None,
        work_dir: str | Path = "work_dirs/run",
        device: str | torch.device | None = None,
        dist_info: DistInfo | None = None,
        class_set: ClassSet | None = None,
        collate_fn: Callable[[list[dict]], dict] | None = None,
        hooks: Iterable[TrainerHook] = (),
        progress: bool = True,
    ) -> None:
        self.cfg = cfg
        self.progress = progress
        self.settings = TrainSettings.from_config(cfg)
        self.dist = dist_info or DistInfo(device=resolve_device(None if device is None else str(device)))
        self.device = self.dist.device
        self.work_dir = Path(work_dir)
        self.grid = GridSpec.from_dict((cfg.get("data") or {}).get("grid") or {})
        self.class_set = class_set or getattr(train_dataset, "class_set", None) or SEMANTIC_KITTI
        self.hooks = list(hooks)
        self.collate_fn = collate_fn or _default_collate()
        if len(train_dataset) == 0:
            raise ConfigError("the training dataset is empty (check data.splits and --data-root)")

        s = self.settings
        self.accumulate_steps = accumulate_steps(s, self.dist.world_size)
        seed_everything(s.seed + self.dist.rank)
        if s.deterministic_on(self.device.type):
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False

        self.model = model.to(self.device)
        self.core_model = self.model
        if self.dist.is_distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.model, device_ids=ids,
                                                 find_unused_parameters=s.find_unused_parameters)

        self.train_dataset, self.val_dataset = train_dataset, val_dataset
        self.sampler = DistributedSampler(train_dataset, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                          shuffle=True, seed=s.seed, drop_last=False)
        self._loader_rng = torch.Generator()
        self.train_loader = DataLoader(train_dataset, batch_size=s.batch_size, sampler=self.sampler,
                                       num_workers=s.num_workers, collate_fn=self.collate_fn,
                                       pin_memory=self.device.type == "cuda", worker_init_fn=seed_worker,
                                       generator=self._loader_rng)
        # An optimizer step takes ``_group_size`` micro-batches: accumulate_steps of them, or all of an epoch's
        # batches when there are fewer (every rank has the same count: the DistributedSampler pads). Trailing
        # batches that do not fill a group are not used; steps_per_epoch counts optimizer steps.
        batches = len(self.train_loader)
        self._group_size = min(self.accumulate_steps, batches)
        self.steps_per_epoch = batches // self._group_size
        if self._group_size < self.accumulate_steps:
            LOG.warning("train.effective_batch_size %d: only %d batches per epoch on each of %d processes, so each "
                        "optimizer step averages %d samples", s.effective_batch_size, batches, self.dist.world_size,
                        batches * s.batch_size * self.dist.world_size)
        elif batches % self._group_size:
            LOG.info("gradient accumulation over %d batches: the last %d batches of each epoch are not used",
                     self._group_size, batches % self._group_size)
        if s.max_iters_per_epoch is not None:
            self.steps_per_epoch = min(self.steps_per_epoch, s.max_iters_per_epoch)

        params = [p for p in self.core_model.parameters() if p.requires_grad]
        if not params:
            raise ConfigError("the model has no trainable parameters")
        self.params = params
        groups: list[Any] = params
        if s.no_weight_decay_1d:  # biases and norm weights (every parameter of at most one dimension): no decay
            groups = [{"params": [p for p in params if p.ndim > 1]},
                      {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
        self.optimizer = torch.optim.AdamW(groups, lr=s.lr, weight_decay=s.weight_decay, betas=s.betas)
        self.schedule = build_schedule(self.optimizer, s, total_steps=s.epochs * self.steps_per_epoch,
                                       steps_per_epoch=self.steps_per_epoch)
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(s.amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=s.amp == "fp16")

        self.epoch = 0
        self.step = 0
        self.best_metric = -math.inf
        self.history: list[dict[str, Any]] = []
        self.step_losses: list[dict[str, float]] = []
        self.skipped_steps = 0
        self.last_saved: tuple[int, int] | None = None  # (epoch, step) of the newest last.pt of this process
        self._writer = None
        # True after a synchronising DDP forward was not followed by its backward (a skipped step). DDP's reducer
        # then still expects that forward's gradients, and a backward under no_sync would set off a reduction
        # planned for the old graph; so the next micro-batch runs synchronised (re-planned for its own graph). Its
        # extra all-reduce of partial gradients is harmless: averaging over ranks is linear.
        self._ddp_forward_unfinished = False

    # ------------------------------------------------------------------------------------------ helpers
    @property
    def is_main(self) -> bool:
        """True on the process that logs and writes files."""
        return self.dist.is_main

    @property
    def writer(self):
        """TensorBoard SummaryWriter on rank 0 (None elsewhere), created on first use."""
        if self._writer is None and self.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.work_dir / "tb"))
        return self._writer

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context of ``train.amp`` (a no-op for 'none')."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    # ------------------------------------------------------------------------------------------ training
    def fit(self) -> list[dict[str, Any]]:
        """Train from ``self.epoch`` to ``train.epochs``, validating every ``val_interval`` epochs and after the
        last, checkpointing every ``checkpoint_interval`` and after the last. Returns the per-epoch history."""
        s = self.settings
        if self.is_main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            if self.epoch == 0:  # a fresh run: do not append to the history of an earlier run in this work dir
                (self.work_dir / "history.jsonl").unlink(missing_ok=True)
        for hook in self.hooks:
            hook.before_train(self)
        try:
            for epoch in range(self.epoch, s.epochs):
                record = {"epoch": epoch + 1, "train": self.train_epoch(epoch)}
                self.epoch = epoch + 1
                for hook in self.hooks:
                    hook.after_epoch(self, epoch)
                last = self.epoch == s.epochs
                if self.val_dataset is not None and (self.epoch % s.val_interval == 0 or last):
                    record["val"] = self.validate()
                    self._maybe_save_best(record["val"])
                record["lr"] = self.schedule.get_last_lr()[0]
                self.history.append(record)
                if self.is_main:
                    with open(self.work_dir / "history.jsonl", "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(plain(record)) + "\n")
                if self.epoch % s.checkpoint_interval == 0 or last:
                    self.save_last()
        finally:
            if self._writer is not None:
                self._writer.flush()
        return self.history

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over (at most ``max_iters_per_epoch`` optimizer steps of) the training set, each step taking
        ``accumulate_steps`` batches. Returns the mean of every loss term (and ``total``) over the epoch's steps."""
        self.model.train()
        self.sampler.set_epoch(epoch)
        self._loader_rng.manual_seed(self.settings.seed + epoch)  # worker seeds: the same per epoch on resume
        sums: dict[str, float] = {}
        count = 0
        bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {epoch + 1}/{self.settings.epochs}",
                   disable=not (self.is_main and self.progress), dynamic_ncols=True, leave=False)
        usable = self.steps_per_epoch * self._group_size
        group: list[dict[str, Any]] = []
        for i, batch in enumerate(self.train_loader):
            if i >= usable:
                break
            group.append(batch)
            if len(group) < self._group_size:
                continue
            values = self.train_group(group)
            group = []
            bar.update(1)
            if values is None:
                continue
            count += 1
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value
            bar.set_postfix(loss=f"{values['total']:.4f}")
        bar.close()
        return {k: v / max(count, 1) for k, v in sums.items()}

    def train_step(self, batch: dict[str, Any]) -> dict[str, float] | None:
        """Forward, losses, backward, clip, step for one batch: one optimizer step without accumulation, whatever
        ``accumulate_steps`` is (``train_group`` takes several). Returns the loss terms as floats (plus ``total``),
        or None when the loss was not finite and the step was skipped."""
        return self.train_group([batch])

    def train_group(self, batches: list[dict[str, Any]]) -> dict[str, float] | None:
        """One optimizer step over the micro-batches ``batches`` (``train_epoch`` passes ``accumulate_steps`` of
        them): forward, losses and backward of each, its loss divided by ``len(batches)`` so that the gradients
        are those of the mean over all of them; then clip, step and schedule once. Under DDP the gradients are
        synchronised in the last backward only (``no_sync`` for the others).

        Returns the mean over the micro-batches of each unscaled loss term (plus ``total``) as floats, so they
        compare with runs without accumulation; or None when the loss of any micro-batch was not finite on any
        rank: then the whole group is skipped (gradients zeroed, no optimizer or schedule step, one skipped step).
        Hooks: ``before_step`` and ``after_losses`` run for every micro-batch, ``after_step`` once per step."""
        s = self.settings
        n = len(batches)
        if n < 1:
            raise ValueError("train_group needs at least one batch")
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        finite = True
        for i, batch in enumerate(batches):
            sync = i == n - 1 or self._ddp_forward_unfinished
            context = self.model.no_sync() if self.dist.is_distributed and not sync else contextlib.nullcontext()
            with context:
                losses = self._forward_losses(batch)
                total = sum(v.float() for v in losses.values())
                # Collective under DDP and run for every micro-batch, so all ranks skip the same groups.
                if not self._all_finite(total):
                    if finite:
                        LOG.warning("step %d: non-finite loss %s in micro-batch %d of %d, step skipped", self.step,
                                    {k: float(v.detach()) for k, v in losses.items()}, i + 1, n)
                    finite = False
                if finite:
                    self.scaler.scale(total / n).backward()
            if self.dist.is_distributed and sync:
                self._ddp_forward_unfinished = not finite
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            sums["total"] = sums.get("total", 0.0) + float(total.detach())
            del losses, total  # free this micro-batch's graph before the next forward
        if not finite:
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_steps += 1
            if self.writer is not None:
                self.writer.add_scalar("train/skipped_steps", self.skipped_steps, self.step)
            return None
        grad_norm = None
        if s.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, s.grad_clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        lr = self.schedule.get_last_lr()[0]
        self.schedule.step()
        self.step += 1
        values = {k: v / n for k, v in sums.items()}
        self.step_losses.append(values)
        if self.writer is not None and (self.step % s.log_interval == 0 or self.step == 1):
            for key, value in values.items():
                self.writer.add_scalar(f"train/{key}", value, self.step)
            self.writer.add_scalar("train/lr", lr, self.step)
            if grad_norm is not None:
                self.writer.add_scalar("train/grad_norm", grad_norm, self.step)
        for hook in self.hooks:
            hook.after_step(self, values)
        return values

    def _forward_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One micro-batch: to the device, ``before_step`` hooks, forward, ``model.losses``, ``after_losses``."""
        batch = move_to_device(batch, self.device)
        for hook in self.hooks:
            batch = hook.before_step(self, batch) or batch
        with self.autocast():
            outputs = self.model(batch)
        if self.amp_dtype is not None:
            # Losses run in float32: their sums over millions of voxels overflow float16 (SGN's scal losses did).
            outputs = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in outputs.items()}
        losses = self.core_model.losses(outputs, batch)
        for hook in self.hooks:
            losses = hook.after_losses(self, outputs, batch, losses) or losses
        if not losses:
            raise ConfigError("model.losses returned no loss terms")
        return losses

    def _all_finite(self, total: torch.Tensor) -> bool:
        """Whether the loss is finite on every rank (under DDP all ranks must skip a step together, or the ones
        that run backward would wait forever for the others' gradients)."""
        finite = torch.isfinite(total.detach()).to(torch.float32)
        if self.dist.is_distributed:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(finite.item())

    # ------------------------------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self, dataset: Dataset | None = None) -> dict[str, Any]:
        """Score the model on ``dataset`` (default: the validation set) with the protocol the dataset asks for
        (``evaluation.scorers.scorer_for``: the official one unless it names another). Under DDP every rank scores
        every world_size-th sample and the confusion matrices are summed, so each rank returns the metrics of the
        whole set: iou, precision, recall, iou_per_class, miou and protocol (its name in words), and for every
        short range R of ``train.eval_ranges`` the same within R metres under names ending in ``_<R>m``
        (``miou_25.6m``)."""
        from ssc_core.evaluation.scorers import TargetScorer, scorer_for

        dataset = dataset if dataset is not None else self.val_dataset
        if dataset is None:
            return {}
        model = self.core_model
        was_training = model.training
        model.eval()
        ranges = [FULL_RANGE] + [r for r in self.settings.eval_ranges if r != FULL_RANGE]
        scorers = {FULL_RANGE: scorer_for(dataset, self.class_set.num_classes)}
        if len(ranges) > 1 and scorers[FULL_RANGE].name != "official":
            raise ConfigError(f"train.eval_ranges applies to the outdoor grids (official protocol), not to the "
                              f"{scorers[FULL_RANGE].name!r} protocol of this dataset")
        for r in ranges[1:]:
            scorers[r] = TargetScorer(self.class_set.num_classes, "official", eval_range_mask(self.grid, r),
                                      f"within {r:g} m (x < {r:g}, |y| < {r / 2:g})")
        shard = Subset(dataset, list(range(self.dist.rank, len(dataset), self.dist.world_size)))
        loader = DataLoader(shard, batch_size=self.settings.batch_size, shuffle=False,
                            num_workers=self.settings.num_workers, collate_fn=self.collate_fn)
        bars = self.is_main and self.progress
        for batch in tqdm(loader, desc="validate", disable=not bars, dynamic_ncols=True, leave=False):
            batch = move_to_device(batch, self.device)
            with self.autocast():
                logits = model(batch)["ssc_logits"]
            pred = logits.argmax(dim=1).cpu().numpy()
            for scorer in scorers.values():
                scorer.add_batch(pred, batch)
        metrics: dict[str, Any] = {}
        for r, scorer in scorers.items():
            if self.dist.is_distributed:
                summed = []
                for confusion in scorer.confusions():
                    confusion = torch.from_numpy(confusion).to(self.device)
                    dist.all_reduce(confusion)
                    summed.append(confusion.cpu().numpy())
                scorer.set_confusions(summed)
            metrics.update({f"{k}{range_suffix(r)}": v for k, v in plain(scorer.compute()).items()})
        model.train(was_training)
        if self.is_main:
            self._log_metrics(metrics, ranges)
        for hook in self.hooks:
            hook.after_validation(self, metrics)
        return metrics

    def _log_metrics(self, metrics: dict[str, Any], ranges: list[float]) -> None:
        if self.writer is None:
            return
        for r in ranges:
            suffix = range_suffix(r)
            for key in ("iou", "precision", "recall", "miou"):
                if key + suffix in metrics:
                    self.writer.add_scalar(f"val{suffix}/{key}", metrics[key + suffix], self.step)
            for cls, value in enumerate(metrics.get("iou_per_class" + suffix, [])):
                name = self.class_set.names[cls] if cls < self.class_set.num_classes else str(cls)
                self.writer.add_scalar(f"val{suffix}_class/{cls:02d}_{name}", value, self.step)

    # ------------------------------------------------------------------------------------------ checkpoints
    def _gather_rng(self) -> list[dict[str, Any]]:
        state = rng_state()
        if not self.dist.is_distributed:
            return [state]
        gathered: list[Any] = [None] * self.dist.world_size
        dist.all_gather_object(gathered, state)
        return gathered

    def training_state(self) -> dict[str, Any]:
        """Everything besides the weights that exact resume needs (optimizer, schedule, scaler, counters, RNG of
        every rank, best metric, hook states, history)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "rng": self._gather_rng(),
            "best_metric": self.best_metric,
            "hooks": [hook.state_dict() for hook in self.hooks],
            "history": plain(self.history),
        }

    def save_last(self) -> Path | None:
        """Write ``last.pt`` (weights + full training state) atomically on rank 0; returns its path there."""
        state = self.training_state()  # collective in DDP: every rank must call it
        if not self.is_main:
            return None
        path = save_checkpoint(self.work_dir / "last.pt", self.core_model, self.cfg, self.class_set, self.grid,
                               **state)
        self.last_saved = (self.epoch, self.step)
        return path

    def _maybe_save_best(self, metrics: dict[str, Any]) -> None:
        key = self.settings.best_metric
        if key not in metrics:
            raise ConfigError(f"train.best_metric {key!r} is not among the validation metrics {sorted(metrics)}")
        value = float(metrics[key])
        if value > self.best_metric:
            self.best_metric = value
            if not self.is_main:
                return
            save_checkpoint(self.work_dir / "best.pt", self.core_model, self.cfg, self.class_set, self.grid,
                            epoch=self.epoch, step=self.step, best_metric=value, metrics=metrics)

    def resume(self, path: str | Path) -> None:
        """Restore weights and training state from a ``last.pt`` written by ``save_last``. Raises
        CheckpointMismatchError when its model/data config, class set or grid differ from this run's, and
        DataFormatError when it holds no training state (e.g. a ``best.pt``)."""
        ckpt = load_checkpoint(path, map_location="cpu")
        check_compatible(ckpt, config=self.cfg, class_set=self.class_set, grid=self.grid, source=str(path))
        if "optimizer" not in ckpt:
            raise DataFormatError(f"{path}: holds weights only (no training state); resume from last.pt")
        load_model_state(self.core_model, ckpt["model"], source=str(path))
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        self.best_metric = float(ckpt["best_metric"])
        self.history = list(ckpt.get("history", []))
        states = ckpt["rng"]
        set_rng_state(states[self.dist.rank] if self.dist.rank < len(states) else states[0])
        for hook, state in zip(self.hooks, ckpt.get("hooks", [])):
            hook.load_state_dict(state)

    def close(self) -> None:
        """Close the TensorBoard writer."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

