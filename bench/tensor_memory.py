"""Peak bytes of live tensor storage over a region of PyTorch code, measured on any device (CPU included).

On a GPU, ``torch.cuda.max_memory_allocated`` reports the caching allocator's peak of allocated blocks. On a CPU
there is no such counter: the process's resident size also holds the libraries, the allocator's cached pages
and fragmentation. ``LiveTensorPeak`` approximates the GPU number on any device by watching every operator's
outputs through a ``TorchDispatchMode``: each new storage is counted until the last tensor viewing it is gone,
and the peak of the running total is kept. Storages that exist before the region (weights, inputs, optimizer
state) are added with ``track``.

What it does not see, and a GPU run would add: cuDNN/cuBLAS workspaces, the allocator's rounding of each block
to 512 bytes and its fragmentation, and storages made outside the dispatcher (none in this project's models).
What differs by backend: spconv on CUDA keeps its own index buffers; the torch sparse convolution's rulebooks
are tensors and are counted.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class LiveTensorPeak(TorchDispatchMode):
    """``with LiveTensorPeak() as m: ...`` then ``m.peak_bytes`` (largest total of live storage bytes seen at
    any operator boundary in the region) and ``m.live_bytes`` (total still alive at the last check).

    Storages are keyed by their C pointer (the weak reference keeps that object, not its data, so a pointer is not
    reused while it is tracked) and dropped once the reference expires. Expired storages are swept whenever the
    running total would set a new peak, so the peak is exact at operator granularity."""

    def __init__(self) -> None:
        super().__init__()
        self._alive: dict[int, tuple[StorageWeakRef, int]] = {}
        self.live_bytes = 0
        self.peak_bytes = 0

    def track(self, tensors: Iterable[object]) -> None:
        """Count the storages of the given tensors (others are ignored), e.g. parameters and inputs."""
        for value in tensors:
            if isinstance(value, torch.Tensor):
                self._add(value)

    def _add(self, tensor: torch.Tensor) -> None:
        if tensor.is_meta or tensor.layout != torch.strided:
            return
        storage = tensor.untyped_storage()
        ref = StorageWeakRef(storage)
        if ref.cdata in self._alive:
            return
        size = storage.nbytes()
        self._alive[ref.cdata] = (ref, size)
        self.live_bytes += size
        if self.live_bytes > self.peak_bytes:
            self._scan()
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)

    def _scan(self) -> None:
        """Forget storages whose last tensor is gone."""
        for key, (ref, size) in list(self._alive.items()):
            if ref.expired():
                del self._alive[key]
                self.live_bytes -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - dispatch signature
        out = func(*args, **(kwargs or {}))
        for value in tree_leaves(out):
            if isinstance(value, torch.Tensor):
                self._add(value)
        return out

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self._scan()
