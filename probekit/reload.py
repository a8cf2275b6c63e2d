"""A series' checkpoints loaded into models already built: a safetensors checkpoint of the same architecture is
copied tensor by tensor into a model that a previous checkpoint built, instead of building a new model per
checkpoint with ``from_pretrained`` (module construction, key mapping, a fresh allocation of every weight).

``Reloader`` keeps `slots` models and uses them in turn, so that one model can be probed while the next is being
filled (``probekit.prefetch.OneAhead``): the caller must be done with the model of load i before load i + slots
begins. A checkpoint that does not map onto the slot's model tensor for tensor (an adapter folder, pickle weights,
another config, other tensor names or shapes) is built afresh, so the result is always the model ``build`` would
return, with the same values: ``copy_`` converts dtypes exactly as ``from_pretrained(dtype=...)`` does.
"""
from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch

from .weights import check_weights

#: config.json keys that name where or by what a checkpoint was written, not what it computes
VOLATILE = frozenset({"_name_or_path", "transformers_version", "torch_dtype", "dtype"})


class Reloader:
    """``reloader(path)`` → a model with `path`'s weights on `device`; `build(path)` makes a slot's first model
    (and any checkpoint that does not fit the slot's)."""

    def __init__(self, build: Callable[[Path], torch.nn.Module], device: str | torch.device, slots: int = 2):
        self.build, self.device = build, torch.device(device)
        self._slots: list[tuple[torch.nn.Module, dict] | None] = [None] * slots  # (model, its config.json)
        self._loads = 0
        self.copied = self.built = 0  # loads done each way (for benchmarks and tests)

    def __call__(self, path: Path) -> torch.nn.Module:
        slot = self._loads % len(self._slots)
        self._loads += 1
        held = self._slots[slot]
        self._slots[slot] = None  # a failed load leaves no half-filled model behind
        config = _config(path)
        if held is not None and config is not None and config == held[1] and _fits(held[0], path):
            copy_weights(held[0], path)
            self.copied += 1
            model = held[0]
        else:
            model = self.build(path)
            self.built += 1
        self._slots[slot] = (model, config)
        return model


def _config(path: Path) -> dict | None:
    """A checkpoint's config.json without the keys in VOLATILE; None for an adapter folder or no config."""
    file = Path(path) / "config.json"
    if (Path(path) / "adapter_config.json").exists() or not file.is_file():
        return None
    return {k: v for k, v in json.loads(file.read_text(encoding="utf-8")).items() if k not in VOLATILE}


def _fits(model: torch.nn.Module, path: Path) -> bool:
    """Whether `path`'s safetensors tensors are `model`'s, name for name and shape for shape, every tensor of the
    model either among them or tied to one of them (an output layer sharing the input embedding)."""
    from safetensors import safe_open

    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        return False
    targets = model.state_dict()
    given = {}
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():
                given[name] = tuple(f.get_slice(name).get_shape())
    if any(name not in targets or tuple(targets[name].shape) != shape for name, shape in given.items()):
        return False
    storages = {targets[name].untyped_storage().data_ptr() for name in given}
    return all(t.untyped_storage().data_ptr() in storages for name, t in targets.items() if name not in given)


def copy_weights(model: torch.nn.Module, path: Path) -> None:
    """Copy every tensor of `path`'s safetensors files into `model` in place (checked whole first). On a GPU the
    copies go through pinned memory on a side stream that first waits for the work queued on the current one, and
    are waited for before returning."""
    from safetensors import safe_open

    check_weights(Path(path))
    targets = model.state_dict()
    device = next(iter(targets.values())).device
    stream = torch.cuda.Stream(device) if device.type == "cuda" else None
    if stream is not None:
        stream.wait_stream(torch.cuda.current_stream(device))
    with torch.no_grad(), (torch.cuda.stream(stream) if stream is not None else nullcontext()):
        for file in sorted(Path(path).glob("*.safetensors")):
            with safe_open(str(file), framework="pt") as f:
                for name in f.keys():
                    source = f.get_tensor(name)
                    if stream is not None:
                        source = source.pin_memory()
                    targets[name].copy_(source, non_blocking=stream is not None)
    if stream is not None:
        stream.synchronize()

