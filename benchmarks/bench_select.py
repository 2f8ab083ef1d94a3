"""Benchmark of the streaming auxiliary-sample selection (omnifer_lib.select, §3.3).

Measures, over unlabeled pools of (by default) 10k and 100k images:

1. **Selection overhead**: wall time of ``select_auxiliary`` (forward pass + cosine to the
   centroids + softmax + manifest chunks written with fsync + merge + the final rule)
   relative to a bare forward pass ``model(x)`` of the same model over the same images, same
   batches, same data loading. Goal: ratio <= 1.15. Both are timed interleaved over
   ``--segments`` index ranges (the selection of a range is one shard, ``shard=(r, segments)``),
   alternating which goes first, so that load drifting on a shared machine biases neither
   side. Per-call costs (fingerprints, meta files, fsyncs: ~30 ms) are thus paid once per
   segment, which only counts against the selection and dominates pools of a few thousand.
2. **Peak memory**: maximum resident set size (``ru_maxrss``) of a child process that runs
   the whole measurement for one pool size; each size runs in its own fresh child so the
   peaks are comparable. Goal: RSS(100k) / RSS(10k) <= 1.10.

Data (``--data``, both by default): ``synthetic`` is the embedded synthetic ``ms1m`` pool
(rendered lazily per index, image cache off so that no size caches; rendering is most of the
bare pass's time on a CPU); ``random`` is a lazy dataset of random images drawn per index
from a seed (cheap, so its ratio is close to selection vs model compute alone). The
centroids come from a small synthetic/random anchor and are computed before timing.
Model: ``vgg_small`` (``--width``, default 8) from ``omnifer_lib.models`` if available, else a
tiny conv net; untrained weights (speed and memory do not depend on them).

Usage::

    python benchmarks/bench_select.py                       # 10k and 100k, 32 px (~6.5 min)
    python benchmarks/bench_select.py --sizes 2000 20000    # quicker

Measured, two runs (shared 2-core CPU with other jobs, 1 torch thread, vgg_small width 8,
32 px, δ = 0; per-segment ratios ranged 0.74-1.66 with the machine's load, the totals less):
synthetic pool - ratio 0.998 / 1.050 at 10k, 0.972 / 1.103 at 100k; peak RSS ratio 1.010 / 1.000.
random pool - ratio 1.063 / 1.053 at 10k, 1.029 / 1.031 at 100k; peak RSS ratio 1.007 / 1.004.
A profile of a 20k selection puts the scoring (cosine, softmax, top-2, chunk writes) at ~1 %
of the time; the rest is the forward pass and data loading, as in the bare pass.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class RandomImages(Dataset):
    """Lazy pool: image ``i`` is drawn from a generator seeded by ``(seed, i)``; nothing is stored."""

    def __init__(self, n: int, size: int, seed: int = 0, labelled: bool = False):
        self.n, self.size, self.seed, self.labelled = n, size, seed, labelled

    def __len__(self):
        return self.n

    def _one(self, i: int):
        rng = np.random.default_rng([self.seed, i])
        img = torch.from_numpy(rng.random((3, self.size, self.size), dtype=np.float32))
        return img, (i % 7 if self.labelled else -1)

    def __getitem__(self, i):
        return self._one(int(i))

    def __getitems__(self, indices):
        return [self._one(int(i)) for i in indices]


class TinyConv(nn.Module):
    """Fallback backbone when omnifer_lib.models is not available."""

    num_classes = 7

    def __init__(self, width: int = 8):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
            nn.Flatten(), nn.Linear(16 * width, 8 * width), nn.ReLU())
        self.head = nn.Linear(8 * width, 7)
        self.feature_dim = 8 * width

    def features(self, x):
        return self.body(x)

    def classify(self, f):
        return self.head(f)

    def forward(self, x):
        return self.classify(self.features(x))


def build_model(width: int):
    try:
        from omnifer_lib import models

        return models.build("vgg_small", width=width, seed=0), f"vgg_small(width={width})"
    except ImportError:
        torch.manual_seed(0)
        return TinyConv(width), f"TinyConv(width={width}) [omnifer_lib.models not available]"


def build_data(kind: str, n: int, image_size: int):
    """(anchor, pool, description)."""
    if kind == "synthetic":
        from omnifer_lib import data

        pool = data.load("synthetic", split="train", domain="ms1m", size=n, image_size=image_size,
                         seed=0, cache=False)
        anchor = data.load("synthetic", split="train", domain="rafdb", size=700, image_size=image_size,
                           seed=0)
        return anchor, pool, "synthetic ms1m pool (lazy, cache off), rafdb anchor of 700"
    return (RandomImages(700, image_size, seed=1, labelled=True), RandomImages(n, image_size),
            "lazy random images, random-label anchor of 700")


def forward_pass(model, pool, start: int, stop: int, batch_size: int) -> float:
    """Seconds of a bare ``model(x)`` over ``pool[start:stop]`` with the selection's batches."""
    from omnifer_lib.select import ChunkBatches

    loader = DataLoader(pool, batch_sampler=ChunkBatches([(0, start, stop)], batch_size))
    model.eval()
    begin = time.perf_counter()
    with torch.inference_mode():
        for images, _ in loader:
            model(images)
    return time.perf_counter() - begin


def child(args) -> None:
    """One pool size: interleave bare forward passes and selection over ``--segments``
    consecutive index ranges (alternating which goes first), so that load changes on a
    shared machine hit both alike. The selection of a segment is ``select_auxiliary`` with
    ``shard=(r, segments)``; the merge and the final rule are timed and added to it."""
    from omnifer_lib import select as S

    n, segs = args.child, args.segments
    torch.set_num_threads(args.threads)
    model, model_desc = build_model(args.width)
    anchor, pool, data_desc = build_data(args.data, n, args.image_size)
    centroids = S.compute_centroids(model, anchor, batch_size=args.batch_size, progress=False)
    with torch.inference_mode():  # warm-up (allocator, kernels)
        model.eval()(torch.rand(args.batch_size, 3, args.image_size, args.image_size))
    fwd, sel = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(segs):
            start, stop = n * r // segs, n * (r + 1) // segs

            def run_selection(r=r):
                begin = time.perf_counter()
                S.select_auxiliary(model, None, pool, args.delta, manifest_dir=tmp, centroids=centroids,
                                   batch_size=args.batch_size, chunk_size=args.chunk_size,
                                   shard=(r, segs), progress=False, device="cpu")
                sel.append(time.perf_counter() - begin)

            if r % 2 == 0:
                fwd.append(forward_pass(model, pool, start, stop, args.batch_size))
                run_selection()
            else:
                run_selection()
                fwd.append(forward_pass(model, pool, start, stop, args.batch_size))
        begin = time.perf_counter()
        S.merge_manifests(tmp)
        selection = S.reselect(tmp, rule="margin", delta=args.delta)
        finish = time.perf_counter() - begin
        manifest_mb = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()) / 2 ** 20
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    forward_s, select_s = sum(fwd), sum(sel) + finish
    print(json.dumps({"n": n, "forward_s": forward_s, "select_s": select_s, "merge_reselect_s": finish,
                      "ratio": select_s / forward_s,
                      "segment_ratios": [round(s / f, 3) for s, f in zip(sel, fwd)],
                      "max_rss_mb": rss_kb / 1024, "selected": len(selection),
                      "manifest_mb": manifest_mb, "model": model_desc, "data": data_desc,
                      "threads": torch.get_num_threads()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=8192)
    parser.add_argument("--width", type=int, default=8, help="vgg_small width (channels of block 1)")
    parser.add_argument("--delta", type=float, default=0.0,
                        help="margin δ (0 selects nearly everything: the largest selection to write)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads in the child (1: on a CPU shared with other jobs, 2 "
                             "threads spin against each other and get ~9x slower, measured)")
    parser.add_argument("--segments", type=int, default=10,
                        help="interleaved forward/selection segments per pool")
    kinds = ["synthetic", "random"]
    try:
        import omnifer_lib.data  # noqa: F401
    except ImportError:
        kinds = ["random"]
    parser.add_argument("--data", choices=["synthetic", "random"], nargs="+", default=kinds,
                        help="pool(s) to measure; default: both (random = nearly free data "
                             "loading, so its ratio is close to selection vs model compute alone)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        args.data = args.data[0]
        child(args)
        return
    summary = []
    for kind in args.data:
        results = []
        for n in args.sizes:
            cmd = [sys.executable, __file__, "--child", str(n), "--image-size", str(args.image_size),
                   "--batch-size", str(args.batch_size), "--chunk-size", str(args.chunk_size),
                   "--width", str(args.width), "--delta", str(args.delta), "--data", kind,
                   "--segments", str(args.segments), "--threads", str(args.threads)]
            env = {**os.environ, "OMNIFER_PROGRESS": "0"}
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=ROOT)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(res)
            print(f"[{kind}] n={n:>7}: bare forward {res['forward_s']:.1f}s, selection {res['select_s']:.1f}s "
                  f"(merge + rule {res['merge_reselect_s']:.2f}s), ratio {res['ratio']:.3f} "
                  f"(per segment {res['segment_ratios']}), peak RSS {res['max_rss_mb']:.0f} MB, "
                  f"manifest {res['manifest_mb']:.1f} MB, selected {res['selected']}", flush=True)
        first, last = results[0], results[-1]
        summary.append(f"[{kind}] model: {first['model']}; data: {first['data']}; {args.image_size} px; "
                       f"batch {args.batch_size}; chunk {args.chunk_size}; torch threads {first['threads']}")
        for res in results:
            summary.append(f"[{kind}] selection time / bare forward time at n={res['n']}: {res['ratio']:.3f} "
                           f"(goal <= 1.15: {'met' if res['ratio'] <= 1.15 else 'NOT met'})")
        mem = last["max_rss_mb"] / first["max_rss_mb"]
        summary.append(f"[{kind}] peak RSS at n={last['n']} / at n={first['n']}: {mem:.3f} "
                       f"({last['max_rss_mb']:.0f} MB / {first['max_rss_mb']:.0f} MB; "
                       f"goal <= 1.10: {'met' if mem <= 1.10 else 'NOT met'})")
    print("\n" + "\n".join(summary))


if __name__ == "__main__":
    main()
