"""Benchmark: seconds per outer iteration and peak memory of Algorithm 1 (omnifer_lib.distill).

Compares, side by side in one run, the two ways of accumulating the outer gradient over the
K sampled initialisations:

* ``per_init`` (the library default): build one unrolled graph, back-propagate it, free it,
  next initialisation -- memory holds one graph;
* ``sum`` (the straightforward implementation): build all K unrolled graphs, back-propagate
  their mean once -- memory holds K graphs.

Both compute the same gradients (tests/test_distill.py checks it). Each measurement runs in
a fresh child process, so peak memory is that run's own: on the CPU the growth of the
process's peak resident set (VmHWM, reset before the run) over its resident set before the
run; on CUDA ``torch.cuda.max_memory_allocated``. Images are random tensors in [0, 1]:
timing does not depend on their content.

Usage::

    python benchmarks/bench_distill.py                       # demo backbones, 48 px, CPU
    python benchmarks/bench_distill.py --backbones vgg_face --image-size 224 --device cuda

Prints one line per (backbone, variant) and the ratios sum / per_init.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def child(args: argparse.Namespace) -> None:
    """One measurement: prints a JSON line with seconds per iteration and peak memory."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, str(REPO))
    from omnifer_lib import models
    from omnifer_lib.device import resolve_device
    from omnifer_lib.distill import DistillConfig, distill

    dev = resolve_device(args.device)
    options = {"width": args.width} if args.backbone in ("vgg_small", "resnet_small") else {}
    model = models.build(args.backbone, seed=0, **options)
    gen = torch.Generator().manual_seed(0)
    n_real = max(4 * args.real_batch, 7 * 4)
    images = torch.rand(n_real, 3, args.image_size, args.image_size, generator=gen)
    labels = torch.arange(n_real) % 7
    cfg = DistillConfig(iterations=args.warmup + args.iterations, inits=args.inits, real_batch=args.real_batch,
                        inner_steps=args.inner_steps, accumulate=args.variant, eta0=0.01, seed=0)
    stamps = []

    def on_iteration(done: int, loss: float) -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        stamps.append(time.perf_counter())

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    else:
        try:  # reset the peak resident set (Linux >= 4.0) so VmHWM is this run's peak
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            pass
        base = _rss_kib("VmRSS") * 1024
    start = time.perf_counter()
    distill(model, images, labels, cfg, device=dev, callback=on_iteration, show_progress=False)
    timed = stamps[args.warmup:]
    first = stamps[args.warmup - 1] if args.warmup else start
    per_iter = (timed[-1] - first) / len(timed)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) - base
    else:
        peak = _rss_kib("VmHWM") * 1024 - base
    print(json.dumps({"backbone": args.backbone, "variant": args.variant, "seconds_per_iteration": per_iter,
                      "peak_bytes": peak, "device": str(dev), "threads": torch.get_num_threads()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbones", nargs="+", default=["vgg_small", "resnet_small"])
    ap.add_argument("--width", type=int, default=8, help="channel width of the small backbones")
    ap.add_argument("--image-size", type=int, default=48)
    ap.add_argument("--inits", type=int, default=4, help="K sampled initialisations per outer iteration")
    ap.add_argument("--real-batch", type=int, default=64, help="M real images per outer iteration")
    ap.add_argument("--inner-steps", type=int, default=1, help="T")
    ap.add_argument("--iterations", type=int, default=3, help="timed outer iterations")
    ap.add_argument("--warmup", type=int, default=1, help="untimed outer iterations first")
    ap.add_argument("--threads", type=int, default=0, help="torch threads in the children (0: torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--variants", nargs="+", default=["per_init", "sum"])
    ap.add_argument("--repeats", type=int, default=2,
                    help="runs per variant, interleaved (A B A B); the fastest time and its peak are kept, "
                         "which damps noise from other processes on a shared machine")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--backbone", help=argparse.SUPPRESS)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    print(f"Algorithm 1, one outer iteration: K={args.inits} inits, M={args.real_batch} real images, "
          f"T={args.inner_steps}, {args.image_size} px, device {args.device}; "
          f"{args.iterations} timed iterations after {args.warmup} warm-up, each variant in its own process")
    env = dict(os.environ, OMNIFER_PROGRESS="0")
    results = {}
    for backbone in args.backbones:
        for variant in [v for _ in range(args.repeats) for v in args.variants]:
            cmd = [sys.executable, __file__, "--child", "--backbone", backbone, "--variant", variant,
                   "--width", str(args.width), "--image-size", str(args.image_size), "--inits", str(args.inits),
                   "--real-batch", str(args.real_batch), "--inner-steps", str(args.inner_steps),
                   "--iterations", str(args.iterations), "--warmup", str(args.warmup),
                   "--threads", str(args.threads), "--device", args.device]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                print(f"{backbone:14s} {variant:9s} FAILED: {out.stderr.strip().splitlines()[-1:]}")
                continue
            rec = json.loads(out.stdout.strip().splitlines()[-1])
            best = results.get((backbone, variant))
            if best is None or rec["seconds_per_iteration"] < best["seconds_per_iteration"]:
                results[(backbone, variant)] = rec
            print(f"{backbone:14s} {variant:9s} {rec['seconds_per_iteration']:8.3f} s/iteration   "
                  f"peak {rec['peak_bytes'] / 2**20:8.1f} MiB   ({rec['device']}, {rec['threads']} threads)",
                  flush=True)
    print("best of each:")
    for (backbone, variant), rec in results.items():
        print(f"  {backbone:14s} {variant:9s} {rec['seconds_per_iteration']:8.3f} s/iteration   "
              f"peak {rec['peak_bytes'] / 2**20:8.1f} MiB")
    for backbone in args.backbones:
        a, b = results.get((backbone, "per_init")), results.get((backbone, "sum"))
        if a and b:
            print(f"{backbone}: sum / per_init  time x{b['seconds_per_iteration'] / a['seconds_per_iteration']:.2f}"
                  f"   peak memory x{b['peak_bytes'] / max(a['peak_bytes'], 1):.2f}")


if __name__ == "__main__":
    main()
