"""Several processes under torchrun: joining the process group, rank and world size, global sums and barriers.
Every helper is a no-op (or the local value) in a single process. Splitting the model: ``parallelize``.

Waiting for rank 0: only rank 0 evaluates, saves, probes and builds the teacher cache, which can take far longer
than a collective's timeout (NCCL's default is 10 minutes). ``barrier`` therefore waits on a second, gloo group
created with ``WAIT_TIMEOUT``: the training collectives keep their short default timeout (a real hang there still
fails fast), and the waiting ranks hold no pending NCCL work that the NCCL watchdog could time out.
"""
from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

WAIT_TIMEOUT = timedelta(hours=2)  # longest rank-0-only stretch (epoch end, teacher cache) the others wait through
_wait_group = None  # the gloo group ``barrier`` waits on


def init_distributed(timeout: timedelta | None = None) -> None:
    """Join the process group when started by torchrun (gloo on CPU, NCCL on GPU; `timeout` for its collectives,
    unset: the backend's default), and the gloo group with ``WAIT_TIMEOUT`` that ``barrier`` waits on."""
    global _wait_group
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if cuda else "gloo", **({"timeout": timeout} if timeout else {}))
        _wait_group = dist.new_group(backend="gloo", timeout=WAIT_TIMEOUT)


def shutdown_distributed() -> None:
    """Leave the process groups, every rank together (a no-op in one process): a rank that exits with its group
    alive can abort while another still talks to it."""
    global _wait_group
    if dist.is_available() and dist.is_initialized():
        dist.barrier(group=_wait_group)
        dist.destroy_process_group()
        _wait_group = None


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_sum(x: float | list[float] | torch.Tensor, device: torch.device) -> torch.Tensor:
    """The sum of `x` over every process, as a float64 tensor on `device` (the model's: NCCL reduces only CUDA
    tensors); in one process `x` itself, moved there. No host read-back."""
    t = x.to(device, torch.float64) if torch.is_tensor(x) else torch.tensor(x, dtype=torch.float64, device=device)
    if world()[1] > 1:
        dist.all_reduce(t)
    return t


def barrier() -> None:
    """Wait for every process, however long rank 0 takes (up to ``WAIT_TIMEOUT``)."""
    if world()[1] > 1:
        dist.barrier(group=_wait_group)


def parallelize(objective: torch.nn.Module, model, fsdp: bool, device: torch.device) -> torch.nn.Module:
    """`objective` (a module over `model`) for several processes: FSDP2 shards `model`'s decoder blocks and then the
    whole, DDP replicates it; in one process it is returned as is."""
    from probekit.families import family_of

    if fsdp:
        from torch.distributed.fsdp import fully_shard

        for block in family_of(model).decoder_layers(model):
            fully_shard(block)
        fully_shard(objective)
    elif world()[1] > 1:
        objective = torch.nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None)
    return objective


def full_weights(model) -> dict[str, torch.Tensor]:
    """The full state dict on CPU, gathered from FSDP2 shards (a collective: every rank calls)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
