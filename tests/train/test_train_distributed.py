"""``fit(distributed=True)`` under torch.distributed (gloo on the CPU, processes started with
``torch.multiprocessing.spawn``): two ranks train what one process trains on the same global
minibatches, a world of one is ``fit`` itself, and a run whose rank died resumes from rank 0's
checkpoint and finishes as the uninterrupted run does."""
from __future__ import annotations

import datetime
import os

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from omnifer_lib.train import DAS, fit

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with the gloo backend is not available in this torch build")

K = 7
#: 69 images at a global minibatch of 16: the last minibatch has 5, dealt 3 + 2 (the loss scaling matters).
FIT = dict(epochs=3, lr=0.05, lr_step=2, momentum=0.9, weight_decay=1e-4, batch_size=16, flip_p=0.5, seed=3,
           device="cpu", progress=False)


class NoBatchStatsNet(nn.Module):
    """A small CNN without BatchNorm or dropout: what each sample contributes to the gradient does
    not depend on which rank's share of the minibatch it is in."""

    num_classes = K

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Linear(32, K)

    def forward(self, x):
        return self.head(self.body(x))


def data():
    g = torch.Generator().manual_seed(1)
    return torch.rand(69, 3, 8, 8, generator=g), torch.arange(69) % K


def das():
    return DAS(torch.rand(K, 3, 8, 8, generator=torch.Generator().manual_seed(2)), torch.arange(K))


def _rank(rank: int, world: int, init_file: str, out: str, kwargs: dict, die_after_epoch: int) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                                         timeout=datetime.timedelta(seconds=60))
    try:
        model = NoBatchStatsNet()

        def die(record):
            if rank == world - 1 and record["epoch"] == die_after_epoch:
                os._exit(3)  # as a killed process: no clean-up, no exception

        history = fit(model, data(), distributed=True, callback=die, **kwargs)
        torch.save({"state": model.state_dict(), "history": history}, f"{out}-{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def _launch(tmp_path, name: str, world: int = 2, die_after_epoch: int = 0, **kwargs) -> list:
    out = str(tmp_path / name)
    mp.spawn(_rank, args=(world, str(tmp_path / f"{name}.init"), out, {**FIT, **kwargs}, die_after_epoch),
             nprocs=world, join=True)
    return [torch.load(f"{out}-{r}.pt", weights_only=True) for r in range(world)]


def _one_process(**kwargs):
    torch.set_num_threads(1)
    model = NoBatchStatsNet()
    history = fit(model, data(), **{**FIT, **kwargs})
    return model.state_dict(), history


@pytest.mark.parametrize("strategy", [None, "minibatch"])
def test_two_ranks_train_what_one_process_trains_on_the_same_global_minibatches(tmp_path, strategy):
    extra = {} if strategy is None else {"das": das(), "das_strategy": strategy, "das_weight": 0.5}
    ranks = _launch(tmp_path, f"two-{strategy}", **extra)
    state, history = _one_process(**extra)
    for name, value in state.items():
        assert torch.equal(ranks[0]["state"][name], ranks[1]["state"][name]), f"ranks disagree on {name}"
        torch.testing.assert_close(ranks[0]["state"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    for mine, theirs in zip(ranks[0]["history"], history):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
        assert mine["train_accuracy"] == pytest.approx(theirs["train_accuracy"])  # counted over both ranks


def test_a_world_of_one_is_fit_itself(tmp_path):
    (rank0,) = _launch(tmp_path, "one", world=1)
    state, history = _one_process()
    for name, value in state.items():
        assert torch.equal(rank0["state"][name], value), name
    assert [h["loss"] for h in rank0["history"]] == [h["loss"] for h in history]


def test_a_rank_that_died_is_resumed_from_the_checkpoint_and_finishes_as_the_uninterrupted_run(tmp_path):
    whole = _launch(tmp_path, "whole", checkpoint_dir=str(tmp_path / "ck-whole"))
    # spawn reports the dead process and stops the other
    with pytest.raises((mp.ProcessExitedException, mp.ProcessRaisedException)):
        _launch(tmp_path, "killed", die_after_epoch=2, checkpoint_dir=str(tmp_path / "ck"))
    checkpoint = torch.load(tmp_path / "ck" / "fit.pt", weights_only=True)
    assert checkpoint["epoch"] == 2
    resumed = _launch(tmp_path, "resumed", checkpoint_dir=str(tmp_path / "ck"))
    for name, value in whole[0]["state"].items():
        assert torch.equal(resumed[0]["state"][name], value), name
    assert [h["loss"] for h in resumed[0]["history"]] == [h["loss"] for h in whole[0]["history"]]


def test_distributed_without_a_process_group_says_how_to_start_one():
    with pytest.raises(RuntimeError, match="torchrun"):
        fit(NoBatchStatsNet(), data(), distributed=True, **FIT)
