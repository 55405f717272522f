"""bench/tensor_memory.py: the peak of live tensor bytes, the CPU stand-in for torch.cuda.max_memory_allocated."""

from __future__ import annotations

import torch

from bench.tensor_memory import LiveTensorPeak

MIB = 1 << 20


def test_peak_counts_what_is_alive_together_and_forgets_what_was_freed():
    with LiveTensorPeak() as tracker:
        a = torch.ones(MIB // 4)  # 1 MiB
        b = torch.ones(MIB // 4)  # 1 MiB, both alive: 2 MiB
        view = b[:10]  # a view shares b's storage: nothing new
        del a
        c = torch.ones(MIB // 2)  # 2 MiB with b: 3 MiB
        del b, view
        d = torch.ones(MIB // 8)  # 0.5 MiB with c: 2.5 MiB, below the peak
    assert tracker.peak_bytes == 3 * MIB
    assert tracker.live_bytes == 2 * MIB + MIB // 2
    assert c.numel() and d.numel()


def test_training_step_peak_includes_saved_activations_and_gradients():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256))
    x = torch.randn(1024, 256)  # 1 MiB; each activation is 1 MiB too
    with LiveTensorPeak() as forward_only:
        forward_only.track(list(net.parameters()) + [x])
        with torch.no_grad():
            net(x)
    with LiveTensorPeak() as training:
        training.track(list(net.parameters()) + [x])
        net(x).sum().backward()
    weights = sum(p.numel() * 4 for p in net.parameters())
    # Without autograd at most two activations live at once; training also keeps the ReLU output for the backward
    # pass while the second activation exists, so its peak is higher by at least one activation.
    assert forward_only.peak_bytes <= weights + 3 * MIB
    assert training.peak_bytes >= forward_only.peak_bytes + MIB
    assert training.live_bytes >= 2 * weights + MIB  # weights, their gradients and x stay alive
