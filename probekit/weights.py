"""Which files of a checkpoint folder are its weights, and whether they are whole, checked before anything loads.

Safetensors weights are read by default; pickle weights (``pytorch_model.bin``, ``*.pt``) only with
``allow_pickle=True``. The training state that trainers save beside the weights (``optimizer.pt``,
``scheduler.pt``, ``rng_state.pth``, ``training_args.bin``, torchtune's ``recipe_state.pt``) is never counted as
weights. A safetensors file whose header is unreadable or whose data is shorter than its header says (a copy cut
short) is an error naming the file.
"""
from __future__ import annotations

import fnmatch
import json
import struct
from pathlib import Path

from .errors import ProbekitError

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt"}
#: files trainers save beside the weights that hold training state, not weights
TRAINING_STATE = ("optimizer*.pt", "scheduler*.pt", "scaler*.pt", "rng_state*.pth", "training_args.bin",
                  "recipe_state*.pt", "trainer_state*")


def pickle_weights(path: Path) -> list[str]:
    """Names of the pickle weight files in a checkpoint folder (training state left out)."""
    return sorted(p.name for p in Path(path).iterdir()
                  if p.suffix in PICKLE_SUFFIXES and not any(fnmatch.fnmatch(p.name, t) for t in TRAINING_STATE))


def check_safetensors(file: Path) -> tuple[int, dict]:
    """Refuse a safetensors file whose header cannot be read or whose tensors run past its end; else (the offset at
    which its data starts, its header's tensor entries without ``__metadata__``)."""
    size = file.stat().st_size
    try:
        with file.open("rb") as fh:
            (header_len,) = struct.unpack("<Q", fh.read(8))
            if 8 + header_len > size:
                raise ValueError("header longer than the file")
            header = json.loads(fh.read(header_len))
        header.pop("__metadata__", None)
        end = max((t["data_offsets"][1] for t in header.values()), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ProbekitError(f"{file} is not a readable safetensors file ({exc}); re-save or re-copy it") from None
    if 8 + header_len + end > size:
        raise ProbekitError(f"{file} is truncated: its header lists {8 + header_len + end} bytes, the file has "
                            f"{size}; re-save or re-copy it")
    return 8 + header_len, header


def check_weights(path: Path, allow_pickle: bool = False) -> None:
    """Refuse a checkpoint folder without whole safetensors weights unless pickle loading is explicitly allowed."""
    path = Path(path)
    safetensors = sorted(path.glob("*.safetensors"))
    for file in safetensors:
        check_safetensors(file)
    if safetensors:
        return
    pickles = pickle_weights(path)
    if not pickles:
        raise ProbekitError(f"{path} holds no weights (no *.safetensors; training state such as optimizer.pt is "
                            "not weights); point at a folder the model was saved to")
    if not allow_pickle:
        raise ProbekitError(
            f"{path} has only pickle weights ({', '.join(pickles)}), which can run arbitrary code when loaded; "
            "convert it to safetensors, or pass --allow-pickle (allow_pickle=True) if you trust it"
        )
