"""bench/htcl_history.py: it really swaps the history (a fused voxel that ignores it gives no change, one that uses
it does) and refuses a checkpoint without HTCL's history."""

from __future__ import annotations

import torch
from htcl_street import small_config

import bench.htcl_history as bench
from ssc_core.data.label_maps import SEMANTIC_KITTI
from ssc_core.models import build_model
from ssc_core.training.checkpoint import save_checkpoint
from ssc_core.types import GridSpec


def _checkpoint(path, alpha: float | None):
    """A random small HTCL with fusion weight ``alpha``; None: the temporal branch off and no history."""
    cfg = small_config() if alpha is not None else small_config(temporal={"enabled": False})
    if alpha is None:
        cfg["data"]["history_offsets"] = []
    torch.manual_seed(0)
    model = build_model(cfg)
    if alpha is not None:
        with torch.no_grad():
            model.alpha.fill_(alpha)
    return save_checkpoint(path, model, cfg, SEMANTIC_KITTI, GridSpec.from_dict(cfg["data"]["grid"]))


def test_history_changes_the_logits_only_through_the_fusion(htcl_street, tmp_path, one_thread):
    ignored = bench.history_effect(_checkpoint(tmp_path / "a0.pt", 0.0), htcl_street, ["00"])
    assert ignored.max_logit_change == 0.0 and ignored.changed_voxels == 0
    assert (ignored.iou, ignored.miou) == (ignored.iou_current, ignored.miou_current)
    assert ignored.voxels == 4 * 32 * 32 * 8  # frames 0, 5, 10, 15 on the 32 x 32 x 8 grid
    used = bench.history_effect(_checkpoint(tmp_path / "a1.pt", 1.0), htcl_street, ["00"])
    assert used.max_logit_change > 1e-4 and used.mean_abs_logit > 0
    assert "| the current frame in every slot |" in bench.format_table(used)


def test_a_checkpoint_without_history_is_one_error_line(htcl_street, tmp_path, capsys):
    path = _checkpoint(tmp_path / "none.pt", None)
    assert bench.main(["--checkpoint", str(path), "--data-root", str(htcl_street), "--sequences", "00"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert bench.main(["--checkpoint", str(tmp_path / "missing.pt"), "--data-root", str(htcl_street),
                       "--sequences", "00"]) == 2
