"""Batches moved to the training device one step ahead: the copy of batch k+1 overlaps step k.

Why: on a GPU the host-to-device copy of a batch (region features are most of it) otherwise sits
between two steps with the GPU idle. The DataLoader pins its batches (page-locked host memory,
`pin_memory=True`, only when CUDA is there: pinning on a CPU-only host is wasted work and
memory), so a `non_blocking` copy issued on a side CUDA stream runs while the default stream
computes; the default stream waits for that copy only when it takes the batch, and
`record_stream` keeps the caching allocator from reusing the batch's memory too early.
On CPU the same one-ahead order is kept and the "copy" is a no-op, so the loop is one code path.

Keys in `host_keys` (the loader position) stay on the host: reading them must never wait on
the device.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

Batch = dict[str, torch.Tensor]


def pin_memory_for(device: torch.device) -> bool:
    """Whether the DataLoader should pin batches: only for a CUDA device on a host that has CUDA."""
    return device.type == "cuda" and torch.cuda.is_available()


class DevicePrefetcher:
    """Iterator of batches already on `device`, loading (and on CUDA copying) one batch ahead."""

    def __init__(self, batches: Iterable[Batch], device: torch.device, host_keys: tuple[str, ...] = ("position",)):
        self.source: Iterator[Batch] = iter(batches)
        self.device = device
        self.host_keys = frozenset(host_keys)
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self.ahead: Batch | None = None
        self.done = False

    def _fetch(self) -> Batch | None:
        try:
            batch = next(self.source)
        except StopIteration:
            return None
        if self.stream is None:
            return {k: v if k in self.host_keys else v.to(self.device) for k, v in batch.items()}
        with torch.cuda.stream(self.stream):
            return {k: v if k in self.host_keys else v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def __iter__(self) -> DevicePrefetcher:
        return self

    def __next__(self) -> Batch:
        if self.done:
            raise StopIteration
        batch = self.ahead if self.ahead is not None else self._fetch()
        if batch is None:
            self.done = True
            raise StopIteration
        if self.stream is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_stream(self.stream)  # the copy of this batch has finished before compute uses it
            for k, v in batch.items():
                if k not in self.host_keys:
                    v.record_stream(current)
        self.ahead = self._fetch()  # issue the next copy now: it runs while the caller's step does
        return batch
