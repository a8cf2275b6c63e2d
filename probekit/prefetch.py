"""Checkpoints loaded one ahead: while one model is captured, the next one's weights are read in a background
thread, so the disk and the forward passes overlap; at most one load is in flight beside the model in use.

safetensors files are memory-mapped, so "loading" a model on the CPU reads almost nothing: the disk is read by page
faults wherever the weights are first touched. ``to_device`` therefore touches every page in the loading thread
(on the CPU), or copies the weights from pinned host memory on a side stream (on a GPU), so the reading and copying
run beside the current model's forward passes instead of inside the next one's. A series on the CPU reads its
checkpoints with probekit.weight_swap instead; ``to_device`` serves the models built with ``from_pretrained``
there (θ0, and a checkpoint the swap does not fit).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Generic, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


class OneAhead(Generic[T, R]):
    """``take(i)`` returns ``then(items[i], load(items[i]))`` and starts loading ``items[i + 1]`` in a background
    thread, so it runs while the caller works on item i. `then` (default: the load's result as it is) runs in the
    caller's thread, before the next load begins. At most one load is in flight, and nothing keeps a result once
    taken: a model lives as long as its caller holds it. Without `overlap` every load runs in the caller's thread
    on ``take``. A load's error is raised by its ``take``. Use as a context manager (the thread ends on exit)."""

    def __init__(self, items: list[T], load: Callable[[T], R], overlap: bool = True,
                 then: Callable[[T, R], R] | None = None):
        self.items, self.load = items, load
        self.then = then or (lambda item, loaded: loaded)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="probekit-load") if overlap else None
        self._next = None  # (index, future) of the load in flight

    def take(self, i: int) -> R:
        if self._pool is None:
            return self.then(self.items[i], self.load(self.items[i]))
        if self._next is not None and self._next[0] == i:
            future = self._next[1]
        else:
            if self._next is not None:
                self._next[1].cancel()  # a load nobody will take (a no-op once it has started)
            future = self._pool.submit(self.load, self.items[i])
        self._next = None
        try:
            return self.then(self.items[i], future.result())
        finally:
            if i + 1 < len(self.items):  # begun only now: never two models loading beside the one in use
                self._next = (i + 1, self._pool.submit(self.load, self.items[i + 1]))

    def __enter__(self) -> OneAhead[T, R]:
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            if self._next is not None:
                self._next[1].cancel()
            self._next = None
            self._pool.shutdown(wait=True)


def to_device(model: torch.nn.Module, device: str | torch.device) -> torch.nn.Module:
    """`model` (just loaded on the CPU) with its weights resident on `device`: on a GPU copied through pinned
    memory on a side stream, waited for before returning, so the caller's stream sees finished weights; on the CPU
    every page of a memory-mapped safetensors file read now (one element per page), so the disk is read here, in
    the loading thread, rather than by the first forward pass."""
    device = torch.device(device)
    tensors = [*model.parameters(), *model.buffers()]
    if device.type == "cpu":
        for t in tensors:
            if t.numel():
                t.detach().reshape(-1)[:: max(1, 4096 // t.element_size())].sum()
        return model
    if device.type != "cuda":
        return model.to(device)
    stream = torch.cuda.Stream(device)
    with torch.cuda.stream(stream):
        for t in tensors:
            t.data = t.data.pin_memory().to(device, non_blocking=True)
    stream.synchronize()
    return model
