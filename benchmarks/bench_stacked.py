"""K learners that differ only by seed, trained one at a time against the same K trained as one
stacked network (:mod:`omnifer_lib.models.stacked`: grouped convolutions), measured in one run.

Both ways train the demo's learners from scratch on the demo's synthetic RAF-DB stand-in (2,000
training images at the demo profile's image size, 24 px since 08869d7, or ``--image-size``; 1,000
test images; the demo's recipe: SGD lr 0.02 with momentum 0.9 and weight decay 5e-4, batch 32, a
step of ×0.1 at the profile's ``lr_step``, horizontal flips; the profile's epochs unless
``--epochs``), with one CPU
thread, as the demo's ``train_threads: 1`` learners do. Learner k draws its minibatch order and
flips from seed k in both ways, so the two differ only in how the arithmetic is grouped: each
learner's accuracy must agree within the seeds' noise (the float order differs, as on another
machine), and the stacked row should be faster.

Printed: seconds of each way, their ratio, and per seed the test accuracy of each way with the
mean ± std over seeds and the difference of the means against its standard error.

Both ways run the same minimal training loop (no progress bars, checkpoints or evaluation passes
between epochs), so the ratio isolates the stacking; ``train.fit`` adds its own per-step costs to
both.

Usage::

    python benchmarks/bench_stacked.py [--seeds 3] [--epochs N] [--image-size PX] [--backbone resnet_small]
                                       [--width 16]

Run it on an otherwise idle machine; the ratio is the result, not the absolute seconds.
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import tempfile
import time
from typing import List, Tuple

import numpy as np
import torch
from torch import nn

from omnifer_lib import models
from omnifer_lib.engine import pipeline
from omnifer_lib.publish import config
from omnifer_lib.engine.provenance import machine, machine_text
from omnifer_lib.evaluate import as_tensors, evaluate, seed_statistics
from omnifer_lib.models.stacked import stack, unstack


def _schedule(epochs: int, steps: int, seed: int, n: int, batch: int) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Learner ``seed``'s minibatch indices and flip masks, epoch by epoch."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for s in range(steps):
            idx = order[s * batch:(s + 1) * batch]
            out.append((idx, torch.rand(len(idx), generator=g) < 0.5))
    return out


def _batch(x: torch.Tensor, idx: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    b = x[idx].clone()
    b[flip] = b[flip].flip(3)
    return b


def _optimizer(params, epochs: int, steps: int, lr_step: int):
    opt = torch.optim.SGD(params, lr=0.02, momentum=0.9, weight_decay=5e-4)
    return opt, (torch.optim.lr_scheduler.StepLR(opt, step_size=lr_step * steps, gamma=0.1)
                 if epochs > lr_step else None)


def one_at_a_time(learners, x, y, plans, steps, epochs, lr_step) -> float:
    start = time.perf_counter()
    for model, plan in zip(learners, plans):
        model.train()
        opt, sched = _optimizer(model.parameters(), epochs, steps, lr_step)
        for idx, flip in plan:
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(_batch(x, idx, flip)), y[idx]).backward()
            opt.step()
            if sched:
                sched.step()
    return time.perf_counter() - start


def stacked_together(learners, x, y, plans, steps, epochs, lr_step) -> Tuple[float, list]:
    net = stack(learners)
    net.train()
    opt, sched = _optimizer(net.parameters(), epochs, steps, lr_step)
    start = time.perf_counter()
    for step in zip(*plans):
        images = torch.stack([_batch(x, idx, flip) for idx, flip in step])
        labels = [y[idx] for idx, _ in step]
        opt.zero_grad(set_to_none=True)
        logits = net(images)
        sum(nn.functional.cross_entropy(logits[k], labels[k]) for k in range(len(labels))).backward()
        opt.step()
        if sched:
            sched.step()
    seconds = time.perf_counter() - start
    for model, state in zip(learners, unstack(net)):
        model.load_state_dict(state)
    return seconds, learners


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="default: the demo profile's")
    parser.add_argument("--image-size", type=int, default=None, help="default: the demo profile's")
    parser.add_argument("--backbone", default="resnet_small")
    parser.add_argument("--width", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("OMNIFER_PROGRESS", "0")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["OMNIFER_CACHE"] = cache
        params = config.load_profile("demo", {"image_size": args.image_size} if args.image_size else {})
        train_x, train_y = as_tensors(pipeline.dataset(params, "rafdb", "train"))
        test_x, test_y = as_tensors(pipeline.dataset(params, "rafdb", "test"))
    batch = int(params["batch_size"])
    args.epochs = args.epochs or int(params["epochs"])
    lr_step = int(params["lr_step"])
    steps = len(train_x) // batch
    plans = [_schedule(args.epochs, steps, seed, len(train_x), batch) for seed in range(args.seeds)]

    def fresh():
        return [models.reinitialize(models.build(args.backbone, width=args.width), seed) for seed in range(args.seeds)]

    print(f"{datetime.date.today()} · {machine_text(machine())}")
    print(f"{args.seeds} {args.backbone} learners (width {args.width}) × {args.epochs} epochs × {steps} steps "
          f"of {batch} on the demo's RAF-DB stand-in ({len(train_x)} images, {tuple(train_x.shape[2:])} px)")
    alone = fresh()
    t_alone = one_at_a_time(alone, train_x, train_y, plans, steps, args.epochs, lr_step)
    t_stacked, together = stacked_together(fresh(), train_x, train_y, plans, steps, args.epochs, lr_step)
    print(f"one at a time: {t_alone:8.1f} s")
    print(f"stacked:       {t_stacked:8.1f} s   speed-up ×{t_alone / t_stacked:.2f}")
    a = [evaluate(m, (test_x, test_y), progress=False)["accuracy"] for m in alone]
    b = [evaluate(m, (test_x, test_y), progress=False)["accuracy"] for m in together]
    print("\nseed  one at a time  stacked   (test accuracy, %)")
    for seed, (u, v) in enumerate(zip(a, b)):
        print(f"{seed:4d}  {u:13.1f}  {v:7.1f}")
    sa, sb = seed_statistics(a), seed_statistics(b)
    se = math.sqrt((sa.std ** 2 + sb.std ** 2) / args.seeds) if args.seeds > 1 else float("nan")
    print(f"mean  {sa.text(1):>13}  {sb.text(1)}")
    print(f"difference of the means {sb.mean - sa.mean:+.2f}, standard error {se:.2f}; largest per-seed gap "
          f"{np.max(np.abs(np.subtract(a, b))):.2f}")


if __name__ == "__main__":
    main()
