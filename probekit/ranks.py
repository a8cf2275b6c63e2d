"""A series probe under torchrun: which checkpoints each rank probes, θ0's states shared from rank 0, every rank's
rows gathered. Without torchrun (``WORLD_SIZE`` unset or 1) every helper is the one-process identity.

The ranks talk over a gloo group (Python objects on the CPU) with a long timeout, whatever backend a training job
in the same process uses: the others wait while rank 0 captures θ0, which can outlast a default collective
timeout. A failure on any rank reaches every rank as an error, never as a hang: each collective carries either a
result or the message of what went wrong.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

import torch
import torch.distributed as dist

from .errors import ProbekitError

WAIT_TIMEOUT = timedelta(hours=2)  # the longest rank-0-only stretch (θ0's capture) the others wait through


@dataclass
class Ranks:
    """This process's rank, the world size and the gloo group they coordinate on (None in one process)."""

    rank: int = 0
    world: int = 1
    group: Any = None
    started_group: bool = False  # whether joining started the default process group (so leaving ends it)

    @classmethod
    def join(cls) -> Ranks:
        """Join the ranks torchrun started (its environment names them), or stay one process."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        started = not dist.is_initialized()
        if started:
            dist.init_process_group("gloo", timeout=WAIT_TIMEOUT)
        group = dist.new_group(backend="gloo", timeout=WAIT_TIMEOUT)
        return cls(dist.get_rank(), dist.get_world_size(), group, started)

    def leave(self, finished: bool = True) -> None:
        """Every rank together (when all finished: after an error a rank just exits, and torchrun stops the others),
        then end the process group if joining started it."""
        if self.world > 1:
            if finished:
                dist.barrier(group=self.group)
            if self.started_group:
                dist.destroy_process_group()

    def deal(self, items: list, work: list[int]) -> list[tuple[int, Any]]:
        """(position, item) of the items this rank handles, in order: the positions in `work` (the costly ones)
        dealt in turn, every world-th one from this rank's on; the others (cheap: read from a cache) to rank 0."""
        costly = {p: n for n, p in enumerate(work)}
        return [(i, item) for i, item in enumerate(items)
                if (costly[i] % self.world == self.rank if i in costly else self.rank == 0)]

    def device(self, device: str) -> str:
        """A bare "cuda" becomes this process's GPU (``LOCAL_RANK``) when several ranks share a machine."""
        if self.world > 1 and device == "cuda" and torch.cuda.is_available():
            return f"cuda:{int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count()}"
        return device

    def share(self, make: Callable[[], Any]) -> Any:
        """Rank 0's ``make()`` on every rank (the others do not call it); rank 0's error is raised everywhere."""
        if self.world == 1:
            return make()
        box: list = [None]
        failure = None
        if self.rank == 0:
            try:
                box = [(make(), None)]
            except Exception as exc:  # every rank must reach the broadcast, or the others hang
                failure, box = exc, [(None, _describe(exc))]
        dist.broadcast_object_list(box, src=0, group=self.group)
        value, error = box[0]
        if failure is not None:
            raise failure
        if error is not None:
            raise ProbekitError(f"rank 0 failed: {error}")
        return value

    def gather(self, work: Callable[[], Any]) -> list:
        """Every rank's ``work()``, in rank order, on every rank; any rank's error is raised on all of them."""
        failure, result = None, None
        try:
            result = work()
        except Exception as exc:  # reach the collective regardless: a rank that leaves early hangs the others
            failure = exc
        if self.world == 1:
            if failure is not None:
                raise failure
            return [result]
        out: list = [None] * self.world
        dist.all_gather_object(out, (result, None if failure is None else _describe(failure)), group=self.group)
        if failure is not None:
            raise failure
        errors = [f"rank {r} failed: {error}" for r, (_, error) in enumerate(out) if error is not None]
        if errors:
            raise ProbekitError("; ".join(errors))
        return [value for value, _ in out]


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, ProbekitError) else f"{type(exc).__name__}: {exc}"
