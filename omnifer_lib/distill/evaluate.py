"""Evaluate a distilled set by training learners on it alone and testing them.

Two ways, to show the difference the issue asks about:

* :func:`evaluate_learned` -- the way the set was learned: fresh θ0 from the family's
  initialiser (seeds disjoint from those used while distilling), ``T`` gradient steps on all
  of x̃ with the learned step sizes η, BatchNorm statistics as in
  :mod:`omnifer_lib.distill.functional` (``"synthetic"``: the statistics of x̃ under the
  final weights), then test accuracy.
* :func:`evaluate_sgd` -- ordinary training: minibatch SGD with momentum on x̃ for some
  epochs at a fixed learning rate, BatchNorm running statistics updated as usual, then test
  accuracy in evaluation mode.
* :func:`compare_distilled` -- several sets side by side, each evaluated the same ways with the
  same initialisations (:func:`with_step_sizes` gives a set another set's step sizes η).

Both report accuracy over several initialisations (mean ± std), so a set is judged by what
it teaches a *distribution* of learners, not one lucky draw.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from omnifer_lib.device import resolve_device
from omnifer_lib.evaluate import SeedStatistics, format_mean_std, seed_statistics

from ..seeds import derive_seed, generator
from .functional import (InitSampler, batchnorm_statistics, forward_batch_stats, forward_running_stats,
                         forward_with_stats, has_batchnorm, inner_steps, load_into, split_state)
from .result import DistillResult, RealSamples


@dataclass
class DistilledEvaluation:
    """Test accuracies of learners trained on a distilled set only.

    Attributes:
        mode: ``"learned"`` (learned η and steps) or ``"sgd"`` (plain minibatch SGD).
        method: the set's method (``DistillResult.method``).
        accuracies: one accuracy in [0, 1] per initialisation.
        chance: ``1 / num_classes``.
        config: the evaluation settings.
    """

    mode: str
    method: str
    accuracies: List[float]
    chance: float
    config: Dict[str, Any] = field(default_factory=dict)

    @property
    def statistics(self) -> SeedStatistics:
        """Mean, sample std and count of the accuracies (:func:`omnifer_lib.evaluate.seed_statistics`)."""
        return seed_statistics(self.accuracies)

    @property
    def mean(self) -> float:
        return self.statistics.mean

    @property
    def std(self) -> float:
        """Sample standard deviation (``nan`` for a single initialisation: its spread is unknown)."""
        return self.statistics.std

    def __str__(self) -> str:
        return (f"{self.method} [{self.mode}]: {format_mean_std(100 * self.mean, 100 * self.std)} % "
                f"over {self.statistics.n} inits (chance {100 * self.chance:.1f} %)")


def _initial_states(model: nn.Module, inits: int, seed: int, fixed_init: bool, init_scope: str,
                    init_fn: Optional[Callable[[nn.Module], None]]):
    if fixed_init:
        params, buffers = split_state(model)
        yield {n: p.clone() for n, p in params.items()}, {n: b.clone() for n, b in buffers.items()}
        return
    sampler = InitSampler(model, init_fn, scope=init_scope)
    for i in range(inits):
        yield sampler.sample(derive_seed(seed, "eval_theta0", i))


@torch.no_grad()
def _accuracy(logits_fn: Callable[[Tensor], Tensor], test: RealSamples, dev: torch.device, batch_size: int) -> float:
    correct = 0
    for start in range(0, len(test), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(test)))
        pred = logits_fn(test.images(idx).to(dev)).argmax(dim=1).cpu()
        correct += int((pred == test.labels[idx]).sum())
    return correct / len(test)


def _protocol(result: DistillResult, fixed_init: Optional[bool], init_scope: Optional[str]):
    """θ0 protocol: explicit arguments, else the one the set was distilled with."""
    fixed = bool(result.config.get("fixed_init", False)) if fixed_init is None else bool(fixed_init)
    scope = init_scope or result.config.get("init_scope", "all")
    return fixed, scope


def evaluate_learned(result: DistillResult, model: nn.Module, test_images: Union[Tensor, Dataset],
                     test_labels: Optional[Tensor] = None, *, inits: int = 5, seed: int = 0,
                     bn_stats: Optional[str] = None, fixed_init: Optional[bool] = None,
                     init_scope: Optional[str] = None, init_fn: Optional[Callable[[nn.Module], None]] = None,
                     device: Optional[Union[str, torch.device]] = None, batch_size: int = 256) -> DistilledEvaluation:
    """Train fresh learners with the set's own step sizes and steps, then test them.

    Args:
        result: the distilled (or baseline) set; its ``step_sizes`` ``(T,)`` give the steps.
        model: a network of the family (architecture + initialiser; with ``fixed_init`` its
            weights are θ0, with ``init_scope="head"`` its backbone is kept).
        test_images: ``(N, 3, H, W)`` in [0, 1] (with ``test_labels``) or a Dataset.
        inits: number of sampled initialisations (ignored with ``fixed_init``: one).
        seed: seeds the initialisations (a stream disjoint from the one used to distil).
        bn_stats, fixed_init, init_scope: default to what the set was distilled with
            (``result.config``); sets that were not distilled by Algorithm 1 get
            ``"synthetic"``, sampled, ``"all"`` unless told otherwise.
    """
    dev = resolve_device(device)
    fixed, scope = _protocol(result, fixed_init, init_scope)
    mode = bn_stats or result.config.get("bn_stats_resolved") or (
        "running" if (fixed or scope == "head") else "synthetic")
    net = copy.deepcopy(model).to(dev)
    for p in net.parameters():
        p.requires_grad_(False)
    test = RealSamples(test_images, test_labels, result.num_classes)
    syn, syn_labels, eta = result.images.to(dev), result.labels.to(dev), result.step_sizes.to(dev)
    accs = []
    for params, buffers in _initial_states(net, inits, seed, fixed, scope, init_fn):
        params = {n: p.to(dev) for n, p in params.items()}
        buffers = {n: b.to(dev) for n, b in buffers.items()}
        theta = {n: p.detach() for n, p in inner_steps(net, params, buffers, syn, syn_labels, eta,
                                                       create_graph=False, bn_stats=mode).items()}
        accs.append(_accuracy(_trained_forward(net, theta, buffers, syn, mode), test, dev, batch_size))
    return DistilledEvaluation("learned", result.method, accs, 1.0 / result.num_classes,
                               {"inits": len(accs), "seed": seed, "bn_stats": mode, "fixed_init": fixed,
                                "init_scope": scope, "step_sizes": [float(e) for e in result.step_sizes]})


def _trained_forward(net: nn.Module, theta, buffers, syn: Tensor, mode: str) -> Callable[[Tensor], Tensor]:
    """The test-time function of a learner trained on ``syn`` (BatchNorm as in ``mode``)."""
    if mode == "running":
        return lambda x: forward_running_stats(net, theta, buffers, x)
    if mode == "synthetic" and has_batchnorm(net):
        with torch.no_grad():
            stats = batchnorm_statistics(net, theta, buffers, syn)
        return lambda x: forward_with_stats(net, theta, buffers, x, stats)
    return lambda x: forward_batch_stats(net, theta, buffers, x)


def evaluate_sgd(result: DistillResult, model: nn.Module, test_images: Union[Tensor, Dataset],
                 test_labels: Optional[Tensor] = None, *, inits: int = 5, seed: int = 0, epochs: int = 100,
                 lr: float = 0.01, momentum: float = 0.9, batch_size: int = 32, fixed_init: Optional[bool] = None,
                 init_scope: Optional[str] = None, init_fn: Optional[Callable[[nn.Module], None]] = None,
                 device: Optional[Union[str, torch.device]] = None, eval_batch_size: int = 256) -> DistilledEvaluation:
    """Train fresh learners on the set with plain minibatch SGD, then test them.

    Each epoch visits the set once in a seeded random order in minibatches of
    ``min(batch_size, len(set))``; cross-entropy, SGD with ``momentum`` at a fixed ``lr``;
    the model (dropout, BatchNorm running statistics) is in training mode while training and
    in evaluation mode while testing, as in ordinary training. θ0 as in
    :func:`evaluate_learned` (same seeds, so both start from the same weights).
    """
    dev = resolve_device(device)
    fixed, scope = _protocol(result, fixed_init, init_scope)
    test = RealSamples(test_images, test_labels, result.num_classes)
    syn, syn_labels = result.images.to(dev), result.labels.to(dev)
    bs = max(1, min(batch_size, syn.shape[0]))
    accs = []
    for i, (params, buffers) in enumerate(_initial_states(model, inits, seed, fixed, scope, init_fn)):
        net = load_into(copy.deepcopy(model), params, buffers).to(dev)
        for p in net.parameters():
            p.requires_grad_(True)
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
        gen = generator(seed, "eval_sgd_order", i)
        net.train()
        for _ in range(epochs):
            order = torch.randperm(syn.shape[0], generator=gen).to(dev)
            for start in range(0, syn.shape[0], bs):
                idx = order[start:start + bs]
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(net(syn[idx]), syn_labels[idx]).backward()
                opt.step()
        net.eval()
        accs.append(_accuracy(net, test, dev, eval_batch_size))
    return DistilledEvaluation("sgd", result.method, accs, 1.0 / result.num_classes,
                               {"inits": len(accs), "seed": seed, "epochs": epochs, "lr": lr,
                                "momentum": momentum, "batch_size": bs, "fixed_init": fixed, "init_scope": scope})


#: The ways :func:`compare_distilled` can train on a set: :func:`evaluate_learned` and :func:`evaluate_sgd`.
WAYS = ("learned", "sgd")


def with_step_sizes(result: DistillResult, step_sizes: Tensor) -> DistillResult:
    """A copy of ``result`` that trains with ``step_sizes`` ``(T,)`` (copied) in place of its own, e.g. a
    random real set with the step sizes η that Algorithm 1 learned: it separates the effect of learning
    η from that of learning the images."""
    return dataclasses.replace(result, step_sizes=torch.as_tensor(step_sizes).clone())


def compare_distilled(sets: Sequence[Tuple[str, DistillResult]], model: nn.Module,
                      test_images: Union[Tensor, Dataset], test_labels: Optional[Tensor] = None, *,
                      ways: Sequence[str] = WAYS, inits: int = 5, seed: int = 0, init_scope: Optional[str] = None,
                      fixed_init: Optional[bool] = None, sgd_epochs: int = 100, sgd_lr: float = 0.01,
                      device: Optional[Union[str, torch.device]] = None) -> List[Tuple[str, DistilledEvaluation]]:
    """Several distilled (or baseline) sets judged by one protocol: each set of ``sets`` (``(name, set)``
    pairs) trains fresh learners of ``model``'s family every way in ``ways`` (``"learned"``:
    :func:`evaluate_learned`; ``"sgd"``: :func:`evaluate_sgd` for ``sgd_epochs`` at ``sgd_lr``), all with
    the same ``inits`` initialisations drawn from ``seed`` (``init_scope``, ``fixed_init``: as there), and
    tests them on ``test_images`` ``(N, 3, H, W)`` / ``test_labels`` ``(N,)`` (or a Dataset).

    Returns ``(name, evaluation)`` pairs, set by set and way by way in the order given (a set evaluated
    both ways appears twice under its name)."""
    unknown = [w for w in ways if w not in WAYS]
    if unknown or not ways:
        raise ValueError(f"ways must be a non-empty selection of {WAYS}, got {list(ways)!r}")
    protocol = dict(inits=inits, seed=seed, init_scope=init_scope, fixed_init=fixed_init, device=device)
    out = []
    for name, result in sets:
        for way in ways:
            if way == "learned":
                out.append((name, evaluate_learned(result, model, test_images, test_labels, **protocol)))
            else:
                out.append((name, evaluate_sgd(result, model, test_images, test_labels, epochs=sgd_epochs,
                                               lr=sgd_lr, **protocol)))
    return out
