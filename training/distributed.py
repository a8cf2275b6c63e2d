"""Several processes under torchrun: joining the process group, rank and world size, global sums and barriers.
Every helper is a no-op (or the local value) in a single process. Splitting the model: ``parallelize``."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_distributed() -> None:
    """Join the process group when started by torchrun (gloo on CPU, NCCL on GPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if cuda else "gloo")


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_sum(x: float | torch.Tensor) -> float:
    """The sum of `x` over every process (float64), as a Python float."""
    t = torch.as_tensor(x, dtype=torch.float64)
    if world()[1] > 1:
        dist.all_reduce(t)
    return float(t)


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


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
