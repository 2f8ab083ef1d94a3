"""Baselines for distilled auxiliary samples, beyond the paper.

A reviewer asks: does Algorithm 1 beat simply *picking* n real samples per class, or
*averaging* them, or a cheaper distiller? Each baseline returns a :class:`DistillResult`
like Algorithm 1, so all are evaluated the same way. Their step sizes are not learned; they
carry ``[DEFAULT_STEP_SIZE]`` (one inner step at the ``eta0`` Algorithm 1 starts from) so
that :func:`~omnifer_lib.distill.evaluate.evaluate_learned` can run on them, but the fair
comparison for them is plain SGD (:func:`~omnifer_lib.distill.evaluate.evaluate_sgd`), or
learning η alone for them with ``DistillConfig(learn_images=False, init="real")``.

* :func:`random_real` -- n random real samples per class.
* :func:`mean_image` -- the per-class mean image (n > 1: means of n random disjoint parts).
* :func:`distribution_matching` -- Distribution Matching (Zhao & Bilen, WACV 2023): learn
  synthetic images whose mean embedding per class matches that of real images under
  randomly initialised networks of the family; no bi-level optimisation, so each
  iteration costs two forwards and one backward.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Optional, Union

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from omnifer_lib._progress import progress
from omnifer_lib.device import resolve_device

from ..seeds import derive_seed, generator
from .functional import InitSampler, _modes, load_into
from .result import DEFAULT_STEP_SIZE, DistillResult, RealSamples, class_major_labels


def random_real(images: Union[Tensor, Dataset], labels: Optional[Tensor] = None, *, images_per_class: int = 1,
                num_classes: int = 7, seed: int = 0, step_size: float = DEFAULT_STEP_SIZE) -> DistillResult:
    """``images_per_class`` random real samples of each class, class-major ``(n·C, 3, H, W)``.

    A class with fewer samples repeats them; a class with none gets no image (a selection can
    leave a class empty) and is listed in ``config["empty_classes"]``.
    """
    source = RealSamples(images, labels, num_classes)
    idx, empty = source.per_class_random(images_per_class, generator(seed, "random_real"))
    _no_samples_at_all(empty, num_classes, "random_real")
    keep = idx >= 0
    return DistillResult(images=source.images(idx[keep]).clone(),
                         labels=class_major_labels(num_classes, images_per_class)[keep],
                         step_sizes=torch.tensor([step_size], dtype=torch.float32), method="random_real",
                         config={"images_per_class": images_per_class, "num_classes": num_classes, "seed": seed,
                                 "num_real": len(source), "indices": [int(i) for i in idx[keep]],
                                 "empty_classes": empty})


def mean_image(images: Union[Tensor, Dataset], labels: Optional[Tensor] = None, *, images_per_class: int = 1,
               num_classes: int = 7, seed: int = 0, step_size: float = DEFAULT_STEP_SIZE,
               batch_size: int = 1024) -> DistillResult:
    """The per-class mean image ``(C, 3, H, W)``; with n > 1 the class is split into n random
    disjoint parts of (almost) equal size and each part's mean is one image. A class without
    samples gets no image (listed in ``config["empty_classes"]``)."""
    source = RealSamples(images, labels, num_classes)
    gen = generator(seed, "mean_image")
    out, empty = [], []
    for k in range(num_classes):
        pool = source.class_indices(k)
        if pool.numel() == 0:
            empty.append(k)
            continue
        if pool.numel() < images_per_class:
            raise ValueError(f"class {k} has {pool.numel()} real samples, "
                             f"fewer than images_per_class={images_per_class}")
        pool = pool[torch.randperm(pool.numel(), generator=gen)]
        for part in torch.tensor_split(pool, images_per_class):
            out.append(_mean_of(source, part, batch_size))
    _no_samples_at_all(empty, num_classes, "mean_image")
    labels = class_major_labels(num_classes, images_per_class)
    return DistillResult(images=torch.stack(out), labels=labels[~torch.isin(labels, torch.tensor(empty))],
                         step_sizes=torch.tensor([step_size], dtype=torch.float32), method="mean_image",
                         config={"images_per_class": images_per_class, "num_classes": num_classes, "seed": seed,
                                 "num_real": len(source), "empty_classes": empty})


def _mean_of(source: RealSamples, index: Tensor, batch_size: int) -> Tensor:
    total = None
    for start in range(0, index.numel(), batch_size):
        s = source.images(index[start:start + batch_size]).double().sum(dim=0)
        total = s if total is None else total + s
    return (total / index.numel()).float()


def _no_samples_at_all(empty, num_classes: int, method: str) -> None:
    if len(empty) == num_classes:
        raise ValueError(f"{method}: no class has a real sample; nothing to build a set from")


@dataclass(frozen=True)
class DMConfig:
    """Settings of Distribution Matching.

    * ``images_per_class``: n synthetic images per class.
    * ``num_classes``: C.
    * ``iterations``: optimisation steps (one random network each) [dm_iterations].
    * ``real_per_class``: real samples per class per iteration.
    * ``lr``: Adam learning rate for the images (pixel units; Adam instead of the paper's SGD so
      one value works across backbones whose embeddings differ in scale).
    * ``init``: ``"real"`` (random real samples per class) or ``"noise"``.
    * ``clamp``: keep images in [0, 1].
    * ``seed``: master seed.
    * ``snapshot_every``: keep intermediate images every k iterations (0: none).
    * ``init_scope``: ``"all"`` (random networks from the family's initialiser, as in the paper
      of DM) or ``"head"`` (the given model's trained backbone every iteration: matching
      its mean features; BatchNorm then uses the backbone's running statistics).
    """

    images_per_class: int = 1
    num_classes: int = 7
    iterations: int = 200
    real_per_class: int = 32
    lr: float = 0.01
    init: str = "real"
    clamp: bool = True
    seed: int = 0
    snapshot_every: int = 0
    init_scope: str = "all"

    def __post_init__(self) -> None:
        if min(self.images_per_class, self.num_classes, self.real_per_class) < 1 or self.iterations < 0:
            raise ValueError(f"DMConfig needs positive sizes and iterations >= 0, got {self}")
        if self.init not in ("real", "noise"):
            raise ValueError(f"DMConfig.init must be 'real' or 'noise', got {self.init!r}")
        if self.init_scope not in ("all", "head"):
            raise ValueError(f"DMConfig.init_scope must be 'all' or 'head', got {self.init_scope!r}")


def _embed(net: nn.Module, x: Tensor) -> Tensor:
    """``features(x)`` ``(B, D)`` if the network has it (the layer before the softmax), else logits."""
    fn = getattr(net, "features", None)
    out = fn(x) if callable(fn) else net(x)
    return out.reshape(out.shape[0], -1)


def distribution_matching_loss(net: nn.Module, real_images: Tensor, real_labels: Tensor, syn_images: Tensor,
                               syn_labels: Tensor, bn_batch_stats: bool = True) -> Tensor:
    """``Σ_c || mean ψ(real_c) − mean ψ(syn_c) ||²`` over the classes present in ``real_labels``.

    ψ is ``net.features`` (else ``net``), run with dropout off and BatchNorm on batch
    statistics (all real images in one batch, all synthetic in another; ``net``'s buffers
    are updated in place, so pass a throw-away network), or on its running statistics with
    ``bn_batch_stats=False``. Differentiable w.r.t. ``syn_images``
    ``(n·C, 3, H, W)``; ``real_images`` ``(M, 3, H, W)`` gets no gradient.
    """
    with _modes(net, bn_training=bn_batch_stats):
        with torch.no_grad():
            emb_real = _embed(net, real_images)
        emb_syn = _embed(net, syn_images)
    real_labels, syn_labels = real_labels.to(emb_real.device), syn_labels.to(emb_syn.device)
    loss = emb_syn.new_zeros(())
    for k in torch.unique(real_labels).tolist():
        mine = syn_labels == k
        if not bool(mine.any()):
            raise ValueError(f"class {k} has real samples but no synthetic image")
        loss = loss + ((emb_real[real_labels == k].mean(dim=0) - emb_syn[mine].mean(dim=0)) ** 2).sum()
    return loss


def distribution_matching(model: nn.Module, images: Union[Tensor, Dataset], labels: Optional[Tensor] = None,
                          config: Optional[DMConfig] = None, *, device: Optional[Union[str, torch.device]] = None,
                          init_fn: Optional[Callable[[nn.Module], None]] = None,
                          show_progress: Optional[bool] = None) -> DistillResult:
    """Learn ``n`` images per class by Distribution Matching.

    Each iteration samples a network ψ from the family's initialiser and minimises
    ``Σ_c || mean ψ(real_c) − mean ψ(syn_c) ||²`` over the synthetic images, where ψ is the
    network's ``features`` (else its output). With BatchNorm, ψ normalises with batch
    statistics: all classes' real samples are embedded in one batch and all synthetic
    images in another (as Zhao & Bilen do for BatchNorm networks), running statistics of
    the throw-away copy are irrelevant. The differentiable Siamese augmentation of the
    original method is not used (our data is small and aligned).
    """
    cfg = config or DMConfig()
    dev = resolve_device(device)
    source = RealSamples(images, labels, cfg.num_classes)
    net = copy.deepcopy(model).to(dev)
    for p in net.parameters():
        p.requires_grad_(False)
    sampler = InitSampler(net, init_fn, scope=cfg.init_scope)
    start = random_real(images, labels, images_per_class=cfg.images_per_class, num_classes=cfg.num_classes,
                        seed=cfg.seed) if cfg.init == "real" else None
    present = [k for k in range(cfg.num_classes) if source.class_indices(k).numel() > 0]
    # A class without real samples has nothing to match: it gets no synthetic image.
    syn_labels = class_major_labels(cfg.num_classes, cfg.images_per_class)
    syn_labels = syn_labels[torch.isin(syn_labels, torch.tensor(present))]
    if start is not None:
        syn0 = start.images
    else:
        shape = source.images(torch.tensor([0])).shape[1:]
        syn0 = torch.rand((len(syn_labels), *shape), generator=generator(cfg.seed, "dm_noise"))
    syn = syn0.to(dev).clone().requires_grad_(True)
    opt = torch.optim.Adam([syn], lr=cfg.lr)
    history, snapshots = [], []
    bar = progress(range(cfg.iterations), desc="Distribution matching iteration", enable=show_progress)
    for it in bar:
        params, buffers = sampler.sample(derive_seed(cfg.seed, "dm_theta", it))
        load_into(net, params, buffers)
        gen = generator(cfg.seed, "dm_batch", it)
        real_idx = [_class_sample(source, k, cfg.real_per_class, gen) for k in present]
        real = source.images(torch.cat(real_idx)).to(dev)
        real_labels = torch.cat([torch.full((len(i),), k) for k, i in zip(present, real_idx)])
        loss = distribution_matching_loss(net, real, real_labels, syn, syn_labels.to(dev),
                                          bn_batch_stats=cfg.init_scope == "all")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if cfg.clamp:
            with torch.no_grad():
                syn.clamp_(0.0, 1.0)
        history.append(float(loss.detach()))
        if cfg.snapshot_every and (it + 1) % cfg.snapshot_every == 0:
            snapshots.append({"iteration": it + 1, "images": syn.detach().cpu().clone(),
                              "step_sizes": torch.tensor([DEFAULT_STEP_SIZE])})
        bar.set_postfix(loss=f"{history[-1]:.4f}")
    bar.close()
    conf: Dict[str, Any] = {**asdict(cfg), "num_real": len(source),
                            "empty_classes": [k for k in range(cfg.num_classes) if k not in present]}
    return DistillResult(images=syn.detach().cpu().clone(), labels=syn_labels,
                         step_sizes=torch.tensor([DEFAULT_STEP_SIZE], dtype=torch.float32),
                         method="distribution_matching", config=conf, loss_history=history, snapshots=snapshots)


def _class_sample(source: RealSamples, k: int, size: int, gen: torch.Generator) -> Tensor:
    pool = source.class_indices(k)
    return pool[torch.randperm(pool.numel(), generator=gen)[:size]]
