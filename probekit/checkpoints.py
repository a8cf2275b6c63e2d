"""Find and order a series of checkpoints, whoever wrote it, and the base model (θ0) it started from.

Recognised checkpoint directory names (under the run directory or its ``checkpoints/`` folder), each holding a
``config.json``: this project's ``epoch-003``, torchtune's ``epoch_3``, HF Trainer's ``checkpoint-500``,
``step-500`` / ``step_500`` and ``global_step500``. A series is ordered by its number and is either all epochs or
all steps. All checkpoints must share the base model's architecture and tokenizer.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ProbekitError
from .models import EMBEDDED, resolve_model_path

_PATTERNS = (
    (re.compile(r"^epoch[-_]?(\d+)$"), "epoch"),
    (re.compile(r"^(?:checkpoint|step|global_step|ckpt)[-_]?(\d+)$"), "step"),
)
#: the file a run directory may hold to record its base model: {"base_model": "<path or 'embedded'>"}
RUN_RECORD = "run.json"
_TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer.model", "spiece.model")


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint of a series: its directory, whether it counts epochs or steps, and its number."""

    path: Path
    kind: str  # "epoch" or "step"
    index: int

    @property
    def name(self) -> str:
        return self.path.name


def find_checkpoints(run_dir: str | Path) -> list[Checkpoint]:
    """All checkpoints under `run_dir` (or `run_dir/checkpoints`), ordered by number."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ProbekitError(f"run directory not found: {run_dir}")
    found = []
    for folder in (run_dir, run_dir / "checkpoints"):
        if not folder.is_dir():
            continue
        for child in folder.iterdir():
            if not (child / "config.json").is_file():
                continue
            for pattern, kind in _PATTERNS:
                if m := pattern.match(child.name):
                    found.append(Checkpoint(child, kind, int(m.group(1))))
    if not found:
        raise ProbekitError(
            f"no checkpoints in {run_dir}: expected folders like epoch-001/, checkpoint-500/, epoch_3/ or step-100/ "
            "holding a config.json"
        )
    kinds = {c.kind for c in found}
    if len(kinds) > 1:
        raise ProbekitError(f"{run_dir} mixes epoch and step checkpoints; probe one series at a time")
    found.sort(key=lambda c: c.index)
    for a, b in zip(found, found[1:]):
        if a.index == b.index:
            raise ProbekitError(f"{a.path} and {b.path} both claim {a.kind} {a.index}")
    return found


def resolve_base(run_dir: str | Path, base: str | None = None) -> Path:
    """θ0: `base` if given; else the run's recorded base (``run.json``'s ``base_model``, or the ``_name_or_path``
    a HF Trainer checkpoint records when it is a local directory)."""
    if base is not None:
        return resolve_model_path(base)
    run_dir = Path(run_dir)
    record = run_dir / RUN_RECORD
    if record.is_file():
        recorded = json.loads(record.read_text()).get("base_model")
        if recorded:
            return resolve_model_path(recorded)
    for ckpt in find_checkpoints(run_dir):
        recorded = json.loads((ckpt.path / "config.json").read_text()).get("_name_or_path")
        if recorded and (recorded == EMBEDDED or (Path(recorded) / "config.json").is_file()):
            return resolve_model_path(recorded)
    raise ProbekitError(f"{run_dir} records no base model; pass --base PATH (or --base embedded)")


def architecture_of(path: Path) -> dict:
    """The parts of a config that must match across a series."""
    cfg = json.loads((path / "config.json").read_text())
    text = cfg.get("text_config", cfg)
    keys = ("model_type", "hidden_size", "num_hidden_layers", "n_layer", "n_embd", "vocab_size")
    return {"architectures": cfg.get("architectures"), **{k: text[k] for k in keys if k in text}}


def weights_stamp(path: Path) -> list:
    """(name, size, mtime) of a checkpoint's safetensors files: changes whenever its weights are rewritten."""
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(path).glob("*.safetensors"))


def tokenizer_fingerprint(path: Path) -> str | None:
    """A hash of a checkpoint's tokenizer files, or None if it saved none (it then uses the base's)."""
    digest = hashlib.sha256()
    files = [path / f for f in _TOKENIZER_FILES if (path / f).is_file()]
    if not files:
        return None
    for f in files:
        digest.update(f.name.encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()


def check_series(base: Path, checkpoints: list[Checkpoint]) -> None:
    """Refuse a series whose checkpoints differ from the base in architecture or tokenizer, naming the odd one."""
    arch, tok = architecture_of(base), tokenizer_fingerprint(base)
    for ckpt in checkpoints:
        if architecture_of(ckpt.path) != arch:
            raise ProbekitError(
                f"{ckpt.path} has a different architecture from the base {base} "
                f"({architecture_of(ckpt.path)} vs {arch}); probe one model's series at a time"
            )
        theirs = tokenizer_fingerprint(ckpt.path)
        if theirs is not None and tok is not None and theirs != tok:
            raise ProbekitError(
                f"{ckpt.path} has a different tokenizer from the base {base}; a series must share one tokenizer"
            )
