"""Image backbones from timm, wrapped with what the SSC methods need.

One module for every method's 2D trunk (SGN / VoxFormer / HASSC: ResNet layer3; HTCL / L2COcc: EfficientNet-B7
stages 2..6 plus the 2560-channel head map; CleanerS: a ResNet-50 or transformer encoder). timm builds the network
(``pretrained=False`` unless asked) and ``forward_intermediates`` returns the requested levels, running only as far
as the last one. On top of timm this adds:

- ``out_indices`` in timm's feature numbering (``feature_info``; for ResNets 0 = stem at stride 2, 1..4 =
  layer1..layer4 at strides 4..32) and ``with_head`` to append the model's head map (EfficientNet's
  ``conv_head + bn2 + act``) as a last level;
- ``frozen_stages`` (-1 none; k: everything up to and including feature level k, as mmdet's ``frozen_stages``
  counts: 1 = stem + layer1 of a ResNet), and the modules after the last level used (never run: frozen so DDP
  does not wait for their gradients);
- ``norm_eval``: every BatchNorm stays in eval mode with frozen affine (SGN's frozen BN);
- stride bookkeeping (``out_channels``, ``strides`` of the returned levels);
- ``prune``: delete the modules after the last level used (timm's ``prune_intermediate_layers``) for partial
  trunks whose original registers only those layers (HTCL's matching encoder: ResNet-18 stem + layer1);
- weights: ``pretrained_path`` loads a local file through a checked loader (torchvision- and timm-named ResNet
  files alike; ``state_dict``/``model`` wrappers, ``module.``/``backbone.`` prefixes and the classifier are
  handled; anything missing, unexpected or mis-shaped is named), and ``pretrained: true`` asks timm to download
  its own weights (needs the internet).

The whole timm model is kept (minus its classifier), so parameter counts match the official ones, which count e.g.
a ResNet's unused layer4.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssc_core.config import reject_unknown_keys
from ssc_core.errors import CheckpointMismatchError, ConfigError

BACKBONE_KEYS = {
    "name", "out_indices", "frozen_stages", "norm_eval", "with_head", "pretrained", "pretrained_path",
    "drop_path_rate", "grad_checkpointing", "timm_kwargs", "prune",
}
_WRAPPER_PREFIXES = ("module.", "backbone.", "img_backbone.", "model.")


class ImageBackbone(nn.Module):
    """A timm model as a multi-level feature extractor.

    forward((N, 3, H, W) normalised RGB) -> list of (N, out_channels[i], H / strides[i], W / strides[i]) in the
    order of ``out_indices``, then the head map when ``with_head``. The timm network is ``self.model``, so its
    parameters are named ``model.<timm name>`` (``model.layer3.0.conv1.weight`` for a ResNet)."""

    def __init__(self, name: str, out_indices: Sequence[int] = (3,), frozen_stages: int = -1,
                 norm_eval: bool = False, with_head: bool = False, pretrained: bool = False,
                 drop_path_rate: float | None = None, grad_checkpointing: bool = False,
                 timm_kwargs: dict[str, Any] | None = None, prune: bool = False) -> None:
        super().__init__()
        import timm

        kwargs = dict(timm_kwargs or {})
        if drop_path_rate is not None:
            kwargs["drop_path_rate"] = float(drop_path_rate)
        try:
            self.model = timm.create_model(name, pretrained=pretrained, num_classes=0, **kwargs)
        except RuntimeError as exc:
            if "Unknown model" in str(exc):
                raise ConfigError(f"backbone.name {name!r} is not a timm model ({exc})") from None
            raise
        except Exception as exc:  # noqa: BLE001 - hub errors come in many types (offline, HTTP, file system)
            if pretrained:
                raise ConfigError(f"backbone.pretrained: true downloads {name!r} weights from timm's hub, which "
                                  f"failed ({type(exc).__name__}: {exc}); this needs the internet. Offline, set "
                                  f"pretrained: false and pretrained_path: <local weights file>") from None
            raise
        if not hasattr(self.model, "forward_intermediates"):
            raise ConfigError(f"timm model {name!r} has no forward_intermediates; it cannot serve as a backbone")
        info = self.model.feature_info
        levels = list(out_indices)
        if not levels and not with_head:
            raise ConfigError("backbone.out_indices is empty and with_head is false: the backbone would return nothing")
        if any(i not in range(len(info)) for i in levels) or sorted(set(levels)) != levels:
            raise ConfigError(f"backbone.out_indices must be increasing timm feature indices in 0..{len(info) - 1} "
                              f"for {name} ({[(i, f['module'], f['reduction']) for i, f in enumerate(info)]}), "
                              f"got {levels}")
        if frozen_stages >= len(info):
            raise ConfigError(f"backbone.frozen_stages must be < {len(info)} for {name}, got {frozen_stages}")
        if prune:
            if with_head:
                raise ConfigError("backbone.prune removes everything after the last level, the head map too: it "
                                  "cannot go with with_head")
            self.model.prune_intermediate_layers(levels, prune_head=True)
        self.pruned = bool(prune)
        self.name, self.out_indices, self.with_head = name, tuple(levels), bool(with_head)
        self.frozen_stages, self.norm_eval = int(frozen_stages), bool(norm_eval)
        self.out_channels = [int(info[i]["num_chs"]) for i in levels]
        self.strides = [int(info[i]["reduction"]) for i in levels]
        if self.with_head:
            self.out_channels.append(int(self.model.num_features))
            self.strides.append(int(info[-1]["reduction"]))
        if grad_checkpointing:
            self.model.set_grad_checkpointing(True)
        self._freeze()

    def _modules_through(self, module_name: str) -> list[nn.Module]:
        """The modules of ``self.model`` up to and including ``module_name``'s subtree, in registration order."""
        names = [n for n, _ in self.model.named_modules()]
        if module_name not in names:
            raise ConfigError(f"timm feature module {module_name!r} not found in {self.name}")
        last = max(i for i, n in enumerate(names) if n == module_name or n.startswith(module_name + "."))
        return [m for _, m in list(self.model.named_modules())[1:last + 1]]

    def _freeze(self) -> None:
        info = self.model.feature_info
        frozen: list[nn.Module] = []
        if self.frozen_stages >= 0:
            frozen += self._modules_through(info[self.frozen_stages]["module"])
        if not self.with_head:
            used = set(map(id, self._modules_through(info[max(self.out_indices)]["module"])))
            frozen += [m for _, m in list(self.model.named_modules())[1:] if id(m) not in used]
        for module in frozen:
            for p in module.parameters(recurse=False):
                p.requires_grad_(False)
        if self.norm_eval:
            for m in self._batch_norms():
                for p in m.parameters():
                    p.requires_grad_(False)

    def _batch_norms(self) -> list[nn.Module]:
        return [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def train(self, mode: bool = True) -> ImageBackbone:
        """Switch mode; with ``norm_eval`` every BatchNorm stays in eval mode (running statistics fixed)."""
        super().train(mode)
        if mode and self.norm_eval:
            for m in self._batch_norms():
                m.eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.with_head:
            head, levels = self.model.forward_intermediates(x, indices=list(self.out_indices))
            return [*levels, head]
        return list(self.model.forward_intermediates(x, indices=list(self.out_indices), intermediates_only=True,
                                                     stop_early=True))

    def load_pretrained(self, path: str | Path) -> None:
        """Load local weights for the timm model (the classifier is ignored).

        Accepts a bare state dict or one under 'state_dict'/'model'; strips ``module.``/``backbone.``/
        ``img_backbone.``/``model.`` prefixes; converts a file in the model's original naming (``mit_b2.pth`` for
        ``pvt_v2_b2``) with timm's converter; raises CheckpointMismatchError naming missing, unexpected or
        mis-shaped keys, ConfigError when the file does not exist."""
        state = self._from_original_names(
            {_strip_prefixes(k): v for k, v in read_weights_file(path, "backbone.pretrained_path").items()})
        classifier = self._classifier_keys()
        state = {k: v for k, v in state.items() if k.split(".")[0] not in classifier}
        own = self.model.state_dict()
        if self.pruned:  # the file holds the whole network; keep what the pruned trunk still has
            kept = {k.split(".")[0] for k in own}
            state = {k: v for k, v in state.items() if k.split(".")[0] in kept}
        missing = sorted(set(own) - set(state) - {k for k in own if k.endswith("num_batches_tracked")})
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
        if missing or unexpected or wrong:
            raise CheckpointMismatchError(
                f"{path} does not fit timm {self.name}: missing {missing[:5]} ({len(missing)}), "
                f"unexpected {unexpected[:5]} ({len(unexpected)}), shape mismatch {wrong[:5]} ({len(wrong)})"
            )
        self.model.load_state_dict(state, strict=False)

    def _from_original_names(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A file whose names share nothing with the timm model's goes through timm's own converter for the model's
        original checkpoints (``checkpoint_filter_fn`` of its module), e.g. SegFormer's ``mit_b2.pth`` for
        ``pvt_v2_b2`` (MiT keeps PVT's names: ``patch_embed1``, ``block1.0``, ``norm1``, ``dwconv.dwconv``)."""
        if set(state) & set(self.model.state_dict()):
            return state
        convert = getattr(sys.modules.get(type(self.model).__module__), "checkpoint_filter_fn", None)
        return state if convert is None else dict(convert(state, self.model))

    def _classifier_keys(self) -> set[str]:
        """Top-level names of the classifier a full weights file holds and ``num_classes=0`` removed."""
        names = {"fc", "classifier", "head", "last_linear"}
        return {n for n in names if not any(k.split(".")[0] == n for k in self.model.state_dict())}


def read_weights_file(path: str | Path, option: str) -> dict[str, torch.Tensor]:
    """The state dict of a local weights file: a bare dict of tensors or one under 'state_dict' / 'model', read with
    ``weights_only=True``. ConfigError naming ``option`` when the file does not exist, CheckpointMismatchError when
    it cannot be read or holds something else."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{option} {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad weights file for the user
        raise CheckpointMismatchError(f"{path}: cannot read weights: {exc}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointMismatchError(f"{path}: not a state dict of tensors")
    return state


def _strip_prefixes(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key


def build_image_backbone(cfg: dict) -> ImageBackbone:
    """An ImageBackbone from a ``backbone:`` mapping (keys: docs/models.md, "Image backbones").

    name (timm model, required), out_indices (timm feature indices), frozen_stages (-1), norm_eval (false),
    with_head (false), pretrained (false: true downloads timm's weights and needs the internet), pretrained_path
    (a local weights file, loaded after building), drop_path_rate, grad_checkpointing, timm_kwargs (passed to
    ``timm.create_model``), prune (false: delete the layers after the last level used)."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"backbone must be a mapping, got {type(cfg).__name__}")
    if "depth" in cfg or "source" in cfg:
        raise ConfigError("backbone.depth/source are gone: backbones come from timm; name the model instead, e.g. "
                          "backbone: {name: resnet50, out_indices: [3]} (timm feature indices: 3 = layer3)")
    reject_unknown_keys(cfg, BACKBONE_KEYS, "backbone")
    if not cfg.get("name"):
        raise ConfigError("backbone.name is required (a timm model name, e.g. resnet50 or tf_efficientnet_b7)")
    net = ImageBackbone(
        str(cfg["name"]), out_indices=tuple(int(i) for i in cfg.get("out_indices", (3,))),
        frozen_stages=int(cfg.get("frozen_stages", -1)), norm_eval=bool(cfg.get("norm_eval", False)),
        with_head=bool(cfg.get("with_head", False)), pretrained=bool(cfg.get("pretrained", False)),
        drop_path_rate=cfg.get("drop_path_rate"), grad_checkpointing=bool(cfg.get("grad_checkpointing", False)),
        timm_kwargs=cfg.get("timm_kwargs"), prune=bool(cfg.get("prune", False)),
    )
    if cfg.get("pretrained_path"):
        net.load_pretrained(cfg["pretrained_path"])
    return net
