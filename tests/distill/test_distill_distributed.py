"""Algorithm 1 with its K initialisations split over two ranks (gloo on the CPU, processes started
with ``torch.multiprocessing.spawn``): the summed gradients are the single-process gradients, the
distilled images and step sizes are the single-process ones, a world of one is ``distill`` itself,
and a run whose rank died resumes from rank 0's checkpoint."""
from __future__ import annotations

import datetime
import os

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from omnifer_lib.distill import DistillConfig, distill
from omnifer_lib.distill import algorithm as A
from omnifer_lib.distill.functional import InitSampler

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with the gloo backend is not available in this torch build")

C = 3
CFG = dict(images_per_class=2, num_classes=C, iterations=4, inits=4, inner_steps=2, lr=0.05, eta_lr=0.05,
           eta0=0.05, real_batch=24, seed=5, checkpoint_every=2)


class ConvBN(nn.Module):
    """conv -> BatchNorm -> ReLU -> global mean -> linear (the BatchNorm uses x̃'s own statistics)."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Linear(4, C)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def real():
    g = torch.Generator().manual_seed(0)
    return torch.rand(60, 3, 6, 6, generator=g), torch.arange(60) % C


def _rank(rank, world, init_file, out, task, kwargs):
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                                         timeout=datetime.timedelta(seconds=60))
    try:
        if task == "gradient":
            torch.save(_gradient((rank, world)), f"{out}-{rank}.pt")
            return
        die_at, checkpoint = kwargs.pop("die_at", 0), kwargs.pop("checkpoint", None)

        def die(done, _loss):
            if rank == world - 1 and done == die_at:
                os._exit(3)

        result = distill(ConvBN(), *real(), DistillConfig(**{**CFG, **kwargs}), device="cpu", distributed=True,
                         callback=die, show_progress=False, checkpoint=checkpoint)
        torch.save({"images": result.images, "step_sizes": result.step_sizes, "loss": result.loss_history},
                   f"{out}-{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def _gradient(part):
    """The gradient on x̃ and log η of outer iteration 0, summed over the ranks when ``part`` has two."""
    cfg = DistillConfig(**CFG)
    net = ConvBN()
    x, y = real()
    syn = x[: C * cfg.images_per_class].clone().requires_grad_(True)
    log_eta = torch.full((cfg.inner_steps,), -3.0).requires_grad_(True)
    labels = torch.arange(C).repeat_interleave(cfg.images_per_class)
    inits = A._inits_for(0, cfg, InitSampler(net), None, part)
    loss = A._outer_gradient(net, inits, syn, labels, log_eta, x[:24], y[:24], cfg)
    if part[1] > 1:
        loss = A._sum_over_ranks(syn, log_eta, loss, part[1])
    return {"syn": syn.grad, "log_eta": log_eta.grad, "loss": loss}


def _launch(tmp_path, name, task="distill", world=2, **kwargs):
    out = str(tmp_path / name)
    mp.spawn(_rank, args=(world, str(tmp_path / f"{name}.init"), out, task, kwargs), nprocs=world, join=True)
    return [torch.load(f"{out}-{r}.pt", weights_only=True) for r in range(world)]


def _one_process(**kwargs):
    torch.set_num_threads(1)
    return distill(ConvBN(), *real(), DistillConfig(**{**CFG, **kwargs}), device="cpu", show_progress=False)


def test_the_gradients_summed_over_two_ranks_are_the_single_process_gradients(tmp_path):
    ranks = _launch(tmp_path, "gradient", task="gradient")
    single = _gradient((0, 1))
    for name in ("syn", "log_eta"):
        assert torch.equal(ranks[0][name], ranks[1][name])
        torch.testing.assert_close(ranks[0][name], single[name], rtol=1e-5, atol=1e-7)
    assert ranks[0]["loss"] == pytest.approx(single["loss"], rel=1e-6)


def test_two_ranks_distil_what_one_process_distils(tmp_path):
    ranks = _launch(tmp_path, "two")
    single = _one_process()
    assert torch.equal(ranks[0]["images"], ranks[1]["images"])
    torch.testing.assert_close(ranks[0]["images"], single.images, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ranks[0]["step_sizes"], single.step_sizes, rtol=1e-4, atol=1e-7)
    assert ranks[0]["loss"] == pytest.approx(single.loss_history, rel=1e-4)


def test_a_world_of_one_is_distill_itself(tmp_path):
    (rank0,) = _launch(tmp_path, "one", world=1)
    single = _one_process()
    assert torch.equal(rank0["images"], single.images) and torch.equal(rank0["step_sizes"], single.step_sizes)
    assert rank0["loss"] == single.loss_history


def test_a_rank_that_died_is_resumed_from_the_checkpoint(tmp_path):
    whole = _launch(tmp_path, "whole", checkpoint=str(tmp_path / "whole.pt"))
    # spawn reports the dead process and stops the other
    with pytest.raises((mp.ProcessExitedException, mp.ProcessRaisedException)):
        _launch(tmp_path, "killed", die_at=3, checkpoint=str(tmp_path / "ck.pt"))
    assert torch.load(tmp_path / "ck.pt", weights_only=True)["iteration"] == 2
    resumed = _launch(tmp_path, "resumed", checkpoint=str(tmp_path / "ck.pt"))
    assert torch.equal(resumed[0]["images"], whole[0]["images"])
    assert resumed[0]["loss"] == whole[0]["loss"]
