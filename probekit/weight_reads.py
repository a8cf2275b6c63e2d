"""A checkpoint's safetensors weights read into memory the way a loading thread should: off the GIL, from disk
without the page cache (``O_DIRECT`` into page-aligned buffers that are read into again once free), or, for a file
already in the page cache, mapped with its pages mapped in at once. Used by probekit.weight_swap.
"""
from __future__ import annotations

import ctypes
import json
import mmap
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from .adapters import is_adapter
from .errors import ProbekitError
from .weights import check_safetensors

SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
    "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}
_CHUNK = 64 << 20  # bytes per preadv call
_ALIGN = 4096  # O_DIRECT wants the memory, the offset and the length aligned to the block size
_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)  # Linux's value; Python 3.11 does not name it


def weight_files(folder: Path) -> list[Path] | None:
    """The safetensors files ``from_pretrained`` reads in `folder`, in its order (model.safetensors, else the
    index's shards); None where it would read something else or fail (no safetensors, a PEFT adapter, a weights
    file named in config.json, a shard missing): those load with ``from_pretrained`` itself."""
    config = folder / "config.json"
    if is_adapter(folder) or (config.is_file() and "transformers_weights" in json.loads(config.read_text())):
        return None
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    index = folder / "model.safetensors.index.json"
    if not index.is_file():
        return None
    files = [folder / name for name in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    return files if all(f.is_file() for f in files) else None


@dataclass
class Weights:
    """A checkpoint's tensors (views of `buffers`, or copies where cast to another dtype) and the buffers its files
    were read into."""

    tensors: dict[str, torch.Tensor]
    buffers: list[mmap.mmap]


class BufferPool:
    """Page-aligned anonymous buffers handed out for reads and given back when no tensor views them any more, so
    that a read into one faults in no new memory. Thread-safe."""

    def __init__(self):
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def take(self, size: int) -> mmap.mmap:
        """A free buffer of at least `size` bytes (the smallest), else a new one."""
        with self._lock:
            fits = [b for b in self._free if len(b) >= size]
            if fits:
                self._free.remove(buffer := min(fits, key=len))
                return buffer
        return _new_buffer(size)

    def give(self, buffers: list[mmap.mmap]) -> None:
        with self._lock:
            self._free.extend(buffers)

    def clear(self) -> None:
        with self._lock:
            self._free.clear()


def _new_buffer(size: int) -> mmap.mmap:
    return mmap.mmap(-1, -(-size // _ALIGN) * _ALIGN)  # anonymous and page-aligned, as O_DIRECT needs


def read_weights(folder: Path, dtype: torch.dtype, pool: BufferPool | None = None) -> Weights | None:
    """Every tensor of `folder`'s safetensors weights, in memory and cast to `dtype` where floating point (shapes as
    stored); None when ``from_pretrained`` should load the folder instead (``weight_files``; a tensor dtype this
    reader does not know). Files not in the page cache are read into buffers from `pool` (default: new ones), and a
    buffer whose tensors were all cast goes back at once. Releases the GIL while the disk is read."""
    folder, pool = Path(folder), pool or BufferPool()
    files = weight_files(folder)
    if files is None:
        return None
    out = Weights({}, [])
    for file in files:
        try:
            start, header = check_safetensors(file)  # a file cut short is named, not read
            if any(info["dtype"] not in SAFETENSORS_DTYPES for info in header.values()):
                pool.give(out.buffers)
                return None
            size = file.stat().st_size
            if in_page_cache(file):
                buffer = _map(file)  # its tensors view the page cache
                size = min(size, len(buffer))
            else:
                out.buffers.append(buffer := pool.take(size))
                _read_into(file, buffer, size)
        except OSError as exc:
            pool.give(out.buffers)
            raise ProbekitError(f"cannot read {file}: {exc.strerror or exc}") from None
        all_cast = True
        for name, t in _tensors(buffer, start, header, size, file).items():
            cast = t.is_floating_point() and t.dtype != dtype
            all_cast = all_cast and cast
            out.tensors[name] = t.to(dtype) if cast else t
        if all_cast and out.buffers and out.buffers[-1] is buffer:
            pool.give([out.buffers.pop()])
    return out


def in_page_cache(file: Path, share: float = 0.95) -> bool:
    """Whether at least `share` of `file`'s pages are in the page cache (mincore). False where that cannot be known:
    no mincore, or a file this process may not write (Linux then reports every page resident)."""
    size = file.stat().st_size
    if not size or _libc is None or not os.access(file, os.W_OK):
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
            return len(pages) - bytes(pages).count(0) >= share * len(pages)
        finally:
            _libc.munmap(ctypes.c_void_p(address), size)
    finally:
        os.close(fd)


def _load_libc():
    """The C library with mmap, mincore and munmap typed, or None (not a POSIX system)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype, libc.mmap.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                                                  ctypes.c_int, ctypes.c_int, ctypes.c_long]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        return libc
    except (OSError, AttributeError, TypeError):
        return None


_libc = _load_libc()


def fast_reads_available() -> bool:
    """Whether this system has what these reads need (a POSIX C library with mmap and mincore)."""
    return _libc is not None


def _map(file: Path) -> mmap.mmap:
    """`file` mapped copy-on-write (a write to a weight changes this process's copy, never the file), its pages
    mapped in now so that no forward pass faults them in: in one system call (MADV_POPULATE_READ, Linux 5.14+),
    else by reading one byte a page (a torch op: off the GIL)."""
    with file.open("rb") as fh:
        buffer = mmap.mmap(fh.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    try:
        buffer.madvise(_MADV_POPULATE_READ)
    except (OSError, AttributeError):
        torch.frombuffer(buffer, dtype=torch.uint8)[:: mmap.PAGESIZE].sum()
    return buffer


def _tensors(buffer: mmap.mmap, start: int, header: dict, size: int, file: Path) -> dict[str, torch.Tensor]:
    """The tensors a safetensors file's `header` lists, as views of `buffer` its `size` bytes were read (or mapped)
    into."""
    raw = torch.frombuffer(buffer, dtype=torch.uint8)  # keeps the buffer alive as long as any view of it
    tensors = {}
    for name, info in header.items():
        begin, end = (start + o for o in info["data_offsets"])
        if end > size:  # the file changed between its check and its read
            raise ProbekitError(f"{file} changed while it was read: re-run once it is written")
        dtype = SAFETENSORS_DTYPES[info["dtype"]]
        data = raw[begin:end] if begin % dtype.itemsize == 0 else raw[begin:end].clone()  # views start aligned
        tensors[name] = data.view(dtype).view(info["shape"])
    return tensors


def _read_into(file: Path, buffer: mmap.mmap, size: int) -> None:
    """Read `size` bytes of `file` into `buffer`, bypassing the page cache where the file system allows it (else,
    or if a direct read is refused midway, through it)."""
    view, done = memoryview(buffer), 0
    try:
        for direct in (True, False):
            try:
                fd = os.open(file, os.O_RDONLY | (getattr(os, "O_DIRECT", 0) if direct else 0))
            except OSError:
                if not direct:
                    raise
                continue  # tmpfs and some network file systems refuse O_DIRECT
            try:
                while done < size:
                    got = os.preadv(fd, [view[done : min(done + _CHUNK, len(view))]], done)
                    if got == 0:
                        raise ProbekitError(f"{file} ended after {done} of {size} bytes while it was read")
                    done += got
                return
            except OSError:
                if not direct:
                    raise
            finally:
                os.close(fd)
    finally:
        view.release()
