"""The running ``torch.distributed`` process group, as the library's training, selection and
distillation see it: who this process is (rank, world size) and the few collectives they use.

Nothing here starts a process group: ``torchrun`` starts the processes and the user's script (or
``omnifer``) calls ``torch.distributed.init_process_group``. Functions of the library that run
distributed take an explicit ``distributed=True`` and ask this module for the group.
"""
from __future__ import annotations

from typing import Tuple

import torch

__all__ = ["is_running", "rank_and_world", "all_reduce_sum", "barrier"]


def is_running() -> bool:
    """Whether a ``torch.distributed`` process group is initialised in this process."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank_and_world(distributed: bool, caller: str = "this function") -> Tuple[int, int]:
    """``(rank, world size)`` of this process: ``(0, 1)`` when ``distributed`` is false; with it,
    those of the running process group, or a ``RuntimeError`` that says how to start one."""
    if not distributed:
        return 0, 1
    if not is_running():
        raise RuntimeError(f"{caller} was asked to run distributed, but no torch.distributed process group is "
                           "running in this process: launch with torchrun (e.g. torchrun --nproc-per-node 2 "
                           "script.py) and call torch.distributed.init_process_group('nccl' on GPUs, 'gloo' on "
                           "CPUs) first, or pass distributed=False")
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def all_reduce_sum(tensor: torch.Tensor, world: int) -> torch.Tensor:
    """Sum ``tensor`` over the ranks in place (nothing to do for a world of one); returns it."""
    if world > 1:
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
    return tensor


def barrier(world: int) -> None:
    """Wait for every rank (nothing to do for a world of one)."""
    if world > 1:
        torch.distributed.barrier()
