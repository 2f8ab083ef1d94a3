"""Algorithm 1 of the paper (Dataset Distillation, Wang et al. 2018) in functional PyTorch.

Per outer iteration i (the paper's t = 1..T; here ``iterations``):

1. fetch a real batch x_t of M auxiliary samples (uniform, without replacement);
2. sample K initial weights θ0^j from the family's initialiser p(θ0) (or, with
   ``fixed_init``, use the given model's weights, e.g. the primitive learner: one θ0);
3. for each θ0^j take ``inner_steps`` gradient steps on the distilled images x̃ with the
   learned step sizes η (every step uses all of x̃ as one batch), giving θ_T^j;
4. L^j = l(x_t, θ_T^j), the cross-entropy on the real batch (the line Algorithm 1 omits);
5. one Adam step on x̃ and on log η with the gradient of mean_j L^j.

η is parametrised as η = exp(ρ) and Adam updates ρ, so every step size stays positive and
``eta_lr`` is a relative change per step. The mean over j (instead of the sum written in
Algorithm 1) only rescales the gradient, which Adam is invariant to, and keeps the reported
loss comparable across K. After each Adam step x̃ is clamped to [0, 1] (``clamp``) so that
the distilled auxiliary samples (DAS) remain valid images that training code and transforms
can mix with real ones.

Gradients are accumulated one initialisation at a time (``accumulate="per_init"``: backward
per θ0^j, each unrolled graph freed before the next is built), so memory holds one graph;
``accumulate="sum"`` builds all K graphs and back-propagates their sum once (the
straightforward form, kept for the benchmark). Both give the same gradients.

Several processes (``torchrun``): with ``distributed=True`` the K initialisations of each outer
iteration are dealt to the ranks of the running ``torch.distributed`` process group (rank r
takes θ0^j for j = r, r + W, ...), each rank back-propagates its share of mean_j L^j, the
gradients on x̃ and log η are summed over the ranks (one all-reduce per iteration), and every
rank takes the same Adam step, so x̃ and η stay identical everywhere. An outer iteration with W
GPUs costs about what K / W initialisations cost on one, so K can grow with the GPUs at the same
wall time; every rank draws the same real batch. Same seed and world size → same result;
a world of one is the single-process run. Rank 0 writes the checkpoint.

BatchNorm: see :mod:`omnifer_lib.distill.functional` (default: x̃'s own statistics in both
the inner and the outer step; running-stat buffers never mutated).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from omnifer_lib import distributed as _dist
from omnifer_lib._progress import progress
from omnifer_lib.device import resolve_device
from ..seeds import derive_seed, generator
from ..files import atomic_torch_save, load_checkpoint_or_none

from .functional import BN_STATS_MODES, INIT_SCOPES, InitSampler, split_state, unrolled_loss
from .result import DistillResult, RealSamples, class_major_labels

ACCUMULATE_MODES = ("per_init", "sum")
INIT_MODES = ("real", "noise")
_CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class DistillConfig:
    """Settings of Algorithm 1 (names of the profile parameters in brackets).

    * ``images_per_class``: n distilled images per class [images_per_class].
    * ``num_classes``: number of classes C (the canonical seven).
    * ``iterations``: outer iterations [distill_iterations].
    * ``inits``: K initial weights sampled per outer iteration [distill_inits].
    * ``inner_steps``: T inner gradient steps on x̃ [distill_inner_steps].
    * ``lr``: Adam learning rate for x̃ (pixel units, images in [0, 1]) [distill_lr].
    * ``eta_lr``: Adam learning rate for log η [distill_eta_lr].
    * ``eta0``: initial step size η0 for every inner step [eta0].
    * ``real_batch``: M, real auxiliary samples per outer iteration [distill_real_batch].
    * ``fixed_init``: use the given model's weights as the only θ0 instead of sampling [distill_fixed_init].
    * ``init_scope``: what p(θ0) draws afresh: ``"all"`` weights (the paper's Algorithm 1, from the
      family's initialiser) or only the classifier ``"head"`` on the given model's trained
      backbone (distilling for a pretrained backbone) [distill_init_scope].
    * ``snapshot_every``: keep x̃ and η every k iterations (0: none) [snapshot_every].
    * ``init``: how x̃ starts: ``"real"`` (random real samples of each class) or ``"noise"``
      (uniform noise in [0, 1]).
    * ``clamp``: project x̃ to [0, 1] after each step.
    * ``bn_stats``: ``"synthetic"``, ``"batch"``, ``"running"`` or ``"auto"`` (see
      :mod:`omnifer_lib.distill.functional`): ``"auto"`` = ``"synthetic"`` for θ0 drawn
      entirely from the initialiser, ``"running"`` for a trained θ0 (``fixed_init`` or
      ``init_scope="head"``), whose running statistics describe real data.
    * ``accumulate``: ``"per_init"`` (one graph in memory) or ``"sum"`` (K graphs, one backward).
    * ``learn_images`` / ``learn_step_sizes``: switch off either to learn only the other (e.g. learn η
      for fixed random real images, an ablation).
    * ``seed``: master seed; each draw is seeded from (seed, purpose, iteration, j).
    * ``checkpoint_every``: write the checkpoint every this many iterations (when a path is given).
    """

    images_per_class: int = 1
    num_classes: int = 7
    iterations: int = 100
    inits: int = 4
    inner_steps: int = 1
    lr: float = 0.01
    eta_lr: float = 0.01
    eta0: float = 0.01
    real_batch: int = 128
    fixed_init: bool = False
    init_scope: str = "all"
    snapshot_every: int = 0
    init: str = "real"
    clamp: bool = True
    bn_stats: str = "auto"
    accumulate: str = "per_init"
    learn_images: bool = True
    learn_step_sizes: bool = True
    seed: int = 0
    checkpoint_every: int = 10

    def __post_init__(self) -> None:
        positive = {"images_per_class": self.images_per_class, "num_classes": self.num_classes,
                    "inits": self.inits, "inner_steps": self.inner_steps, "real_batch": self.real_batch,
                    "checkpoint_every": self.checkpoint_every}
        for name, value in positive.items():
            if int(value) < 1:
                raise ValueError(f"DistillConfig.{name} must be a positive integer, got {value!r}")
        if self.iterations < 0 or self.snapshot_every < 0:
            raise ValueError("DistillConfig.iterations and snapshot_every must be >= 0")
        for name in ("lr", "eta_lr", "eta0"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"DistillConfig.{name} must be a positive number, got {getattr(self, name)!r}")
        if not (self.learn_images or self.learn_step_sizes):
            raise ValueError("DistillConfig: learn_images and learn_step_sizes are both False; nothing to learn")
        _one_of("init", self.init, INIT_MODES)
        _one_of("bn_stats", self.bn_stats, BN_STATS_MODES + ("auto",))
        _one_of("init_scope", self.init_scope, INIT_SCOPES)
        _one_of("accumulate", self.accumulate, ACCUMULATE_MODES)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **overrides: Any) -> "DistillConfig":
        """Build from profile parameters (``images_per_class``, ``distill_iterations``, ...)."""
        mapping = {"images_per_class": "images_per_class", "distill_iterations": "iterations",
                   "distill_inits": "inits", "distill_inner_steps": "inner_steps", "distill_lr": "lr",
                   "distill_eta_lr": "eta_lr", "eta0": "eta0", "distill_real_batch": "real_batch",
                   "distill_fixed_init": "fixed_init", "distill_init_scope": "init_scope",
                   "snapshot_every": "snapshot_every", "seed": "seed"}
        kwargs = {field: params[name] for name, field in mapping.items() if name in params}
        kwargs.update(overrides)
        return cls(**kwargs)

    @property
    def bn_mode(self) -> str:
        """``bn_stats`` with ``"auto"`` resolved (see the class docstring)."""
        if self.bn_stats != "auto":
            return self.bn_stats
        return "running" if (self.fixed_init or self.init_scope == "head") else "synthetic"

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def _one_of(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"DistillConfig.{name} must be one of {tuple(allowed)}, got {value!r}")


# Fields that may differ between a checkpoint and the run resuming it.
_RESUMABLE_CHANGES = {"iterations", "checkpoint_every"}


def distill(model: nn.Module, real: Union[Tensor, Dataset], labels: Optional[Tensor] = None,
            config: Optional[DistillConfig] = None, *, device: Optional[Union[str, torch.device]] = None,
            checkpoint: Optional[Union[str, Path]] = None, init_fn: Optional[Callable[[nn.Module], None]] = None,
            callback: Optional[Callable[[int, float], None]] = None,
            show_progress: Optional[bool] = None, distributed: bool = False) -> DistillResult:
    """Distil labeled real samples into ``n`` images per class with Algorithm 1.

    Args:
        model: a network of the family to distil for (e.g. ``models.build("vgg_small")``);
            its weights are θ0 when ``config.fixed_init``, else only its architecture and
            initialiser are used. It is not modified.
        real: auxiliary samples, a ``(N, 3, H, W)`` tensor in [0, 1] (with ``labels``) or a
            Dataset yielding ``(image, label)`` (see :class:`RealSamples`).
        labels: ``(N,)`` int64 (pseudo-)labels in 0..C-1 when ``real`` is a tensor.
        config: :class:`DistillConfig` (defaults if None).
        device: where to run (``None``/"auto": CUDA if available).
        checkpoint: a file to resume from if it exists and to write every
            ``config.checkpoint_every`` iterations (atomically). A finished run's checkpoint
            returns its result without recomputation; a longer ``iterations`` continues it.
        init_fn: re-initialises a module in place under a seeded RNG (the family's
            initialiser); default: the model's ``init_weights()`` if it has one, else
            ``reset_parameters()`` of every submodule (see :class:`InitSampler`).
        callback: called as ``callback(iteration, loss)`` after each outer iteration
            (1-based count of finished iterations); may raise to stop the run.
        show_progress: force the progress bar on/off (default: ``OMNIFER_PROGRESS``).
        distributed: split the K initialisations over the ranks of the running
            ``torch.distributed`` process group (module docstring); every rank gets the result.

    Returns:
        :class:`DistillResult` with ``method="algorithm1"``.
    """
    cfg = config or DistillConfig()
    rank, world = _dist.rank_and_world(distributed, "distill")
    dev = resolve_device(device)
    source = RealSamples(real, labels, cfg.num_classes)
    net = _private_copy(model, dev)
    sampler = None if cfg.fixed_init else InitSampler(net, init_fn, scope=cfg.init_scope)
    fixed_state = split_state(net) if cfg.fixed_init else None

    state = _load_checkpoint(checkpoint, cfg, len(source)) if checkpoint is not None else None
    if state is None:
        state = _initial_state(cfg, source)
    syn = state["images"].to(dev).requires_grad_(cfg.learn_images)
    log_eta = state["log_eta"].to(dev).requires_grad_(cfg.learn_step_sizes)
    syn_labels = class_major_labels(cfg.num_classes, cfg.images_per_class).to(dev)
    optimizer = _optimizer(syn, log_eta, cfg)
    if state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])

    start = int(state["iteration"])
    bar = progress(range(start, cfg.iterations), desc="Algorithm 1 iteration", total=cfg.iterations, initial=start,
                   enable=show_progress if rank == 0 else False)
    for it in bar:
        xr, yr = source.random_batch(cfg.real_batch, generator(cfg.seed, "batch", it))
        xr, yr = xr.to(dev), yr.to(dev)
        optimizer.zero_grad(set_to_none=True)
        inits = _inits_for(it, cfg, sampler, fixed_state, (rank, world))
        loss = _outer_gradient(net, inits, syn, syn_labels, log_eta, xr, yr, cfg)
        if world > 1:
            loss = _sum_over_ranks(syn, log_eta, loss, world)
        if not math.isfinite(loss):
            raise FloatingPointError(f"Algorithm 1 diverged at iteration {it + 1}: outer loss {loss}; the inner "
                                     f"steps (eta0={cfg.eta0}, T={cfg.inner_steps}) are too large for this "
                                     "network; lower eta0")
        optimizer.step()
        if cfg.clamp:
            with torch.no_grad():
                syn.clamp_(0.0, 1.0)
        state["loss_history"].append(loss)
        state["step_size_history"].append([float(e) for e in log_eta.detach().exp().cpu()])
        done = it + 1
        if cfg.snapshot_every and done % cfg.snapshot_every == 0:
            state["snapshots"].append({"iteration": done, "images": syn.detach().cpu().clone(),
                                       "step_sizes": log_eta.detach().exp().cpu().clone()})
        bar.set_postfix(loss=f"{loss:.3f}", eta=f"{float(log_eta.detach().exp().mean()):.4f}")
        if checkpoint is not None and (done % cfg.checkpoint_every == 0 or done == cfg.iterations):
            if rank == 0:
                _save_checkpoint(checkpoint, cfg, done, syn, log_eta, optimizer, state)
            _dist.barrier(world)
        if callback is not None:
            callback(done, loss)
    bar.close()
    return DistillResult(images=syn.detach().cpu().clone(), labels=syn_labels.cpu(),
                         step_sizes=log_eta.detach().exp().cpu().clone(), method="algorithm1",
                         config={**cfg.to_dict(), "bn_stats_resolved": cfg.bn_mode,
                                 "empty_classes": state.get("empty_classes", []),
                                 "num_real": len(source)},
                         loss_history=list(state["loss_history"]),
                         step_size_history=list(state["step_size_history"]),
                         snapshots=list(state["snapshots"]))


def _private_copy(model: nn.Module, dev: torch.device) -> nn.Module:
    net = copy.deepcopy(model).to(dev)
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _optimizer(syn: Tensor, log_eta: Tensor, cfg: DistillConfig) -> torch.optim.Adam:
    # Both groups are always registered (fixed param order for checkpoint state); a frozen
    # tensor simply never receives a gradient and Adam skips it.
    return torch.optim.Adam([{"params": [syn], "lr": cfg.lr}, {"params": [log_eta], "lr": cfg.eta_lr}])


def _initial_state(cfg: DistillConfig, source: RealSamples) -> Dict[str, Any]:
    """x̃ at iteration 0 and log η0. ``init="real"`` starts from exactly the images that
    :func:`~omnifer_lib.distill.baselines.random_real` picks with the same seed (so the
    random-real baseline is Algorithm 1's starting point); ``"noise"``: uniform in [0, 1]."""
    idx, empty = source.per_class_random(cfg.images_per_class, generator(cfg.seed, "random_real"))
    shape = source.images(idx[:1].clamp(min=0)).shape[1:]
    noise = torch.rand((idx.numel(), *shape), generator=generator(cfg.seed, "x_noise"))
    if cfg.init == "real":
        images = noise.clone()
        have = idx >= 0  # an empty class keeps noise
        images[have] = source.images(idx[have])
    else:
        images = noise
    return {"iteration": 0, "images": images.float(),
            "log_eta": torch.full((cfg.inner_steps,), math.log(cfg.eta0), dtype=torch.float32),
            "optimizer": None, "loss_history": [], "step_size_history": [], "snapshots": [],
            "empty_classes": empty, "num_real": len(source)}


def _inits_for(it: int, cfg: DistillConfig, sampler: Optional[InitSampler],
               fixed_state: Optional[Tuple[Dict[str, Tensor], Dict[str, Tensor]]], part: Tuple[int, int] = (0, 1)):
    """This rank's θ0^j (with their buffers) of outer iteration ``it`` (``part = (rank, world)``:
    j = rank, rank + world, ...), produced lazily one by one."""
    rank, world = part
    if fixed_state is not None:
        if rank == 0:
            yield fixed_state
        return
    for j in range(rank, cfg.inits, world):
        yield sampler.sample(derive_seed(cfg.seed, "theta0", it, j))


def _sum_over_ranks(syn: Tensor, log_eta: Tensor, loss: float, world: int) -> float:
    """Sum each rank's share of ∇ mean_j L^j (and of the loss) over the ranks, in one all-reduce;
    a rank without an initialisation this iteration adds zeros."""
    learned = _learned(syn, log_eta)
    grads = [t.grad if t.grad is not None else torch.zeros_like(t) for t in learned]
    flat = torch.cat([g.reshape(-1) for g in grads] + [torch.tensor([loss], dtype=grads[0].dtype,
                                                                     device=grads[0].device)])
    _dist.all_reduce_sum(flat, world)
    offset = 0
    for t in learned:
        t.grad = flat[offset:offset + t.numel()].view_as(t).clone()
        offset += t.numel()
    return float(flat[-1])


def _learned(syn: Tensor, log_eta: Tensor) -> List[Tensor]:
    # Back-propagate into the learned tensors only: θ0 (a leaf of the unrolled graph) and
    # anything else get no gradient computed or stored.
    return [t for t in (syn, log_eta) if t.requires_grad]


def _outer_gradient(net: nn.Module, inits, syn: Tensor, syn_labels: Tensor, log_eta: Tensor,
                    xr: Tensor, yr: Tensor, cfg: DistillConfig) -> float:
    """Accumulate ∇ mean_j L^j into ``syn.grad`` / ``log_eta.grad``; returns mean_j L^j."""
    k = 1 if cfg.fixed_init else cfg.inits  # over all ranks: this rank's inits are a share of the K
    if cfg.accumulate == "sum":
        eta = log_eta.exp()
        losses = [unrolled_loss(net, p, syn, syn_labels, eta, xr, yr, buffers=b, bn_stats=cfg.bn_mode)
                  for p, b in inits]
        if not losses:
            return 0.0
        # this rank's share of mean_j L^j; with all K here, mean() exactly as one process always computed it
        total = torch.stack(losses).sum() / k if len(losses) != k else torch.stack(losses).mean()
        total.backward(inputs=_learned(syn, log_eta))
        return float(total.detach())
    mean = 0.0
    for p, b in inits:
        # exp(ρ) is rebuilt per init because each backward frees the graph that produced it.
        loss = unrolled_loss(net, p, syn, syn_labels, log_eta.exp(), xr, yr, buffers=b, bn_stats=cfg.bn_mode)
        (loss / k).backward(inputs=_learned(syn, log_eta))
        mean += float(loss.detach()) / k
    return mean


# --------------------------------------------------------------------------- checkpoints
def _save_checkpoint(path: Union[str, Path], cfg: DistillConfig, iteration: int, syn: Tensor, log_eta: Tensor,
                     optimizer: torch.optim.Optimizer, state: Dict[str, Any]) -> None:
    atomic_torch_save({
        "version": _CHECKPOINT_VERSION,
        "config": json.dumps(cfg.to_dict(), sort_keys=True),
        "iteration": iteration,
        "images": syn.detach().cpu().clone(),
        "log_eta": log_eta.detach().cpu().clone(),
        "optimizer": _cpu_state(optimizer.state_dict()),
        "loss_history": list(state["loss_history"]),
        "step_size_history": list(state["step_size_history"]),
        "snapshots": list(state["snapshots"]),
        "empty_classes": list(state.get("empty_classes", [])),
        "num_real": int(state["num_real"]),
    }, path)


def _cpu_state(obj: Any) -> Any:
    if torch.is_tensor(obj):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _cpu_state(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu_state(v) for v in obj]
    return obj


def _load_checkpoint(path: Union[str, Path], cfg: DistillConfig, num_real: int) -> Optional[Dict[str, Any]]:
    state = load_checkpoint_or_none(path)
    if state is None:
        return None
    if state.get("version") != _CHECKPOINT_VERSION:
        raise ValueError(f"{path}: distillation checkpoint version {state.get('version')!r}, "
                         f"expected {_CHECKPOINT_VERSION}; delete it to start over")
    saved = json.loads(state["config"])
    current = cfg.to_dict()
    differ = sorted(k for k in set(saved) | set(current)
                    if k not in _RESUMABLE_CHANGES and saved.get(k) != current.get(k))
    if differ:
        raise ValueError(f"{path} was written with different settings ({', '.join(differ)}: "
                         f"{[saved.get(k) for k in differ]} vs {[current.get(k) for k in differ]}); "
                         "use another checkpoint path or delete it")
    if int(state["num_real"]) != num_real:
        raise ValueError(f"{path} was written for {state['num_real']} real samples, not {num_real}; "
                         "use another checkpoint path or delete it")
    if int(state["iteration"]) > cfg.iterations:
        raise ValueError(f"{path} is at iteration {state['iteration']}, beyond iterations={cfg.iterations}")
    return state
