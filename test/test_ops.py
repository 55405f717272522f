"""Sparse-conv and scatter ops: the pure-torch SubMConv3d equals a dense Conv3d on the same sites, forward and
backward; scatter reductions and unique coords match plain-Python references."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from ssc_core.errors import ConfigError
from ssc_core.models.blocks.sparse_blocks import SGFE
from ssc_core.ops import (
    SparseVoxels,
    SubMConv3d,
    build_rulebook,
    delinearize_keys,
    linearize_coords,
    resolve_backend,
    scatter_max,
    scatter_mean,
    unique_coords,
)
from ssc_core.ops.sparse import _RulebookConv


def _random_sites(batch: int, shape: tuple[int, int, int], density: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.nonzero(torch.rand(batch, *shape, generator=gen) < density)


def _dense_reference(conv: SubMConv3d, feats: torch.Tensor, coords: torch.Tensor, shape, batch: int):
    """Dense Conv3d on the zero-filled grid with the same weights, read back at the active sites."""
    weight = conv.weight.detach().clone().permute(0, 4, 1, 2, 3).requires_grad_(True)
    dense = SparseVoxels(feats, coords, shape, batch).dense()
    bias = None if conv.bias is None else conv.bias.detach()
    out = F.conv3d(dense, weight, bias, padding=conv.kernel_size // 2)
    return out.permute(0, 2, 3, 4, 1)[coords[:, 0], coords[:, 1], coords[:, 2], coords[:, 3]], weight


@pytest.mark.parametrize("kernel_size", [1, 3])
def test_torch_subm_conv_matches_dense_conv_forward_and_gradients(kernel_size):
    shape, batch = (7, 5, 4), 2
    coords = _random_sites(batch, shape, 0.35)
    torch.manual_seed(0)
    conv = SubMConv3d(3, 4, kernel_size, bias=True, backend="torch", dense_above=2.0).double()
    feats = torch.randn(len(coords), 3, dtype=torch.float64, requires_grad=True)
    out = conv(SparseVoxels(feats, coords, shape, batch)).features
    grad_out = torch.randn_like(out)
    (out * grad_out).sum().backward()

    ref_feats = feats.detach().clone().requires_grad_(True)
    ref, ref_weight = _dense_reference(conv, ref_feats, coords, shape, batch)
    (ref * grad_out).sum().backward()

    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(feats.grad, ref_feats.grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(conv.weight.grad, ref_weight.grad.permute(0, 2, 3, 4, 1), rtol=1e-10, atol=1e-10)


def test_rulebook_conv_passes_gradcheck():
    coords = _random_sites(1, (4, 4, 3), 0.5, seed=3)
    rules = build_rulebook(SparseVoxels(torch.zeros(len(coords), 1), coords, (4, 4, 3), 1), 3)
    feats = torch.randn(len(coords), 2, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(27, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, w: _RulebookConv.apply(f, w, rules), (feats, weight))


def test_subm_conv_keeps_samples_of_a_batch_apart():
    shape = (5, 5, 5)
    coords0 = _random_sites(1, shape, 0.4, seed=1)
    coords1 = coords0.clone()
    coords1[:, 0] = 1
    feats0 = torch.randn(len(coords0), 3)
    conv = SubMConv3d(3, 2, 3, backend="torch")
    alone = conv(SparseVoxels(feats0, coords0, shape, 1)).features
    together = conv(SparseVoxels(torch.cat([feats0, 10 * torch.randn_like(feats0)]),
                                 torch.cat([coords0, coords1]), shape, 2)).features
    torch.testing.assert_close(together[: len(coords0)], alone)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="spconv is used on CUDA only")
def test_spconv_backend_matches_torch_backend_on_cuda():
    shape, batch = (9, 8, 6), 2
    coords = _random_sites(batch, shape, 0.3).cuda()
    ref = SubMConv3d(4, 5, 3, backend="torch").cuda()
    sp = SubMConv3d(4, 5, 3, backend="spconv").cuda()
    sp.load_state_dict(ref.state_dict())
    feats = torch.randn(len(coords), 4, device="cuda")
    torch.testing.assert_close(sp(SparseVoxels(feats, coords, shape, batch)).features,
                               ref(SparseVoxels(feats, coords, shape, batch)).features, rtol=1e-4, atol=1e-4)


def test_one_by_one_conv_is_the_same_matmul_in_every_backend():
    """spconv 2.x would read a 1x1x1 weight (out, 1, 1, 1, in) as (in, out); the backends must not differ."""
    coords = _random_sites(1, (4, 4, 4), 0.5)
    feats = torch.randn(len(coords), 3)
    torch_conv = SubMConv3d(3, 3, 1, bias=False, backend="torch")
    spconv_conv = SubMConv3d(3, 3, 1, bias=False, backend="spconv")  # no spconv call: CPU works here too
    spconv_conv.load_state_dict(torch_conv.state_dict())
    expected = feats @ torch_conv.weight.reshape(3, 3).t()
    for conv in (torch_conv, spconv_conv):
        torch.testing.assert_close(conv(SparseVoxels(feats, coords, (4, 4, 4), 1)).features, expected)


def test_auto_backend_is_torch_on_cpu_and_unknown_backend_is_a_config_error():
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
    with pytest.raises(ConfigError, match="sparse backend"):
        SubMConv3d(1, 1, 3, backend="cuda-magic")


def test_scatter_mean_and_max_match_python_grouping():
    src = torch.tensor([[1.0, -2.0], [3.0, 4.0], [5.0, 0.0], [-1.0, 7.0]])
    index = torch.tensor([0, 2, 0, 2])
    torch.testing.assert_close(scatter_mean(src, index, 3), torch.tensor([[3.0, -1.0], [0.0, 0.0], [1.0, 5.5]]))
    torch.testing.assert_close(scatter_max(src, index, 3), torch.tensor([[5.0, 0.0], [0.0, 0.0], [3.0, 7.0]]))


def test_scatter_mean_gradient_splits_evenly_within_a_group():
    src = torch.ones(3, 1, requires_grad=True)
    scatter_mean(src, torch.tensor([0, 0, 1]), 2).sum().backward()
    torch.testing.assert_close(src.grad, torch.tensor([[0.5], [0.5], [1.0]]))


def test_unique_coords_inverse_rebuilds_input_and_keys_round_trip():
    coords = torch.tensor([[1, 2, 0, 3], [0, 0, 1, 1], [1, 2, 0, 3], [0, 4, 4, 0]])
    uniq, inverse = unique_coords(coords, (5, 5, 4))
    assert len(uniq) == 3
    torch.testing.assert_close(uniq[inverse], coords)
    torch.testing.assert_close(delinearize_keys(linearize_coords(coords, (5, 5, 4)), (5, 5, 4)), coords)


def test_sparse_voxels_dense_places_features_at_their_sites():
    coords = torch.tensor([[0, 1, 2, 3], [1, 0, 0, 0]])
    dense = SparseVoxels(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), coords, (2, 3, 4), 2).dense()
    assert dense.shape == (2, 2, 2, 3, 4)
    assert dense[0, :, 1, 2, 3].tolist() == [1.0, 2.0]
    assert dense[1, :, 0, 0, 0].tolist() == [3.0, 4.0]
    assert dense.abs().sum().item() == 10.0


def test_sgfe_pools_within_each_sample_only():
    shape = (8, 8, 8)
    coords0 = _random_sites(1, shape, 0.2, seed=2)
    coords1 = coords0.clone()
    coords1[:, 0] = 1
    sgfe = SGFE(4, 3, 4).eval()
    feats0 = torch.randn(len(coords0), 4)
    alone = sgfe(SparseVoxels(feats0, coords0, shape, 1)).features
    together = sgfe(SparseVoxels(torch.cat([feats0, torch.randn_like(feats0) * 5]),
                                 torch.cat([coords0, coords1]), shape, 2)).features
    torch.testing.assert_close(together[: len(coords0)], alone)


def test_dense_path_and_rulebook_path_of_the_torch_backend_agree():
    shape, batch = (6, 6, 5), 2
    coords = _random_sites(batch, shape, 0.6, seed=4)
    feats = torch.randn(len(coords), 3, dtype=torch.float64, requires_grad=True)
    conv = SubMConv3d(3, 4, 3, backend="torch").double()
    results = []
    for dense_above in (0.0, 2.0):
        conv.dense_above = dense_above
        conv.zero_grad()
        feats.grad = None
        out = conv(SparseVoxels(feats, coords, shape, batch)).features
        out.pow(2).sum().backward()
        results.append((out.detach(), feats.grad.clone(), conv.weight.grad.clone()))
    for dense, rulebook in zip(*results):
        torch.testing.assert_close(dense, rulebook, rtol=1e-10, atol=1e-10)


def test_backend_choice_follows_the_spconv_self_check(monkeypatch):
    import ssc_core.ops.sparse as sparse

    monkeypatch.setattr(sparse, "spconv_works", lambda device: False)
    assert resolve_backend("auto", torch.device("cuda")) == "torch"
    with pytest.raises(ConfigError, match="self-check"):
        resolve_backend("spconv", torch.device("cpu"))
    monkeypatch.setattr(sparse, "spconv_works", lambda device: True)
    assert resolve_backend("auto", torch.device("cuda")) == "spconv"
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
    assert resolve_backend("torch", torch.device("cuda")) == "torch"


def test_spconv_self_check_returns_a_cached_verdict():
    from ssc_core.ops.sparse import spconv_works

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = spconv_works(torch.device("cpu"))
    assert isinstance(first, bool) and spconv_works(torch.device("cpu")) is first
