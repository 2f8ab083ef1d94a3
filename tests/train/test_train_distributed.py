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


def test_the_batchnorm_layers_sync_batchnorm_replaced_are_put_back_with_what_they_learned():
    from omnifer_lib.train import _batchnorm_layers, _put_back

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Sequential(nn.BatchNorm2d(4)))
    originals = _batchnorm_layers(model)
    nn.SyncBatchNorm.convert_sync_batchnorm(model)  # what fit does with sync_batchnorm=True
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in model.modules()) == 2
    with torch.no_grad():  # as training would: new weights and statistics in the layers now there
        for m in model.modules():
            if isinstance(m, nn.SyncBatchNorm):
                m.weight.add_(1.0)
                m.running_mean.add_(0.5)
    learned = {k: v.clone() for k, v in model.state_dict().items()}
    _put_back(model, originals)
    assert [type(m) for m in model.modules()].count(nn.BatchNorm2d) == 2
    assert model[1] is originals["1"] and model[3][0] is originals["3.0"]  # the very layers, not copies
    assert all(torch.equal(v, learned[k]) for k, v in model.state_dict().items())


def _sync_batchnorm_on_the_cpu(rank: int, world: int, init_file: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        fit(NoBatchStatsNet(), data(), distributed=True, sync_batchnorm=True, **FIT)
    finally:
        torch.distributed.destroy_process_group()


def test_sync_batchnorm_on_the_cpu_says_it_needs_cuda(tmp_path):
    with pytest.raises(mp.ProcessRaisedException, match="sync_batchnorm=True needs CUDA"):
        mp.spawn(_sync_batchnorm_on_the_cpu, args=(2, str(tmp_path / "init")), nprocs=2, join=True)


def test_a_checkpoint_of_another_world_size_is_started_over_not_continued(tmp_path):
    state, history = _one_process(checkpoint_dir=str(tmp_path / "ck"))
    ck = torch.load(tmp_path / "ck" / "fit.pt", weights_only=True)
    ck["fingerprint"].update(world_size=2, sync_batchnorm=False)  # as a two-rank run would have left it
    ck["epoch"], ck["history"] = 1, ck["history"][:1]
    torch.save(ck, tmp_path / "ck" / "fit.pt")
    again_state, again = _one_process(checkpoint_dir=str(tmp_path / "ck"))
    assert [h["loss"] for h in again] == [h["loss"] for h in history]  # all epochs trained afresh
    assert all(torch.equal(again_state[k], v) for k, v in state.items())
    ck["fingerprint"].update(lr=1.0)  # any other difference still stops with the reason
    torch.save(ck, tmp_path / "ck" / "fit.pt")
    with pytest.raises(ValueError, match="other settings"):
        _one_process(checkpoint_dir=str(tmp_path / "ck"))
