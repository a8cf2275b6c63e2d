"""Find and order a series of checkpoints, whoever wrote it, and the base model (θ0) it started from.

A series comes from one of three places:

- a run directory: checkpoint folders under it (or its ``checkpoints/`` folder) named like this project's
  ``epoch-003``, torchtune's ``epoch_3`` (``FullModelHFCheckpointer``: config.json + ``model-*-of-*.safetensors``),
  HF Trainer's and axolotl's ``checkpoint-500``, ``step-500`` / ``step_500`` or ``global_step500``, ordered by
  number; all epochs or all steps. A checkpoint's index counts epochs (or steps) trained, 0 being θ0: torchtune
  numbers its epochs from 0 (``epoch_0`` is saved after the first epoch), so ``epoch_N`` has index N + 1;
- an explicit list of folders (``--checkpoints DIR DIR ...``), in the order given;
- revisions of a repo in the local Hugging Face cache (``--base EleutherAI/pythia-160m --revisions step1000
  step2000``), in the order given.

A checkpoint is a full model (``config.json`` + weights) or a PEFT adapter (``adapter_config.json`` +
``adapter_model.safetensors``, merged into θ0 when probed); a series is one or the other. All checkpoints must
share the base model's architecture and tokenizer (probekit.tokenizer_identity).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .adapters import is_adapter, recorded_base
from .errors import ProbekitError
from .models import hub_snapshot, resolve_model_path
from .tokenizer_identity import tokenizer_difference, tokenizer_identity

#: (folder name, kind, what to add to the number to get epochs or steps trained)
_PATTERNS = (
    (re.compile(r"^epoch_(\d+)$"), "epoch", 1),  # torchtune: epoch_0 is the state after the first epoch
    (re.compile(r"^epoch-?(\d+)$"), "epoch", 0),
    (re.compile(r"^(?:checkpoint|step|global_step|ckpt)[-_]?(\d+)$"), "step", 0),
)
#: the file a run directory may hold to record its base model: {"base_model": "<path or 'embedded'>"}
RUN_RECORD = "run.json"
NO_BASE_HINT = ("probekit looks for --base, run.json's base_model, an adapter's adapter_config.json "
                "base_model_name_or_path and a checkpoint's config.json _name_or_path (a local folder or a repo id "
                "in the local Hugging Face cache); pass --base PATH, a repo id or 'embedded'")


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint of a series: its directory, whether it counts epochs or steps (or "revision" /
    "checkpoint" for a listed one without a number), its number, and a label when its folder's name is not it."""

    path: Path
    kind: str
    index: int
    label: str | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return self.label or self.path.name

    @property
    def adapter(self) -> bool:
        return is_adapter(self.path)


@dataclass(frozen=True)
class Series:
    """What a probe runs over: the run's name (the table's ``run`` column), θ0 and the ordered checkpoints."""

    run: str
    base: Path
    checkpoints: list[Checkpoint]


def is_checkpoint(path: Path) -> bool:
    return (path / "config.json").is_file() or is_adapter(path)


def _numbered(name: str) -> tuple[str, int] | None:
    for pattern, kind, offset in _PATTERNS:
        if m := pattern.match(name):
            return kind, int(m.group(1)) + offset
    return None


def _check_one_series(found: list[Checkpoint], where) -> None:
    kinds = {c.kind for c in found}
    if len(kinds) > 1:
        raise ProbekitError(f"{where} mixes {' and '.join(sorted(kinds))} checkpoints; probe one series at a time")
    adapters = [c.name for c in found if c.adapter]
    if adapters and len(adapters) < len(found):
        full = [c.name for c in found if not c.adapter]
        raise ProbekitError(f"{where} mixes full checkpoints ({', '.join(full)}) and PEFT adapters "
                            f"({', '.join(adapters)}); probe one series at a time")
    names = [c.name for c in found]
    if len(set(names)) < len(names):
        raise ProbekitError(f"{where}: two checkpoints are named {max(names, key=names.count)}; rename one")


def find_checkpoints(run_dir: str | Path) -> list[Checkpoint]:
    """All checkpoints under `run_dir` (or `run_dir/checkpoints`), ordered by number."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ProbekitError(f"run directory not found: {run_dir}")
    found = []
    for folder in (run_dir, run_dir / "checkpoints"):
        for child in folder.iterdir() if folder.is_dir() else ():
            if is_checkpoint(child) and (numbered := _numbered(child.name)):
                found.append(Checkpoint(child, *numbered))
    if not found:
        raise ProbekitError(
            f"no checkpoints in {run_dir}: expected folders like epoch-001/, checkpoint-500/, epoch_3/ or step-100/ "
            "holding a config.json (or a PEFT adapter_config.json), or list them with --checkpoints DIR DIR ..."
        )
    found.sort(key=lambda c: (c.index, c.name))
    _check_one_series(found, run_dir)
    for a, b in zip(found, found[1:]):
        if a.index == b.index:
            raise ProbekitError(f"{a.path} and {b.path} both claim {a.kind} {a.index}")
    return found


def _ordered(paths: list[Path], labels: list[str], kind: str) -> list[Checkpoint]:
    """Checkpoints in the order given: numbered by their names when all share one kind, else `kind` and position."""
    numbered = [_numbered(label) for label in labels]
    if all(numbered) and len({n[0] for n in numbered}) == 1:
        return [Checkpoint(p, *n, label=lab) for p, n, lab in zip(paths, numbered, labels)]
    return [Checkpoint(p, kind, i, label=lab) for i, (p, lab) in enumerate(zip(paths, labels))]


def listed_checkpoints(dirs: list[str | os.PathLike]) -> list[Checkpoint]:
    """An explicit, ordered list of checkpoint folders (``--checkpoints``)."""
    paths = [Path(d) for d in dirs]
    for p in paths:
        if not p.is_dir():
            raise ProbekitError(f"checkpoint directory not found: {p}")
        if not is_checkpoint(p):
            raise ProbekitError(f"{p} is not a checkpoint: it holds no config.json or PEFT adapter_config.json")
    labels = [p.name for p in paths]
    if len(set(labels)) < len(labels):  # same folder name in different runs: name them by their paths
        root = Path(os.path.commonpath([p.resolve() for p in paths]))
        labels = [str(p.resolve().relative_to(root)).replace(os.sep, "--") for p in paths]
    found = _ordered(paths, labels, "checkpoint")
    _check_one_series(found, "the --checkpoints list")
    return found


def revision_checkpoints(repo_id: str, revisions: list[str]) -> list[Checkpoint]:
    """Revisions of `repo_id` in the local Hugging Face cache (``--revisions``), in the order given."""
    paths = [hub_snapshot(repo_id, r) for r in revisions]
    found = _ordered(paths, [r.replace("/", "-") for r in revisions], "revision")
    _check_one_series(found, f"the revisions of {repo_id}")
    return found


def _recorded_bases(checkpoints: list[Checkpoint]):
    """The θ0s a series' checkpoints record (adapter_config.json or config.json), in order."""
    for ckpt in checkpoints:
        if ckpt.adapter:
            yield recorded_base(ckpt.path)
        elif (config := ckpt.path / "config.json").is_file():
            yield json.loads(config.read_text()).get("_name_or_path")


def resolve_base(run_dir: str | Path | None, base: str | None = None,
                 checkpoints: list[Checkpoint] | None = None) -> Path:
    """θ0: `base` if given; else the first base the series records that resolves locally (see NO_BASE_HINT)."""
    if base is not None:
        return resolve_model_path(base)
    run_dir = Path(run_dir) if run_dir is not None else None
    if checkpoints is None:
        checkpoints = find_checkpoints(run_dir)
    if run_dir is not None and (run_dir / RUN_RECORD).is_file():
        recorded = json.loads((run_dir / RUN_RECORD).read_text()).get("base_model")
        if recorded:
            return resolve_model_path(recorded)
    for recorded in filter(None, _recorded_bases(checkpoints)):
        try:
            return resolve_model_path(recorded)
        except ProbekitError:
            continue  # recorded, but not on this machine
    raise ProbekitError(f"{run_dir or 'the series'} records no base model found on this machine: {NO_BASE_HINT}")


def architecture_of(path: Path) -> dict:
    """The parts of a config that must match across a series."""
    cfg = json.loads((path / "config.json").read_text())
    text = cfg.get("text_config", cfg)
    keys = ("model_type", "hidden_size", "num_hidden_layers", "n_layer", "n_embd", "vocab_size")
    return {"architectures": cfg.get("architectures"), **{k: text[k] for k in keys if k in text}}


def weights_stamp(path: Path) -> list:
    """(name, size, mtime) of a checkpoint's safetensors files: changes whenever its weights are rewritten."""
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(path).glob("*.safetensors"))


def check_series(base: Path, checkpoints: list[Checkpoint]) -> None:
    """Refuse a series whose checkpoints differ from the base in architecture or tokenizer, naming the odd one
    and what differs."""
    arch, tok = architecture_of(base), tokenizer_identity(base)
    for ckpt in checkpoints:
        if not ckpt.adapter and architecture_of(ckpt.path) != arch:
            raise ProbekitError(
                f"{ckpt.path} has a different architecture from the base {base} "
                f"({architecture_of(ckpt.path)} vs {arch}); probe one model's series at a time"
            )
        theirs = tokenizer_identity(ckpt.path)
        if theirs is not None and tok is not None and (differs := tokenizer_difference(tok, theirs)):
            raise ProbekitError(
                f"{ckpt.path} has a different tokenizer from the base {base} ({', '.join(differs)} differ); "
                "a series must share one tokenizer (saved the same way: tokenizer.json, or a slow tokenizer's files)"
            )


def resolve_series(run_dir: str | Path | None = None, *, checkpoints: list | None = None,
                   revisions: list[str] | None = None, base: str | None = None) -> Series:
    """The series to probe from exactly one of a run directory, a list of folders or revisions of `base`."""
    given = [name for name, v in (("RUN_DIR", run_dir), ("--checkpoints", checkpoints), ("--revisions", revisions))
             if v]
    if len(given) != 1:
        raise ProbekitError("give exactly one of RUN_DIR, --checkpoints DIR ... or --revisions REV ... "
                            f"(got {' and '.join(given) or 'none'})")
    if revisions:
        if base is None:
            raise ProbekitError("--revisions needs --base REPO_ID (the repo whose revisions they are)")
        repo_id = base.partition("@")[0]
        found = revision_checkpoints(repo_id, revisions)
        return Series(repo_id, resolve_model_path(base), found)
    if checkpoints:
        found = listed_checkpoints(checkpoints)
        paths = [c.path.resolve() for c in found]
        run = Path(os.path.commonpath(paths)).name if len(paths) > 1 else paths[0].parent.name
        return Series(run, resolve_base(None, base, found), found)
    found = find_checkpoints(run_dir)
    return Series(Path(run_dir).name, resolve_base(run_dir, base, found), found)
