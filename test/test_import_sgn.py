"""Importing the official SGN checkpoints: key layout, round trip to identical outputs, every documented re-layout
(each test fails when its re-layout is left out of the converter), and the errors a user can meet."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_sgn import make_batch, small_config

from ssc_core.cli.import_checkpoint import main as import_main
from ssc_core.config import load_config, resolve_config_path
from ssc_core.convert.sgn import SGN_KEYS, sgn_to_official
from ssc_core.models import build_model
from ssc_core.models.blocks.bev_unet import SegmentationHead3D
from ssc_core.models.blocks.diffusion import SDB
from ssc_core.models.blocks.sparse_blocks import SFE
from ssc_core.ops import SparseVoxels, SubMConv3d
from ssc_core.training.checkpoint import load_checkpoint

# Official SGN-T keys (Jieqianyu/SGN: mmdet ResNet-50 + FPN + SGNHeadOne / SGNHeadOcc) and their shapes, written
# out from the published module definitions.
OFFICIAL_SGN_T_KEYS = {
    "img_backbone.layer3.5.conv3.weight": (1024, 256, 1, 1),
    "img_backbone.layer4.2.bn3.running_var": (2048,),
    "img_neck.lateral_convs.0.conv.weight": (128, 1024, 1, 1),
    "img_neck.fpn_convs.0.conv.bias": (128,),
    "pts_bbox_head.bottleneck.weight": (128, 128, 3, 3, 3),
    "pts_bbox_head.occ_header.0.conv_in.weight": (64, 128, 3, 3, 3),
    "pts_bbox_head.occ_header.0.diffusion.0.conv_mx.weight": (9, 64, 1, 1, 1),
    "pts_bbox_head.occ_header.1.weight": (1, 64, 3, 3, 3),
    "pts_bbox_head.sdb.conv_in.weight": (64, 136, 3, 3, 3),
    "pts_bbox_head.sdb.diffusion.2.conv_kx1x1.2.weight": (64, 64, 7, 1, 1),
    "pts_bbox_head.sdb.aspp.aspp_4.weight": (32, 32, 3, 3, 3),
    "pts_bbox_head.sdb.aspp.fusion.weight": (64, 96, 1, 1, 1),
    "pts_bbox_head.sgb.conv_block.spconv_layers.0.layers.0.weight": (128, 3, 3, 3, 128),
    "pts_bbox_head.sgb.conv_block_down.spconv_layers.0.layers_in.1.running_mean": (128,),
    "pts_bbox_head.sgb.proj_block_down.scale_selection.0.weight": (128, 256),
    "pts_bbox_head.sgb.proj_block.fcs.3.0.weight": (64, 64),
    "pts_bbox_head.sgb.fc_out.weight": (128, 384),
    "pts_bbox_head.sem_header.mlp_head.1.weight": (20, 128),
    "pts_bbox_head.ssc_header.mlp_head.0.weight": (64,),
    "pts_bbox_head.mlp_prior.3.weight": (128, 64),
    "pts_bbox_head.pts_header.voxelize.PPmodel.0.weight": (16, 9),
    "pts_bbox_head.pts_header.voxelize.soft_model.conv_block.spconv_layers.1.layers_in.0.weight": (16, 1, 1, 1, 16),
    "pts_bbox_head.pts_header.voxelize.soft_model.proj_block.linear_output.2.weight": (1, 16),
    "pts_bbox_head.pts_header.Encoder_block4.3.weight": (80, 80, 3, 3),
    "pts_bbox_head.pts_header.deconv_1_8__1_1.weight": (4, 4, 8, 8),
    "pts_bbox_head.pts_header.deconv_1_4__1_1.weight": (8, 8, 4, 4),
    "pts_bbox_head.pts_header.conv1_2.weight": (48, 60, 3, 3),
    "pts_bbox_head.pts_header.seg_head_1_2.conv1.2.weight": (8, 8, 3, 3, 3),
    "pts_bbox_head.pts_header.seg_head_1_2.guidance_layer.1.running_mean": (8,),
    "pts_bbox_head.pts_header.seg_head_1_2.conv_classes.weight": (1, 8, 3, 3, 3),
}
DROPPED = {f"pts_bbox_head.{p}.{t}" for t in ("weight", "bias") for p in (
    "pts_header.voxelize.soft_model.proj_block.scale_selection.0", "sgb.proj_block.scale_selection.0",
    "sgb.proj_block_down.scale_selection.0", "pts_header.deconv_1_8__1_1", "pts_header.deconv_1_4__1_1")}


def _randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights and BatchNorm statistics (positive variances), so any mix-up changes the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.dtype.is_floating_point:
                continue
            t.copy_(torch.rand(t.shape, generator=gen) + 0.5 if "running_var" in name
                    else torch.randn(t.shape, generator=gen) * 0.1)
    return module


def _small_config_file(folder, name: str):
    """A YAML config: the shipped ``name`` on test_sgn's small grid and images (what ``small_config`` builds)."""
    path = folder / f"{name}_small.yaml"
    path.write_text(f"_base_: [{resolve_config_path(name)}]\n"
                    "data:\n  grid: {dims: [32, 32, 8], voxel_size: 1.6, origin: [0.0, -25.6, -2.0]}\n"
                    "  image_crop: [64, 160]\n")
    return path


def _official_file(path, model: torch.nn.Module, prefix: str = "", meta: dict | None = None):
    """A file laid out like the official release: mmcv's {'meta', 'state_dict', 'optimizer'}."""
    state = {prefix + k: v for k, v in sgn_to_official(model.state_dict()).items()}
    meta = {"epoch": np.int64(36), "iter": 137424, "mmcv_version": "1.4.0", "best_score": np.float64(0.6153),
            **(meta or {})}
    torch.save({"meta": meta, "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}, path)
    return path


@pytest.mark.parametrize(("name", "params"), [("sgn_t", 28.16), ("sgn_l", 12.50)])
def test_official_layout_has_the_published_keys_and_parameter_count(name, params):
    official = sgn_to_official(build_model(load_config(name)).state_dict())
    count = sum(v.numel() for k, v in official.items()
                if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    # the README's 28.2 M / 12.5 M, which count the whole ResNet and the never-run layers (fact sheet 1.6)
    assert count / 1e6 == pytest.approx(params, abs=0.005)
    assert DROPPED <= set(official)
    if name == "sgn_t":
        assert {k: tuple(official[k].shape) for k in OFFICIAL_SGN_T_KEYS} == OFFICIAL_SGN_T_KEYS


@pytest.mark.parametrize("prefix", ["", "module."])
def test_an_official_checkpoint_imports_to_identical_outputs(prefix, tmp_path, capsys):
    cfg = small_config("sgn_t")
    model = _randomize(build_model(cfg)).eval()
    src = _official_file(tmp_path / "sgn-t.pth", model, prefix)
    config_file = _small_config_file(tmp_path, "sgn_t")
    out = tmp_path / "ours.pt"
    assert import_main(["--method", "sgn", "--config", str(config_file), "--input", str(src), "--output",
                        str(out)]) == 0
    printed = capsys.readouterr().out
    assert {line.split()[1].rstrip(":") for line in printed.splitlines() if line.startswith("dropped")} == DROPPED
    assert "keys_dropped: 10" in printed and "stereo_sgbm" in printed  # the note about the depth source
    ckpt = load_checkpoint(out)
    assert ckpt["grid"]["dims"] == [32, 32, 8] and ckpt["class_set"]["name"] == "semantic_kitti"
    assert ckpt["imported_from"] == {"method": "sgn", "file": "sgn-t.pth"}
    imported = build_model(ckpt["config"])
    imported.load_state_dict(ckpt["model"])
    batch = make_batch(cfg, 1)
    with torch.no_grad():
        expected, got = model(batch), imported.eval()(batch)
    for key in ("ssc_logits", "pts_logits", "sem_logits"):
        assert torch.equal(got[key], expected[key]), key


def _relayout(official: dict[str, torch.Tensor], strip: str) -> dict[str, torch.Tensor]:
    """Official tensors through the converter's rules, with our module prefix ``strip`` removed."""
    mapped = SGN_KEYS.to_ours(official)
    assert not mapped.unmatched
    return {k.removeprefix(strip): v for k, v in mapped.state.items()}


def test_mpac_gate_channels_are_reordered_to_pass_order():
    """Officially the 9 gate channels are (axis, kernel) with axis 0 = z (dim 2, the LAST pass) and 2 = x (dim 4,
    the FIRST pass); the reference below computes exactly that from the official tensors."""
    c, gen = 4, torch.Generator().manual_seed(1)
    sdb = SDB(c, c, depth=1)
    official = {f"pts_bbox_head.sdb.{k}": torch.randn(v.shape, generator=gen) * 0.3 for k, v in {
        "conv_mx.weight": torch.empty(9, c, 1, 1, 1),
        **{f"{name}.{j}.{t}": torch.empty(shape) for name, k in (("conv_1x1xk", (1, 1, None)),
                                                                    ("conv_1xkx1", (1, None, 1)),
                                                                    ("conv_kx1x1", (None, 1, 1)))
           for j, size in enumerate((3, 5, 7))
           for t, shape in (("weight", (c, c, *(size if s is None else s for s in k))), ("bias", (c,)))},
    }.items()}
    official = {k.replace("sdb.", "sdb.diffusion.0."): v for k, v in official.items()}
    ours = _relayout(official, "sdb.diffusion.0.")
    mpac = sdb.diffusion[0]
    mpac.load_state_dict(ours)
    x = torch.randn(1, c, 5, 6, 7, generator=gen)

    def official_mpac(x: torch.Tensor) -> torch.Tensor:
        p = "pts_bbox_head.sdb.diffusion.0."
        gates = F.conv3d(x, official[p + "conv_mx.weight"]).view(1, 3, 3, *x.shape[2:]).softmax(dim=2)
        y = x
        for name, axis in (("conv_1x1xk", 2), ("conv_1xkx1", 1), ("conv_kx1x1", 0)):
            y = sum(gates[:, axis, j:j + 1] * torch.relu(F.conv3d(
                y, official[f"{p}{name}.{j}.weight"], official[f"{p}{name}.{j}.bias"],
                padding=tuple(s // 2 for s in official[f"{p}{name}.{j}.weight"].shape[2:]))) for j in range(3))
        return torch.relu(y + x)

    with torch.no_grad():
        torch.testing.assert_close(mpac(x), official_mpac(x))


def test_svpn_head_kernels_go_from_zxy_to_xyz():
    """Officially the SVPN's 3D head runs on (B, 1, Z, X, Y); ours on (B, 1, X, Y, Z)."""
    gen = torch.Generator().manual_seed(2)
    reference = _randomize(SegmentationHead3D(1, 8, 1, guidance=True), seed=3).eval()
    names = {"conv0": "conv0", "guidance_layer.0": "guidance_layer.0", "guidance_layer.1": "guidance_layer.1",
             "conv_classes": "conv_classes", **{f"conv{a}.{i}": f"branches.{i}.{b}" for i in range(3)
                                                for a, b in ((1, 0), (2, 3))},
             **{f"bn{a}.{i}": f"branches.{i}.{b}" for i in range(3) for a, b in ((1, 1), (2, 4))}}
    ref_state = reference.state_dict()
    official = {f"pts_bbox_head.pts_header.seg_head_1_2.{o}.{t}": ref_state[f"{m}.{t}"]
                for o, m in names.items() for t in ("weight", "bias", "running_mean", "running_var",
                                                    "num_batches_tracked") if f"{m}.{t}" in ref_state}
    head = SegmentationHead3D(1, 8, 1, guidance=True).eval()
    head.load_state_dict(_relayout(official, "svpn.head."))
    x_xyz = torch.randn(1, 1, 6, 5, 4, generator=gen)
    with torch.no_grad():
        logits, guide = head(x_xyz)
        ref_logits, ref_guide = reference(x_xyz.permute(0, 1, 4, 2, 3))  # the official head sees (Z, X, Y)
    torch.testing.assert_close(logits, ref_logits.permute(0, 1, 3, 4, 2))
    torch.testing.assert_close(guide, ref_guide.permute(0, 1, 3, 4, 2))


def test_sgb_sparse_kernels_go_from_zyx_to_xyz():
    """Officially SGB's spconv runs on coordinates flipped to (b, z, y, x); ours on (b, x, y, z)."""
    gen = torch.Generator().manual_seed(4)
    c = 3
    reference = _randomize(SFE(c, c, layers=1, backend="torch"), seed=5).eval()
    ref_state = reference.state_dict()
    names = {"layers_in.0": "identity_conv", "layers_in.1": "identity_bn", "layers.0": "conv1", "layers.1": "bn1",
             "layers.3": "conv2", "layers.4": "bn2"}
    official = {f"pts_bbox_head.sgb.conv_block.spconv_layers.0.{o}.{t}": ref_state[f"0.{m}.{t}"]
                for o, m in names.items() for t in ("weight", "bias", "running_mean", "running_var",
                                                    "num_batches_tracked") if f"0.{m}.{t}" in ref_state}
    # the 1x1x1 identity conv has no axes; give the reference the matrix the converter will produce for ours
    block = SFE(c, c, layers=1, backend="torch").eval()
    block.load_state_dict(_relayout(official, "sgb.sfe1."))
    reference.load_state_dict({**ref_state, "0.identity_conv.weight": block.state_dict()["0.identity_conv.weight"]})
    shape = (5, 6, 4)
    coords = torch.nonzero(torch.rand(1, *shape, generator=gen) < 0.6)
    feats = torch.randn(len(coords), c, generator=gen)
    flipped = torch.cat([coords[:, :1], coords[:, 1:].flip(1)], dim=1)
    with torch.no_grad():
        ours = block(SparseVoxels(feats, coords, shape, 1)).features
        ref = reference(SparseVoxels(feats, flipped, shape[::-1], 1)).features
    torch.testing.assert_close(ours, ref)


def test_one_by_one_sparse_convs_compute_what_spconv_computes():
    """spconv 2.x runs a 1x1x1 SubMConv3d as features @ weight.view(in, out) (checked against spconv itself)."""
    spconv = pytest.importorskip("spconv.pytorch")
    gen = torch.Generator().manual_seed(6)
    c = 5
    weight = torch.randn(c, 1, 1, 1, c, generator=gen)
    official = {"pts_bbox_head.sgb.conv_block.spconv_layers.0.layers_in.0.weight": weight}
    conv = SubMConv3d(c, c, 1, bias=False, backend="torch")
    conv.load_state_dict(_relayout(official, "sgb.sfe1.0.identity_conv."))
    coords = torch.tensor([[0, 1, 2, 3], [0, 2, 2, 2], [0, 0, 1, 3]])
    feats = torch.randn(3, c, generator=gen)
    reference = spconv.SubMConv3d(c, c, 1, bias=False, indice_key="k")
    with torch.no_grad():
        reference.weight.copy_(weight)
        expected = reference(spconv.SparseConvTensor(feats, coords.int(), [4, 4, 4], 1)).features
        torch.testing.assert_close(conv(SparseVoxels(feats, coords, (4, 4, 4), 1)).features, expected)


@pytest.fixture(scope="module")
def small_sgn_l(tmp_path_factory):
    """(an official-layout SGN-L file on the small grid, the matching config file, SGN-T's config file)."""
    folder = tmp_path_factory.mktemp("sgn")
    path = _official_file(folder / "sgn-l.pth", build_model(small_config("sgn_l")))
    return path, _small_config_file(folder, "sgn_l"), _small_config_file(folder, "sgn_t")


def test_bad_files_and_mismatched_configs_are_refused_naming_the_keys(small_sgn_l, tmp_path, capsys):
    official_sgn_l, sgn_l_cfg, sgn_t_cfg = small_sgn_l
    out = tmp_path / "ours.pt"
    base = ["--method", "sgn", "--output", str(out)]
    # SGN-L weights into the SGN-T config
    assert import_main([*base, "--config", str(sgn_t_cfg), "--input", str(official_sgn_l)]) == 2
    assert "model.dim 128" in capsys.readouterr().err
    saved = torch.load(official_sgn_l, weights_only=False)
    state = saved["state_dict"]
    for change, expected in (
        (lambda s: s.update({"pts_bbox_head.extra_head.weight": torch.zeros(1)}), "pts_bbox_head.extra_head.weight"),
        (lambda s: s.pop("pts_bbox_head.sdb.aspp.fusion.bias"), "pts_bbox_head.sdb.aspp.fusion.bias"),
        (lambda s: s.update({"pts_bbox_head.ssc_header.mlp_head.1.weight": torch.zeros(19, 32)}), "19 classes"),
    ):
        broken = dict(state)
        change(broken)
        path = tmp_path / "broken.pth"
        torch.save({"meta": {}, "state_dict": broken}, path)
        assert import_main([*base, "--config", str(sgn_l_cfg), "--input", str(path)]) == 2
        err = capsys.readouterr().err
        assert expected in err and err.startswith("error:"), err
    assert not out.exists()
    assert import_main([*base, "--input", str(official_sgn_l)]) == 2
    assert "needs --config" in capsys.readouterr().err


def test_pickled_objects_are_refused_unless_trusted_and_outputs_are_not_overwritten(small_sgn_l, tmp_path, capsys):
    official_sgn_l, sgn_l_cfg, _ = small_sgn_l
    saved = torch.load(official_sgn_l, weights_only=False)
    saved["meta"]["args"] = argparse.Namespace(work_dir="work_dirs/sgn")  # a Python object in the meta
    path = tmp_path / "with_object.pth"
    torch.save(saved, path)
    out = tmp_path / "ours.pt"
    args = ["--method", "sgn", "--config", str(sgn_l_cfg), "--input", str(path), "--output", str(out)]
    assert import_main(args) == 2
    err = capsys.readouterr().err
    assert "argparse.Namespace" in err and "--trust-pickle" in err
    assert import_main([*args, "--trust-pickle"]) == 0
    before = out.read_bytes()
    assert import_main([*args, "--trust-pickle"]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == before
    assert import_main([*args, "--trust-pickle", "--overwrite"]) == 0
