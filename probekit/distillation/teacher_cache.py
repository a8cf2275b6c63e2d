"""A frozen teacher's top-k (or random-k) token ids and log-probs at every training position, on disk, reused.

For each training example (dataset order) and each of its non-padded positions, the cache holds k token ids and
the teacher's log-probabilities there (at τ = 1; renormalising over the k ids at any τ only needs these, since a
constant shift drops out of the softmax). Arrays are ``.npy`` files memory-mapped on read, in a folder named by a
key of everything they depend on (teacher weights, token ids of the data, k, variant, seed, and for random-k drawn
on a GPU the device kind, whose generator draws other ids), so epochs and runs with the same teacher share one
cache; it is written to a temporary folder and renamed, so a crash leaves no half cache.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..io import atomic_dir

from .batches import Example, collate
from .heads import final_hidden, head_logits

VARIANTS = ("topk", "randomk")


def cache_key(teacher_stamp: str, examples: list[Example], k: int, variant: str, seed: int,
              rng_device: str = "cpu") -> str:
    """Names a cache by what it holds; random-k ids drawn on a GPU (`rng_device` "cuda") differ from the CPU's."""
    digest = hashlib.sha256()
    rng = [rng_device] if variant == "randomk" and rng_device != "cpu" else []
    digest.update(json.dumps([teacher_stamp, k, variant, seed, *rng]).encode())
    for e in examples:
        digest.update(np.asarray(e.input_ids, dtype=np.int64).tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:24]


def cache_rows(offsets: np.ndarray, example_index: torch.Tensor, seq_example: torch.Tensor,
               seq_pos: torch.Tensor) -> np.ndarray:
    """Cache row of every non-padded batch position: its example's offset plus its position in the example."""
    return offsets[example_index.cpu().numpy()[seq_example.cpu().numpy()]] + seq_pos.cpu().numpy()


class TeacherCache:
    """Read side: ``lookup(example_index, seq_example, seq_pos)`` → (ids [N, k], log-probs [N, k]) for a batch's
    non-padded positions (right-padded or packed alike)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.offsets = np.load(self.folder / "offsets.npy")
        self.ids = np.load(self.folder / "ids.npy", mmap_mode="r")
        self.logp = np.load(self.folder / "logp.npy", mmap_mode="r")

    def lookup(self, example_index: torch.Tensor, seq_example: torch.Tensor, seq_pos: torch.Tensor):
        rows = cache_rows(self.offsets, example_index, seq_example, seq_pos)
        return torch.from_numpy(self.ids[rows].astype(np.int64)), torch.from_numpy(np.asarray(self.logp[rows]))


def build_teacher_cache(teacher, examples: list[Example], pad_id: int, k: int, variant: str, seed: int,
                        root: Path, teacher_stamp: str, batch_size: int = 32) -> TeacherCache:
    """Compute (or find) the cache for `teacher` over `examples` under ``root/<key>``."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}")
    device = next(teacher.parameters()).device
    folder = Path(root) / cache_key(teacher_stamp, examples, k, variant, seed, device.type)
    if (folder / "logp.npy").exists():
        return TeacherCache(folder)
    lengths = np.array([len(e.input_ids) for e in examples], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    with atomic_dir(folder, keep_existing=True) as tmp:  # a run beside this one may finish it first
        _write_picks(tmp, teacher, examples, offsets, pad_id, k, variant, seed, batch_size)
        np.save(tmp / "offsets.npy", offsets)
        (tmp / "meta.json").write_text(json.dumps({"k": k, "variant": variant, "seed": seed, "teacher": teacher_stamp,
                                                   "examples": len(examples), "positions": int(offsets[-1])}))
    return TeacherCache(folder)


@torch.inference_mode()
def _write_picks(folder: Path, teacher, examples: list[Example], offsets: np.ndarray, pad_id: int, k: int,
                 variant: str, seed: int, batch_size: int) -> None:
    """ids.npy [positions, k] int32 and logp.npy [positions, k] float32 in `folder`, row = offset + position."""
    ids = np.lib.format.open_memmap(folder / "ids.npy", mode="w+", dtype=np.int32, shape=(int(offsets[-1]), k))
    logp = np.lib.format.open_memmap(folder / "logp.npy", mode="w+", dtype=np.float32, shape=(int(offsets[-1]), k))
    device = next(teacher.parameters()).device
    gen = torch.Generator(device).manual_seed(seed)  # on the teacher's device: no [N, V] draw on the host
    by_index = sorted(examples, key=lambda e: e.index)
    for s in tqdm(range(0, len(by_index), batch_size), desc=f"teacher {variant}-{k} cache", leave=False):
        batch = collate(by_index[s : s + batch_size], pad_id).to(device)
        hidden = final_hidden(teacher, batch)
        lp = torch.log_softmax(head_logits(teacher, hidden[batch.seq_rows, batch.seq_cols]).float(), -1)
        if variant == "topk":
            top = lp.topk(k, dim=-1)
            pick_ids, pick_lp = top.indices, top.values
        else:
            # the k largest of i.i.d. uniforms: a uniformly random k-subset of the vocabulary per position
            pick_ids = torch.rand(lp.shape, generator=gen, device=device).topk(k, dim=-1).indices
            pick_lp = lp.gather(-1, pick_ids)
        rows = cache_rows(offsets, batch.example_index, batch.seq_example, batch.seq_pos)
        ids[rows] = pick_ids.cpu().numpy()
        logp[rows] = pick_lp.cpu().numpy()
    ids.flush()
    logp.flush()
