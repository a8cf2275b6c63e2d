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


def data_files(config: RunConfig) -> dict[str, dict]:
    """Every fact file the config names → its absolute path, sha256 and the manifest.json beside it (or None)."""
    data = {}
    for name in (*EVAL_SETS, "train", "new"):
        path = getattr(config, name)
        if path:
            manifest = Path(path).parent / "manifest.json"
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            data[name] = {"path": str(Path(path).resolve()), "sha256": digest,
                          "manifest": json.loads(manifest.read_text()) if manifest.exists() else None}
    return data


def write_run_record(run: RunDir, config: RunConfig, *, base_path: Path, precision: str, world_size: int,
                     parallel: str) -> None:
    import transformers

    write_json(run.record_file, {
        "base_model": str(base_path.resolve()), "config": asdict(config), "precision": precision,
        "world_size": world_size, "parallel": parallel, "data": data_files(config), "versions": {
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__},
    })
