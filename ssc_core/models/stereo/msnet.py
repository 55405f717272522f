"""MobileStereoNet (Shamsafar et al., WACV 2022): the MSNet2D and MSNet3D stereo matchers in plain PyTorch.

SGN, VoxFormer and L2COcc take their pseudo-LiDAR from MSNet3D's disparity (weights trained on SceneFlow,
DrivingStereo and KITTI 2015). Both variants share a MobileNet feature extractor (ImageNet-normalised RGB at
stride 4 -> 320 channels) and differ in the cost volume:

  MSNet3D   group-wise correlation volume (40 groups, max_disparity / 4 levels) -> 3D inverted-residual
            filtering and three 3D hourglasses -> (B, 1, D/4, H/4, W/4) matching costs
  MSNet2D   features reduced to 32 channels; for every disparity the left and right features are interlaced
            channel by channel and a strided 3D conv over that channel axis gives one cost plane; the D/4 planes
            are then filtered as channels by 2D inverted residuals and three 2D hourglasses -> (B, D/4, H/4, W/4)

Costs are upsampled trilinearly to (max_disparity, H, W), softmax over disparity, and the disparity is the
expectation (soft argmin). H and W must be multiples of 16 (``predict_disparity`` pads for you).

Only the inference head is built: the three auxiliary classifiers that the original trains with (its
``classif0..2``) are left out, and their weights are dropped on import. One upstream quirk is kept on purpose:
the original's 3D inverted residual compares its integer stride with a tuple, so it never adds its shortcut;
the released weights were trained that way, and so MSNet3D's 3D blocks here have no shortcut either.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssc_core.errors import ConfigError, DataFormatError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VARIANTS = ("msnet2d", "msnet3d")
SIZE_MULTIPLE = 16


def _conv(dims: int) -> type[nn.Module]:
    return nn.Conv2d if dims == 2 else nn.Conv3d


def _norm(dims: int) -> type[nn.Module]:
    return nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d


class InvertedResidual(nn.Module):
    """MobileNetV2 block in 2D or 3D: 1x1 expand (x ``expand_ratio``) + BN + ReLU6, 3x3 depthwise (``stride``,
    ``dilation``) + BN + ReLU6, 1x1 project + BN; plus the input when ``shortcut`` and the shapes allow it.
    (B, inp, *S) -> (B, oup, *S / stride)."""

    def __init__(self, dims: int, inp: int, oup: int, stride: int, expand_ratio: int, dilation: int = 1,
                 shortcut: bool = True) -> None:
        super().__init__()
        if expand_ratio <= 1:
            raise ConfigError(f"InvertedResidual needs expand_ratio > 1, got {expand_ratio}")
        conv, norm = _conv(dims), _norm(dims)
        hidden = int(round(inp * expand_ratio))
        self.use_shortcut = shortcut and stride == 1 and inp == oup
        self.conv = nn.Sequential(
            conv(inp, hidden, 1, bias=False), norm(hidden), nn.ReLU6(inplace=True),
            conv(hidden, hidden, 3, stride, dilation, dilation=dilation, groups=hidden, bias=False), norm(hidden),
            nn.ReLU6(inplace=True),
            conv(hidden, oup, 1, bias=False), norm(oup),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_shortcut else self.conv(x)


def _depthwise_separable(inp: int, oup: int, stride: int, dilation: int, final_relu: bool) -> nn.Sequential:
    layers = [nn.Conv2d(inp, inp, 3, stride, dilation, dilation=dilation, groups=inp, bias=False),
              nn.BatchNorm2d(inp), nn.ReLU6(inplace=True), nn.Conv2d(inp, oup, 1, bias=False), nn.BatchNorm2d(oup)]
    if final_relu:
        layers.append(nn.ReLU6(inplace=False))
    return nn.Sequential(*layers)


class SeparableResidual(nn.Module):
    """MobileNetV1 residual block: two depthwise-separable 3x3 convs (ReLU6 after the first only) plus the input,
    through a 1x1 conv + BN ``downsample`` when stride or width change. (B, inp, H, W) -> (B, oup, H/s, W/s)."""

    def __init__(self, inp: int, oup: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = _depthwise_separable(inp, oup, stride, dilation, final_relu=True)
        self.conv2 = _depthwise_separable(oup, oup, 1, dilation, final_relu=False)
        self.downsample = None
        if stride != 1 or inp != oup:
            self.downsample = nn.Sequential(nn.Conv2d(inp, oup, 1, stride, bias=False), nn.BatchNorm2d(oup))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.conv2(self.conv1(x)) + identity


class FeatureExtractor(nn.Module):
    """Shared MobileNet trunk: a stride-2 stem of three inverted residuals (ReLU after each when ``stem_relus``,
    as MSNet2D has it), then four stages of separable residuals (32 ch x3; 64 ch x16 at stride 2; 128 ch x3;
    128 ch x3 dilated 2). (B, 3, H, W) -> cat(stage 2, 3, 4) = (B, 320, H/4, W/4)."""

    def __init__(self, stem_relus: bool) -> None:
        super().__init__()
        stem: list[nn.Module] = []
        for inp, stride in ((3, 2), (32, 1), (32, 1)):
            stem.append(InvertedResidual(2, inp, 32, stride, expand_ratio=3))
            if stem_relus:
                stem.append(nn.ReLU(inplace=True))
        self.stem = nn.Sequential(*stem)
        width = 32
        for index, (planes, blocks, stride, dilation) in enumerate(((32, 3, 1, 1), (64, 16, 2, 1), (128, 3, 1, 1),
                                                                    (128, 3, 1, 2)), start=1):
            stage = [SeparableResidual(width, planes, stride, dilation)]
            stage += [SeparableResidual(planes, planes, 1, dilation) for _ in range(blocks - 1)]
            self.add_module(f"layer{index}", nn.Sequential(*stage))
            width = planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(self.stem(x))
        l2 = self.layer2(x)
        l3 = self.layer3(l2)
        return torch.cat([l2, l3, self.layer4(l3)], dim=1)


class Hourglass(nn.Module):
    """Encoder-decoder over a cost volume (2D: (B, C, H, W), 3D: (B, C, D, H, W)): two stride-2 inverted
    residuals (C -> 2C -> 4C), transposed convs back up with skip connections through ``redir`` blocks, ReLU
    after each sum. Sizes must be divisible by 4. ``shortcut`` is passed to the inverted residuals."""

    def __init__(self, dims: int, channels: int, shortcut: bool) -> None:
        super().__init__()
        c, block = channels, InvertedResidual
        self.conv1 = block(dims, c, 2 * c, 2, 2, shortcut=shortcut)
        self.conv2 = block(dims, 2 * c, 2 * c, 1, 2, shortcut=shortcut)
        self.conv3 = block(dims, 2 * c, 4 * c, 2, 2, shortcut=shortcut)
        self.conv4 = block(dims, 4 * c, 4 * c, 1, 2, shortcut=shortcut)
        up = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        norm = _norm(dims)
        self.conv5 = nn.Sequential(up(4 * c, 2 * c, 3, 2, 1, output_padding=1, bias=False), norm(2 * c))
        self.conv6 = nn.Sequential(up(2 * c, c, 3, 2, 1, output_padding=1, bias=False), norm(c))
        self.redir1 = block(dims, c, c, 1, 2, shortcut=shortcut)
        self.redir2 = block(dims, 2 * c, 2 * c, 1, 2, shortcut=shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv2 = self.conv2(self.conv1(x))
        conv4 = self.conv4(self.conv3(conv2))
        conv5 = torch.relu(self.conv5(conv4) + self.redir2(conv2))
        return torch.relu(self.conv6(conv5) + self.redir1(x))


def groupwise_correlation_volume(left: torch.Tensor, right: torch.Tensor, levels: int, groups: int) -> torch.Tensor:
    """(B, C, H, W) left/right features -> (B, groups, levels, H, W): at disparity d and column x >= d, the mean
    over each group of C/groups channels of left[x] * right[x - d]; 0 where x < d."""
    b, c, h, w = left.shape
    if c % groups:
        raise DataFormatError(f"{c} feature channels cannot form {groups} groups")
    volume = left.new_zeros((b, groups, levels, h, w))
    for d in range(levels):
        if d >= w:
            break
        product = left[..., d:] * right[..., : w - d]
        volume[:, :, d, :, d:] = product.view(b, groups, c // groups, h, w - d).mean(dim=2)
    return volume


def soft_argmin_disparity(costs: torch.Tensor, max_disparity: int, size_hw: tuple[int, int]) -> torch.Tensor:
    """(B, 1, D', h, w) matching scores -> (B, H, W) disparity in pixels: trilinear resize to (max_disparity, H, W)
    (align_corners False), softmax over disparity, expectation of the disparity index."""
    scores = F.interpolate(costs, (max_disparity, *size_hw), mode="trilinear", align_corners=False).squeeze(1)
    prob = torch.softmax(scores, dim=1)
    values = torch.arange(max_disparity, dtype=prob.dtype, device=prob.device).view(1, -1, 1, 1)
    return (prob * values).sum(dim=1)


def _check_pair(left: torch.Tensor, right: torch.Tensor) -> None:
    if left.shape != right.shape or left.dim() != 4 or left.shape[1] != 3:
        raise DataFormatError(f"stereo pair must be two equal (B, 3, H, W) tensors, got {tuple(left.shape)} and "
                              f"{tuple(right.shape)}")
    if left.shape[2] % SIZE_MULTIPLE or left.shape[3] % SIZE_MULTIPLE:
        raise DataFormatError(f"MobileStereoNet needs H and W divisible by {SIZE_MULTIPLE}, got "
                              f"{tuple(left.shape[2:])} (pad the pair, see predict_disparity)")


class _MobileStereoNet(nn.Module):
    """What both variants share: the disparity range and the cost aggregation after the volume (two inverted
    residual filters with a skip, three hourglasses, the classifier, soft argmin)."""

    variant = ""

    def __init__(self, max_disparity: int) -> None:
        super().__init__()
        if max_disparity < 4 or max_disparity % 4:
            raise ConfigError(f"max_disparity must be a positive multiple of 4, got {max_disparity}")
        self.max_disparity = int(max_disparity)

    def _disparity(self, volume: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
        cost = self.cost_filter0(volume)
        cost = self.cost_filter1(cost) + cost
        for hourglass in self.hourglasses:
            cost = hourglass(cost)
        scores = self.classifier(cost)
        scores = scores.unsqueeze(1) if scores.dim() == 4 else scores  # 2D: disparity levels are the channels
        return soft_argmin_disparity(scores, self.max_disparity, size_hw)


class MSNet3D(_MobileStereoNet):
    """3D MobileStereoNet. forward(left, right): (B, 3, H, W) ImageNet-normalised RGB each (H, W multiples of
    16) -> (B, H, W) float disparity of the left image in pixels, in [0, max_disparity)."""

    variant = "msnet3d"

    def __init__(self, max_disparity: int = 192) -> None:
        super().__init__(max_disparity)
        self.groups, width = 40, 32
        self.features = FeatureExtractor(stem_relus=False)
        block = InvertedResidual
        self.cost_filter0 = nn.Sequential(block(3, self.groups, width, 1, 3, shortcut=False),
                                          block(3, width, width, 1, 3, shortcut=False))
        self.cost_filter1 = nn.Sequential(block(3, width, width, 1, 3, shortcut=False),
                                          block(3, width, width, 1, 3, shortcut=False))
        self.hourglasses = nn.ModuleList(Hourglass(3, width, shortcut=False) for _ in range(3))
        self.classifier = nn.Sequential(
            nn.Sequential(nn.Conv3d(width, width, 3, 1, 1, bias=False), nn.BatchNorm3d(width)),
            nn.ReLU(inplace=True), nn.Conv3d(width, 1, 3, 1, 1, bias=False))
        _init_weights(self)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        _check_pair(left, right)
        volume = groupwise_correlation_volume(self.features(left), self.features(right), self.max_disparity // 4,
                                              self.groups)
        return self._disparity(volume, tuple(left.shape[2:]))


class MSNet2D(_MobileStereoNet):
    """2D MobileStereoNet. forward(left, right): (B, 3, H, W) ImageNet-normalised RGB each (H, W multiples of
    16) -> (B, H, W) float disparity of the left image in pixels, in [0, max_disparity)."""

    variant = "msnet2d"

    def __init__(self, max_disparity: int = 192) -> None:
        super().__init__(max_disparity)
        self.levels = c = self.max_disparity // 4
        self.features = FeatureExtractor(stem_relus=True)
        reduce: list[nn.Module] = []
        for inp, oup in ((320, 256), (256, 128), (128, 64)):
            reduce += [nn.Sequential(nn.Conv2d(inp, oup, 1, bias=False), nn.BatchNorm2d(oup)), nn.ReLU(inplace=True)]
        self.feature_reduce = nn.Sequential(*reduce, nn.Conv2d(64, 32, 1))
        # 64 interlaced channels (32 left, 32 right) -> depth 8 -> 2 -> 1 along the channel axis
        self.interlace_conv = nn.Sequential(
            nn.Conv3d(1, 16, (8, 3, 3), (8, 1, 1), (0, 1, 1)), nn.BatchNorm3d(16), nn.ReLU(),
            nn.Conv3d(16, 32, (4, 3, 3), (4, 1, 1), (0, 1, 1)), nn.BatchNorm3d(32), nn.ReLU(),
            nn.Conv3d(32, 16, (2, 3, 3), (2, 1, 1), (0, 1, 1)), nn.BatchNorm3d(16), nn.ReLU(),
        )
        self.volume_proj = nn.Sequential(nn.Sequential(nn.Conv2d(16, 1, 1, bias=False), nn.BatchNorm2d(1)),
                                         nn.ReLU(inplace=True))
        self.cost_filter0 = nn.Sequential(InvertedResidual(2, c, c, 1, 3), nn.ReLU(inplace=True),
                                          InvertedResidual(2, c, c, 1, 3), nn.ReLU(inplace=True))
        self.cost_filter1 = nn.Sequential(InvertedResidual(2, c, c, 1, 3), nn.ReLU(inplace=True),
                                          InvertedResidual(2, c, c, 1, 3))
        self.hourglasses = nn.ModuleList(Hourglass(2, c, shortcut=True) for _ in range(3))
        self.classifier = nn.Sequential(
            nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)),
            nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, 1, 1, bias=False))
        _init_weights(self)

    def interlaced_volume(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """(B, 32, h, w) reduced features -> (B, levels, h, w) costs: per disparity d, left[x] and right[x - d]
        interlaced channel by channel (l0, r0, l1, r1, ...), convolved along that axis; 0 where x < d."""
        b, _, h, w = left.shape
        volume = left.new_zeros((b, self.levels, h, w))
        for d in range(min(self.levels, w)):
            pair = torch.stack([left[..., d:], right[..., : w - d]], dim=2).flatten(1, 2)
            plane = self.interlace_conv(pair.unsqueeze(1)).squeeze(2)
            volume[:, d, :, d:] = self.volume_proj(plane)[:, 0]
        return volume

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        _check_pair(left, right)
        volume = self.interlaced_volume(self.feature_reduce(self.features(left)),
                                        self.feature_reduce(self.features(right)))
        return self._disparity(volume, tuple(left.shape[2:]))


def _init_weights(model: nn.Module) -> None:
    """The original's initialisation: convs N(0, sqrt(2 / (k * out))), norms weight 1 and bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Conv3d):
            m.weight.data.normal_(0, math.sqrt(2.0 / (math.prod(m.kernel_size) * m.out_channels)))
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm3d):
            m.weight.data.fill_(1)
            m.bias.data.zero_()


def build_msnet(variant: str, max_disparity: int = 192) -> nn.Module:
    """MSNet2D or MSNet3D by name ('msnet2d' | 'msnet3d'), randomly initialised."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown MobileStereoNet variant {variant!r}; known: {list(VARIANTS)}")
    return (MSNet2D if variant == "msnet2d" else MSNet3D)(max_disparity)


def normalize_image(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32: /255 then ImageNet mean/std, the same float32 operations as
    torchvision's ToTensor + Normalize that the original preprocessing used."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise DataFormatError(f"stereo image must be (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div(255)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)
    return x.sub(mean).div(std)


def padded_size(height: int, width: int, pad_to: tuple[int, int] | None = None) -> tuple[int, int]:
    """The network input size for an (height, width) image: ``pad_to`` (H, W) when given (the original pads
    SemanticKITTI to 384 x 1248 and KITTI-360 to 576 x 1872), else each side rounded up to a multiple of 32
    (which gives 384 x 1248 for every SemanticKITTI sequence)."""
    if pad_to is None:
        return -(-height // 32) * 32, -(-width // 32) * 32
    ph, pw = (int(v) for v in pad_to)
    if ph < height or pw < width or ph % SIZE_MULTIPLE or pw % SIZE_MULTIPLE:
        raise ConfigError(f"pad_to {[ph, pw]} must be multiples of {SIZE_MULTIPLE} no smaller than the image "
                          f"({height} x {width})")
    return ph, pw


@torch.no_grad()
def predict_disparity(net: nn.Module, left_rgb: np.ndarray, right_rgb: np.ndarray,
                      pad_to: tuple[int, int] | None = None) -> np.ndarray:
    """Disparity (H, W) float32 in pixels of the left image of a rectified pair ((H, W, 3) uint8 RGB each), as
    the original prediction script computes it: normalise, zero-pad at the top and on the right to
    ``padded_size``, run ``net`` (on its own device, in eval mode), crop the padding off."""
    left, right = np.asarray(left_rgb), np.asarray(right_rgb)
    if left.shape != right.shape:
        raise DataFormatError(f"stereo pair must be two equal images, got {left.shape} and {right.shape}")
    h, w = left.shape[:2]
    ph, pw = padded_size(h, w, pad_to)
    device = next(net.parameters()).device
    pair = torch.stack([normalize_image(left), normalize_image(right)])
    pair = F.pad(pair, (0, pw - w, ph - h, 0)).to(device)
    net.eval()
    disparity = net(pair[:1], pair[1:])[0]
    return np.ascontiguousarray(disparity[ph - h:, :w].float().cpu().numpy(), dtype=np.float32)


STEREO_CHECKPOINT_KIND = "stereo_depth"


def stereo_checkpoint(net: nn.Module) -> dict:
    """The checkpoint mapping of a MobileStereoNet (plain data + tensors, loads with weights_only=True):
    format, version, kind 'stereo_depth', config {variant, max_disparity}, model state (on the CPU)."""
    import ssc_core
    from ssc_core.training.checkpoint import CHECKPOINT_FORMAT

    return {"format": CHECKPOINT_FORMAT, "version": ssc_core.__version__, "kind": STEREO_CHECKPOINT_KIND,
            "config": {"variant": net.variant, "max_disparity": net.max_disparity},
            "model": {k: v.detach().cpu() for k, v in net.state_dict().items()}}


def load_stereo_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The MobileStereoNet stored by ``ssc-import-checkpoint --method msnet2d|msnet3d`` (see
    ``stereo_checkpoint``), on ``device`` in eval mode. DataFormatError naming the file when it is missing,
    unreadable or not such a checkpoint (an official .ckpt must be imported first)."""
    from ssc_core.training.checkpoint import load_failure_reason, load_model_state

    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: stereo weights file not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for unreadable files
        raise DataFormatError(f"{path}: cannot read stereo weights: {load_failure_reason(path, exc)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != STEREO_CHECKPOINT_KIND:
        hint = ("; an official MobileStereoNet .ckpt must be imported first: ssc-import-checkpoint --method msnet3d "
                f"--input {path.name} --output msnet3d.pt") if isinstance(ckpt, dict) and "model" in ckpt else ""
        raise DataFormatError(f"{path}: not a stereo depth checkpoint of this project{hint}")
    config = ckpt.get("config") or {}
    net = build_msnet(str(config.get("variant")), int(config.get("max_disparity", 192)))
    load_model_state(net, ckpt["model"], source=str(path))
    return net.to(device).eval()
