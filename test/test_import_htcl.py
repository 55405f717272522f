"""Importing HTCL's released checkpoint: the official key layout, round trip to identical outputs, every
re-arrangement (each test fails when it is left out of the converter), and the errors a user can meet."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from htcl_street import SMALL_GRID, SMALL_MODEL, small_config
from test_import_sgn import _randomize

from ssc_core.cli.import_checkpoint import build_parser
from ssc_core.cli.import_checkpoint import main as import_main
from ssc_core.config import load_config, resolve_config_path
from ssc_core.convert.htcl import htcl_keymap, htcl_to_official
from ssc_core.convert.keymap import KeyMap
from ssc_core.data.datasets import SemanticKittiDataset
from ssc_core.data.transforms import collate
from ssc_core.models import build_model
from ssc_core.models.blocks.leastereo import MATCHING_STEPS, SearchedCell
from ssc_core.models.htcl import LinearAttention3D
from ssc_core.training.checkpoint import load_checkpoint

VT = "img_view_transformer."
# Keys of the release (Arlo0o/HTCL, temporal_baseline.py: mmcls EfficientNet-B7, SECONDFPN, DepthNet, LEAStereo,
# the temporal branch, CustomResNet3D, SECONDFPN3D, OccHead) and their shapes, worked out by hand from the published
# module definitions (mmcls' b7 scaling: widths x2, depths ceil(x3.1), 80 + 112 in layers.4, 192 + 320 in layers.5).
OFFICIAL_HTCL_KEYS = {
    "img_backbone.layers.0.conv.weight": (64, 3, 3, 3),
    "img_backbone.layers.1.0.se.conv1.conv.weight": (16, 64, 1, 1),
    "img_backbone.layers.1.3.depthwise_conv.conv.weight": (32, 1, 3, 3),
    "img_backbone.layers.1.3.linear_conv.bn.running_var": (32,),
    "img_backbone.layers.2.0.expand_conv.conv.weight": (192, 32, 1, 1),
    "img_backbone.layers.3.6.depthwise_conv.conv.weight": (480, 1, 5, 5),
    "img_backbone.layers.4.9.linear_conv.conv.weight": (160, 960, 1, 1),
    "img_backbone.layers.4.10.depthwise_conv.conv.weight": (960, 1, 5, 5),
    "img_backbone.layers.4.10.linear_conv.conv.weight": (224, 960, 1, 1),
    "img_backbone.layers.4.19.linear_conv.conv.weight": (224, 1344, 1, 1),
    "img_backbone.layers.5.12.linear_conv.conv.weight": (384, 2304, 1, 1),
    "img_backbone.layers.5.13.depthwise_conv.conv.weight": (2304, 1, 3, 3),
    "img_backbone.layers.5.13.linear_conv.conv.weight": (640, 2304, 1, 1),
    "img_backbone.layers.5.16.se.conv2.conv.bias": (3840,),
    "img_backbone.layers.6.conv.weight": (2560, 640, 1, 1),
    "img_neck.deblocks.0.0.weight": (128, 48, 2, 2),
    "img_neck.deblocks.1.0.weight": (80, 128, 1, 1),  # stride 1: a transposed conv (use_conv_for_no_stride False)
    "img_neck.deblocks.4.0.weight": (2560, 128, 4, 4),
    VT + "dx": (3,),
    VT + "depth_net.reduce_conv.0.weight": (640, 640, 3, 3),
    VT + "depth_net.bn.weight": (30,),
    VT + "depth_net.depth_mlp.fc1.weight": (640, 30),
    VT + "depth_net.context_se.conv_expand.weight": (640, 640, 1, 1),
    VT + "depth_net.context_conv.weight": (128, 640, 1, 1),
    VT + "depth_net.depth_conv.2.bn2.running_mean": (640,),
    VT + "depth_net.depth_conv.3.aspp1.atrous_conv.weight": (640, 640, 1, 1),
    VT + "depth_net.depth_conv.3.aspp4.bn.weight": (640,),
    VT + "depth_net.depth_conv.3.global_avg_pool.2.weight": (640,),
    VT + "depth_net.depth_conv.3.conv1.weight": (640, 3200, 1, 1),
    VT + "depth_net.depth_conv.4.weight": (640, 160, 3, 3),
    VT + "depth_net.depth_conv.4.conv_offset.weight": (18, 640, 3, 3),
    VT + "depth_net.depth_conv.5.weight": (112, 640, 1, 1),
    VT + "leamodel.feature.stem1.conv.weight": (32, 16, 3, 3),
    VT + "leamodel.feature.cells.0._ops.5.conv.weight": (16, 16, 3, 3),
    VT + "leamodel.feature.cells.1.preprocess.conv.weight": (8, 64, 1, 1),
    VT + "leamodel.feature.last_3.weight": (32, 32, 1, 1),
    VT + "leamodel.matching.stem0.conv.weight": (32, 64, 3, 3, 3),
    VT + "leamodel.matching.cells.3._ops.0.conv.weight": (32, 32, 3, 3, 3),
    VT + "leamodel.matching.conv1.conv.weight": (64, 128, 3, 3, 3),
    VT + "leamodel.matching.last_6.bn.running_mean": (32,),
    VT + "leamodel.matching.last_3.weight": (1, 32, 3, 3, 3),
    VT + "volume_interaction.dres1.0.0.weight": (32, 2, 3, 3, 3),
    VT + "volume_interaction.dres2.conv5.0.weight": (128, 64, 3, 3, 3),
    VT + "volume_interaction.out3.2.weight": (1, 32, 3, 3, 3),
    VT + "temporal_deformable.deformable3.weight": (8, 3, 3, 3, 3),
    VT + "temporal_deformable.deformable7.conv_offset.weight": (54, 8, 3, 3, 3),
    VT + "temporal_deformable.deformablefuse.weight": (3, 24, 3, 3, 3),
    VT + "curr_patch.atrous_block4.weight": (1, 64, 3, 3),
    VT + "warped_patch.atrous_block2.2.weight": (1,),
    VT + "temporal_prehourglass.5.weight": (64, 64, 3, 3, 3),
    VT + "temporal_hourglass.5.weight": (384, 64, 3, 3, 3),
    VT + "temporal_encoder.encoder.layer0.0.weight": (64, 3, 7, 7),
    VT + "temporal_encoder.encoder.layer1.1.1.conv2.weight": (64, 64, 3, 3),
    VT + "temporal_encoder.encoder.backprojector.pix_coords": (112, 3, 96 * 320),
    VT + "temporal_encoder.pose_enc.encoder.conv1.weight": (64, 6, 7, 7),
    VT + "temporal_encoder.pose_enc.encoder.layer4.1.conv2.weight": (512, 512, 3, 3),
    VT + "temporal_encoder.pose_enc.encoder.fc.weight": (1000, 512),
    VT + "temporal_encoder.pose_dec.net.3.weight": (12, 256, 1, 1),
    "img_bev_encoder_backbone.input_proj.0.weight": (128, 128, 1, 1, 1),
    "img_bev_encoder_backbone.layers.2.0.downsample.0.weight": (512, 256, 1, 1, 1),
    "img_bev_encoder_neck.deblocks.2.0.weight": (512, 128, 4, 4, 4),
    "img_bev_encoder_neck.alpha": (1,),
    "img_bev_encoder_neck.attention_3d.to_qkv.weight": (12, 384, 1, 1, 1),
    "img_bev_encoder_neck.attention_3d.to_q.weight": (4, 384, 1, 1, 1),
    "img_bev_encoder_neck.attention_3d.to_out.1.weight": (384,),
    "pts_bbox_head.occ_convs.0.0.weight": (192, 384, 3, 3, 3),
    "pts_bbox_head.occ_convs.0.3.weight": (20, 192, 1, 1, 1),
    "pts_bbox_head.img_feat_reduce.weight": (384, 640),
    "pts_bbox_head.point_soft_weights.2.weight": (2, 192),
    "pts_bbox_head.point_occ_mlp.fc2.weight": (20, 384),
}
DROPPED_CONSTANTS = {VT + k for k in ("dx", "bx", "nx", "frustum", "temporal_encoder.encoder.backprojector.id_coords",
                                      "temporal_encoder.encoder.backprojector.ones",
                                      "temporal_encoder.encoder.backprojector.pix_coords",
                                      "temporal_encoder.pose_enc.encoder.fc.weight",
                                      "temporal_encoder.pose_enc.encoder.fc.bias")}
QKV_QUERY_ROWS = "img_bev_encoder_neck.attention_3d.to_qkv.weight[:4]"


def test_official_layout_has_the_release_keys_and_shapes():
    cfg = load_config("htcl")
    with torch.device("meta"):
        ours = build_model(cfg).state_dict()
    official = htcl_to_official(ours, cfg)
    assert {k: tuple(official[k].shape) for k in OFFICIAL_HTCL_KEYS} == OFFICIAL_HTCL_KEYS
    assert not any(k.startswith(("image_encoder.", "stereo.", "temporal.")) for k in official)
    assert "htcl" in build_parser().format_help()


def _small_config_file(folder):
    """A YAML config: htcl_tiny with htcl_street's small grid, images and depth bins (what ``small_config``
    builds)."""
    path = folder / "htcl_small.yaml"
    path.write_text(f"_base_: [{resolve_config_path('htcl_tiny')}]\n"
                    f"data: {{grid: {SMALL_GRID}, image_crop: [64, 160]}}\n"
                    f"model: {SMALL_MODEL}\n")
    return path


def _official_file(path, model: torch.nn.Module, cfg: dict, prefix: str = ""):
    """A file laid out like the release: mmcv's {'meta', 'state_dict', 'optimizer'}."""
    state = {prefix + k: v for k, v in htcl_to_official(model.state_dict(), cfg).items()}
    torch.save({"meta": {"epoch": np.int64(30), "mmcv_version": "1.4.0"}, "state_dict": state,
                "optimizer": {"state": {}, "param_groups": []}}, path)
    return path


@pytest.fixture(scope="module")
def small_release(tmp_path_factory):
    """(an official-layout file of a randomised small HTCL, its model, the matching config file)."""
    folder = tmp_path_factory.mktemp("htcl")
    cfg = small_config()
    model = _randomize(build_model(cfg)).eval()
    return _official_file(folder / "htcl.pth", model, cfg, "module."), model, _small_config_file(folder)


def test_an_official_checkpoint_imports_to_identical_outputs(small_release, htcl_street, tmp_path, capsys,
                                                             one_thread):
    src, model, config_file = small_release
    assert load_config(str(config_file)) == small_config()
    out = tmp_path / "ours.pt"
    assert import_main(["--method", "htcl", "--config", str(config_file), "--input", str(src), "--output",
                        str(out)]) == 0
    printed = capsys.readouterr().out
    dropped = {line.split()[1].rstrip(":") for line in printed.splitlines() if line.startswith("dropped")}
    pose = {k for k in dropped if ".pose_enc." in k or ".pose_dec." in k} - DROPPED_CONSTANTS
    assert dropped == DROPPED_CONSTANTS | {QKV_QUERY_ROWS} | pose and len(pose) == 128  # ResNet-18 120, decoder 8
    assert "note" not in printed  # HTCL has no configurable depth source to remind the user of
    ckpt = load_checkpoint(out)
    assert ckpt["grid"]["dims"] == [32, 32, 8] and ckpt["imported_from"] == {"method": "htcl", "file": "htcl.pth"}
    imported = build_model(ckpt["config"])
    imported.load_state_dict(ckpt["model"])
    assert imported.alpha.item() == model.alpha.item() != 0  # the temporal attention takes part
    batch = collate([SemanticKittiDataset(htcl_street, sequences=["00"], cfg=small_config()["data"])[3]])
    with torch.no_grad():
        expected, got = model(batch), imported.eval()(batch)
    for key in ("ssc_logits", "depth_prob"):
        assert torch.equal(got[key], expected[key]), key


@functools.cache
def _small_keymap() -> KeyMap:
    """The key rules of the small HTCL (built on the meta device)."""
    with torch.device("meta"):
        return htcl_keymap(build_model(small_config()).state_dict())


def test_attention_takes_k_and_v_from_the_last_two_thirds_of_to_qkv():
    """Officially q, k, v = to_qkv(temporal voxel).chunk(3) and q is then replaced by to_q(query); the reference
    below computes that from the official tensors."""
    gen = torch.Generator().manual_seed(1)
    c, heads, dim_head = 6, 2, 2
    hidden = heads * dim_head
    prefix = "img_bev_encoder_neck.attention_3d."
    official = {prefix + "to_q.weight": torch.randn(hidden, c, 1, 1, 1, generator=gen),
                prefix + "to_qkv.weight": torch.randn(3 * hidden, c, 1, 1, 1, generator=gen),
                prefix + "to_out.0.weight": torch.randn(c, hidden, 1, 1, 1, generator=gen),
                prefix + "to_out.0.bias": torch.randn(c, generator=gen),
                prefix + "to_out.1.weight": torch.rand(c, generator=gen) + 0.5,
                prefix + "to_out.1.bias": torch.randn(c, generator=gen)}
    attention = LinearAttention3D(c, heads, dim_head)
    ours = _small_keymap().to_ours(official)
    assert not ours.unmatched
    attention.load_state_dict({k.removeprefix("attention."): v for k, v in ours.state.items()})
    query, voxel = torch.randn(1, c, 3, 4, 2, generator=gen), torch.randn(1, c, 3, 4, 2, generator=gen)

    def official_attention(query: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        _, k, v = (t.reshape(1, heads, dim_head, -1) for t in F.conv3d(x, official[prefix + "to_qkv.weight"])
                   .chunk(3, dim=1))
        q = F.conv3d(query, official[prefix + "to_q.weight"]).reshape(1, heads, dim_head, -1).softmax(dim=-2)
        context = torch.einsum("bhdn,bhen->bhde", k.softmax(dim=-1), v)
        out = torch.einsum("bhde,bhdn->bhen", context, q * dim_head ** -0.5).reshape(1, hidden, *x.shape[2:])
        out = F.conv3d(out, official[prefix + "to_out.0.weight"], official[prefix + "to_out.0.bias"])
        return F.group_norm(out, 1, official[prefix + "to_out.1.weight"], official[prefix + "to_out.1.bias"])

    with torch.no_grad():
        torch.testing.assert_close(attention(query, voxel), official_attention(query, voxel))


def test_leastereo_cell_operations_go_from_the_flat_run_order_to_steps():
    """Officially a cell keeps its six operations in one list, used in the order the forward meets them: for each
    step, the states in order, those whose branch index (offset + j) is in ``cell_arch[:, 0]``. The reference below
    runs the release's matching cell (cell_arch [[1, 1], [0, 1], [3, 1], [4, 1], [8, 1], [6, 1]]) that way."""
    gen = torch.Generator().manual_seed(2)
    c, cell_arch = 3, [[1, 1], [0, 1], [3, 1], [4, 1], [8, 1], [6, 1]]
    prefix = VT + "leamodel.matching.cells.0."
    official = {}
    for name, cin in (("pre_preprocess", 2 * c), ("preprocess", 4 * c), *((f"_ops.{k}", c) for k in range(6))):
        kernel = 1 if "preprocess" in name else 3
        official[prefix + name + ".conv.weight"] = torch.randn(c, cin, kernel, kernel, kernel, generator=gen) * 0.5
        for t, value in (("weight", torch.rand(c, generator=gen) + 0.5), ("bias", torch.randn(c, generator=gen)),
                         ("running_mean", torch.randn(c, generator=gen)),
                         ("running_var", torch.rand(c, generator=gen) + 0.5), ("num_batches_tracked", torch.tensor(0))):
            official[prefix + name + ".bn." + t] = value
    cell = SearchedCell(2 * c, 4 * c, c, 0, MATCHING_STEPS, dims=3).eval()
    ours = _small_keymap().to_ours(official)
    assert not ours.unmatched
    cell.load_state_dict({k.removeprefix("stereo.matching.cells.0."): v for k, v in ours.state.items()})
    s0, s1 = torch.randn(1, 2 * c, 4, 5, 6, generator=gen), torch.randn(1, 4 * c, 4, 5, 6, generator=gen)

    def conv_br(name: str, x: torch.Tensor) -> torch.Tensor:
        w = official[prefix + name + ".conv.weight"]
        bn = {t: official[prefix + name + ".bn." + t] for t in ("weight", "bias", "running_mean", "running_var")}
        x = F.conv3d(x, w, padding=w.shape[-1] // 2)
        return F.relu(F.batch_norm(x, bn["running_mean"], bn["running_var"], bn["weight"], bn["bias"]))

    def official_cell() -> torch.Tensor:
        states, offset, index = [conv_br("pre_preprocess", s0), conv_br("preprocess", s1)], 0, 0
        for _ in range(3):
            new = []
            for j, h in enumerate(states):
                if offset + j in [row[0] for row in cell_arch]:
                    new.append(conv_br(f"_ops.{index}", h))
                    index += 1
            offset += len(states)
            states.append(sum(new))
        return torch.cat(states[-4:], dim=1)

    with torch.no_grad():
        torch.testing.assert_close(cell(s0, s1)[1], official_cell())


def test_backbone_blocks_are_regrouped_from_mmcls_layers_to_timm_stages():
    """mmcls' layers.4 holds the 80- and the 112-channel stages (and layers.5 the 192- and 320-channel ones) of
    the small model's EfficientNet-B0: 3 + 3 and 4 + 1 blocks; in timm they are stages 3, 4, 5 and 6."""
    rules = _small_keymap()
    names = {"img_backbone.layers.4.2.linear_conv.conv.weight": "blocks.3.2.conv_pwl.weight",
             "img_backbone.layers.4.3.linear_conv.conv.weight": "blocks.4.0.conv_pwl.weight",
             "img_backbone.layers.5.4.expand_conv.bn.running_var": "blocks.6.0.bn1.running_var",
             "img_backbone.layers.1.0.linear_conv.conv.weight": "blocks.0.0.conv_pw.weight",
             "img_backbone.layers.1.0.depthwise_conv.bn.weight": "blocks.0.0.bn1.weight"}
    mapped = rules.to_ours({k: torch.zeros(1) for k in names})
    assert not mapped.unmatched
    assert sorted(mapped.state) == sorted("image_encoder.backbone.model." + v for v in names.values())


def test_bad_files_and_mismatched_configs_are_refused_naming_the_keys(small_release, tmp_path, capsys):
    src, _, config_file = small_release
    out = tmp_path / "ours.pt"
    base = ["--method", "htcl", "--config", str(config_file), "--output", str(out)]
    state = torch.load(src, weights_only=False)["state_dict"]
    head = "module.pts_bbox_head.occ_convs.0.3.weight"
    for change, expected in (
        (lambda s: s.update({"module.img_view_transformer.extra.weight": torch.zeros(1)}),
         "img_view_transformer.extra.weight"),
        (lambda s: s.pop("module.img_bev_encoder_neck.alpha"), "img_bev_encoder_neck.alpha"),
        (lambda s: s.pop("module.img_view_transformer.leamodel.matching.cells.2._ops.5.conv.weight"),
         "leamodel.matching.cells.2._ops.5.conv.weight"),
        (lambda s: s.update({head: torch.zeros(19, *s[head].shape[1:])}), "19 classes"),
    ):
        broken = dict(state)
        change(broken)
        path = tmp_path / "broken.pth"
        torch.save({"meta": {}, "state_dict": broken}, path)
        assert import_main([*base, "--input", str(path)]) == 2
        err = capsys.readouterr().err
        assert expected in err and err.startswith("error:"), err
    no_stereo = tmp_path / "no_stereo.yaml"
    no_stereo.write_text(f"_base_: [{config_file}]\nmodel: {{stereo: {{enabled: false}}}}\n")
    assert import_main([*base[:3], str(no_stereo), *base[4:], "--input", str(src)]) == 2
    assert "model.stereo.enabled" in capsys.readouterr().err
    assert import_main([*base[:3], "sgn_t", *base[4:], "--input", str(src)]) == 2
    assert "needs an HTCL config" in capsys.readouterr().err
    assert import_main([*base, "--input", str(src), "--depth-files", str(tmp_path)]) == 2
    assert "takes no --depth-files" in capsys.readouterr().err
    assert not out.exists()
