"""θ0's probe states, captured once for the runs of one base model: the runs beside each other that probe the same
facts with the same settings (an analysis's conditions and seeds) share them through a folder, and a run's epoch 0,
whose checkpoint holds θ0's very weights, takes them without a second capture."""
from __future__ import annotations

from pathlib import Path

import torch

from probekit.io import read_tensors, write_tensors
from probekit.series import BASE_NAME, SeriesProbe, state_file


def shared_file(probe: SeriesProbe, folder: Path) -> tuple[Path, str]:
    """(the file in `folder` that holds `probe`'s θ0 states, their key: base weights, facts and settings)."""
    key = probe.key(probe.base)
    return Path(folder) / f"{key[:24]}.safetensors", key


def take_shared_base_states(probe: SeriesProbe, folder: Path) -> SeriesProbe:
    """`probe`, given θ0's states from `folder` when they are there and not in its own cache yet."""
    shared, key = shared_file(probe, folder)
    if not probe.is_cached(BASE_NAME, probe.base) and (states := read_tensors(shared, key)) is not None:
        write_tensors(state_file(probe.out, BASE_NAME), states, key, model=str(probe.base))
    return probe


def epoch_states(probe: SeriesProbe, checkpoint: Path, epoch: int, folder: Path) -> dict[str, torch.Tensor]:
    """The probe states of a run's checkpoint. Epoch 0's checkpoint is the base model as the run loaded it (in the
    probe's dtype the same weights as θ0): its states are θ0's, cached under its name with its own key, and kept in
    `folder` for the runs beside."""
    if epoch > 0:
        return probe.states(checkpoint.name, checkpoint)
    states = probe.base_states()
    write_tensors(state_file(probe.out, checkpoint.name), states, probe.key(checkpoint), model=str(checkpoint))
    shared, key = shared_file(probe, folder)
    if not shared.exists():
        write_tensors(shared, states, key, model=str(probe.base))
    return states
