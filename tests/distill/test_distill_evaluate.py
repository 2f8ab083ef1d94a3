"""Several distilled sets judged by one protocol (distill/evaluate.py: compare_distilled, with_step_sizes)."""
from __future__ import annotations

import pytest
import torch

from test_distill_check import TinyNet  # the same small net as the ∂L/∂η check

from omnifer_lib.distill import (compare_distilled, evaluate_learned, evaluate_sgd, mean_image, random_real,
                                 with_step_sizes)


def separable(per_class: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = 0.4 + 0.2 * torch.rand(3 * per_class, 3, 6, 6, generator=g)
    y = torch.arange(3).repeat_interleave(per_class)
    for k in range(3):
        x[y == k, k] += 0.35
    return x.clamp(0, 1), y


def test_compare_distilled_evaluates_every_set_every_way_with_one_protocol(one_thread):
    x, y = separable(10, 0)
    xt, yt = separable(8, 1)
    model = TinyNet()
    rr = random_real(x, y, images_per_class=1, num_classes=3)
    mean = mean_image(x, y, images_per_class=1, num_classes=3)
    protocol = dict(inits=2, seed=5, init_scope="all", fixed_init=False)
    evals = compare_distilled([("random real", rr), ("mean image", mean)], model, xt, yt, sgd_epochs=3, sgd_lr=0.05,
                              **protocol)
    assert [(name, ev.mode) for name, ev in evals] == [("random real", "learned"), ("random real", "sgd"),
                                                      ("mean image", "learned"), ("mean image", "sgd")]
    assert evals[0][1].accuracies == evaluate_learned(rr, model, xt, yt, **protocol).accuracies
    assert evals[3][1].accuracies == evaluate_sgd(mean, model, xt, yt, epochs=3, lr=0.05, **protocol).accuracies
    assert all(len(ev.accuracies) == 2 and ev.config["seed"] == 5 for _, ev in evals)
    only = compare_distilled([("random real", rr)], model, xt, yt, ways=("sgd",), sgd_epochs=3, sgd_lr=0.05,
                             **protocol)
    assert [ev.mode for _, ev in only] == ["sgd"] and only[0][1].accuracies == evals[1][1].accuracies
    with pytest.raises(ValueError, match="ways"):
        compare_distilled([("random real", rr)], model, xt, yt, ways=("adam",))


def test_with_step_sizes_gives_a_set_other_step_sizes_as_a_copy():
    x, y = separable(4, 0)
    rr = random_real(x, y, images_per_class=1, num_classes=3)
    eta = torch.tensor([0.5, 0.25])
    other = with_step_sizes(rr, eta)
    eta[0] = 9.0
    assert other.step_sizes.tolist() == [0.5, 0.25] and other.inner_steps == 2
    assert other.images is rr.images and rr.step_sizes.shape == (1,)  # the original keeps its own
