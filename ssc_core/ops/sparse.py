"""Submanifold sparse 3D convolution: spconv when it is usable, else a pure-torch rulebook that trains.

A ``SparseVoxels`` holds active sites (coords (N, 4) int64 = batch, x, y, z) and their features (N, C).
``SubMConv3d`` keeps its weight in spconv's layout (C_out, k, k, k, C_in) in both backends, so a checkpoint
trained with one backend loads into the other. The kernel axes follow the coords' (x, y, z) order.

Backends: ``torch`` (gather-GEMM-scatter over a neighbour table; a custom autograd function recomputes gathers
in backward instead of storing 27 copies; above ``DENSE_ABOVE`` occupancy a dense Conv3d on the zero-filled
grid, read back at the active sites, which is exact and faster there), ``spconv`` (spconv 2.x; on CPU its
backward needs the stream patch from dependencies.md, applied by ``enable_spconv``), ``auto`` (spconv on
CUDA when importable, torch otherwise).
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ssc_core.errors import ConfigError
from ssc_core.ops.scatter import linearize_coords

BACKENDS = ("auto", "torch", "spconv")
# The torch backend runs a dense Conv3d on the zero-filled grid when more than this fraction of the grid is
# active. Measured (CPU time, 1 thread, 128x128x16, 64 channels): rulebook 0.08 s vs dense 0.36 s at 19 %
# occupancy, 2.7 s vs 0.44 s at 100 %; the rulebook's cost grows with occupancy squared, dense stays flat.
DENSE_ABOVE = 0.35
_SPCONV_STATE: dict[str, object] = {}


def enable_spconv() -> object | None:
    """Import spconv.pytorch (once) and make its CPU backward work; returns the module or None if unavailable.

    spconv 2.3's ops call ``torch.cuda.current_stream()`` unconditionally; on a CPU-only torch that raises in
    backward, so ``get_current_stream`` is replaced by one that returns 0 when CUDA is unavailable."""
    if "module" in _SPCONV_STATE:
        return _SPCONV_STATE["module"]
    try:
        import spconv.pytorch as spconv_pt
        import spconv.pytorch.ops as spconv_ops
    except Exception:  # noqa: BLE001 - any import failure (missing wheel, ABI mismatch) means "not usable"
        _SPCONV_STATE["module"] = None
        return None
    original = spconv_ops.get_current_stream

    def _stream() -> int:
        return original() if torch.cuda.is_available() else 0

    spconv_ops.get_current_stream = _stream
    _SPCONV_STATE["module"] = spconv_pt
    return spconv_pt


def spconv_works(device: torch.device) -> bool:
    """Whether spconv's SubMConv3d agrees with the torch backend on ``device`` (checked once per device type).

    Runs both on 200-odd random sites of an 8x8x6 grid, batch 2, 4 -> 5 channels, and compares outputs and the
    gradients of features and weights. False when spconv is missing, raises, or disagrees (spconv 2.3.8's CPU
    path disagrees on this project's machines), with a warning saying why."""
    key = ("works", device.type)
    if key in _SPCONV_STATE:
        return bool(_SPCONV_STATE[key])
    ok, reason = False, "spconv cannot be imported"
    if enable_spconv() is not None:
        try:
            gen = torch.Generator().manual_seed(0)
            shape = (8, 8, 6)
            coords = torch.nonzero(torch.rand(2, *shape, generator=gen) < 0.3).to(device)
            feats = torch.randn(len(coords), 4, generator=gen).to(device)
            weight = torch.randn(5, 3, 3, 3, 4, generator=gen).to(device)
            results = []
            for backend in ("torch", "spconv"):
                conv = SubMConv3d(4, 5, 3, bias=False, backend=backend).to(device)
                with torch.no_grad():
                    conv.weight.copy_(weight)
                f = feats.clone().requires_grad_(True)
                voxels = SparseVoxels(f, coords, shape, 2)
                out = conv._forward_spconv(voxels) if backend == "spconv" else conv._forward_torch(voxels)
                out.pow(2).sum().backward()
                results.append((out.detach(), f.grad, conv.weight.grad))
            worst = max(float((a - b).abs().max() / (b.abs().max() + 1e-6)) for a, b in zip(*results))
            ok, reason = worst < 1e-3, f"relative difference {worst:.3g} from the torch backend"
        except Exception as exc:  # noqa: BLE001 - any failure means "does not work on this device"
            reason = f"{type(exc).__name__}: {exc}"
    if not ok:
        warnings.warn(f"spconv is not used on {device.type}: {reason}; using the torch sparse conv", stacklevel=2)
    _SPCONV_STATE[key] = ok
    return ok


def resolve_backend(backend: str, device: torch.device) -> str:
    """The concrete backend ('torch' or 'spconv') for ``backend`` on ``device``: 'auto' picks spconv on CUDA when
    it passes ``spconv_works``; an explicit 'spconv' that fails the check raises ConfigError."""
    if backend not in BACKENDS:
        raise ConfigError(f"sparse backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "spconv" if device.type == "cuda" and spconv_works(device) else "torch"
    if backend == "spconv" and not spconv_works(device):
        raise ConfigError(f"model.sparse_backend 'spconv' requested but spconv fails its self-check on "
                          f"{device.type} (see the warning); use 'torch' or 'auto'")
    return backend


@dataclass
class SparseVoxels:
    """Active voxels of a batch of sparse grids.

    features: (N, C) float; coords: (N, 4) int64 (batch, x, y, z); spatial_shape: grid dims (X, Y, Z);
    batch_size: B. ``cache`` holds neighbour tables shared by every conv on the same sites."""

    features: torch.Tensor
    coords: torch.Tensor
    spatial_shape: tuple[int, int, int]
    batch_size: int
    cache: dict = field(default_factory=dict)

    def replace_features(self, features: torch.Tensor) -> SparseVoxels:
        """Same sites (and cached neighbour tables), new (N, C') features."""
        return SparseVoxels(features, self.coords, self.spatial_shape, self.batch_size, self.cache)

    def dense(self) -> torch.Tensor:
        """Dense (B, C, X, Y, Z) tensor, zeros at inactive sites."""
        b, c = self.batch_size, self.features.shape[1]
        x_dim, y_dim, z_dim = self.spatial_shape
        out = self.features.new_zeros((b * x_dim * y_dim * z_dim, c))
        out = out.index_put((linearize_coords(self.coords, self.spatial_shape),), self.features)
        return out.view(b, x_dim, y_dim, z_dim, c).permute(0, 4, 1, 2, 3)


def kernel_offsets(kernel_size: int) -> torch.Tensor:
    """(k^3, 3) int64 offsets (dx, dy, dz) in the weight's (kx, ky, kz) C order, centred on 0."""
    r = kernel_size // 2
    return torch.tensor(list(itertools.product(range(-r, r + 1), repeat=3)), dtype=torch.int64)


MAX_LOOKUP_VOXELS = 1 << 27


def build_rulebook(voxels: SparseVoxels, kernel_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Neighbour pairs of a submanifold conv: for each kernel offset k, (out_idx, in_idx) int64 with
    coords[in_idx] == coords[out_idx] + offset_k. Cached on ``voxels`` per kernel size.

    Neighbours are found through a dense (B*X*Y*Z,) site-index table when that fits in MAX_LOOKUP_VOXELS entries
    (SSC grids always do), else by binary search over the sorted linear keys."""
    key = ("rulebook", kernel_size)
    if key in voxels.cache:
        return voxels.cache[key]
    coords = voxels.coords
    shape = torch.tensor(voxels.spatial_shape, device=coords.device)
    keys = linearize_coords(coords, voxels.spatial_shape)
    volume = voxels.batch_size * int(torch.prod(shape))
    if volume <= MAX_LOOKUP_VOXELS:
        table = torch.full((volume,), -1, dtype=torch.int64, device=coords.device)
        table[keys] = torch.arange(len(keys), device=coords.device)

        def lookup(nbr_keys: torch.Tensor) -> torch.Tensor:
            return table[nbr_keys]
    else:
        sorted_keys, order = torch.sort(keys)

        def lookup(nbr_keys: torch.Tensor) -> torch.Tensor:
            pos = torch.searchsorted(sorted_keys, nbr_keys).clamp_(max=len(sorted_keys) - 1)
            return torch.where(sorted_keys[pos] == nbr_keys, order[pos], -1)

    rules = []
    for offset in kernel_offsets(kernel_size).to(coords.device):
        nbr = coords[:, 1:] + offset
        out_idx = torch.nonzero(torch.all((nbr >= 0) & (nbr < shape), dim=1)).squeeze(1)
        nbr_keys = linearize_coords(torch.cat([coords[out_idx, :1], nbr[out_idx]], dim=1), voxels.spatial_shape)
        in_idx = lookup(nbr_keys)
        found = in_idx >= 0
        rules.append((out_idx[found], in_idx[found]))
    voxels.cache[key] = rules
    return rules


class _RulebookConv(torch.autograd.Function):
    """out[o] = sum_k W_k^T f[i] over rulebook pairs (o, i) of offset k; weight (K, C_in, C_out)."""

    @staticmethod
    def forward(ctx, features, weight, rules):  # noqa: ANN001, ANN205 - autograd signature
        # Computed in the features' dtype with autocast off, so AMP (bf16/fp16) and fp32 both work.
        with torch.autocast(device_type=features.device.type, enabled=False):
            w = weight.to(features.dtype)
            out = features.new_zeros((features.shape[0], weight.shape[2]))
            for k, (out_idx, in_idx) in enumerate(rules):
                if out_idx.numel():
                    out.index_add_(0, out_idx, features[in_idx] @ w[k])
        ctx.save_for_backward(features, weight)
        ctx.rules = rules
        return out

    @staticmethod
    def backward(ctx, grad_out):  # noqa: ANN001, ANN205 - autograd signature
        features, weight = ctx.saved_tensors
        with torch.autocast(device_type=features.device.type, enabled=False):
            grad_out = grad_out.to(features.dtype)
            w = weight.to(features.dtype)
            grad_features = torch.zeros_like(features) if ctx.needs_input_grad[0] else None
            grad_weight = torch.zeros_like(w) if ctx.needs_input_grad[1] else None
            for k, (out_idx, in_idx) in enumerate(ctx.rules):
                if not out_idx.numel():
                    continue
                g = grad_out[out_idx]
                if grad_features is not None:
                    grad_features.index_add_(0, in_idx, g @ w[k].t())
                if grad_weight is not None:
                    grad_weight[k] = features[in_idx].t() @ g
        return grad_features, None if grad_weight is None else grad_weight.to(weight.dtype), None


class SubMConv3d(nn.Module):
    """Submanifold 3D convolution (outputs only at the input's active sites) with a cubic odd kernel.

    Takes a SparseVoxels with (N, in_channels) features, returns one with (N, out_channels) on the same sites.
    weight: (out_channels, k, k, k, in_channels) like spconv; bias optional."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True,
                 backend: str = "auto", dense_above: float = DENSE_ABOVE) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ConfigError(f"SubMConv3d kernel_size must be odd, got {kernel_size}")
        if backend not in BACKENDS:
            raise ConfigError(f"sparse backend must be one of {BACKENDS}, got {backend!r}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.backend, self.dense_above = backend, dense_above
        self.weight = nn.Parameter(torch.empty(out_channels, kernel_size, kernel_size, kernel_size, in_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        fan_in = in_channels * kernel_size**3
        nn.init.uniform_(self.weight, -1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"bias={self.bias is not None}, backend={self.backend}")

    def forward(self, x: SparseVoxels) -> SparseVoxels:
        if self.kernel_size == 1:  # a plain matmul in every backend (spconv 2.x reads the weight as (in, out))
            out = x.features @ self.weight.reshape(self.out_channels, self.in_channels).t().to(x.features.dtype)
        elif resolve_backend(self.backend, x.features.device) == "spconv":
            out = self._forward_spconv(x)
        else:
            out = self._forward_torch(x)
        if self.bias is not None:
            out = out + self.bias
        return x.replace_features(out)

    def _forward_torch(self, x: SparseVoxels) -> torch.Tensor:
        k3 = self.kernel_size**3
        volume = x.batch_size * x.spatial_shape[0] * x.spatial_shape[1] * x.spatial_shape[2]
        if len(x.features) > self.dense_above * volume:
            # Exact: inactive inputs are zero in the dense grid and only active outputs are read back.
            dense = F.conv3d(x.dense(), self.weight.permute(0, 4, 1, 2, 3).to(x.features.dtype),
                             padding=self.kernel_size // 2)
            c = x.coords
            return dense.permute(0, 2, 3, 4, 1)[c[:, 0], c[:, 1], c[:, 2], c[:, 3]]
        weight = self.weight.reshape(self.out_channels, k3, self.in_channels).permute(1, 2, 0)
        return _RulebookConv.apply(x.features, weight, build_rulebook(x, self.kernel_size))

    def _forward_spconv(self, x: SparseVoxels) -> torch.Tensor:
        spconv_pt = enable_spconv()
        key = f"subm{self.kernel_size}"
        conv = x.cache.get(("spconv_module", self.in_channels, self.out_channels, self.kernel_size))
        if conv is None:
            conv = spconv_pt.SubMConv3d(self.in_channels, self.out_channels, self.kernel_size,
                                        padding=self.kernel_size // 2, bias=False, indice_key=key)
            x.cache[("spconv_module", self.in_channels, self.out_channels, self.kernel_size)] = conv
        del conv.weight
        conv.weight = self.weight.to(x.features.dtype)  # a plain attribute: gradients flow to self.weight
        tensor = spconv_pt.SparseConvTensor(x.features, x.coords.int(), list(x.spatial_shape), x.batch_size,
                                            indice_dict=x.cache.setdefault("spconv_indices", {}))
        out = conv(tensor)
        x.cache["spconv_indices"].update(out.indice_dict)
        return out.features
