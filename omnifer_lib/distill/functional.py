"""Functional core of Algorithm 1: one unrolled inner optimisation and its outer loss.

A network is evaluated as ``torch.func.functional_call(model, {params, buffers}, x)`` so that
the same module can run with many weight sets (the sampled initial weights θ0^j and the
weights θ_t reached after t inner steps) without ever touching the module's own tensors.

BatchNorm (the decision, used everywhere in :mod:`omnifer_lib.distill`)
-----------------------------------------------------------------------
A learner trained on the distilled auxiliary samples (DAS) x̃ alone sees no other data, so
the only statistics it can normalise with are those of x̃. Hence, with the default
``bn_stats="synthetic"``:

* inner steps normalise x̃ with its own batch statistics (BatchNorm in training mode), as
  ordinary training on x̃ would;
* the outer step forwards the real batch with BatchNorm in evaluation mode whose running
  mean and (biased) variance are the batch statistics of x̃ under the final weights θ_T,
  i.e. exactly the statistics that running averages over x̃ converge to. These statistics
  are differentiable functions of x̃, so the outer loss sees their effect too. The real
  samples are then normalised independently of each other, as at test time, and the learner
  evaluated after training on x̃ (see :mod:`omnifer_lib.distill.evaluate`) computes the
  very function the outer loss was measured on.

``bn_stats="batch"`` is the common alternative (BatchNorm in training mode in both steps: the
outer step normalises the real batch by its own statistics). It needs batch statistics of
test data at evaluation time (transductive), which is why it is not the default.

``bn_stats="running"`` keeps BatchNorm in evaluation mode in both steps, normalising with the
running statistics that come with θ0. This is right when θ0 is a *trained* network (the
primitive learner with ``fixed_init``, or a trained backbone whose head alone is sampled):
its statistics describe real faces, and a handful of distilled images should not replace
them (the usual practice of freezing BatchNorm when fine-tuning on tiny batches). For θ0
freshly drawn from an initialiser the running statistics are the meaningless (0, 1), so
there ``"synthetic"`` is used. ``distill``'s default ``"auto"`` picks between the two.

In all modes the module's running-statistics buffers are never mutated: every call gets
throw-away copies, so no hidden state leaks between sampled initialisations, and the outer
loss is a pure function of (θ0, x̃, η, real batch). Dropout layers are switched off in all
functional calls (evaluation mode), which keeps the unrolled loss deterministic.
BatchNorm layers built with ``track_running_stats=False`` always use batch statistics.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from ..seeds import torch_seeded

BN_STATS_MODES = ("synthetic", "batch", "running")
ParamDict = Dict[str, Tensor]


# --------------------------------------------------------------------------- state handling
def split_state(model: nn.Module) -> Tuple[ParamDict, ParamDict]:
    """``(params, buffers)`` of ``model`` as detached name -> tensor dicts (no copies)."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    return params, buffers


def _batchnorm_modules(model: nn.Module) -> List[Tuple[str, nn.modules.batchnorm._BatchNorm]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` contains any BatchNorm layer."""
    return bool(_batchnorm_modules(model))


@contextlib.contextmanager
def _modes(model: nn.Module, bn_training: bool) -> Iterator[None]:
    """Evaluation mode for everything (no dropout), BatchNorm in training mode if asked;
    restores every module's own flag afterwards."""
    saved = [(m, m.training) for m in model.modules()]
    model.eval()
    if bn_training:
        for _, m in _batchnorm_modules(model):
            m.train()
    try:
        yield
    finally:
        for m, flag in saved:
            m.training = flag


def _throwaway(buffers: Mapping[str, Tensor]) -> ParamDict:
    # BatchNorm in training mode updates running stats in place: give it copies.
    return {n: b.clone() for n, b in buffers.items()}


def _check_bn_stats(bn_stats: str) -> None:
    if bn_stats not in BN_STATS_MODES:
        raise ValueError(f"bn_stats must be one of {BN_STATS_MODES}, got {bn_stats!r}")


# --------------------------------------------------------------------------- forwards
def forward_batch_stats(model: nn.Module, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor],
                        x: Tensor) -> Tensor:
    """Logits ``(B, classes)`` of ``x`` ``(B, 3, H, W)`` under ``params``, BatchNorm normalising
    with the batch's own statistics (buffers untouched)."""
    with _modes(model, bn_training=True):
        return functional_call(model, {**params, **_throwaway(buffers)}, (x,))


def forward_running_stats(model: nn.Module, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor],
                          x: Tensor) -> Tensor:
    """Logits of ``x`` with BatchNorm in evaluation mode on the running statistics in ``buffers``."""
    with _modes(model, bn_training=False):
        return functional_call(model, {**params, **buffers}, (x,))


def batchnorm_statistics(model: nn.Module, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor],
                         x: Tensor) -> Dict[str, Tuple[Tensor, Tensor]]:
    """Batch statistics of ``x`` at every BatchNorm layer (that tracks running statistics)
    under ``params``: ``{layer name: (mean (C,), biased variance (C,))}``, the values
    training-mode BatchNorm normalises ``x`` with. Differentiable w.r.t. ``x`` and ``params``."""
    stats: Dict[str, Tuple[Tensor, Tensor]] = {}
    hooks = []

    def hook_for(name: str) -> Callable:
        def hook(module: nn.Module, inputs: Tuple[Tensor, ...]) -> None:
            inp = inputs[0]
            dims = [0] + list(range(2, inp.dim()))
            stats[name] = (inp.mean(dim=dims), inp.var(dim=dims, unbiased=False))
        return hook

    for name, module in _batchnorm_modules(model):
        if module.track_running_stats:
            hooks.append(module.register_forward_pre_hook(hook_for(name)))
    try:
        forward_batch_stats(model, params, buffers, x)
    finally:
        for h in hooks:
            h.remove()
    return stats


def forward_with_stats(model: nn.Module, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor],
                       x: Tensor, stats: Mapping[str, Tuple[Tensor, Tensor]]) -> Tensor:
    """Logits of ``x`` with each BatchNorm layer named in ``stats`` (from
    :func:`batchnorm_statistics`) normalising with those fixed statistics, as evaluation-mode
    BatchNorm does with running statistics; each sample is normalised independently of the
    rest of the batch.

    The normalisation is recomputed in a forward hook because PyTorch's batch-norm kernel
    does not differentiate w.r.t. running statistics, and these statistics depend on x̃.
    """
    hooks = []

    def hook_for(name: str) -> Callable:
        mean, var = stats[name]

        def hook(module: nn.Module, inputs: Tuple[Tensor, ...], output: Tensor) -> Tensor:
            inp = inputs[0]
            shape = [1, -1] + [1] * (inp.dim() - 2)
            y = (inp - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + module.eps)
            if module.affine:
                y = y * module.weight.reshape(shape) + module.bias.reshape(shape)
            return y
        return hook

    for name, module in _batchnorm_modules(model):
        if name in stats:
            hooks.append(module.register_forward_hook(hook_for(name)))
    try:
        with _modes(model, bn_training=False):
            return functional_call(model, {**params, **_throwaway(buffers)}, (x,))
    finally:
        for h in hooks:
            h.remove()


def forward_trained(model: nn.Module, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor],
                    x: Tensor, syn_images: Tensor, bn_stats: str = "synthetic") -> Tensor:
    """Logits of ``x`` for a learner with weights ``params`` that was trained on ``syn_images``,
    normalised as documented in the module docstring (``bn_stats``)."""
    _check_bn_stats(bn_stats)
    if bn_stats == "running":
        return forward_running_stats(model, params, buffers, x)
    if bn_stats == "batch" or not has_batchnorm(model):
        return forward_batch_stats(model, params, buffers, x)
    stats = batchnorm_statistics(model, params, buffers, syn_images)
    return forward_with_stats(model, params, buffers, x, stats)


# --------------------------------------------------------------------------- Algorithm 1
def inner_steps(model: nn.Module, init_params: Mapping[str, Tensor], buffers: Mapping[str, Tensor],
                syn_images: Tensor, syn_labels: Tensor, step_sizes: Tensor, *,
                create_graph: bool = True, bn_stats: str = "synthetic") -> ParamDict:
    """θ_T from θ_0 by T = ``len(step_sizes)`` gradient steps on the distilled images
    (Algorithm 1, line 6): ``θ_{t+1} = θ_t − η_t ∇_θ l̆(x̃, θ_t)``.

    Every inner step uses all of ``syn_images`` ``(n·C, 3, H, W)`` as one batch, with
    cross-entropy on ``syn_labels`` ``(n·C,)``; BatchNorm normalises x̃ with its batch statistics
    (with the running statistics in ``buffers`` when ``bn_stats="running"``). With
    ``create_graph=True`` the result is a
    differentiable function of ``syn_images``, ``step_sizes`` ``(T,)`` and ``init_params``;
    with ``False`` the steps are plain (used to evaluate a distilled set).
    """
    steps = _as_step_vector(step_sizes)
    names = list(init_params)
    # θ0 is data here, not something learned: fresh leaves let autograd.grad differentiate the
    # inner loss w.r.t. them without ever writing .grad into the caller's tensors.
    params = {n: init_params[n].detach().requires_grad_(True) for n in names}
    # Gradients w.r.t. θ_t are needed even when the caller runs under no_grad (e.g. evaluation).
    with torch.enable_grad():
        for t in range(steps.shape[0]):
            if bn_stats == "running":
                logits = forward_running_stats(model, params, buffers, syn_images)
            else:
                logits = forward_batch_stats(model, params, buffers, syn_images)
            loss = F.cross_entropy(logits, syn_labels)
            grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=create_graph,
                                        allow_unused=True)
            new = {}
            for n, g in zip(names, grads):
                if g is None:  # a parameter the forward does not use stays where it is
                    new[n] = params[n]
                elif create_graph:
                    new[n] = params[n] - steps[t] * g
                else:
                    new[n] = (params[n] - steps[t].detach() * g).detach().requires_grad_(True)
            params = new
    return params


def unrolled_loss(model: nn.Module, init_params: Mapping[str, Tensor], syn_images: Tensor,
                  syn_labels: Tensor, step_sizes: Tensor, real_images: Tensor, real_labels: Tensor, *,
                  buffers: Optional[Mapping[str, Tensor]] = None, bn_stats: str = "synthetic") -> Tensor:
    """The outer loss L = l(x_t, θ_T) of Algorithm 1 for one initialisation θ0 (a scalar).

    Args:
        model: the network whose architecture is used; its own tensors are not read unless
            ``buffers`` is None (then its buffers are used, never modified).
        init_params: θ0, name -> tensor for every parameter of ``model`` (e.g. from
            :class:`InitSampler` or :func:`split_state`).
        syn_images: distilled images x̃ ``(n·C, 3, H, W)``.
        syn_labels: their fixed labels ``(n·C,)`` (int64).
        step_sizes: learned step sizes η ``(T,)`` (positive; T = number of inner steps).
        real_images: the real batch x_t of auxiliary samples ``(M, 3, H, W)``.
        real_labels: its (pseudo-)labels ``(M,)``.
        buffers: buffer values (BatchNorm running statistics) to start from; copies are used.
        bn_stats: ``"synthetic"`` (default), ``"batch"`` or ``"running"``; see the module docstring.

    Returns:
        Mean cross-entropy of ``model`` with weights θ_T on the real batch, differentiable
        w.r.t. ``syn_images`` and ``step_sizes``.
    """
    _check_bn_stats(bn_stats)
    if buffers is None:
        buffers = dict(model.named_buffers())
    missing = set(n for n, _ in model.named_parameters()) - set(init_params)
    if missing:
        raise ValueError(f"init_params lacks parameters {sorted(missing)[:5]}...; expected one "
                         "tensor per name in model.named_parameters()")
    theta_t = inner_steps(model, init_params, buffers, syn_images, syn_labels, step_sizes, bn_stats=bn_stats)
    logits = forward_trained(model, theta_t, buffers, real_images, syn_images, bn_stats)
    return F.cross_entropy(logits, real_labels)


def _as_step_vector(step_sizes: Tensor) -> Tensor:
    steps = step_sizes if torch.is_tensor(step_sizes) else torch.as_tensor(step_sizes)
    if steps.dim() == 0:
        steps = steps.reshape(1)
    if steps.dim() != 1 or steps.shape[0] < 1:
        raise ValueError(f"step_sizes must be a 1-d tensor of T >= 1 step sizes, got shape {tuple(steps.shape)}")
    return steps


# --------------------------------------------------------------------------- θ0 ~ p(θ)
INIT_SCOPES = ("all", "head")


class InitSampler:
    """Samples initial weights θ0 from p(θ0), the initialiser of ``model``'s family.

    ``scope="all"`` draws every weight afresh. The initialiser, called on a private copy of
    the model under a seeded global RNG (the caller's RNG state is left untouched), is the
    first of:

    1. ``init_fn(module)`` if given (must re-initialise the module in place);
    2. the model's own ``init_weights()`` if it has one (omnifer's models: the family's
       initialiser, as :func:`omnifer_lib.models.reinitialize` uses);
    3. ``reset_parameters()`` of every submodule that has it (PyTorch's default
       initialisers of convolutions, linear layers, BatchNorm, ...). Parameters that no
       submodule resets keep the model's values (listed in :attr:`not_reset`).

    BatchNorm running statistics are reset after any of them.

    ``scope="head"`` keeps the model's (trained) backbone and its BatchNorm statistics and
    draws only the classifier head (``model.head``, else the last ``nn.Linear``) afresh, with
    the family's head initialiser (VGG: N(0, 0.01); otherwise PyTorch's default), or
    ``init_fn(head)`` if given: p(θ0) for distilling for a pretrained backbone.

    ``sample(seed)`` returns ``(params, buffers)`` as name -> tensor dicts on the model's
    device; the same seed gives the same tensors on the same machine.
    """

    def __init__(self, model: nn.Module, init_fn: Optional[Callable[[nn.Module], None]] = None,
                 scope: str = "all"):
        if scope not in INIT_SCOPES:
            raise ValueError(f"init scope must be one of {INIT_SCOPES}, got {scope!r}")
        self._template = copy.deepcopy(model)
        for p in self._template.parameters():
            p.requires_grad_(False)
        self.scope = scope
        if scope == "head":
            self._head = _head_of(self._template)
            self._init_fn = init_fn or _head_initialiser(self._template)
            self.not_reset = []
            return
        if init_fn is None and callable(getattr(self._template, "init_weights", None)):
            init_fn = type(self._template).init_weights
        self._init_fn = init_fn
        self.not_reset = [] if init_fn is not None else _params_without_reset(self._template)

    @property
    def device(self) -> torch.device:
        first = next(self._template.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    def sample(self, seed: int) -> Tuple[ParamDict, ParamDict]:
        dev = self.device
        devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
        with torch_seeded(seed, devices):
            with torch.no_grad():
                if self.scope == "head":
                    self._init_fn(self._head)
                elif self._init_fn is not None:
                    self._init_fn(self._template)
                else:
                    for m in self._template.modules():
                        reset = getattr(m, "reset_parameters", None)
                        if callable(reset):
                            reset()
                if self.scope == "all":
                    for _, m in _batchnorm_modules(self._template):
                        m.reset_running_stats()
        params = {n: p.detach().clone() for n, p in self._template.named_parameters()}
        buffers = {n: b.detach().clone() for n, b in self._template.named_buffers()}
        return params, buffers


def _head_of(model: nn.Module) -> nn.Module:
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module):
        return head
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("init scope 'head' needs a model with a .head module or at least one nn.Linear")
    return linears[-1]


def _head_initialiser(model: nn.Module) -> Callable[[nn.Module], None]:
    family = getattr(model, "family", "")
    if family in ("vgg", "resnet"):
        from omnifer_lib.models.base import init_resnet_style, init_vgg_style

        return init_vgg_style if family == "vgg" else init_resnet_style

    def default(head: nn.Module) -> None:
        for m in head.modules():
            if callable(getattr(m, "reset_parameters", None)):
                m.reset_parameters()
    return default


def _params_without_reset(model: nn.Module) -> List[str]:
    out = []
    for mod_name, m in model.named_modules():
        if callable(getattr(m, "reset_parameters", None)):
            continue
        for p_name, _ in m.named_parameters(recurse=False):
            out.append(f"{mod_name}.{p_name}" if mod_name else p_name)
    return out


def load_into(model: nn.Module, params: Mapping[str, Tensor],
              buffers: Optional[Mapping[str, Tensor]] = None) -> nn.Module:
    """Copy ``params`` (and ``buffers``) into ``model`` in place; returns ``model``."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(params[n])
        if buffers is not None:
            for n, b in model.named_buffers():
                if n in buffers:
                    b.copy_(buffers[n])
    return model
