"""θ0's per-fact outcomes, evaluated once and shared by every run of the same base model.

Every run evaluates the base model θ0 at epoch 0 on its eval sets, and runs of one analysis share most of those
sets (D_Known, D_Held, MaybeKnown, WeaklyKnown; often D_Unk too), so the same greedy answers were decoded once per
run. An eval set's outcomes at θ0 are a function of the base weights, the prompts and gold aliases, and the
precision and kind of device that decoded them; ``BaseOutcomes`` keeps them under a hash of exactly that, one small
JSON file per set, written atomically (concurrent runs at worst compute the same file twice).
"""
from __future__ import annotations

import json
from pathlib import Path

from probekit.checkpoints import weights_stamp
from probekit.decoding import DEFAULT_MAX_NEW_TOKENS
from probekit.io import stable_hash, write_json


class BaseOutcomes:
    """θ0's outcomes per eval set for one base model, decoding setting and folder."""

    def __init__(self, folder: Path, base_path: Path, *, device_type: str, precision: str,
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS):
        self.folder = Path(folder)
        self.setting = {"base": str(Path(base_path).resolve()), "weights": weights_stamp(base_path),
                        "device": device_type, "precision": precision, "max_new_tokens": max_new_tokens}

    def path(self, prompts: list[str], answers: list[list[str]]) -> Path:
        """The file of one eval set: its prompts and gold aliases (in order) and the decoding setting."""
        return self.folder / f"{stable_hash({**self.setting, 'prompts': prompts, 'answers': answers}, 24)}.json"

    def read(self, prompts: list[str], answers: list[list[str]]) -> str | None:
        """The set's outcomes ('0'/'1' per fact, in order), or None if not evaluated yet."""
        path = self.path(prompts, answers)
        if not path.exists():
            return None
        bits = json.loads(path.read_text(encoding="utf-8"))["correct"]
        return bits if len(bits) == len(prompts) else None

    def write(self, prompts: list[str], answers: list[list[str]], bits: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json(self.path(prompts, answers), {"setting": self.setting, "facts": len(prompts), "correct": bits})
