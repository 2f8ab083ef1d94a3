"""Training speed of the demo backbones, and the overhead of ``train.fit`` over a bare loop.

Measures, in one run and on the same data (the synthetic rafdb domain at 48 px, or random
images with ``--random``):

1. seconds per epoch of ``fit`` for each demo backbone (vgg_small, resnet_small);
2. training throughput (images/s) of ``fit`` against a bare PyTorch loop over the same
   model, data, batch size, optimiser and flips. Repetitions alternate which of the two runs
   first, so drifting machine load hits both alike; each repetition starts from the same
   initial weights. Printed: median and best (minimum-time) images/s of each and their
   ratios (goal: ``fit`` adds at most 10 %, i.e. fit/bare throughput >= 1/1.1 = 0.91). On a
   shared, loaded machine the best-of-n ratio is the steadier estimate of the real cost.
   ``fit+checkpoint`` adds the per-epoch atomic checkpoint write. Both loops use ``fit``'s
   default memory format (channels-last where ``train.channels_last_is_safe``); ``bare NCHW``
   is the bare loop in the default format, and the printed speed-up is what channels-last buys.
3. fit's fixed per-batch overhead, measured with a near-free model (a linear layer on the
   pixels) where convolution-time noise cannot hide it, as a share of each backbone's batch
   time: the steadiest estimate of what ``fit`` adds on a loaded machine.

Usage::

    python benchmarks/bench_train.py [--n 2000] [--size 48] [--width 8] [--reps 5]
                                     [--threads N] [--random] [--backbones vgg_small resnet_small]
    python benchmarks/bench_train.py --paper [--amp]   # on a GPU: vgg_face / resnet34 at 224 px

The numbers depend on the machine and on its load: run it on an otherwise idle machine,
or read the ratio (measured side by side) rather than the absolute numbers.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from omnifer_lib import models, train
from omnifer_lib.device import describe_device, resolve_device


def model_options(name: str, width: int) -> dict:
    """Only the small nets take a width."""
    return {"width": width} if name.endswith("_small") else {}


def load_data(n: int, size: int, random: bool):
    if not random:
        try:
            from omnifer_lib import data
            from omnifer_lib.evaluate import as_tensors

            ds = data.load("synthetic", split="train", domain="rafdb", size=n, image_size=size, seed=0)
            return as_tensors(ds, progress=False), "synthetic rafdb domain"
        except Exception as exc:  # the data module is optional for this benchmark
            print(f"(synthetic data unavailable: {exc}; using random images)")
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 3, size, size, generator=g), torch.randint(0, 7, (n,), generator=g)), "random images"


def bare_epoch(model, images, labels, *, lr, momentum, batch_size, flip_p, seed, device, amp=False,
               channels_last=None) -> float:
    """One epoch of a minimal hand-written loop; returns seconds. In ``fit``'s memory format
    (``train.channels_last_is_safe``) unless ``channels_last=False`` (the plain NCHW loop)."""
    if channels_last is None:
        channels_last = train.channels_last_is_safe(model, device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device).to(memory_format=fmt).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    order = torch.randperm(n, generator=g)
    flips = (torch.rand(n, generator=g) < flip_p).to(device)
    x_all, y_all = images.to(device), labels.to(device)
    t0 = time.perf_counter()
    for s in range(0, n, batch_size):
        idx = order[s:s + batch_size].to(device)
        x, y = x_all[idx], y_all[idx]
        x = torch.where(flips[s:s + batch_size].view(-1, 1, 1, 1), x.flip(3), x).contiguous(memory_format=fmt)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def fit_epoch(model, images, labels, *, lr, momentum, batch_size, flip_p, seed, device, amp=False,
              checkpoint_dir=None) -> float:
    """One epoch of ``train.fit`` (setup included); returns wall seconds."""
    t0 = time.perf_counter()
    train.fit(model, (images, labels), epochs=1, lr=lr, momentum=momentum, batch_size=batch_size,
              flip_p=flip_p, seed=seed, device=device, amp=amp, progress=False, checkpoint_dir=checkpoint_dir)
    return time.perf_counter() - t0


class Tiny(torch.nn.Module):
    """A linear classifier on the pixels: so little compute that the training loop's own
    per-batch work (indexing, flips, loss bookkeeping) shows."""

    def __init__(self, size: int):
        super().__init__()
        self.lin = torch.nn.Linear(3 * size * size, 7)
        self.num_classes = 7

    def forward(self, x):
        return self.lin(x.flatten(1))


def overhead_per_batch(images, labels, args, common) -> None:
    """fit's extra time per batch over the bare loop, measured with :class:`Tiny` (where
    noise in the convolutions cannot hide it); compare it with a real model's batch time."""
    n_batches = -(-len(labels) // args.batch_size)
    diffs = []
    for rep in range(max(args.reps, 5) * 2):
        torch.manual_seed(0)
        a, b = Tiny(args.size), Tiny(args.size)
        b.load_state_dict(a.state_dict())
        if rep % 2:
            t_bare = bare_epoch(a, images, labels, seed=rep, **common)
            t_fit = fit_epoch(b, images, labels, seed=rep, **common)
        else:
            t_fit = fit_epoch(b, images, labels, seed=rep, **common)
            t_bare = bare_epoch(a, images, labels, seed=rep, **common)
        diffs.append((t_fit - t_bare) / n_batches)
    med = statistics.median(diffs)
    print(f"\nloop overhead of fit over bare with a near-free model (pixels -> linear): "
          f"median {1000 * med:+.3f} ms per batch of {args.batch_size} "
          f"(setup included, spread {1000 * min(diffs):+.3f} .. {1000 * max(diffs):+.3f} ms)")
    for name in args.backbones:
        m = models.build(name, seed=0, **model_options(name, args.width))
        t = min(bare_epoch(m, images, labels, seed=0, **common) for _ in range(2)) / n_batches
        print(f"  {name}: bare batch time {1000 * t:.1f} ms -> fit's overhead is {100 * med / t:+.2f} % of it")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--random", action="store_true", help="random images instead of synthetic faces")
    ap.add_argument("--device", default=None)
    ap.add_argument("--backbones", nargs="+", default=["vgg_small", "resnet_small"])
    ap.add_argument("--amp", action="store_true", help="bfloat16 autocast on CUDA (fit and bare loop alike)")
    ap.add_argument("--paper", action="store_true",
                    help="GPU check: vgg_face and resnet34 at 224 px, 512 images, batch 64, 2 reps")
    args = ap.parse_args()
    if args.paper:
        args.backbones, args.size, args.batch_size = ["vgg_face", "resnet34"], 224, 64
        args.n, args.reps = min(args.n, 512), min(args.reps, 2)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    (images, labels), source = load_data(args.n, args.size, args.random)
    print(f"device: {describe_device(device)}; data: {args.n} {source} at {args.size} px; "
          f"batch {args.batch_size}; width {args.width}; load average before: "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    common = dict(lr=0.01, momentum=0.9, batch_size=args.batch_size, flip_p=0.5, device=device, amp=args.amp)

    for name in args.backbones:
        init = models.build(name, seed=0, **model_options(name, args.width)).state_dict()

        def fresh(name=name, init=init):
            m = models.build(name, **model_options(name, args.width))
            m.load_state_dict(init)
            return m

        fit_epoch(fresh(), images, labels, seed=0, **common)  # warm-up (allocator, kernels)
        times = {"fit": [], "bare": [], "fit+checkpoint": [], "bare NCHW": []}
        for rep in range(args.reps):
            order = ["fit", "bare", "fit+checkpoint", "bare NCHW"]
            for kind in (order if rep % 2 == 0 else order[::-1]):
                if kind == "bare":
                    t = bare_epoch(fresh(), images, labels, seed=rep, **common)
                elif kind == "bare NCHW":
                    t = bare_epoch(fresh(), images, labels, seed=rep, channels_last=False, **common)
                elif kind == "fit":
                    t = fit_epoch(fresh(), images, labels, seed=rep, **common)
                else:
                    with tempfile.TemporaryDirectory() as tmp:
                        t = fit_epoch(fresh(), images, labels, seed=rep, checkpoint_dir=tmp, **common)
                times[kind].append(t)
        med = {k: statistics.median(v) for k, v in times.items()}
        best = {k: min(v) for k, v in times.items()}
        ips = {k: args.n / v for k, v in med.items()}
        print(f"\n{name} (feature_dim {fresh().feature_dim}):")
        print(f"  seconds per epoch (fit, {args.n} images): median {med['fit']:.2f} s, best {best['fit']:.2f} s")
        for k in ("bare", "fit", "fit+checkpoint", "bare NCHW"):
            print(f"  {k:15s} median {ips[k]:7.1f} images/s, best {args.n / best[k]:7.1f} images/s   "
                  f"(epoch s: {', '.join(f'{t:.2f}' for t in times[k])})")
        for label, stat in (("median", med), ("best", best)):
            ratio = stat["bare"] / stat["fit"]  # throughput of fit relative to bare
            print(f"  {label:6s} throughput ratio fit / bare = {ratio:.3f} -> fit adds "
                  f"{100 * (1 / ratio - 1):+.1f} % time ({'within' if ratio >= 1 / 1.10 else 'OVER'} the 10 % goal); "
                  f"fit+checkpoint / bare = {stat['bare'] / stat['fit+checkpoint']:.3f}")
        print(f"  channels-last speed-up (bare, median): NCHW / channels-last time = "
              f"{med['bare NCHW'] / med['bare']:.2f}x")
    if not args.paper:
        overhead_per_batch(images, labels, args, common)
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    print(f"\nload average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
