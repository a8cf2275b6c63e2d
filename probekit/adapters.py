"""PEFT adapter checkpoints: recognise them, find their base model, and merge them in memory.

An adapter folder holds ``adapter_config.json`` and ``adapter_model.safetensors`` (or, with ``allow_pickle``,
``adapter_model.bin``), as ``PeftModel.save_pretrained`` and a ``Trainer`` training a PEFT model write them. Any
adapter type peft can merge (LoRA, LoHa, IA³, ...) is merged into a fresh copy of the base with
``merge_and_unload``, nothing written, and probed as a full model. peft is optional: ``pip install 'probekit[peft]'``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import ProbekitError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def is_adapter(path: str | os.PathLike) -> bool:
    """Whether `path` is a folder holding a PEFT adapter (its config and weights)."""
    path = Path(path)
    return (path / ADAPTER_CONFIG).is_file() and any((path / w).is_file() for w in ADAPTER_WEIGHTS)


def recorded_base(path: Path) -> str | None:
    """``base_model_name_or_path`` of an adapter folder's adapter_config.json, or None."""
    try:
        return json.loads((Path(path) / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError):
        return None


def adapter_base(path: Path) -> str:
    """The base model an adapter folder records; an error saying to pass --base when it records none."""
    if not (base := recorded_base(path)):
        raise ProbekitError(f"{path}/{ADAPTER_CONFIG} records no base_model_name_or_path; pass --base PATH")
    return base


def require_peft(path: Path):
    """The peft module; an error naming the extra to install when it is missing (`path`: the adapter needing it)."""
    try:
        import peft
    except ImportError:
        raise ProbekitError(f"{path} is a PEFT adapter: install peft to probe it (pip install 'probekit[peft]')") \
            from None
    return peft


def check_adapter(path: Path) -> None:
    """Refuse an adapter folder whose adapter_config.json peft cannot read, before any model is loaded."""
    peft = require_peft(path)
    try:
        peft.PeftConfig.from_pretrained(str(path))
    except (ValueError, TypeError, KeyError, OSError) as exc:
        raise ProbekitError(f"{Path(path) / ADAPTER_CONFIG} is not a PEFT adapter config peft can read "
                            f"({str(exc).splitlines()[0]}); re-save the adapter") from None


def merge_adapter(base_model, path: Path):
    """`base_model` (a fresh copy, which this consumes) with the adapter in `path` merged into its weights."""
    peft = require_peft(path)
    try:
        model = peft.PeftModel.from_pretrained(base_model, path, is_trainable=False)
    except (ImportError, ValueError, KeyError, OSError, RuntimeError) as exc:
        raise ProbekitError(f"cannot load the adapter in {path}: {str(exc).splitlines()[0]}") from None
    return model.merge_and_unload()
