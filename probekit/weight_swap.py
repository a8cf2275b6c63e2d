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
must be equal in the file). Anything else (renamed keys, pickle weights, adapters, a tie the file breaks) loads
with ``from_pretrained``, and that model is the one later checkpoints are swapped into.
"""
from __future__ import annotations

import ctypes
import json
import mmap
import os
import struct
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .errors import ProbekitError
from .weights import check_safetensors

SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
    "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}
_CHUNK = 64 << 20  # bytes per preadv call
_ALIGN = 4096  # O_DIRECT wants the memory, the offset and the length aligned to the block size


def weight_files(folder: Path) -> list[Path] | None:
    """The safetensors files ``from_pretrained`` reads in `folder` (the index's shards, else model.safetensors), or
    None when it holds none (pickle weights, an adapter)."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        return [folder / name for name in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    single = folder / "model.safetensors"
    return [single] if single.exists() else None


@dataclass
class Weights:
    """A checkpoint's tensors (views of `buffers`, or copies where cast to another dtype) and the buffers its files
    were read into."""

    tensors: dict[str, torch.Tensor]
    buffers: list[mmap.mmap]


def read_weights(folder: Path, dtype: torch.dtype, take_buffer: Callable[[int], mmap.mmap] | None = None
                 ) -> Weights | None:
    """Every tensor of `folder`'s safetensors weights, in memory and cast to `dtype` where floating point (shapes as
    stored); None when the folder has no safetensors weights. Each file is read into ``take_buffer(bytes)``
    (default: a new buffer). Releases the GIL while the disk is read."""
    files = weight_files(Path(folder))
    if files is None:
        return None
    take_buffer = take_buffer or _new_buffer
    out = Weights({}, [])
    for file in files:
        check_safetensors(file)  # a file cut short is named, not read
        size = file.stat().st_size
        try:
            if in_page_cache(file):
                buffer = _map(file)  # zero-copy: its tensors view the page cache
            else:
                out.buffers.append(buffer := take_buffer(size))
                _read_into(file, buffer, size)
        except OSError as exc:
            raise ProbekitError(f"cannot read {file}: {exc.strerror or exc}") from None
        for name, t in _tensors(file, buffer).items():
            out.tensors[name] = t.to(dtype) if t.is_floating_point() and t.dtype != dtype else t
    return out


def in_page_cache(file: Path, share: float = 0.95) -> bool:
    """Whether at least `share` of `file`'s pages are in the page cache (mincore; False where it is unavailable)."""
    size = file.stat().st_size
    if not size or _libc is None:
        return False
    fd = os.open(file, os.O_RDONLY)
    try:
        address = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            return False
        try:
            pages = (ctypes.c_ubyte * -(-size // mmap.PAGESIZE))()
            if _libc.mincore(ctypes.c_void_p(address), size, pages) != 0:
                return False
            return sum(b & 1 for b in bytes(pages)) >= share * len(pages)
        finally:
            _libc.munmap(ctypes.c_void_p(address), size)
    finally:
        os.close(fd)


def _load_libc():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype, libc.mmap.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                                                  ctypes.c_int, ctypes.c_int, ctypes.c_long]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        return libc if hasattr(libc, "mincore") else None
    except (OSError, AttributeError):
        return None


_libc = _load_libc()


def _map(file: Path) -> mmap.mmap:
    """`file` mapped read-only with its pages mapped in now (MAP_POPULATE: one system call, off the GIL), so that
    no forward pass faults them in."""
    with file.open("rb") as fh:
        return mmap.mmap(fh.fileno(), 0, flags=mmap.MAP_PRIVATE | getattr(mmap, "MAP_POPULATE", 0),
                         prot=mmap.PROT_READ)


def _new_buffer(size: int) -> mmap.mmap:
    return mmap.mmap(-1, -(-size // _ALIGN) * _ALIGN)  # anonymous and page-aligned, as O_DIRECT needs


def _tensors(file: Path, buffer: mmap.mmap) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file `file` read (or mapped) into `buffer`, as views of it."""
    with warnings.catch_warnings():  # a mapped file is read-only, and no probe writes to weights
        warnings.filterwarnings("ignore", message="The given buffer is not writable")
        raw = torch.frombuffer(buffer, dtype=torch.uint8)  # keeps the buffer alive as long as any view of it
    try:
        (header_len,) = struct.unpack("<Q", buffer[:8])
        header = json.loads(buffer[8 : 8 + header_len])
        start = 8 + header_len
        tensors = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, end = (start + o for o in info["data_offsets"])
            dtype = SAFETENSORS_DTYPES[info["dtype"]]
            data = raw[begin:end] if begin % dtype.itemsize == 0 else raw[begin:end].clone()  # views start aligned
            tensors[name] = data.view(dtype).view(info["shape"])
    except (struct.error, ValueError, KeyError, RuntimeError) as exc:
        raise ProbekitError(f"{file} is not a readable safetensors file ({exc}); re-save or re-copy it") from None
    return tensors


def _read_into(file: Path, buffer: mmap.mmap, size: int) -> None:
    """Read `size` bytes of `file` into `buffer`, bypassing the page cache where the file system allows it."""
    view = memoryview(buffer)
    try:
        try:
            fd, done = os.open(file, os.O_RDONLY | getattr(os, "O_DIRECT", 0)), 0
        except OSError:  # tmpfs and some network file systems refuse O_DIRECT
            fd, done = os.open(file, os.O_RDONLY), 0
        try:
            while done < size:
                try:
                    got = os.preadv(fd, [view[done : min(done + _CHUNK, len(view))]], done)
                except OSError:  # O_DIRECT accepted at open, refused at read: read through the page cache
                    os.close(fd)
                    fd = os.open(file, os.O_RDONLY)
                    got = os.preadv(fd, [view[done : min(done + _CHUNK, len(view))]], done)
                if got == 0:
                    raise ProbekitError(f"{file} ended after {done} of {size} bytes while it was read")
                done += got
        finally:
            os.close(fd)
    finally:
        view.release()


class WeightSwap:
    """One model per config.json, its weights swapped for each checkpoint's (see the module's docstring), and the
    buffers behind the weights it no longer uses read into again, so that reading faults in no new memory.

    ``read(folder)`` (the loading thread's part) reads `folder`'s weights; ``model(folder, weights)`` (the caller's)
    returns the model of `folder` with them in it: the model built last, re-pointed at them, when they fit it, else
    ``load(folder)``. The model returned is the same object from call to call: use each one before asking for the
    next, and call ``model`` for one read before the next read begins (probekit.prefetch.OneAhead's `then`), or
    each read takes a new buffer. `weights` None (a folder without safetensors weights): ``load(folder)``."""

    def __init__(self, load: Callable[[Path], torch.nn.Module], dtype: torch.dtype):
        self.load, self.dtype = load, dtype
        self._model: torch.nn.Module | None = None
        self._config: str | None = None
        self._in_use: list[mmap.mmap] = []  # the buffers behind the model's weights
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def read(self, folder: Path) -> Weights | None:
        return read_weights(folder, self.dtype, self._take_buffer)

    def model(self, folder: Path, weights: Weights | None) -> torch.nn.Module:
        if weights is None:
            return self.load(folder)
        config = (Path(folder) / "config.json").read_text()
        if self._model is not None and config == self._config and swap_into(self._model, weights.tensors):
            self._release(self._in_use)
            self._in_use = weights.buffers
            return self._model
        self._release(self._in_use + weights.buffers)  # from_pretrained's model holds none of them
        self._in_use = []
        self._model, self._config = self.load(folder), config
        return self._model

    def _take_buffer(self, size: int) -> mmap.mmap:
        """A free buffer of at least `size` bytes (the smallest), else a new one."""
        with self._lock:
            fits = [b for b in self._free if len(b) >= size]
            if fits:
                buffer = min(fits, key=len)
                self._free.remove(buffer)
                return buffer
        return _new_buffer(size)

    def _release(self, buffers: list[mmap.mmap]) -> None:
        with self._lock:
            self._free.extend(buffers)


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
