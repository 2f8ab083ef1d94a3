"""What running under ``torch.distributed`` costs and buys: ``fit``, selection and Algorithm 1
at world size 1 and 2, measured side by side in one run.

Each workload runs in fresh processes started with ``torch.multiprocessing.spawn`` (gloo, on the
CPU), three ways:

* ``1 × T threads``: one process with every thread the machine gives (the single-process default);
* ``1 × 1 thread``: one process, one thread (what each rank of the next row gets on 2 cores);
* ``2 × 1 thread``: two ranks of one thread each (``distributed=True`` / the sharded selection).

Printed: images/s (outer iterations/s for Algorithm 1) of each, the speed-up of two ranks over
the single-process default, and the *scaling efficiency* ``(2 × 1 thread) / (2 × (1 × 1 thread))``:
1.0 means the second rank doubles the work done with no overhead; what it falls short of 1.0 is
the cost of the gradient all-reduce, the merge and the process group (the overhead issue 15 asks
to keep small). Workloads: ``fit`` of vgg_small (width 16) on 32 px images, 1 epoch of ``--n``
images at a global minibatch of 64; ``select_auxiliary`` over ``--n`` pool images; Algorithm 1
with K = 4 initialisations, M = 64 real images, T = 1 inner step, ``--iterations`` outer steps.

Usage::

    python benchmarks/bench_distributed.py [--n 4096] [--iterations 6] [--reps 2]

Run it on an otherwise idle machine; the ratios are the result, not the absolute numbers.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

from omnifer_lib import models
from omnifer_lib.engine.provenance import machine_text, machine


def _data(n: int, size: int = 32):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, size, size, generator=g), torch.randint(0, 7, (n,), generator=g)


def _workload(kind: str, n: int, iterations: int, distributed: bool, workdir: str) -> float:
    """Seconds of one run of ``kind``; returns the units done per second."""
    from torch.utils.data import TensorDataset

    from omnifer_lib.distill import DistillConfig, distill
    from omnifer_lib.select.distributed import select_auxiliary_distributed
    from omnifer_lib.train import fit

    torch.manual_seed(0)
    model = models.build("vgg_small", width=16, seed=0)
    x, y = _data(n)
    t0 = time.perf_counter()
    if kind == "fit":
        fit(model, (x, y), epochs=1, batch_size=64, lr=0.01, device="cpu", progress=False, distributed=distributed)
        units = n
    elif kind == "selection":
        anchor = TensorDataset(x[:512], y[:512])
        pool = TensorDataset(x, torch.full((n,), -1))
        select_auxiliary_distributed(model, anchor, pool, 0.05, manifest_dir=Path(workdir) / "manifest",
                                     batch_size=256, device="cpu", progress=False)
        units = n
    else:
        cfg = DistillConfig(images_per_class=1, iterations=iterations, inits=4, inner_steps=1, real_batch=64)
        distill(model, x[:1024], y[:1024], cfg, device="cpu", show_progress=False, distributed=distributed)
        units = iterations
    return units / (time.perf_counter() - t0)


def _rank(rank: int, world: int, threads: int, init_file: str, out: str, kind: str, n: int, iterations: int,
          workdir: str) -> None:
    torch.set_num_threads(threads)
    distributed = world > 1
    if distributed:
        torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                                             world_size=world, timeout=datetime.timedelta(minutes=10))
    try:
        rate = _workload(kind, n, iterations, distributed, workdir)
        if rank == 0:
            Path(out).write_text(json.dumps({"rate": rate}))
    finally:
        if distributed:
            torch.distributed.destroy_process_group()


def measure(kind: str, world: int, threads: int, n: int, iterations: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rate.json")
        mp.spawn(_rank, args=(world, threads, os.path.join(tmp, "init"), out, kind, n, iterations, tmp),
                 nprocs=world, join=True)
        return json.loads(Path(out).read_text())["rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096, help="images per fit epoch and pool images (default 4096)")
    parser.add_argument("--iterations", type=int, default=6, help="Algorithm 1 outer iterations (default 6)")
    parser.add_argument("--reps", type=int, default=2, help="repetitions, alternating the order (default 2)")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    setups = {"1 × all threads": (1, cores), "1 × 1 thread": (1, 1), "2 × 1 thread": (2, 1)}
    print(f"machine: {machine_text(machine())}; {cores} cores")
    results = {}
    for kind, unit in (("fit", "images/s"), ("selection", "images/s"), ("distillation", "outer iterations/s")):
        rates = {name: [] for name in setups}
        for rep in range(args.reps):
            order = list(setups) if rep % 2 == 0 else list(reversed(setups))
            for name in order:
                world, threads = setups[name]
                rates[name].append(measure(kind, world, threads, args.n, args.iterations))
        med = {name: statistics.median(v) for name, v in rates.items()}
        speedup = med["2 × 1 thread"] / med["1 × all threads"]
        efficiency = med["2 × 1 thread"] / (2 * med["1 × 1 thread"])
        results[kind] = {"unit": unit, "median": med, "runs": rates, "speedup_2_ranks": speedup,
                         "scaling_efficiency": efficiency}
        print(f"\n{kind} ({unit}, median of {args.reps})")
        for name, value in med.items():
            print(f"  {name:<16} {value:10.2f}")
        print(f"  two ranks / one process with all threads: {speedup:.2f}×; scaling efficiency "
              f"(2 ranks vs twice one 1-thread process): {efficiency:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "args": vars(args), "results": results},
                                              indent=1))


if __name__ == "__main__":
    main()
