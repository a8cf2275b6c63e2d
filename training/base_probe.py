"""A run's per-epoch probe, with θ0's states captured once for the runs of one base model: the runs beside each
other that probe the same facts with the same settings (an analysis's conditions and seeds) share them through a
folder, and a run's epoch 0, whose checkpoint holds θ0's very weights, takes them without a second capture."""
from __future__ import annotations

from pathlib import Path

import torch

from probekit.adapters import is_adapter
from probekit.entities import Fact
from probekit.errors import ProbekitError
from probekit.io import read_tensors, tensors_key, write_tensors
from probekit.series import BASE_NAME, ProbeConfig, SeriesProbe, state_file

from .config import RunConfig

SHARED_FORMAT = "base-probe v1"  # in the shared files' key: a change of what a capture holds bumps it


def run_probe(config: RunConfig, facts: dict[str, list[Fact]], base: Path, out: Path, device: torch.device,
              precision: str, shared: Path) -> SeriesProbe:
    """The probe a run measures every epoch with (in the run's precision; exact match is the run's own
    evaluation), given θ0's states from `shared` when they are there and not in its own cache yet."""
    if "held" not in facts:
        raise ProbekitError("the probe callback needs held-out facts: give --held")
    settings = ProbeConfig(layer=config.layer, prompt_format=config.prompt_format, device=str(device), accuracy=False,
                           dtype="float32" if precision == "fp32" else "bfloat16")
    probe = SeriesProbe(base, facts["held"], facts.get("unknown"), facts.get("new"), out, settings,
                        require_pairs=False)
    base_key = probe.key(probe.base)
    file, key = shared_file(base_key, shared)
    local = state_file(probe.out, BASE_NAME)
    if tensors_key(local) != base_key and (states := read_tensors(file, key)) is not None:
        write_tensors(local, states, base_key, model=str(probe.base))
    return probe


def shared_file(base_key: str, folder: Path) -> tuple[Path, str]:
    """(the file in `folder` that holds the θ0 states of a probe whose θ0 key is `base_key`, their key there: base
    weights, facts, settings and the shared format)."""
    return Path(folder) / f"{base_key[:24]}.safetensors", f"{SHARED_FORMAT} {base_key}"


def epoch_states(probe: SeriesProbe, checkpoint: Path, epoch: int, shared: Path) -> dict[str, torch.Tensor]:
    """The probe states of a run's checkpoint. Epoch 0's checkpoint is the base model as the run loaded it (in the
    probe's dtype the same weights as θ0; not so for an adapter base, merged in another precision): its states are
    θ0's, cached under its name with its own key, and kept in `shared` for the runs beside."""
    if epoch > 0 or is_adapter(probe.base):
        return probe.states(checkpoint.name, checkpoint)
    states = probe.base_states()
    write_tensors(state_file(probe.out, checkpoint.name), states, probe.key(checkpoint), model=str(checkpoint))
    file, key = shared_file(probe.key(probe.base), shared)
    if tensors_key(file) != key:
        write_tensors(file, states, key, model=str(probe.base))
    return states
