"""ResNet-18/50 image backbone in plain PyTorch with torchvision's parameter names.

The names (conv1, bn1, layer1..layer4, downsample.0/1) match torchvision's ``resnet18``/``resnet50`` state
dicts, so a local torchvision or timm weights file loads with ``load_pretrained`` (the classifier ``fc.*`` is
dropped). As in SGN (mmdet ResNet, ``style='pytorch'``): stride on the 3x3 conv, ``frozen_stages`` freezes the
stem and the first stages, every BatchNorm is frozen (affine not trained, running stats not updated).
All four stages are built even when fewer are returned, so parameter counts match the official ones.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ssc_core.errors import CheckpointMismatchError, ConfigError

RESNET_SPECS: dict[int, tuple[str, list[int]]] = {
    18: ("basic", [2, 2, 2, 2]),
    34: ("basic", [3, 4, 6, 3]),
    50: ("bottleneck", [3, 4, 6, 3]),
    101: ("bottleneck", [3, 4, 23, 3]),
}


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual (ResNet-18/34). (N, C_in, H, W) -> (N, planes, H/stride, W/stride)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, torchvision style) -> 1x1 with a residual (ResNet-50+).
    (N, C_in, H, W) -> (N, 4*planes, H/stride, W/stride)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    """ResNet trunk without the classifier.

    Takes (N, 3, H, W) normalised RGB; returns the list of feature maps of the stages in ``out_indices``
    (0 = layer1 at stride 4 ... 3 = layer4 at stride 32). ``frozen_stages``: -1 none, 0 stem, k stem +
    layer1..k; stages after max(out_indices) are frozen too (never run). ``norm_eval``: keep BatchNorm in eval
    mode with frozen affine (SGN's frozen BN)."""

    def __init__(self, depth: int = 50, out_indices: tuple[int, ...] = (2,), frozen_stages: int = 1,
                 norm_eval: bool = True) -> None:
        super().__init__()
        if depth not in RESNET_SPECS:
            raise ConfigError(f"backbone.depth must be one of {sorted(RESNET_SPECS)}, got {depth}")
        if not out_indices or any(i not in range(4) for i in out_indices):
            raise ConfigError(f"backbone.out_indices must be a non-empty subset of 0..3, got {out_indices}")
        kind, layers = RESNET_SPECS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.depth, self.out_indices = depth, tuple(out_indices)
        self.frozen_stages, self.norm_eval = frozen_stages, norm_eval
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
                    nn.BatchNorm2d(planes * block.expansion),
                )
            stage = [block(inplanes, planes, stride, downsample)]
            inplanes = planes * block.expansion
            stage += [block(inplanes, planes) for _ in range(1, blocks)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.out_channels = [c * block.expansion for c in (64, 128, 256, 512)]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self._freeze()

    def _freeze(self) -> None:
        frozen: list[nn.Module] = []
        if self.frozen_stages >= 0:
            frozen += [self.conv1, self.bn1]
        frozen += [getattr(self, f"layer{i}") for i in range(1, self.frozen_stages + 1)]
        # Stages after the last returned one are built (weights load, counts match) but never run: freeze them
        # so DDP does not wait for their gradients.
        frozen += [getattr(self, f"layer{i}") for i in range(max(self.out_indices) + 2, 5)]
        for module in frozen:
            for p in module.parameters():
                p.requires_grad_(False)
        if self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    for p in m.parameters():
                        p.requires_grad_(False)

    def train(self, mode: bool = True) -> ResNet:
        """Switch mode; frozen BatchNorm layers stay in eval mode (running stats fixed)."""
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i in range(max(self.out_indices) + 1):
            x = getattr(self, f"layer{i + 1}")(x)
            if i in self.out_indices:
                outs.append(x)
        return outs

    def load_pretrained(self, path: str | Path) -> None:
        """Load a torchvision/timm ResNet state dict from a local file (``fc.*`` ignored).

        Accepts a bare state dict or one under 'state_dict'/'model'; raises CheckpointMismatchError naming
        missing/unexpected keys or shape mismatches."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"backbone.pretrained_path {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad weights file for the user
            raise CheckpointMismatchError(f"{path}: cannot read weights: {exc}") from None
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
        state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()
                 if not k.removeprefix("module.").startswith("fc.")}
        own = self.state_dict()
        missing = sorted(set(own) - set(state) - {k for k in own if k.endswith("num_batches_tracked")})
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
        if missing or unexpected or wrong:
            raise CheckpointMismatchError(
                f"{path} does not fit ResNet-{self.depth}: missing {missing[:5]} ({len(missing)}), "
                f"unexpected {unexpected[:5]} ({len(unexpected)}), shape mismatch {wrong[:5]} ({len(wrong)})"
            )
        self.load_state_dict(state, strict=False)


def build_resnet(cfg: dict) -> nn.Module:
    """ResNet from a ``model.backbone`` mapping: depth (18|34|50|101), out_indices, frozen_stages, norm_eval,
    pretrained_path (local torchvision/timm weights, optional), source ('torch' default | 'timm').

    With source 'timm', timm is imported lazily and ``timm.create_model('resnet<depth>')`` is used (its
    parameter names equal torchvision's); it needs a working torchvision, which this project does not."""
    source = cfg.get("source", "torch")
    depth = int(cfg.get("depth", 50))
    kwargs = dict(out_indices=tuple(cfg.get("out_indices", (2,))), frozen_stages=int(cfg.get("frozen_stages", 1)),
                  norm_eval=bool(cfg.get("norm_eval", True)))
    if source == "timm":
        return _TimmResNet(depth, cfg.get("pretrained_path"), **kwargs)
    if source != "torch":
        raise ConfigError(f"backbone.source must be 'torch' or 'timm', got {source!r}")
    net = ResNet(depth, **kwargs)
    if cfg.get("pretrained_path"):
        net.load_pretrained(cfg["pretrained_path"])
    return net


class _TimmResNet(ResNet):
    """The same trunk initialised from ``timm.create_model('resnet<depth>')`` (lazy import; timm needs a
    working torchvision). A ``pretrained_path`` then loads through ``load_pretrained``, which checks every key."""

    def __init__(self, depth: int, pretrained_path: str | None, **kwargs: object) -> None:
        super().__init__(depth, **kwargs)
        try:
            import timm
        except Exception as exc:  # noqa: BLE001 - timm fails on import without a working torchvision
            raise ConfigError(f"backbone.source 'timm' needs an importable timm ({exc}); use source: torch") from None
        model = timm.create_model(f"resnet{depth}", pretrained=False, num_classes=0)
        self.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("fc.")})
        if pretrained_path:
            self.load_pretrained(pretrained_path)
