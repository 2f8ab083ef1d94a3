"""Auxiliary-sample selection under ``torchrun``: one shard of the pool per rank, one merge.

Every rank runs the same script; ``torch.distributed`` says who is who::

    torchrun --nproc-per-node 4 select_pool.py          # one node, 4 GPUs

    # select_pool.py
    import torch.distributed as dist
    from omnifer_lib.select.distributed import select_auxiliary_distributed

    dist.init_process_group("nccl")                     # "gloo" on CPUs
    device = f"cuda:{dist.get_rank() % torch.cuda.device_count()}"
    summary = select_auxiliary_distributed(model, anchor, pool, 0.1, manifest_dir="manifests/vgg",
                                           device=device, num_workers=8)
    vas = summary.selection                             # the same on every rank

What happens: rank 0 computes the class centroids (Eq. 3) and the anchor's samples per class
from the anchor and sends them to the other ranks, so every shard is scored against the very
same centroids; each rank scores its contiguous index range of the pool with its own data-loader
workers into its own shard folder of the manifest (:mod:`omnifer_lib.select.manifest`); after a
barrier rank 0 merges the shards and applies the rule; every rank then reads that one selection.
Scores do not depend on which rank computed them, so the selection equals the single-process
:func:`select_auxiliary` on the same centroids (exactly, for a model whose per-sample outputs do
not depend on the batch).

Resuming: run the same command again. Chunks every shard completed are kept; a rank that died
left its shard incomplete, and the rerun scores only that shard's missing chunks.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ..distributed import is_running
from .manifest import merge_manifests
from .reselect import load_selection, reselect, save_selection, selection_path
from .rules import RULE_PARAMETERS
from .stream import SelectionSummary, _rule_args, compute_anchor_statistics, select_auxiliary

_RULE_KEYS = (*RULE_PARAMETERS, "per_class_cap")


def select_auxiliary_distributed(model: torch.nn.Module, anchor: Optional[Dataset], pool: Dataset,
                                 delta: Optional[float] = None, *, manifest_dir: Union[str, os.PathLike],
                                 centroids: Optional[np.ndarray] = None, rule: str = "margin",
                                 **kwargs: Any) -> SelectionSummary:
    """:func:`~omnifer_lib.select.select_auxiliary` with the pool split across the ranks of the
    running ``torch.distributed`` process group (see the module docstring); without a process
    group it is :func:`select_auxiliary` itself.

    Arguments are those of :func:`select_auxiliary` except ``shard`` (each rank's shard is its
    rank). Every rank must call it with the same arguments. Returns this rank's
    :class:`SelectionSummary` (its own shard's range, chunks and speed) with ``selection`` and
    ``selection_file`` set on every rank.
    """
    if "shard" in kwargs:
        raise ValueError("select_auxiliary_distributed: the shard is the rank; do not pass shard=")
    if not is_running():
        return select_auxiliary(model, anchor, pool, delta, manifest_dir=manifest_dir, centroids=centroids,
                                rule=rule, **kwargs)
    dist = torch.distributed
    rank, world = dist.get_rank(), dist.get_world_size()
    rule_params = _rule_args(rule, delta=delta, **{k: kwargs.get(k) for k in _RULE_KEYS})
    if centroids is None:
        if anchor is None:
            raise ValueError("select_auxiliary_distributed needs an anchor (for the centroids) or centroids=")
        box = [None]
        if rank == 0:
            box[0] = compute_anchor_statistics(model, anchor, kwargs.get("num_classes"),
                                               batch_size=kwargs.get("batch_size", 256), device=kwargs.get("device"),
                                               num_workers=kwargs.get("num_workers", 0),
                                               progress=kwargs.get("progress"), label_names=kwargs.get("label_names"))
        dist.broadcast_object_list(box, src=0)
        centroids, kwargs["anchor_counts"] = box[0]
    summary = select_auxiliary(model, None, pool, delta, manifest_dir=manifest_dir, centroids=centroids, rule=rule,
                               shard=(rank, world), **kwargs)
    dist.barrier()  # every shard is complete
    box = [None]
    if rank == 0:
        selection = reselect(merge_manifests(manifest_dir, world_size=world), rule=rule, **rule_params)
        saved = save_selection(selection, selection_path(manifest_dir, selection))
        box[0] = str(Path(saved).relative_to(manifest_dir))  # each rank may see the folder by another path
    dist.broadcast_object_list(box, src=0)  # also the barrier after the merge
    summary.selection_file = Path(manifest_dir) / box[0]
    summary.selection = load_selection(summary.selection_file)
    return summary
