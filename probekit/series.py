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

import json
import logging
import platform
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import AutoConfig

from .adapters import check_adapter, require_peft
from .checkpoints import Checkpoint, Series, check_series, resolve_series, weights_stamp
from .drift_probe import COLUMNS, DriftProbe, ProbeConfig, at_layer
from .entities import Fact, fact_to_record
from .errors import ProbekitError
from .io import atomic_write, read_tensors, stable_hash, tensors_key, write_json, write_tensors
from .models import default_device, load_causal_lm, load_tokenizer, resolve_dtype
from .outcomes import outcomes_of, write_outcomes
from .prefetch import OneAhead, to_device
from .ranks import Ranks
from .weight_swap import WeightSwap
from .weights import check_weights

BASE_NAME = "_base"
log = logging.getLogger("probekit")


def _hash_facts(facts: list[Fact] | None) -> str | None:
    return None if facts is None else stable_hash([fact_to_record(f) for f in facts], 16)


class SeriesProbe:
    """Captures (cached) and compares the states of one base model and the checkpoints of its series."""

    def __init__(self, base: Path, held: list[Fact], unknown: list[Fact] | None, new: list[Fact] | None,
                 out: Path, config: ProbeConfig, require_pairs: bool = True, progress: bool = True):
        self.base, self.held, self.unknown, self.new = Path(base), held, unknown, new
        self.out, self.config, self.progress = Path(out), config, progress  # progress: bars on stderr
        self.tokenizer = load_tokenizer(self.base)
        cfg = AutoConfig.from_pretrained(self.base, local_files_only=True)
        self.drift = DriftProbe(self.tokenizer, cfg, held, unknown, new, config, require_pairs)
        self.layer, self.pairs, self.ns_rows = self.drift.layer, self.drift.pairs, self.drift.ns_rows
        self.inputs = {
            "held": _hash_facts(held), "unknown": _hash_facts(unknown), "new": _hash_facts(new),
            "pairs": None if self.pairs is None else stable_hash(self.pairs.tolist(), 16),
        }
        self._base_states: dict[str, torch.Tensor] | None = None
        self.device = config.device or default_device()
        self.dtype = resolve_dtype(config.dtype, self.device)  # what the models load in: part of the cache key

    def key(self, path: Path) -> str:
        """What the tensors of the model at `path` depend on (their cache key)."""
        c = self.config
        layers = self.layer if self.layer is not None else self.drift.layers  # one layer: the key it always had
        parts = [str(path.resolve()), weights_stamp(path), layers, c.k, c.prompt_format, str(self.dtype),
                 torch.device(self.device).type, self.inputs]
        if c.accuracy:  # outcomes cached too (a key without the flag: the states it always named)
            parts.append("accuracy")
        if path != self.base:
            parts.append(self.key(self.base))  # gathered logits depend on θ0's top-k
        return stable_hash(parts, length=None)

    def cached(self, name: str, path: Path) -> dict[str, torch.Tensor] | None:
        """The tensors of one model cached under `name`, if they were computed from these very inputs."""
        return read_tensors(state_file(self.out, name), self.key(path))

    def is_cached(self, name: str, path: Path) -> bool:
        return tensors_key(state_file(self.out, name)) == self.key(path)

    def load(self, path: Path):
        """One checkpoint's model, read on the CPU and then moved to the probe's device (see probekit.prefetch)."""
        c = self.config
        model = load_causal_lm(path, dtype=self.dtype, device="cpu", allow_pickle=c.allow_pickle, base=self.base)
        return to_device(model, self.device)

    def capture(self, name: str, path: Path, model, desc: str | None = None) -> dict[str, torch.Tensor]:
        """Capture `model` (loaded from `path`) and cache its tensors atomically under `name`; `desc` names its bars."""
        base = None if path == self.base else self.base_states()
        out = self.drift.capture(self.drift.prober(model), base, desc if self.progress else None)
        write_tensors(state_file(self.out, name), out, self.key(path), model=str(path))
        return out

    def states(self, name: str, path: Path, desc: str | None = None) -> dict[str, torch.Tensor]:
        """The captured tensors of one model, from cache or by loading and running it (then cached)."""
        if (hit := self.cached(name, path)) is not None:
            return hit
        return self.capture(name, path, self.load(path), desc)

    def base_states(self) -> dict[str, torch.Tensor]:
        if self._base_states is None:
            self._base_states = self.states(BASE_NAME, self.base, desc="θ0")
        return self._base_states

    def metrics(self, s: dict[str, torch.Tensor]) -> dict[str, float]:
        """The drift metrics of one model's tensors `s` against θ0's (a one-layer probe)."""
        return self.drift.metrics(self.base_states(), s)

    def layer_metrics(self, s: dict[str, torch.Tensor]) -> list[tuple[int, str, float]]:
        """(layer, metric, value) of one model's tensors `s` against θ0's, for every probed layer."""
        return self.drift.layer_metrics(self.base_states(), s)


def state_file(probe_dir: str | Path, name: str) -> Path:
    """Where a series probe caches one model's tensors."""
    return Path(probe_dir) / "states" / f"{name}.safetensors"


def read_states(probe_dir: str | Path, name: str, layer: int | None = None) -> dict[str, torch.Tensor]:
    """The tensors a series probe cached for one model (``_base`` for θ0, else the checkpoint's name, e.g.
    ``epoch-003``): held_states [N, d], and where probed unk_states [U, d], new_states [M, d], top-k tensors.
    A several-layer probe's states are [L, N, d] with ``layers`` [L]; `layer` picks one layer's view."""
    states = read_tensors(state_file(probe_dir, name))
    if states is None:
        raise ProbekitError(f"no cached probe states for {name} in {probe_dir} (was the run probed?)")
    manifest = Path(probe_dir) / "probe.json"
    if layer is not None and "layers" not in states and manifest.is_file():
        probed = json.loads(manifest.read_text())["layer"]
        if probed != layer:
            raise ProbekitError(f"layer {layer} was not captured in {probe_dir} (it probed layer {probed})")
    return states if layer is None else at_layer(states, layer)


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


def _check_out(out: Path) -> None:
    """Refuse an output folder that is (or lies under) an existing file, before anything is written."""
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ProbekitError(f"--out {out}: {folder} is an existing file, not a folder; give a folder")
            return


def _usable(checkpoints: list[Checkpoint], config: ProbeConfig) -> list[Checkpoint]:
    """The checkpoints whose weights are there and whole, and whose adapter config peft reads (the others skipped
    with a warning under skip_broken); peft missing for an adapter series is an error."""
    adapters = [c.path for c in checkpoints if c.adapter]
    if adapters:
        require_peft(adapters[0])
    usable = []
    for ckpt in checkpoints:
        try:
            check_weights(ckpt.path, config.allow_pickle)
            if ckpt.adapter:
                check_adapter(ckpt.path)
        except ProbekitError as exc:
            _skip_or_raise(ckpt, exc, config)
            continue
        usable.append(ckpt)
    if not usable:
        raise ProbekitError("every checkpoint of the series is broken; nothing to probe")
    return usable


def _skip_or_raise(ckpt: Checkpoint, exc: ProbekitError, config: ProbeConfig) -> None:
    if not config.skip_broken:
        raise exc
    log.warning(f"probekit: warning: skipping {ckpt.name}: {exc}")


def probe_series(
    run_dir: str | Path | None = None,
    *,
    held: list[Fact],
    out: str | Path,
    base: str | None = None,
    unknown: list[Fact] | None = None,
    new: list[Fact] | None = None,
    config: ProbeConfig = ProbeConfig(),
    progress: bool = True,
    checkpoints: list[str | Path] | None = None,
    revisions: list[str] | None = None,
) -> pd.DataFrame:
    """Probe θ0 and every checkpoint of a series; return (and write) the tidy metrics table.

    The series is a run directory `run_dir`, an ordered list of checkpoint folders `checkpoints`, or `revisions`
    of the repo id `base` in the local Hugging Face cache (probekit.checkpoints). Every input is checked before
    anything is written to `out`."""
    out = Path(out)
    _check_out(out)
    series = resolve_series(run_dir, checkpoints=checkpoints, revisions=revisions, base=base)
    check_series(series.base, series.checkpoints)
    check_weights(series.base, config.allow_pickle)
    usable = _usable(series.checkpoints, config)  # refuse unsafe or broken weights before any work
    if not held:
        raise ProbekitError("the held-out set is empty; give at least one fact")
    probe = SeriesProbe(series.base, held, unknown, new, out, config, progress=progress)  # the last check
    manifest = {
        "run": series.run, "run_dir": str(Path(run_dir).resolve()) if run_dir else None,
        "base": str(series.base.resolve()), "layer": probe.layer, "layers": probe.drift.layers,
        "config": asdict(config), "inputs": probe.inputs,
        "sizes": {"held": len(held), "unknown": len(unknown or []), "new": len(new or []),
                  "pairs": 0 if probe.pairs is None else len(probe.pairs), "ns_sample": len(probe.ns_rows)},
        "checkpoints": [str(c.path) for c in usable], "versions": _versions(),
    }
    ranks = Ranks.join()
    finished = False
    try:
        probe.device = ranks.device(probe.device)
        table = _probe_all(probe, series, usable, ranks, {**manifest, "ranks": ranks.world})
        finished = True
        return table
    finally:
        ranks.leave(finished)


def _probe_all(probe: SeriesProbe, series: Series, checkpoints: list[Checkpoint], ranks: Ranks,
               manifest: dict) -> pd.DataFrame:
    """On rank 0: probe.json, θ0's states and which checkpoints still need capturing, shared with every rank; each
    rank's share of the checkpoints; then every rank's results merged in series order. Rank 0 writes the table
    (one process: after every checkpoint, so an interrupted run leaves one) and, with ``accuracy``, the per-fact
    outcomes, ΔD_Held and the facts lost (probekit.outcomes)."""
    base_path = series.base.resolve()

    def start() -> tuple[dict, list[int]]:
        write_json(probe.out / "probe.json", manifest)
        todo = [i for i, c in enumerate(checkpoints)
                if c.path.resolve() != base_path and not probe.is_cached(c.name, c.path)]
        return probe.base_states(), todo  # the plan fixed before any rank writes a checkpoint's states

    probe._base_states, todo = ranks.share(start)
    mine = ranks.deal(checkpoints, todo)
    write = ranks.world == 1
    parts = ranks.gather(lambda: _probe_mine(probe, series, mine, set(todo), write, ranks))
    done = sorted((p for part in parts for p in part), key=lambda p: p[0])  # series order
    if not done:
        raise ProbekitError("no checkpoint was probed: every one was skipped as broken (see the warnings above)")
    table = pd.DataFrame([row for _, _, rows, _ in done for row in rows], columns=COLUMNS)
    if ranks.rank == 0 and not write:
        write_table(table, out=probe.out)
    if probe.config.accuracy:
        names = ["θ0", *(c.name for _, c, _, _ in done)]
        indices = [0, *(c.index for _, c, _, _ in done)]
        got = [outcomes_of(probe.base_states()), *(o for _, _, _, o in done)]
        facts = {"held": probe.held, "unknown": probe.unknown, "new": probe.new}
        table.attrs["held_forgetting"] = write_outcomes(probe.out if ranks.rank == 0 else None, series.run, names,
                                                        indices, got, facts)
    return table


def _probe_mine(probe: SeriesProbe, series: Series, mine: list[tuple[int, Checkpoint]], todo: set[int],
                write: bool, ranks: Ranks) -> list[tuple[int, Checkpoint, list, dict]]:
    """(position, checkpoint, its table rows, its per-fact outcomes) for the checkpoints `mine` (position in the
    series, checkpoint); those in `todo` are captured (the others are θ0 or cached), the next one loaded while the
    current one is (``overlap_loads``, on the CPU and CUDA; on the CPU through probekit.weight_swap)."""
    base_path = series.base.resolve()
    to_load = [(pos, c) for pos, c in mine if pos in todo]
    which = {pos: i for i, (pos, _) in enumerate(to_load)}
    desc = f"probing {series.run}" + (f" (rank {ranks.rank} of {ranks.world})" if ranks.world > 1 else "")
    done = []
    kind = torch.device(probe.device).type
    swap = WeightSwap(probe.load, probe.dtype) if kind == "cpu" else None
    paths, overlap = [c.path for _, c in to_load], probe.config.overlap_loads and kind in ("cpu", "cuda")  # not MPS
    with OneAhead(paths, swap.read, overlap, swap.model) if swap else OneAhead(paths, probe.load, overlap) as loads:
        for pos, ckpt in tqdm(mine, desc=desc, disable=not probe.progress, position=ranks.rank):
            try:
                if ckpt.path.resolve() == base_path:
                    s = probe.base_states()
                elif pos in which:
                    s = probe.capture(ckpt.name, ckpt.path, loads.take(which[pos]), desc=ckpt.name)
                else:
                    s = probe.cached(ckpt.name, ckpt.path)
            except ProbekitError as exc:
                _skip_or_raise(ckpt, exc, probe.config)
                continue
            rows = [[series.run, str(ckpt.path), ckpt.name, ckpt.kind, ckpt.index, layer, metric, value]
                    for layer, metric, value in probe.layer_metrics(s)]
            done.append((pos, ckpt, rows, outcomes_of(s)))
            if write:
                write_table(pd.DataFrame([row for d in done for row in d[2]], columns=COLUMNS), probe.out)
    return done
