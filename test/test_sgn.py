"""SGN: module order and shapes for T/L/S at a reduced grid, losses, batching, parameter counts, parts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssc_core.config import load_config
from ssc_core.data.downsample import downsample_labels
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.geometry.projection import vox2pix
from ssc_core.models import build_model, list_models
from ssc_core.models.blocks.flosp import flosp, project_voxels
from ssc_core.types import GridSpec

SMALL_GRID = {"dims": [32, 32, 8], "voxel_size": 1.6, "origin": [0.0, -25.6, -2.0]}
IMAGE_HW = (64, 160)
# LiDAR (x fwd, y left, z up) -> camera (x right, y down, z fwd), camera 0.3 m behind the LiDAR.
T_CAM_VELO = torch.tensor([[0.0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0.3], [0, 0, 0, 1]])
K_SMALL = torch.tensor([[80.0, 0, 80], [0, 80.0, 32], [0, 0, 1]])


def small_config(name: str, **model_overrides) -> dict:
    """A shipped config shrunk to the 32 x 32 x 8 test grid and 64 x 160 images."""
    overrides = {"data": {"grid": SMALL_GRID, "image_crop": list(IMAGE_HW)}, "model": model_overrides}
    return load_config(name, overrides)


def synthetic_scene(grid: GridSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 4) of a ground plane and a box, and the (X, Y, Z) labels they imply (road 9, car 1, empty 0,
    a stripe of 255)."""
    rng = np.random.default_rng(seed)
    ground = np.column_stack([rng.uniform(0, 51.2, 3000), rng.uniform(-25.6, 25.6, 3000), np.full(3000, -1.5)])
    cx, cy = rng.uniform(10, 40), rng.uniform(-15, 15)
    box = np.column_stack([rng.uniform(cx - 3, cx + 3, 800), rng.uniform(cy - 2, cy + 2, 800),
                           rng.uniform(-1.5, 2.0, 800)])
    labels = np.zeros(grid.dims, dtype=np.int64)
    for pts, cls in ((ground, 9), (box, 1)):
        idx, inside = grid.points_to_indices(pts)
        labels[tuple(idx[inside].T)] = cls
    labels[:, -2:, :] = 255
    points = np.column_stack([np.vstack([ground, box]), np.ones(3800)]).astype(np.float32)
    return points, labels


def make_batch(cfg: dict, batch_size: int, seeds: list[int] | None = None) -> dict:
    """A collated batch as the data layer makes it (img, K, T_cam_velo, image_hw, points, targets)."""
    grid = GridSpec.from_dict(cfg["data"]["grid"])
    frames = len(cfg["data"]["history_offsets"]) + 1
    seeds = seeds or list(range(batch_size))
    gen = torch.Generator().manual_seed(sum(seeds))
    points, targets = [], []
    for b, seed in enumerate(seeds):
        pts, labels = synthetic_scene(grid, seed)
        points.append(np.column_stack([np.full(len(pts), b, np.float32), pts]))
        targets.append(labels)
    target = torch.from_numpy(np.stack(targets))
    return {
        "img": torch.randn(batch_size, frames, 3, *IMAGE_HW, generator=gen),
        "K": K_SMALL.expand(batch_size, frames, 3, 3).clone(),
        "T_cam_velo": T_CAM_VELO.expand(batch_size, frames, 4, 4).clone(),
        "image_hw": torch.tensor([IMAGE_HW] * batch_size),
        "points": torch.from_numpy(np.vstack(points)),
        "target": target,
        "target_1_2": torch.from_numpy(np.stack([downsample_labels(t, 2) for t in targets])).long(),
    }


def test_sgn_is_registered():
    assert "sgn" in list_models()


@pytest.mark.parametrize("name,frames", [("sgn_t", 5), ("sgn_l", 5), ("sgn_s", 1)])
def test_forward_backward_shapes_and_finite_nonzero_losses(name, frames):
    torch.manual_seed(0)
    cfg = small_config(name)
    model = build_model(cfg).train()
    batch = make_batch(cfg, batch_size=2)
    assert batch["img"].shape[1] == frames
    out = model(batch)
    seeds = out["seed_coords"]
    assert out["ssc_logits"].shape == (2, 20, 32, 32, 8)
    assert out["pts_logits"].shape == (2, 1, 16, 16, 4)
    assert out["occ_logits"].shape == (2, 1, 16, 16, 4)
    assert seeds.shape[1] == 4 and set(seeds[:, 0].tolist()) == {0, 1}
    assert out["sem_logits"].shape == (len(seeds), 20)

    losses = model.losses(out, batch)
    assert sorted(losses) == sorted(f"loss_{k}" for k in ("ssc", "sem_scal", "geo_scal", "sem", "occ", "pts"))
    for key, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value) and value.item() > 0, key
    sum(losses.values()).backward()
    parts = ("image_encoder.neck", "image_encoder.backbone.model.layer3", "bottleneck", "occ_header",
             "svpn.voxel_encoder", "svpn.sfe", "svpn.bev", "svpn.head", "sgb", "sem_header", "mlp_prior", "sdb",
             "ssc_header")
    for part in parts:
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(part) and p.requires_grad]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads), part
        assert any(g.abs().sum() > 0 for g in grads), part


def test_batch_of_two_gives_each_sample_the_output_it_gets_alone():
    torch.manual_seed(0)
    cfg = small_config("sgn_s", dim=16, sdb_depth=1, backbone={"name": "resnet18"})
    model = build_model(cfg).eval()
    pair = make_batch(cfg, 2, seeds=[3, 4])
    single = make_batch(cfg, 1, seeds=[4])
    single["img"] = pair["img"][1:]
    with torch.no_grad():
        both = model(pair)["ssc_logits"]
        alone = model(single)["ssc_logits"]
    torch.testing.assert_close(both[1:], alone, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(both[0], both[1])


@pytest.mark.parametrize("name,official_m,ours", [("sgn_t", 28.2, 28_089_127), ("sgn_s", 28.2, 28_089_127),
                                                  ("sgn_l", 12.5, 12_480_103)])
def test_full_size_parameter_count_matches_official_readme(name, official_m, ours):
    """Within 2 % of the official README's rounded count, and exactly the count README/docs/models.md state
    (28.09 M / 12.48 M), so that any change to the network shows here."""
    with torch.device("meta"):
        model = build_model(load_config(name))
    total = sum(p.numel() for p in model.parameters())
    assert total == ours
    assert abs(total / 1e6 - official_m) / official_m < 0.02, total
    backbone = sum(p.numel() for p in model.image_encoder.backbone.parameters()) / 1e6
    assert backbone == pytest.approx(23.508 if official_m > 20 else 11.177, abs=1e-3)


def test_project_voxels_matches_numpy_vox2pix():
    grid = GridSpec.from_dict(SMALL_GRID).downsample(2)
    centers = grid.voxel_centers()
    pix, inside = project_voxels(torch.from_numpy(centers), K_SMALL[None, None], T_CAM_VELO[None, None],
                                 torch.tensor([IMAGE_HW]))
    ref_pix, ref_mask, _ = vox2pix(centers, K_SMALL.double().numpy(), T_CAM_VELO.double().numpy(), IMAGE_HW)
    np.testing.assert_array_equal(inside[0, 0].numpy(), ref_mask)
    np.testing.assert_array_equal(pix[0, 0].numpy()[ref_mask], ref_pix[ref_mask])
    assert 0 < ref_mask.sum() < len(ref_mask)


def test_project_voxels_keeps_float32_precision_under_bf16_autocast():
    centers = torch.tensor([[40.0, -10.3, 0.7], [12.5, 3.1, -1.2]])
    K = torch.tensor([[[[707.0, 0, 604], [0, 707.0, 180], [0, 0, 1]]]])
    args = (centers, K, T_CAM_VELO[None, None], torch.tensor([[370, 1220]]))
    pix, _ = project_voxels(*args)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pix_amp, _ = project_voxels(*args)
    assert torch.equal(pix, pix_amp)


def test_flosp_averages_only_over_frames_that_see_the_voxel():
    feats = torch.stack([torch.full((1, 2, 2), 2.0), torch.full((1, 2, 2), 6.0)])[None]  # (B=1, F=2, C=1, 2, 2)
    pix = torch.tensor([[[[0, 0], [31, 17], [5, 5]], [[16, 0], [0, 0], [5, 5]]]])  # (1, 2, N=3, 2)
    inside = torch.tensor([[[True, True, False], [False, True, False]]])
    out = flosp(feats, pix, inside, stride=16)
    assert out.shape == (1, 1, 3)
    assert out[0, 0].tolist() == [2.0, 4.0, 0.0]


def test_seed_selection_falls_back_to_all_voxels_of_a_sample_without_proposals():
    model = build_model(small_config("sgn_s", dim=16, sdb_depth=1, backbone={"name": "resnet18"}))
    logits = torch.full((2, 1, 16, 16, 4), -1.0)
    logits[0, 0, 3, 4, 1] = logits[0, 0, 5, 5, 2] = 2.0
    seeds = model.select_seeds(logits)
    assert (seeds[:, 0] == 0).sum() == 2 and (seeds[:, 0] == 1).sum() == 16 * 16 * 4


def test_bad_configs_and_batches_raise_named_errors():
    with pytest.raises(ConfigError, match="unknown model keys"):
        build_model(small_config("sgn_s", dims=3))
    with pytest.raises(ConfigError, match="divisible by 8"):
        build_model(load_config("sgn_s", {"data": {"grid": {"dims": [30, 32, 8]}}}))
    with pytest.raises(ConfigError, match="model.name"):
        build_model({"data": {}})
    model = build_model(small_config("sgn_s", dim=16, sdb_depth=1, backbone={"name": "resnet18"}))
    batch = make_batch(small_config("sgn_s"), 1)
    points = batch.pop("points")
    with pytest.raises(DataFormatError, match="points"):
        model(batch)
    batch["points"] = points[:, 1:]
    with pytest.raises(DataFormatError, match=r"\(P, 5\)"):
        model(batch)


def test_tiny_config_runs_on_the_small_synthetic_grid():
    cfg = load_config("sgn_tiny")
    model = build_model(cfg).eval()
    assert cfg["data"]["grid"]["dims"] == [128, 128, 16] and cfg["data"]["image_crop"] == [96, 320]
    points, _ = synthetic_scene(GridSpec.from_dict(cfg["data"]["grid"]), seed=0)
    batch = {"img": torch.randn(1, 1, 3, 96, 320), "K": torch.tensor([[[[160.0, 0, 160], [0, 160, 48], [0, 0, 1]]]]),
             "T_cam_velo": T_CAM_VELO[None, None], "image_hw": torch.tensor([[96, 320]]),
             "points": torch.from_numpy(np.column_stack([np.zeros(len(points), np.float32), points]))}
    with torch.no_grad():
        out = model(batch)
    assert out["ssc_logits"].shape == (1, 20, 128, 128, 16)
    assert "occ_logits" not in out


def test_bf16_autocast_forward_backward_gives_finite_losses_and_gradients():
    torch.manual_seed(0)
    cfg = small_config("sgn_s", dim=16, sdb_depth=1, backbone={"name": "resnet18"})
    model = build_model(cfg).train()
    batch = make_batch(cfg, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model.losses(model(batch), batch)
    assert all(torch.isfinite(v) and v.item() > 0 for v in losses.values())
    sum(losses.values()).backward()
    sparse_weight = model.sgb.sfe1[0].conv1.weight
    assert sparse_weight.grad is not None and sparse_weight.grad.dtype == torch.float32
    assert torch.isfinite(sparse_weight.grad).all() and sparse_weight.grad.abs().sum() > 0


def test_real_kitti_frame_through_the_data_layer_gives_points_in_view_and_full_grid_logits(shared_data):
    from ssc_core.data.datasets import build_frame
    from ssc_core.data.semantic_kitti import SequencePaths
    from ssc_core.data.transforms import collate, window_to_sample
    from ssc_core.types import FrameWindow

    cfg = load_config("sgn_s", {"data": {"grid": SMALL_GRID, "points": {"source": "lidar"}},
                                "model": {"dim": 16, "sdb_depth": 1, "backbone": {"name": "resnet18"}}})
    paths = SequencePaths.of(shared_data / "kitti_real_frame", "00")
    frame = build_frame(paths, 0, load_points=True, load_right=False)
    batch = collate([window_to_sample(FrameWindow(current=frame), cfg["data"])])
    model = build_model(cfg).eval()
    pix, inside = project_voxels(model.voxel_centers, batch["K"], batch["T_cam_velo"], batch["image_hw"])
    assert batch["img"].shape == (1, 1, 3, 370, 1220)
    assert 0.05 < inside.float().mean().item() < 0.6  # the camera sees a wedge of the volume
    with torch.no_grad():
        out = model(batch)
    assert out["ssc_logits"].shape == (1, 20, 32, 32, 8)
    assert torch.isfinite(out["ssc_logits"]).all()


def test_sgn_learns_two_synthetic_scenes_in_fifty_steps(one_thread):
    """Measured (seed 0): completion IoU 0.12 -> 0.93 and road IoU 0.00 -> 0.90 after 50 AdamW steps."""
    torch.manual_seed(0)
    cfg = small_config("sgn_s", dim=16, sdb_depth=1, backbone={"name": "resnet18"})
    model = build_model(cfg).train()
    batch = make_batch(cfg, 2)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3, weight_decay=0.01)
    first = None
    for _ in range(51):
        total = sum(model.losses(model(batch), batch).values())
        first = total.item() if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    with torch.no_grad():
        pred = model.eval()(batch)["ssc_logits"].argmax(1)
    target = batch["target"]
    valid = target != 255

    def iou(p: torch.Tensor, t: torch.Tensor) -> float:
        return ((p & t & valid).sum() / (p | t)[valid].sum()).item()

    assert total.item() < 0.5 * first
    assert iou(pred > 0, target > 0) > 0.85
    assert iou(pred == 9, target == 9) > 0.8


def test_svpn_sigmoid_order_sets_what_voxels_without_points_feed_the_bev_unet():
    seen = {}
    batch = make_batch(small_config("sgn_s"), 1)
    for mode in ("before_dense", "after_dense"):
        torch.manual_seed(0)
        model = build_model(small_config("sgn_s", dim=16, sdb_depth=1, backbone={"name": "resnet18"},
                                         svpn_sigmoid=mode))
        model.svpn.bev.register_forward_pre_hook(lambda _m, args, mode=mode: seen.__setitem__(mode, args[0]))
        with torch.no_grad():
            model.eval().svpn(batch["points"], 1)
    occupied = seen["before_dense"] > 0  # every sigmoid is > 0, so exactly the voxels with points
    assert 0 < occupied.sum() < occupied.numel()
    assert torch.all(seen["after_dense"][~occupied] == 0.5)
    assert torch.allclose(seen["after_dense"][occupied], seen["before_dense"][occupied])
    with pytest.raises(ConfigError, match="svpn_sigmoid"):
        build_model(small_config("sgn_s", dim=16, sdb_depth=1, backbone={"name": "resnet18"}, svpn_sigmoid="never"))
