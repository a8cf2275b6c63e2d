"""Probe a whole checkpoint series against its base model θ0 and write a tidy table of drift metrics.

``probe_series(run_dir, held=..., unknown=..., new=..., out=...)`` probes θ0 once, then every checkpoint, and
writes ``out/probes.csv`` and ``out/probes.parquet`` with one row per checkpoint × metric (run, checkpoint, name,
kind, index, layer, metric, value), ``out/probe.json`` (settings, versions, input hashes) and the captured
states of each model in ``out/states/<name>.safetensors``. States are written atomically as each model finishes
and carry a key of everything they depend on, so an interrupted run resumes with the models still missing, and
a re-run with other inputs recomputes rather than reuses.

Which metrics appear depends on the inputs: RD and NS need only held-out facts; MTD needs new entities
(``new``, else the ``unknown`` facts stand in for them); Rank-ρ, NTR and JSD need ``unknown`` facts that share
a gold answer with some held-out fact.
"""
from __future__ import annotations

import hashlib
import json
import math
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import AutoConfig

from . import metrics as M
from .capture import Prober
from .checkpoints import Checkpoint, check_series, find_checkpoints, resolve_base, weights_stamp
from .entities import DEFAULT_PROMPT_FORMAT, Fact, fact_to_record, locate_entities
from .errors import ProbekitError
from .families import check_layer, default_layer
from .io import atomic_write, read_tensors, write_json, write_tensors
from .models import check_weights, load_causal_lm, load_tokenizer

BASE_NAME = "_base"
COLUMNS = ["run", "checkpoint", "name", "kind", "index", "layer", "metric", "value"]


@dataclass(frozen=True)
class ProbeConfig:
    """Settings of a series probe (defaults are the study's, see probekit.metrics)."""

    layer: int | None = None  # 1-based; None → num_hidden_layers // 2
    k: int = M.DEFAULT_K
    ns_sample: int | None = M.DEFAULT_NS_SAMPLE
    max_pairs: int | None = M.DEFAULT_MAX_PAIRS
    seed: int = 0
    jsd_log_base: float = math.e
    prompt_format: str = DEFAULT_PROMPT_FORMAT
    batch_size: int = 32
    device: str = "cpu"
    dtype: str | None = None
    allow_pickle: bool = False


def _hash_facts(facts: list[Fact] | None) -> str | None:
    if facts is None:
        return None
    text = "\n".join(json.dumps(fact_to_record(f), sort_keys=True) for f in facts)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class SeriesProbe:
    """Captures (cached) and compares the states of one base model and the checkpoints of its series."""

    def __init__(self, base: Path, held: list[Fact], unknown: list[Fact] | None, new: list[Fact] | None,
                 out: Path, config: ProbeConfig, require_pairs: bool = True):
        self.base, self.held, self.unknown, self.new = Path(base), held, unknown, new
        self.out, self.config = Path(out), config
        self.tokenizer = load_tokenizer(self.base)
        cfg = AutoConfig.from_pretrained(self.base, local_files_only=True)
        self.layer = check_layer(cfg, config.layer if config.layer is not None else default_layer(cfg))
        self.pairs = None
        if unknown is not None:
            self.pairs = M.answer_pairs([f.answer for f in unknown], [f.answer for f in held],
                                        config.max_pairs, config.seed)
            if len(self.pairs) == 0 and not require_pairs:
                self.pairs = None  # no shared answers: Rank-ρ, NTR and JSD are left out
            elif len(self.pairs) == 0:
                raise ProbekitError(
                    "no unknown fact shares a gold answer with a held-out fact, so Rank-ρ, NTR and JSD have no "
                    "pairs; use larger or matching sets, or leave out --unknown"
                )
        for facts in (held, unknown, new):  # fail on an unlocatable entity before any model runs
            locate_entities(self.tokenizer, facts or [], config.prompt_format)
        self.ns_rows = M.ns_subsample(len(held), config.ns_sample, config.seed)
        self.inputs = {
            "held": _hash_facts(held), "unknown": _hash_facts(unknown), "new": _hash_facts(new),
            "pairs": None if self.pairs is None else hashlib.sha256(self.pairs.numpy().tobytes()).hexdigest()[:16],
        }
        self._base_states: dict[str, torch.Tensor] | None = None

    def _key(self, path: Path) -> str:
        c = self.config
        parts = [str(path.resolve()), weights_stamp(path), self.layer, c.k, c.prompt_format, c.dtype, self.inputs]
        if path != self.base:
            parts.append(self._key(self.base))  # gathered logits depend on θ0's top-k
        return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


    def states(self, name: str, path: Path, desc: str | None = None) -> dict[str, torch.Tensor]:
        """The captured tensors of one model, from cache or by running it (then cached atomically)."""
        key = self._key(path)
        if (hit := read_tensors(state_file(self.out, name), key)) is not None:
            return hit
        c = self.config
        model = load_causal_lm(path, dtype=c.dtype, device=c.device, allow_pickle=c.allow_pickle)
        prober = Prober(model, self.tokenizer, self.layer, prompt_format=c.prompt_format, batch_size=c.batch_size)
        out = {}
        held = prober.capture(self.held, topk=c.k, progress=desc and f"{desc} held")
        out.update(held_states=held.states, held_topk=held.topk_ids, held_topk_values=held.topk_values)
        if self.unknown is not None and self.pairs is not None:
            base_topk = held.topk_ids if path == self.base else self.base_states()["held_topk"]
            gather = (self.pairs[:, 0], base_topk[self.pairs[:, 1]])
            unk = prober.capture(self.unknown, topk=c.k, gather=gather, progress=desc and f"{desc} unknown")
            out.update(unk_states=unk.states, unk_topk=unk.topk_ids, unk_at_base_topk=unk.gathered)
        elif self.unknown is not None:  # no pairs: the states still serve MTD
            out["unk_states"] = prober.capture(self.unknown, progress=desc and f"{desc} unknown").states
        if self.new is not None:
            out["new_states"] = prober.capture(self.new, progress=desc and f"{desc} new").states
        del prober, model
        write_tensors(state_file(self.out, name), out, key, model=str(path))
        return out

    def base_states(self) -> dict[str, torch.Tensor]:
        if self._base_states is None:
            self._base_states = self.states(BASE_NAME, self.base, desc="θ0")
        return self._base_states

    def metrics(self, s: dict[str, torch.Tensor]) -> dict[str, float]:
        """The drift metrics of one model's tensors `s` against θ0's."""
        b, c = self.base_states(), self.config
        out = {
            "RD": M.rd(b["held_states"], s["held_states"]),
            "NS": M.ns(b["held_states"][self.ns_rows], s["held_states"][self.ns_rows]),
        }
        new_key = "new_states" if "new_states" in s else "unk_states" if "unk_states" in s else None
        if new_key:
            out["MTD"] = M.mtd(b["held_states"], s["held_states"], b[new_key], s[new_key])
        if self.pairs is not None:
            u, h = self.pairs[:, 0], self.pairs[:, 1]
            base_at_i = b["held_topk_values"][h]
            out["Rank-rho"] = M.rank_rho(s["unk_at_base_topk"], base_at_i)
            out["NTR"] = M.ntr(s["unk_topk"][u], s["held_topk"][h])
            out["JSD"] = M.jsd(s["unk_at_base_topk"], base_at_i, c.jsd_log_base)
        return out


def state_file(probe_dir: str | Path, name: str) -> Path:
    """Where a series probe caches one model's tensors."""
    return Path(probe_dir) / "states" / f"{name}.safetensors"


def read_states(probe_dir: str | Path, name: str) -> dict[str, torch.Tensor]:
    """The tensors a series probe cached for one model (``_base`` for θ0, else the checkpoint's name, e.g.
    ``epoch-003``): held_states [N, d], and where probed unk_states [U, d], new_states [M, d], top-k tensors."""
    states = read_tensors(state_file(probe_dir, name))
    if states is None:
        raise ProbekitError(f"no cached probe states for {name} in {probe_dir} (was the run probed?)")
    return states


def _versions() -> dict:
    import nnsight
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "nnsight": nnsight.__version__}


def write_table(df: pd.DataFrame, out: Path) -> None:
    with atomic_write(out / "probes.csv") as tmp:
        df.to_csv(tmp, index=False)
    with atomic_write(out / "probes.parquet") as tmp:
        df.to_parquet(tmp, index=False)


def probe_series(
    run_dir: str | Path,
    *,
    held: list[Fact],
    out: str | Path,
    base: str | None = None,
    unknown: list[Fact] | None = None,
    new: list[Fact] | None = None,
    config: ProbeConfig = ProbeConfig(),
    progress: bool = True,
) -> pd.DataFrame:
    """Probe θ0 and every checkpoint of `run_dir`; return (and write) the tidy metrics table."""
    run_dir, out = Path(run_dir), Path(out)
    checkpoints: list[Checkpoint] = find_checkpoints(run_dir)
    base_path = resolve_base(run_dir, base)
    check_series(base_path, checkpoints)
    for ckpt in checkpoints:  # refuse unsafe weights before any work
        check_weights(ckpt.path, config.allow_pickle)
    if not held:
        raise ProbekitError("the held-out set is empty; give at least one fact")
    probe = SeriesProbe(base_path, held, unknown, new, out, config)
    write_json(out / "probe.json", {
        "run_dir": str(run_dir.resolve()), "base": str(base_path.resolve()), "layer": probe.layer,
        "config": asdict(config), "inputs": probe.inputs, "sizes": {
            "held": len(held), "unknown": len(unknown or []), "new": len(new or []),
            "pairs": 0 if probe.pairs is None else len(probe.pairs), "ns_sample": len(probe.ns_rows)},
        "checkpoints": [str(c.path) for c in checkpoints], "versions": _versions(),
    })
    rows = []
    probe.base_states()
    for ckpt in tqdm(checkpoints, desc=f"probing {run_dir.name}", disable=not progress):
        same_as_base = ckpt.path.resolve() == base_path.resolve()
        s = probe.base_states() if same_as_base else probe.states(ckpt.name, ckpt.path, desc=ckpt.name)
        for metric, value in probe.metrics(s).items():
            rows.append([run_dir.name, str(ckpt.path), ckpt.name, ckpt.kind, ckpt.index, probe.layer, metric, value])
        write_table(pd.DataFrame(rows, columns=COLUMNS), out)
    return pd.DataFrame(rows, columns=COLUMNS)
