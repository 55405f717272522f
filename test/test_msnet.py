"""MobileStereoNet (MSNet2D / MSNet3D): the network, its preprocessing, and the import of official weight files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssc_core.cli.import_checkpoint import main as import_main
from ssc_core.convert.msnet import msnet_to_official
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.models.stereo.msnet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    InvertedResidual,
    build_msnet,
    groupwise_correlation_volume,
    load_stereo_model,
    normalize_image,
    padded_size,
    predict_disparity,
    soft_argmin_disparity,
)

# Official keys (cogsys-tuebingen/mobilestereonet models/*.py, as nn.DataParallel saves them) and their shapes,
# written out from the published layer definitions.
OFFICIAL_3D_KEYS = {
    "feature_extraction.firstconv.0.conv.0.weight": (9, 3, 1, 1),
    "feature_extraction.firstconv.2.conv.6.weight": (32, 96, 1, 1),
    "feature_extraction.layer2.0.downsample.0.weight": (64, 32, 1, 1),
    "feature_extraction.layer3.0.conv1.0.weight": (64, 1, 3, 3),
    "feature_extraction.layer4.2.conv2.3.weight": (128, 128, 1, 1),
    "dres0.0.conv.0.weight": (120, 40, 1, 1, 1),
    "dres0.0.conv.3.weight": (120, 1, 3, 3, 3),
    "dres1.1.conv.7.running_var": (32,),
    "encoder_decoder1.redir2.conv.0.weight": (128, 64, 1, 1, 1),
    "encoder_decoder3.conv5.0.weight": (128, 64, 3, 3, 3),
    "encoder_decoder2.conv6.1.weight": (32,),
    "classif3.0.0.weight": (32, 32, 3, 3, 3),
    "classif3.2.weight": (1, 32, 3, 3, 3),
    "classif0.0.1.running_mean": (32,),
}
OFFICIAL_2D_KEYS = {
    "feature_extraction.firstconv.4.conv.0.weight": (96, 32, 1, 1),
    "preconv11.0.0.weight": (256, 320, 1, 1),
    "preconv11.6.bias": (32,),
    "conv3d.0.weight": (16, 1, 8, 3, 3),
    "conv3d.6.weight": (16, 32, 2, 3, 3),
    "volume11.0.1.weight": (1,),
    "dres0.2.conv.3.weight": (144, 1, 3, 3),
    "dres1.2.conv.6.weight": (48, 144, 1, 1),
    "encoder_decoder1.conv5.0.weight": (192, 96, 3, 3),
    "classif3.2.weight": (48, 48, 3, 3),
    "classif2.0.0.weight": (48, 48, 3, 3),
}


def _randomize(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights and BN statistics, so that any mix-up of tensors changes the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if tensor.dtype.is_floating_point:
                values = torch.rand(tensor.shape, generator=gen) * 0.5 + 0.75 if "running_var" in name else \
                    torch.randn(tensor.shape, generator=gen) * 0.2
                tensor.copy_(values)
    return net.eval()


def _pair(h: int = 32, w: int = 64, shift: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    left = rng.integers(0, 256, size=(h, w + shift, 3), dtype=np.uint8)
    return np.ascontiguousarray(left[:, shift:]), np.ascontiguousarray(left[:, :-shift])


def _official_file(path, variant: str, seed: int = 0) -> tuple[torch.nn.Module, object]:
    """A file laid out like the official checkpoints: {'epoch', 'model': DataParallel state, 'optimizer'}."""
    net = _randomize(build_msnet(variant), seed)
    state = {f"module.{k}": v for k, v in msnet_to_official(net.state_dict()).items()}
    torch.save({"epoch": 399, "model": state, "optimizer": {"state": {}, "param_groups": []}}, path)
    return net, path


def test_official_key_layout_is_the_published_one():
    for variant, expected in (("msnet3d", OFFICIAL_3D_KEYS), ("msnet2d", OFFICIAL_2D_KEYS)):
        official = msnet_to_official(build_msnet(variant).state_dict())
        shapes = {k: tuple(official[k].shape) for k in expected if k in official}
        assert shapes == expected, variant
        assert {k.split(".")[0] for k in official if k.startswith("classif")} == {f"classif{i}" for i in range(4)}


@pytest.mark.parametrize("variant", ["msnet3d", "msnet2d"])
def test_imported_official_weights_give_the_same_disparity(variant, tmp_path, capsys):
    net, src = _official_file(tmp_path / "official.ckpt", variant)
    out = tmp_path / f"{variant}.pt"
    assert import_main(["--method", variant, "--input", str(src), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    official = msnet_to_official(net.state_dict())
    auxiliary = [k for k in official if k.startswith(("classif0.", "classif1.", "classif2."))]
    assert sorted(line.split()[1].rstrip(":") for line in printed.splitlines() if line.startswith("dropped")) == \
        sorted(auxiliary)
    left, right = _pair()
    imported = load_stereo_model(out)
    expected = predict_disparity(net, left, right)
    np.testing.assert_array_equal(predict_disparity(imported, left, right), expected)
    assert expected.shape == left.shape[:2] and expected.dtype == np.float32
    assert 0 <= expected.min() and expected.max() < 192


def test_importing_the_other_variant_or_a_raw_file_is_refused_with_the_way_out(tmp_path, capsys):
    _, src = _official_file(tmp_path / "official2d.ckpt", "msnet2d")
    assert import_main(["--method", "msnet3d", "--input", str(src), "--output", str(tmp_path / "x.pt")]) == 2
    assert "--method msnet2d" in capsys.readouterr().err
    with pytest.raises(DataFormatError, match="ssc-import-checkpoint --method msnet3d"):
        load_stereo_model(src)
    state = torch.load(src, weights_only=True)
    state["model"]["module.extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra.ckpt")
    assert import_main(["--method", "msnet2d", "--input", str(tmp_path / "extra.ckpt"), "--output",
                        str(tmp_path / "y.pt")]) == 2
    assert "extra.weight" in capsys.readouterr().err
    del state["model"]["module.extra.weight"], state["model"]["module.dres0.0.conv.0.weight"]
    torch.save(state, tmp_path / "missing.ckpt")
    assert import_main(["--method", "msnet2d", "--input", str(tmp_path / "missing.ckpt"), "--output",
                        str(tmp_path / "z.pt")]) == 2
    assert "cost_filter0.0.conv.0.weight" in capsys.readouterr().err
    assert not (tmp_path / "z.pt").exists()


def test_three_d_blocks_have_no_shortcut_like_the_released_ones_and_two_d_blocks_do():
    net3d, net2d = build_msnet("msnet3d"), build_msnet("msnet2d")
    blocks3d = [m for m in net3d.modules() if isinstance(m, InvertedResidual) and m.conv[0].weight.dim() == 5]
    assert blocks3d and not any(b.use_shortcut for b in blocks3d)
    square2d = [m for m in net2d.modules() if isinstance(m, InvertedResidual) and m.use_shortcut]
    assert len(square2d) > 10
    x = torch.randn(1, 8, 4, 4, 4)
    block = _randomize(InvertedResidual(3, 8, 8, 1, 2, shortcut=False))
    torch.testing.assert_close(block(x), block.conv(x))


def test_groupwise_correlation_volume_by_hand():
    left = torch.arange(12, dtype=torch.float32).view(1, 4, 1, 3)  # channel c, column x: 3c + x
    right = torch.ones(1, 4, 1, 3) * 2
    volume = groupwise_correlation_volume(left, right, levels=3, groups=2)
    assert volume.shape == (1, 2, 3, 1, 3)
    # group 0 = channels 0, 1; d = 1 at x = 2: mean(left[0:2, x=2] * right[0:2, x=1]) = mean([2, 5] * 2) = 7
    assert volume[0, 0, 1, 0, 2] == 7.0
    assert volume[0, 1, 2, 0, 2] == torch.tensor([8.0, 11.0]).mul(2).mean()
    assert torch.all(volume[0, :, 2, 0, :2] == 0) and torch.all(volume[0, :, 1, 0, :1] == 0)


def test_soft_argmin_recovers_a_sharp_cost_peak():
    costs = torch.full((1, 1, 8, 2, 3), -50.0)
    costs[0, 0, 5] = 50.0
    disparity = soft_argmin_disparity(costs, max_disparity=8, size_hw=(2, 3))
    torch.testing.assert_close(disparity, torch.full((1, 2, 3), 5.0))


def test_normalisation_and_padding_follow_the_original_preprocessing():
    rgb = np.random.default_rng(1).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    expected = (torch.from_numpy(rgb).permute(2, 0, 1).float() / 255 - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) \
        / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(normalize_image(rgb), expected, rtol=0, atol=0)
    assert padded_size(370, 1226) == (384, 1248) and padded_size(376, 1241) == (384, 1248)
    assert padded_size(376, 1408, (576, 1872)) == (576, 1872)
    with pytest.raises(ConfigError, match="pad_to"):
        padded_size(376, 1408, (384, 1248))
    with pytest.raises(DataFormatError, match="divisible by 16"):
        build_msnet("msnet3d")(torch.zeros(1, 3, 40, 64), torch.zeros(1, 3, 40, 64))


class _LeftChannelProbe(torch.nn.Module):
    """Returns channel 0 of the left input as the 'disparity': shows where the wrapper puts and crops the image."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: tuple[int, ...] = ()

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        self.seen = tuple(left.shape)
        return left[:, 0]


def test_predict_disparity_pads_at_the_top_and_right_and_crops_that_off():
    probe = _LeftChannelProbe()
    left, right = _pair(h=20, w=40)
    out = predict_disparity(probe, left, right)
    assert probe.seen == (1, 3, 32, 64)
    np.testing.assert_array_equal(out, normalize_image(left)[0].numpy())
    with pytest.raises(DataFormatError, match="equal"):
        predict_disparity(probe, left, right[:, :-1])
