"""The checkpoints of a series read straight into memory and swapped into one model built once, on the CPU.

Loading a checkpoint with ``from_pretrained`` builds a new model and reads its memory-mapped weights through page
faults: about a quarter of a second of Python and kernel work per 135M-parameter model, which holds the GIL and so
slows a forward pass running beside it in another thread. Here the loading thread only reads: ``read_weights``
copies each safetensors file with ``preadv`` into a buffer (``O_DIRECT`` where the file system allows it, so the
disk writes into that memory without the page cache; the buffers the model let go are read into again, so no new
memory is faulted in), or maps a file already in the page cache with its pages mapped in at once, and returns the
tensors as views, cast to the probe's dtype. The caller's thread then points the parameters of the model built for
an earlier checkpoint at them (``WeightSwap.model``), which takes milliseconds.

The swap is used only when it gives the model ``from_pretrained`` would: the same config.json, and every tensor of
the model's state dict given by exactly the file's tensor of that name with its shape (weights tied in the model
must be equal in the file). Anything else (renamed keys, extra keys, pickle weights, adapters, a tie the file
breaks) loads with ``from_pretrained``; after one such checkpoint, the rest of its config load that way too.
"""
from __future__ import annotations

import mmap
from pathlib import Path
from typing import Callable

import torch

from .weight_reads import BufferPool, Weights, fast_reads_available, read_weights


class WeightSwap:
    """One model per config.json, its weights swapped for each checkpoint's (see the module's docstring), and the
    buffers behind the weights it no longer uses read into again.

    ``read(folder)`` (the loading thread's part) reads `folder`'s weights; ``model(folder, read)`` (the caller's)
    returns the model of `folder` with them in it: the model built last, re-pointed at them, when they fit it, else
    ``load(folder)``. The model returned is the same object from call to call: use each one before asking for the
    next, and call ``model`` for one read before the next read begins (probekit.prefetch.OneAhead's `then`), or
    each read takes a new buffer. Once a checkpoint does not fit the model built from an earlier one of the same
    config, and off POSIX, ``read`` builds each model of that config with ``load`` instead (as a loading thread
    would without the swap)."""

    def __init__(self, load: Callable[[Path], torch.nn.Module], dtype: torch.dtype):
        self.load, self.dtype = load, dtype
        self._model: torch.nn.Module | None = None
        self._config: str | None = None
        self._in_use: list[mmap.mmap] = []  # the buffers behind the model's weights
        self._pool = BufferPool()
        self._misfits: set[str] = set()  # configs whose checkpoints load with from_pretrained

    def read(self, folder: Path) -> Weights | torch.nn.Module | None:
        folder = Path(folder)
        if not fast_reads_available() or _config_text(folder) in self._misfits:
            return self.load(folder)
        return read_weights(folder, self.dtype, self._pool)

    def model(self, folder: Path, read: Weights | torch.nn.Module | None) -> torch.nn.Module:
        if isinstance(read, torch.nn.Module):
            return read
        if read is None:
            return self.load(folder)
        config = _config_text(Path(folder))
        if self._model is not None and config == self._config:
            if swap_into(self._model, read.tensors):
                self._pool.give(self._in_use)
                self._in_use = read.buffers
                return self._model
            self._misfits.add(config)  # the model built from this config's last checkpoint does not take this one
            self._pool.clear()
        self._pool.give(self._in_use + read.buffers)  # from_pretrained's model holds none of them
        self._in_use, self._model = [], None
        self._model, self._config = self.load(folder), config
        return self._model


def _config_text(folder: Path) -> str:
    config = folder / "config.json"
    return config.read_text() if config.is_file() else ""


def swap_into(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> bool:
    """Point `model`'s parameters and persistent buffers at `weights` when those are exactly its state dict (names
    and shapes; a tensor tied under several names given under at least one, equal under each); False, with `model`
    untouched, when they are not."""
    state = model.state_dict(keep_vars=True)
    if not set(weights) <= set(state):
        return False
    names: dict[int, list[str]] = {}  # a tensor of the model → its names in the file (tied ones have several)
    for name, target in state.items():
        names.setdefault(id(target), [])
        if name in weights:
            if weights[name].shape != target.shape or weights[name].dtype != target.dtype:
                return False
            names[id(target)].append(name)
    if not all(names.values()):
        return False  # a tensor the file does not give (or gives only under a name the model does not tie to it)
    if any(not torch.equal(weights[given[0]], weights[other]) for given in names.values() for other in given[1:]):
        return False  # the file unties what the model ties
    for name, target in state.items():
        if names[id(target)][0] == name:
            target.data = weights[name]
    return True
