"""A run directory and everything in it, in one place: analyses, bench and tests ask the run for its paths.

    run.json                  full config, base model, versions, seeds, data hashes and manifests
    metrics.jsonl             one line per epoch: phase, losses per step, greedy EM per eval set (and per fact, as a
                              string of 0/1 in file order), tokens/s, probe metrics
    checkpoints/epoch-NNN/    HF safetensors + tokenizer (epoch 0 is the base model), kept per `keep`
    state/                    latest weights (hard links to that epoch's checkpoint), optimizer and RNG state: the
                              run resumes from here
                              (once the last epoch is done only trainer_state.json stays)
    teacher/                  the frozen snapshot θ_i for self_distill / l2
    probes/                   per-epoch drift metrics and the probe's cached states (probes/states/<name>.safetensors);
                              probes/items.safetensors: the drift metrics per item, from those states (analyses)
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def checkpoint_name(epoch: int) -> str:
    return f"epoch-{epoch:03d}"


class RunDir:
    """The folder of one training run (it need not exist yet)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def record_file(self) -> Path:
        return self.path / "run.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / checkpoint_name(epoch)

    @property
    def state(self) -> Path:
        return self.path / "state"

    @property
    def trainer_state_file(self) -> Path:
        """state/trainer_state.json: the last completed epoch and its phase (kept after the run ends)."""
        return self.state / "trainer_state.json"

    @property
    def optimizer_file(self) -> Path:
        """state/optimizer.pt: optimizer and RNG state."""
        return self.state / "optimizer.pt"

    @property
    def teacher(self) -> Path:
        return self.path / "teacher"

    @property
    def probes(self) -> Path:
        return self.path / "probes"

    @property
    def probe_items(self) -> Path:
        """probes/items.safetensors: each drift metric per item and probed epoch (analyses.drift_items)."""
        return self.probes / "items.safetensors"

    def teacher_cache(self, cache_dir: str | None) -> Path:
        """Where top-k / random-k teacher caches are shared: `cache_dir`, else beside this run."""
        return Path(cache_dir) if cache_dir else self.path.parent / ".teacher-cache"

    def outcome_cache(self, cache_dir: str | None) -> Path:
        """Where θ0's evaluation outcomes are shared: ``<cache_dir>/base-outcomes``, else beside this run."""
        return Path(cache_dir) / "base-outcomes" if cache_dir else self.path.parent / ".base-outcomes"

    def probe_cache(self, cache_dir: str | None) -> Path:
        """Where θ0's probe states are shared: ``<cache_dir>/base-probes``, else beside this run."""
        return Path(cache_dir) / "base-probes" if cache_dir else self.path.parent / ".base-probes"

    def record(self) -> dict:
        """run.json: config, base model, versions, data."""
        return json.loads(self.record_file.read_text(encoding="utf-8"))

    def records(self) -> list[dict]:
        """The per-epoch records of metrics.jsonl (the last record of an epoch wins, if one was written twice)."""
        if not self.metrics_file.exists():
            return []
        by_epoch = {}
        for line in self.metrics_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                by_epoch[rec["epoch"]] = rec
        return [by_epoch[e] for e in sorted(by_epoch)]

    def metrics(self) -> pd.DataFrame:
        """One row per epoch: epoch, phase, train_loss, tokens_per_s, accuracy.<set>, probe.<metric>."""
        rows = [{k: v for k, v in r.items() if k not in ("losses", "correct")} for r in self.records()]
        return pd.json_normalize(rows) if rows else pd.DataFrame(columns=["epoch", "phase"])

    def probe_states(self, epoch: int | None) -> dict:
        """The tensors the per-epoch probe cached for a checkpoint (None: θ0): held_states [N, d], ..."""
        from probekit.series import BASE_NAME, read_states

        return read_states(self.probes, BASE_NAME if epoch is None else checkpoint_name(epoch))


def read_metrics(run: str | Path) -> pd.DataFrame:
    """A run's per-epoch metrics as a DataFrame (see ``RunDir.metrics``)."""
    return RunDir(run).metrics()
