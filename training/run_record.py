"""run.json: what a run was made from — its config, base model, precision and process layout, every data file
with its sha256 and split manifest, and library versions."""
from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict
from pathlib import Path

import torch

from probekit.io import write_json

from .config import EVAL_SETS, RunConfig
from .run_dir import RunDir


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def facts_sha256(path: str | Path) -> str:
    """sha256 of a facts file's bytes, or of a folder (``save_to_disk``): of its files' relative paths and sha256s
    in path order."""
    path = Path(path)
    if not path.is_dir():
        return _file_sha256(path)
    files = sorted(p for p in path.rglob("*") if p.is_file())
    listing = "".join(f"{p.relative_to(path).as_posix()}\t{_file_sha256(p)}\n" for p in files)
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


def data_files(config: RunConfig) -> dict[str, dict]:
    """Every facts source the config names → its absolute path, sha256 (``facts_sha256``) and the manifest.json
    beside it (or None)."""
    data = {}
    for name in (*EVAL_SETS, "train", "new"):
        path = getattr(config, name)
        if path:
            manifest = Path(path).parent / "manifest.json"
            digest = facts_sha256(path)
            data[name] = {"path": str(Path(path).resolve()), "sha256": digest,
                          "manifest": json.loads(manifest.read_text()) if manifest.exists() else None}
    return data


def portable_base(model: str, base_path: Path) -> str:
    """What run.json records as the base model: a packaged model's name ("embedded", "gemma3-270m"), which
    resolves on any machine, rather than the folder it was converted into here; otherwise the resolved path."""
    from probekit.models import MODEL_NAMES

    return model if model in MODEL_NAMES else str(base_path.resolve())


def write_run_record(run: RunDir, config: RunConfig, *, base_path: Path, precision: str, world_size: int,
                     parallel: str, optimizer: str) -> None:
    import transformers

    write_json(run.record_file, {
        "base_model": portable_base(config.model, base_path), "config": asdict(config), "precision": precision,
        "world_size": world_size, "parallel": parallel, "optimizer": optimizer, "data": data_files(config),
        "versions": {
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__},
    })
