"""One outer iteration of Algorithm 1 taken apart (distill/check.py): the losses before and after the inner
steps, the gradients, and ∂L/∂η against central finite differences, on a tiny network defined here."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from omnifer_lib.distill import InitSampler, outer_step, step_size_gradient_check, unrolled_loss


class TinyNet(nn.Module):
    """conv -> ReLU -> global mean -> linear: small, piecewise smooth like the real learners."""

    def __init__(self, num_classes: int = 3, width: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(F.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture
def problem(one_thread):
    """θ0 from p(θ0), three distilled images (one per class), two step sizes and a real batch of ten."""
    torch.manual_seed(0)
    model = TinyNet()
    theta0, buffers = InitSampler(model).sample(3)
    g = torch.Generator().manual_seed(0)
    return dict(model=model, theta0=theta0, buffers=buffers, images=torch.rand(3, 3, 6, 6, generator=g),
                labels=torch.arange(3), step_sizes=torch.tensor([0.3, 0.2]),
                real_images=torch.rand(10, 3, 6, 6, generator=g), real_labels=torch.randint(0, 3, (10,), generator=g))


def test_outer_step_measures_the_loss_before_and_after_the_inner_steps_and_its_gradients(problem):
    p = problem
    images, steps = p["images"].clone(), p["step_sizes"].clone()
    step = outer_step(p["model"], p["theta0"], p["buffers"], p["images"], p["labels"], p["step_sizes"],
                      p["real_images"], p["real_labels"])
    # before: θ0 itself on the real batch
    logits = torch.func.functional_call(p["model"], {**p["theta0"], **p["buffers"]}, (p["real_images"],))
    assert step.loss_before == pytest.approx(float(F.cross_entropy(logits, p["real_labels"])), rel=1e-6)
    after = unrolled_loss(p["model"], p["theta0"], p["images"], p["labels"], p["step_sizes"], p["real_images"],
                          p["real_labels"], buffers=p["buffers"])
    assert step.loss == pytest.approx(after.item(), rel=1e-6) and step.loss != step.loss_before
    assert step.grad_images.shape == (3, 3, 6, 6) and step.grad_step_sizes.shape == (2,)
    assert step.grad_images.abs().max() > 0 and step.grad_step_sizes.abs().max() > 0
    assert torch.equal(p["images"], images) and torch.equal(p["step_sizes"], steps)  # inputs untouched
    assert not p["images"].requires_grad


def test_step_size_gradient_check_agrees_with_autograd_in_double_precision(problem):
    p = problem
    rows = step_size_gradient_check(p["model"], p["theta0"], p["buffers"], p["images"], p["labels"],
                                    p["step_sizes"], p["real_images"], p["real_labels"])
    assert [r.step for r in rows] == [1, 2]
    assert [r.step_size for r in rows] == pytest.approx([0.3, 0.2])
    for r in rows:
        assert abs(r.autograd) > 1e-4  # a real, non-zero gradient
        assert r.relative_error < 1e-5
        assert r.relative_error == pytest.approx(abs(r.autograd - r.central) / abs(r.central))
        assert r.central_coarse == pytest.approx(r.autograd, rel=1e-2)
    # the float32 autograd of outer_step agrees with the double-precision one
    step = outer_step(p["model"], p["theta0"], p["buffers"], p["images"], p["labels"], p["step_sizes"],
                      p["real_images"], p["real_labels"])
    assert step.grad_step_sizes.tolist() == pytest.approx([r.autograd for r in rows], rel=1e-3)
    assert next(p["model"].parameters()).dtype == torch.float32  # the model itself stays float32


def test_step_size_gradient_check_without_a_coarse_step_and_with_a_bad_one(problem):
    p = problem
    args = (p["model"], p["theta0"], p["buffers"], p["images"], p["labels"], p["step_sizes"][:1],
            p["real_images"], p["real_labels"])
    rows = step_size_gradient_check(*args, coarse_eps=None)
    assert len(rows) == 1 and math.isnan(rows[0].central_coarse)
    with pytest.raises(ValueError, match="positive"):
        step_size_gradient_check(*args, eps=0.0)
