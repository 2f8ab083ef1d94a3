"""One outer iteration of Algorithm 1 taken apart, and a check of its gradient w.r.t. the step sizes η.

* :func:`outer_step` -- for one θ0 and one real batch x_t: the outer loss before the inner steps
  (η = 0, the loss of θ0 itself) and after them, L = l(x_t, θ_S), and the gradients ∂L/∂x̃ and
  ∂L/∂η that line 6 of Algorithm 1 follows (through the inner steps: a second-order derivative).
* :func:`step_size_gradient_check` -- ∂L/∂η by autograd beside central finite differences
  ``(L(η + ε e_s) − L(η − ε e_s)) / 2ε``, in double precision. ReLU and max-pooling make L only
  piecewise smooth, so a difference quotient whose ε straddles a kink measures a mixture of two
  slopes: a small ε (default 1e-7) rarely crosses one, a coarse ε (default 1e-4) shows what a
  careless check would report.

Both are pure functions of their arguments: the model's own tensors are not modified.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import List, Mapping, Optional

import torch
from torch import Tensor, nn

from .functional import unrolled_loss


@dataclass
class OuterStep:
    """One outer iteration of Algorithm 1 for one θ0, measured.

    Attributes:
        loss_before: the outer loss with η = 0 (no inner step: θ0 itself on the real batch).
        loss: L = l(x_t, θ_S) after the S inner steps on the distilled images.
        grad_images: ∂L/∂x̃, the shape of the distilled images ``(n·C, 3, H, W)``.
        grad_step_sizes: ∂L/∂η ``(S,)``, one per inner step.
    """

    loss_before: float
    loss: float
    grad_images: Tensor
    grad_step_sizes: Tensor


def outer_step(model: nn.Module, theta0: Mapping[str, Tensor], buffers: Mapping[str, Tensor], images: Tensor,
               labels: Tensor, step_sizes: Tensor, real_images: Tensor, real_labels: Tensor, *,
               bn_stats: str = "synthetic") -> OuterStep:
    """Algorithm 1's outer loss for θ0 (``theta0``, with ``buffers``) on the real batch ``real_images``
    ``(M, 3, H, W)`` / ``real_labels`` ``(M,)``, before and after the inner steps on the distilled images
    ``images`` ``(n·C, 3, H, W)`` / ``labels`` ``(n·C,)`` with step sizes ``step_sizes`` ``(S,)``, and
    the gradient of the latter w.r.t. the images and the step sizes. All tensors on one device;
    ``images`` and ``step_sizes`` are copied, never modified. ``bn_stats``: as in
    :func:`~omnifer_lib.distill.unrolled_loss`."""
    x_syn = images.clone().requires_grad_(True)
    eta = step_sizes.clone().requires_grad_(True)
    loss = unrolled_loss(model, theta0, x_syn, labels, eta, real_images, real_labels, buffers=buffers,
                         bn_stats=bn_stats)
    grad_x, grad_eta = torch.autograd.grad(loss, [x_syn, eta])
    with torch.no_grad():  # η = 0: no inner step, the loss of θ0 itself
        before = unrolled_loss(model, theta0, x_syn, labels, torch.zeros_like(eta), real_images, real_labels,
                               buffers=buffers, bn_stats=bn_stats)
    return OuterStep(float(before), loss.item(), grad_x, grad_eta)


@dataclass
class StepSizeGradient:
    """∂L/∂η_s of one inner step s, by autograd and by central differences (double precision).

    Attributes:
        step: s, counted from 1.
        step_size: η_s.
        autograd: ∂L/∂η_s by autograd.
        central: the central difference with the small ε.
        relative_error: ``|autograd − central| / max(|central|, 1e-12)``.
        central_coarse: the central difference with the coarse ε (nan when none was asked for).
    """

    step: int
    step_size: float
    autograd: float
    central: float
    relative_error: float
    central_coarse: float


def _to_double(tensors: Mapping[str, Tensor]) -> dict:
    return {k: (v.double() if v.is_floating_point() else v) for k, v in tensors.items()}


def step_size_gradient_check(model: nn.Module, theta0: Mapping[str, Tensor], buffers: Mapping[str, Tensor],
                             images: Tensor, labels: Tensor, step_sizes: Tensor, real_images: Tensor,
                             real_labels: Tensor, *, eps: float = 1e-7, coarse_eps: Optional[float] = 1e-4,
                             bn_stats: str = "synthetic") -> List[StepSizeGradient]:
    """∂L/∂η of Algorithm 1's outer loss (:func:`~omnifer_lib.distill.unrolled_loss`, arguments as in
    :func:`outer_step`) by autograd beside central finite differences with ``eps`` (and ``coarse_eps``,
    unless None), everything in float64 (a double copy of ``model``; the arguments are not modified).

    Returns one :class:`StepSizeGradient` per inner step, in order."""
    if not eps > 0 or (coarse_eps is not None and not coarse_eps > 0):
        raise ValueError(f"finite-difference steps must be positive, got eps={eps!r}, coarse_eps={coarse_eps!r}")
    m64 = copy.deepcopy(model).double()
    th64, bf64 = _to_double(theta0), _to_double(buffers)
    xs64, xt64, eta64 = images.detach().double(), real_images.double(), step_sizes.detach().double()

    def loss64(e: Tensor) -> Tensor:
        return unrolled_loss(m64, th64, xs64, labels, e, xt64, real_labels, buffers=bf64, bn_stats=bn_stats)

    def central(s: int, h: float) -> float:
        step = torch.zeros_like(eta64)
        step[s] = h
        return ((loss64(eta64 + step) - loss64(eta64 - step)) / (2 * h)).item()

    leaf = eta64.clone().requires_grad_(True)
    auto = torch.autograd.grad(loss64(leaf), leaf)[0].detach()
    rows = []
    for s in range(eta64.numel()):
        fd, a = central(s, eps), auto[s].item()
        rows.append(StepSizeGradient(s + 1, eta64[s].item(), a, fd, abs(a - fd) / max(abs(fd), 1e-12),
                                     central(s, coarse_eps) if coarse_eps is not None else float("nan")))
    return rows
