"""Importing CleanerS's released checkpoints: the official key layout, round trip to identical weights and
predictions, the re-layouts (each test fails when it is left out of the converter), and the errors a user can meet."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_import_sgn import _randomize

from ssc_core.cli.import_checkpoint import build_parser
from ssc_core.cli.import_checkpoint import main as import_main
from ssc_core.config import load_config, resolve_config_path
from ssc_core.convert.cleaners import cleaners_keymap, cleaners_to_official, convert_cleaners
from ssc_core.data.nyu import NYU
from ssc_core.inference.predictor import Predictor
from ssc_core.models import build_model
from ssc_core.models.blocks.segformer_head import SegFormerHead
from ssc_core.training.checkpoint import load_checkpoint

# Keys of the release (fereenwong/CleanerS: VoxelSSC = mit_b2 encoder, SegFormerHead(256, 12), TSDFNet(256),
# Unet3d(12, 256)) and their shapes, worked out from the published module definitions.
OFFICIAL_CLEANERS_KEYS = {
    "encoder.patch_embed1.proj.weight": (64, 3, 7, 7),
    "encoder.patch_embed4.norm.bias": (512,),
    "encoder.block1.2.attn.sr.weight": (64, 64, 8, 8),
    "encoder.block2.3.mlp.fc1.weight": (512, 128),  # mlp_ratio 4 (timm's pvt_v2_b2 default is 8)
    "encoder.block3.5.attn.kv.weight": (640, 320),
    "encoder.block3.5.mlp.dwconv.dwconv.weight": (1280, 1, 3, 3),
    "encoder.block4.2.attn.q.weight": (512, 512),
    "encoder.norm4.weight": (512,),
    "head.linear_c1.proj.weight": (256, 64),
    "head.linear_c4.proj.weight": (256, 512),
    "head.linear_fuse.0.weight": (256, 1024, 1, 1),
    "head.linear_fuse.1.running_var": (256,),
    "head.linear_pred.weight": (12, 256, 1, 1),
    "TSDFNet.oper1.0.weight": (3, 1, 3, 3, 3),
    "TSDFNet.oper1.6.weight": (256, 64, 3, 3, 3),
    "TSDFNet.completion_layer1.0.conv2.weight": (64, 64, 1, 1, 3),
    "TSDFNet.completion_layer1.0.downsample.1.weight": (256, 256, 1, 1, 1),
    "TSDFNet.completion_layer1.0.downsample2.1.weight": (64, 64, 1, 1, 1),
    "TSDFNet.completion_layer2.0.conv5.weight": (512, 64, 1, 1, 1),
    "TSDFNet.completion_layer2.3.downsample4.2.running_mean": (128,),
    "TSDFNet.enc_tsdf.0.0.weight": (512, 256, 3, 3, 3),
    "complete.semantic_layer2.0.downsample.1.weight": (512, 256, 1, 1, 1),
    "complete.semantic_layer2.2.conv4.weight": (128, 128, 3, 1, 1),
    "complete.classify_semantic.1.0.bias": (256,),
    "complete.classify_semantic.2.1.weight": (12, 256, 1, 1, 1),
}
OFFICIAL_KEY_COUNT = 1188  # len(VoxelSSC(...).state_dict()) of the official code with mit_b2
UNUSED_POOL = re.compile(r"(TSDFNet\.completion|complete\.semantic)_layer[12]\.[123]\.downsample[234]\.")
SMALL = {"data": {"grid": {"dims": [16, 8, 16], "voxel_size": 0.3}, "image_size": [120, 160], "augment": False},
         "model": {"feature": 16, "tsdf_stem": [4, 8]}}


def test_official_layout_has_the_release_keys_and_shapes():
    with torch.device("meta"):
        ours = build_model(load_config("cleaners_student")).state_dict()
    official = cleaners_to_official(ours)
    assert {k: tuple(official[k].shape) for k in OFFICIAL_CLEANERS_KEYS} == OFFICIAL_CLEANERS_KEYS
    assert len(official) == OFFICIAL_KEY_COUNT
    assert sum(bool(UNUSED_POOL.match(k)) for k in official) == 2 * 2 * 3 * 3 * 6  # nets, stages, blocks, pools
    assert "cleaners" in build_parser().format_help()


def _small_config_file(folder):
    path = folder / "cleaners_small.yaml"
    path.write_text(f"_base_: [{resolve_config_path('cleaners_teacher_tiny')}]\n"
                    f"data: {SMALL['data']}\nmodel: {SMALL['model']}\n")
    return path


def _official_file(path, state: dict[str, torch.Tensor]):
    """A file laid out like the release's save_checkpoint: {'model', 'optimizer', 'scheduler', 'epoch',
    'best_val'}."""
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": []}, "scheduler": {}, "epoch": 100,
                "best_val": np.float64(48.5)}, path)
    return path


@pytest.fixture(scope="module")
def small_release(tmp_path_factory):
    """(an official-layout file of a randomised small CleanerS, its model, the matching config file)."""
    folder = tmp_path_factory.mktemp("cleaners")
    config_file = _small_config_file(folder)
    model = _randomize(build_model(load_config(str(config_file)))).eval()
    return _official_file(folder / "CleanerS_ckpt.pth", cleaners_to_official(model.state_dict())), model, config_file


def _sample(cfg: dict, seed: int = 0) -> dict:
    """A random RGB-D sample for ``cfg``'s image size and grid (a third of the voxels seen by a pixel)."""
    gen = torch.Generator().manual_seed(seed)
    (h, w), dims = cfg["data"]["image_size"], cfg["data"]["grid"]["dims"]
    mapping2d = torch.full((h, w), -1, dtype=torch.long)
    voxels = int(np.prod(dims))
    mapping2d.view(-1)[torch.randperm(h * w, generator=gen)[: voxels // 3]] = torch.randperm(voxels, generator=gen)[
        : voxels // 3]
    return {"img": torch.randn(3, h, w, generator=gen), "mapping2d": mapping2d,
            "tsdf": torch.randn(1, *dims, generator=gen).clamp(-1, 1)}


def test_an_official_checkpoint_imports_to_identical_weights_and_predictions(small_release, tmp_path, capsys,
                                                                             one_thread):
    src, model, config_file = small_release
    out = tmp_path / "ours.pt"
    args = ["--method", "cleaners", "--config", str(config_file), "--input", str(src), "--output", str(out)]
    assert import_main(args) == 0
    dropped = {line.split()[1].rstrip(":") for line in capsys.readouterr().out.splitlines()
               if line.startswith("dropped")}
    official = torch.load(src, weights_only=False)["model"]
    assert dropped == {k for k in official if UNUSED_POOL.match(k)} and len(dropped) == 216
    ckpt = load_checkpoint(out)
    assert ckpt["grid"]["dims"] == [16, 8, 16] and ckpt["class_set"]["names"] == list(NYU.names)
    assert ckpt["imported_from"] == {"method": "cleaners", "file": "CleanerS_ckpt.pth"}
    assert ckpt["model"].keys() == model.state_dict().keys()
    assert all(torch.equal(ckpt["model"][k], v) for k, v in model.state_dict().items())
    cfg = load_config(str(config_file))
    sample = _sample(cfg)
    reference, imported = Predictor(model, cfg, class_set=NYU), Predictor.from_checkpoint(out)
    expected, got = reference.predict_sample(sample), imported.predict_sample(sample)
    assert np.array_equal(got.labels, expected.labels) and np.array_equal(got.confidence, expected.confidence)
    logits = reference.sample_logits(sample)
    assert torch.equal(imported.sample_logits(sample), logits)
    assert float(logits.flatten(1).std(dim=1).min()) > 0  # the logits vary over the grid: a real comparison

    before = out.read_bytes()
    assert import_main(args) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == before
    assert import_main([*args, "--overwrite"]) == 0


def test_a_student_file_saved_beside_its_teacher_imports_the_student(small_release):
    """The release's test loads with prefix 'student.': the student subtree is used, the teacher's dropped."""
    _, model, config_file = small_release
    cfg = load_config(str(config_file))
    student = cleaners_to_official(model.state_dict())
    teacher = cleaners_to_official(_randomize(build_model(cfg), seed=1).state_dict())
    state = {**{"student." + k: v for k, v in student.items()}, **{"teacher." + k: v for k, v in teacher.items()}}
    conversion = convert_cleaners(state, cfg)
    assert all(torch.equal(conversion.checkpoint["model"][k], v) for k, v in model.state_dict().items())
    assert {k for k in conversion.dropped if k.startswith("teacher.")} == {"teacher." + k for k in teacher}


def test_head_linear_layers_become_1x1_convs_per_level():
    """Officially each level goes through nn.Linear (E, C), the levels are concatenated coarsest first
    ([_c4, _c3, _c2, _c1]) and fused; the reference below computes that from the official tensors."""
    gen = torch.Generator().manual_seed(3)
    widths, e, k = (4, 6, 10, 12), 5, 3
    official = {}
    for level, c in enumerate(widths, start=1):
        official[f"head.linear_c{level}.proj.weight"] = torch.randn(e, c, generator=gen)
        official[f"head.linear_c{level}.proj.bias"] = torch.randn(e, generator=gen)
    official["head.linear_fuse.0.weight"] = torch.randn(e, 4 * e, 1, 1, generator=gen)
    for t, value in (("weight", torch.rand(e, generator=gen) + 0.5), ("bias", torch.randn(e, generator=gen)),
                     ("running_mean", torch.randn(e, generator=gen)),
                     ("running_var", torch.rand(e, generator=gen) + 0.5), ("num_batches_tracked", torch.tensor(0))):
        official[f"head.linear_fuse.1.{t}"] = value
    official["head.linear_pred.weight"] = torch.randn(k, e, 1, 1, generator=gen)
    official["head.linear_pred.bias"] = torch.randn(k, generator=gen)
    mapped = cleaners_keymap().to_ours(official)
    assert not mapped.unmatched
    head = SegFormerHead(widths, e, k).eval()
    head.load_state_dict({key.removeprefix("head."): v for key, v in mapped.state.items()})
    feats = [torch.randn(1, c, 8 // 2 ** i, 12 // 2 ** i, generator=gen) for i, c in enumerate(widths)]

    def official_head() -> tuple[torch.Tensor, torch.Tensor]:
        levels = []
        for level, f in enumerate(feats, start=1):
            x = F.linear(f.flatten(2).transpose(1, 2), official[f"head.linear_c{level}.proj.weight"],
                         official[f"head.linear_c{level}.proj.bias"])
            x = x.permute(0, 2, 1).reshape(1, e, *f.shape[2:])
            levels.append(F.interpolate(x, size=feats[0].shape[2:], mode="bilinear", align_corners=False))
        x = F.conv2d(torch.cat(levels[::-1], dim=1), official["head.linear_fuse.0.weight"])
        bn = {t: official[f"head.linear_fuse.1.{t}"] for t in ("weight", "bias", "running_mean", "running_var")}
        x = F.relu(F.batch_norm(x, bn["running_mean"], bn["running_var"], bn["weight"], bn["bias"]))
        return x, F.conv2d(x, official["head.linear_pred.weight"], official["head.linear_pred.bias"])

    with torch.no_grad():
        for got, expected in zip(head(feats), official_head()):
            torch.testing.assert_close(got, expected)


def test_mit_names_go_to_timm_pvt_v2_stages_and_ddr_shortcuts_to_pools():
    names = {"encoder.patch_embed1.norm.weight": "encoder.model.patch_embed.norm.weight",
             "encoder.patch_embed3.proj.weight": "encoder.model.stages.2.downsample.proj.weight",
             "encoder.block2.1.mlp.dwconv.dwconv.bias": "encoder.model.stages.1.blocks.1.mlp.dwconv.bias",
             "encoder.block4.0.attn.kv.weight": "encoder.model.stages.3.blocks.0.attn.kv.weight",
             "encoder.norm1.bias": "encoder.model.stages.0.norm.bias",
             "TSDFNet.completion_layer2.0.downsample3.1.weight": "tsdf_net.body.layer2.0.pool3.1.weight",
             "TSDFNet.enc_tsdf.0.0.weight": "tsdf_net.body.up1.0.weight",
             "complete.classify_semantic.2.1.bias": "classifier.1.bias"}
    mapped = cleaners_keymap().to_ours({k: torch.zeros(1) for k in names})
    assert not mapped.unmatched and not mapped.dropped
    assert sorted(mapped.state) == sorted(names.values())


def test_bad_files_and_configs_are_refused_naming_the_keys(small_release, tmp_path, capsys):
    src, _, config_file = small_release
    out = tmp_path / "ours.pt"
    base = ["--method", "cleaners", "--config", str(config_file), "--output", str(out)]
    state = torch.load(src, weights_only=False)["model"]
    pred = "head.linear_pred.weight"
    for change, expected in (
        (lambda s: s.update({"TSDFNet.extra.weight": torch.zeros(1)}), "TSDFNet.extra.weight"),
        (lambda s: s.pop("complete.semantic_layer1.2.bn3.running_var"), "complete.semantic_layer1.2.bn3.running_var"),
        (lambda s: s.update({"encoder.block1.9.attn.q.weight": torch.zeros(1)}), "encoder.block1.9.attn.q.weight"),
        (lambda s: s.update({pred: torch.zeros(20, *s[pred].shape[1:])}), "20 classes"),
    ):
        broken = dict(state)
        change(broken)
        path = _official_file(tmp_path / "broken.pth", broken)
        assert import_main([*base, "--input", str(path)]) == 2
        err = capsys.readouterr().err
        assert expected in err and err.startswith("error:"), err
    resnet = tmp_path / "resnet.yaml"
    resnet.write_text(f"_base_: [{config_file}]\nmodel: {{backbone: {{name: resnet50, out_indices: [1, 2, 3, 4], "
                      "timm_kwargs: null}}\n")
    assert import_main([*base[:3], str(resnet), *base[4:], "--input", str(src)]) == 2
    assert "no released checkpoint" in capsys.readouterr().err
    assert import_main([*base[:3], "sgn_t", *base[4:], "--input", str(src)]) == 2
    assert "needs a CleanerS config" in capsys.readouterr().err
    assert import_main([*base, "--input", str(src), "--depth-files", str(tmp_path)]) == 2
    assert "takes no --depth-files" in capsys.readouterr().err
    assert not out.exists()
