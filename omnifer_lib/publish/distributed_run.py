"""A profile's heavy stages under ``torchrun``, computed into the cache the notebooks read.

One node with N GPUs, in one command (the notebooks then run in one process and find every
heavy result cached)::

    omnifer reproduce --profile paper --nproc-per-node 4 -p rafdb_root /data/RAF-DB -p ms1m_root /data/ms1m ...

or in two steps, which is also the form for several nodes (see ``README.md`` for a Slurm script)::

    torchrun --nproc-per-node 4 -m omnifer_lib.publish.distributed_run --profile paper -p rafdb_root ...
    omnifer reproduce --profile paper -p rafdb_root ...

What runs distributed: the learners of Table 1 (every backbone, mode and seed of the profile on
its anchor) and what they need upstream - face pretraining, the primitive learners (``fit`` with
DistributedDataParallel), the selection over the pool (one shard per rank) and Algorithm 1 (its
K initialisations split over the ranks). Each rank computes with the others through
:meth:`omnifer_lib.engine.store.Store.get_or_compute`; rank 0 writes the results. Every rank needs
the same cache folder (``$OMNIFER_CACHE`` on a shared file system across nodes) and the data.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional


def _backend(name: str) -> str:
    import torch

    if name != "auto":
        return name
    return "nccl" if torch.cuda.is_available() else "gloo"


def main(argv: Optional[List[str]] = None) -> int:
    from omnifer_lib.publish import config
    from omnifer_lib.publish.cli import _add_profile_args

    parser = argparse.ArgumentParser(prog="python -m omnifer_lib.publish.distributed_run",
                                     description="compute a profile's heavy stages with every rank of torchrun")
    _add_profile_args(parser)
    args = parser.parse_args(argv)
    params = config.load_profile(args.profile, config.parse_overrides(args.parameter))
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        print("omnifer_lib.publish.distributed_run: error: start it with torchrun (e.g. torchrun --nproc-per-node 2 "
              "-m omnifer_lib.publish.distributed_run --profile demo), or use omnifer reproduce --nproc-per-node N",
              file=sys.stderr)
        return 2

    if str(params["device"]).startswith("cuda:"):
        print(f"omnifer_lib.publish.distributed_run: error: device {params['device']!r} would put every rank on one "
              "GPU; under torchrun each rank uses its own (LOCAL_RANK): pass -p device cuda (or auto)",
              file=sys.stderr)
        return 2

    import contextlib

    import torch
    import torch.distributed as dist

    from omnifer_lib.engine import pipeline
    from omnifer_lib.engine.store import Store

    if int(os.environ["RANK"]) > 0:
        os.environ["OMNIFER_PROGRESS"] = "0"  # one set of progress bars, rank 0's
    backend = _backend(params["dist_backend"])
    if torch.cuda.is_available() and params["device"] != "cpu":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))  # "cuda" then means this rank's GPU
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        pipeline.preflight(params)
        with Store().run_lock("the distributed stages") if rank == 0 else contextlib.nullcontext():
            dist.barrier()  # no rank starts before rank 0 holds the store (no other omnifer run uses it)
            t0 = time.time()
            table = pipeline.results_table(params, params["backbones"])  # trains what is not cached yet
            if rank == 0:
                print(f"omnifer: {len(table)} results of Table 1's learners ready in the cache "
                      f"({world} processes, {backend}, {time.time() - t0:.0f} s)", flush=True)
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
