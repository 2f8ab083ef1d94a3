"""Training of the FER learners (§4.3) and the final-training modes of the paper.

:func:`fit` trains a model with the paper's recipe by default: SGD with momentum 0.9,
learning rate 0.001 multiplied by 0.1 every 10 epochs, 25 epochs, random horizontal flip
with probability 0.5, cross-entropy loss. Every value is an argument (profiles override them).

Determinism and resuming
    The order of the samples, the flips and torch's global RNG (dropout) of epoch ``e`` are
    all drawn from seeds derived from ``(seed, e)``, inside a forked RNG so the caller's random
    state is untouched. Hence the same seed gives the same history and weights on the same
    machine (CPU), and a run resumed from the checkpoint of epoch ``k`` continues exactly as
    the uninterrupted run would have.

Checkpoints
    With ``checkpoint_dir``, ``fit.pt`` in it is rewritten atomically after every epoch (or every
    ``checkpoint_every`` epochs; model,
    optimiser momentum, AMP scaler, history, and a fingerprint of the settings), and read
    with ``weights_only=True``. Calling :func:`fit` again with the same directory resumes
    after the last finished epoch; a finished run returns at once with its history. A
    checkpoint made with other settings is refused with a message naming the differences.

Mixup (``mixup_alpha``)
    With ``mixup_alpha`` α > 0 every minibatch of training images is mixed with a shuffled copy of
    itself, ``x = λ x + (1 - λ) x[π]`` with λ ~ Beta(α, α) and π a permutation drawn per minibatch,
    and its loss is ``λ ℓ(t) + (1 - λ) ℓ(t[π])`` for the targets t (labels, soft targets or
    pseudo-labels) (:func:`mixup`; Zhang et al., ICLR 2018); a per-image weight (the "samples"
    strategy's ``das_weight``) weighs each of the two terms by its own image's weight. On anchor ∪ VAS
    the partners are drawn at random within the minibatch, so labeled faces are mixed with
    pseudo-labeled ones as well as with each other: the ingredient of Margin-Mix (Florea et al., ECCV
    2020) that the paper's offline pipeline can take. The draws come from their own streams, so
    ``mixup_alpha=0`` (the paper's) leaves every other draw as it was; the "minibatch" strategy's DAS
    are not mixed. Under ``torch.distributed`` λ is one per global minibatch and each rank pairs the
    images of its own share (one process pairs across the whole minibatch).

Final-training modes (:func:`fit_final`)
    ``"anchor"``: the labeled anchor only (the baseline). ``"anchor+VAS"``: the union of the
    anchor and the vanilla auxiliary samples with their pseudo-labels. ``"anchor+DAS"``: the
    anchor plus the distilled auxiliary samples, which enter training by one of
    :data:`DAS_STRATEGIES`:

    * ``"minibatch"``: all n distilled images are appended to every minibatch of anchor
      images (one forward pass, so BatchNorm sees both) and their mean cross-entropy is added
      with weight λ = ``das_weight``: ``loss = CE(anchor batch) + λ · CE(DAS)``. The distilled
      images are never flipped (they were learned in one orientation).
    * ``"samples"``: the distilled images join the training set as ordinary samples (shuffled,
      flipped like the rest), each weighted by ``das_weight`` in its batch's mean loss.

    A DAS is any object with ``images`` (``(n, 3, H, W)`` float) and ``labels`` (``(n,)``
    int64) attributes - e.g. :class:`DAS` or the distillation module's result - or a tuple
    ``(images, labels)``.

Several processes (``torchrun``)
    ``distributed=True`` trains under the running ``torch.distributed`` process group with
    DistributedDataParallel. The epoch's order and flips are drawn from the seed exactly as in
    one process; each global minibatch of ``batch_size`` images is dealt to the ranks (rank r
    takes positions r, r + W, ... of it, so each rank's data loader reads only its share), and
    each rank's loss is scaled so that DDP's averaged gradient is the gradient of the mean loss
    over the whole global minibatch. The "minibatch" DAS join every rank's share once (the DAS
    term keeps its weight λ: DDP averages W copies of it). Rank 0 writes the checkpoint; every
    rank resumes from it (the checkpoint folder must be on a file system every rank sees).
    Same seed and world size → same result; a world of one is :func:`fit` in one process.
    What differs from one process with the same global batch: BatchNorm normalises each rank's
    share by its own statistics (``sync_batchnorm=True`` uses the whole global minibatch's, on
    CUDA), dropout draws other masks, mixup pairs images within each rank's share, and a last
    minibatch of fewer than two images per rank is merged into the one before (one process merges
    only a last single image); for a model without BatchNorm or dropout trained without mixup, the
    weights agree within float rounding (tested with two gloo processes).
    A checkpoint left by another world size is not continued: training starts over.

GPU
    ``device=None`` picks CUDA when present. ``amp=True`` runs the forward pass under
    ``torch.autocast`` on CUDA (bfloat16 where supported, else float16 with a GradScaler);
    on the CPU it is a no-op (CPU autocast is rarely faster for these convolutions).
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from ._progress import progress as _progress
from ._progress import report
from . import distributed as _dist
from .device import resolve_device
from .evaluate import MATERIALIZE_MAX_BYTES, Data, _as_pair, as_tensors, predict
from .names import MODES
from .seeds import derive_seed, forked, generator, numpy_rng, seed_global, torch_generator
from .files import atomic_torch_save, load_checkpoint_or_none

__all__ = ["DAS", "PairDataset", "DAS_STRATEGIES", "FINAL_MODES", "fit", "fit_final", "pretrain_identity", "union",
           "Recipe", "Runtime", "Checkpointer",
           "derive_seed", "lr_at_epoch", "LR_SCHEDULES", "translate", "mixup", "mixup_loss", "CHECKPOINT_FILE"]

DAS_STRATEGIES = ("minibatch", "samples")
FINAL_MODES = MODES  # the modes of §4.4, named in omnifer_lib.names
CHECKPOINT_FILE = "fit.pt"


class DAS(NamedTuple):
    """Distilled auxiliary samples: ``images`` ``(n, 3, H, W)`` float in [0, 1] (usually),
    ``labels`` ``(n,)`` int64."""

    images: torch.Tensor
    labels: torch.Tensor


class PairDataset(Dataset):
    """Tensors ``(images (N, 3, H, W), labels (N,))`` as a Dataset yielding ``(image, int label)``
    like the data module's datasets (so it mixes with them in a ``ConcatDataset``)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels_t = images, torch.as_tensor(labels, dtype=torch.int64)
        self.labels = self.labels_t.numpy()

    def __len__(self) -> int:
        return len(self.labels_t)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels_t[i])


LR_SCHEDULES = ("step", "cosine")
_PAPER_RECIPE = {"crop_pad": 0, "lr_schedule": "step", "label_smoothing": 0.0}


def lr_at_epoch(epoch: int, lr: float, lr_step: int, lr_gamma: float, schedule: str = "step",
                epochs: Optional[int] = None) -> float:
    """Learning rate of 0-based ``epoch``. ``"step"`` (§4.3): ``lr * lr_gamma ** (epoch // lr_step)``;
    ``"cosine"``: ``lr * (1 + cos(π · epoch / epochs)) / 2`` (``lr_step``/``lr_gamma`` unused), the
    schedule strong from-scratch FER-2013 recipes train with."""
    if schedule == "cosine":
        if not epochs:
            raise ValueError("the cosine schedule needs epochs (the length of the run)")
        return lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    if schedule != "step":
        raise ValueError(f"lr schedule must be one of {LR_SCHEDULES}, got {schedule!r}")
    return lr * lr_gamma ** (epoch // lr_step) if lr_step > 0 else lr


def translate(x: torch.Tensor, shifts: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad-and-crop augmentation: image ``i`` of ``x`` (B, C, H, W) moved by ``shifts[i] = (dy, dx)``
    pixels (each in ``[-pad, pad]``; positive = down / right), the border filled by reflection. Equal
    to padding ``pad`` pixels on each side and cropping an H×W window at offset ``(pad - dy, pad - dx)``."""
    if pad <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    shifts = shifts.to(x.device)
    rows = (pad - shifts[:, 0]).view(b, 1, 1, 1) + torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols = (pad - shifts[:, 1]).view(b, 1, 1, 1) + torch.arange(w, device=x.device).view(1, 1, 1, w)
    batch = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    channel = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    return padded[batch, channel, rows, cols]


def _das_tensors(das: Any) -> Tuple[torch.Tensor, torch.Tensor]:
    if isinstance(das, (tuple, list)) and len(das) == 2:
        images, labels = das
    elif hasattr(das, "images") and hasattr(das, "labels"):
        images, labels = das.images, das.labels
    else:
        raise ValueError("das must be DAS(images, labels), an object with .images and .labels, or a "
                         f"tuple (images (n, 3, H, W), labels (n,)); got {type(das).__name__}")
    images = torch.as_tensor(images).detach().float().cpu()
    labels = torch.as_tensor(labels).detach().to(torch.int64).cpu()
    if images.dim() != 4 or images.shape[1] != 3 or labels.shape != (images.shape[0],):
        raise ValueError(f"das: expected images (n, 3, H, W) and labels (n,), got {tuple(images.shape)} "
                         f"and {tuple(labels.shape)}")
    return images, labels


def _batch_bounds(n: int, batch_size: int, min_last: int = 2) -> List[Tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n)``; a last batch of fewer than ``min_last``
    samples is merged into the one before (BatchNorm cannot train on a single sample: two per
    rank when the batch is dealt to several)."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < min_last:
        starts.pop()
    return [(s, starts[i + 1] if i + 1 < len(starts) else n) for i, s in enumerate(starts)]


def _fingerprint(**values: Any) -> Dict[str, Any]:
    return {k: (float(v) if isinstance(v, float) else v) for k, v in values.items()}


def _load_checkpoint(path: Path, fingerprint: Dict[str, Any],
                     restart_on: Sequence[str] = ()) -> Optional[Dict[str, Any]]:
    """The checkpoint to resume from, ``None`` for none (or one that differs only in ``restart_on``:
    e.g. another world size dealt other minibatches, so training starts over), else an error."""
    ck = load_checkpoint_or_none(path)
    if ck is None:
        return None
    if not isinstance(ck, dict) or "fingerprint" not in ck:
        raise ValueError(f"{path} is not a checkpoint of omnifer_lib.train.fit; remove it or use another "
                         "checkpoint_dir")
    old = ck["fingerprint"]
    differing = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
    diff = [f"{k}: checkpoint {old.get(k)!r} vs now {fingerprint.get(k)!r}" for k in differing]
    if differing and set(differing) <= set(restart_on):
        report(f"{path} was written with another world size ({'; '.join(diff)}): training starts over")
        return None
    if diff:
        raise ValueError(f"{path} was written by a fit with other settings ({'; '.join(diff)}); "
                         "remove it or use another checkpoint_dir")
    return ck


@dataclass(frozen=True)
class Recipe:
    """What :func:`fit` trains with: SGD with momentum, the learning-rate schedule
    (:func:`lr_at_epoch`), the augmentation of each training image (flip, pad-and-crop), label
    smoothing, and the seed every draw of an epoch derives from. The defaults are the paper's (§4.3)."""
    epochs: int = 25
    lr: float = 0.001
    momentum: float = 0.9
    lr_step: int = 10
    lr_gamma: float = 0.1
    batch_size: int = 64
    weight_decay: float = 0.0
    flip_p: float = 0.5
    crop_pad: int = 0
    lr_schedule: str = "step"
    label_smoothing: float = 0.0
    seed: int = 0
    mixup_alpha: float = 0.0

    def check(self) -> None:
        """``ValueError`` naming the first value out of its range."""
        if self.epochs < 0 or self.batch_size < 1:
            raise ValueError(f"epochs must be >= 0 and batch_size >= 1, got {self.epochs}, {self.batch_size}")
        if not 0.0 <= self.flip_p <= 1.0:
            raise ValueError(f"flip_p must lie in [0, 1], got {self.flip_p}")
        if self.crop_pad < 0 or not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"crop_pad must be >= 0 and label_smoothing in [0, 1), got {self.crop_pad}, "
                             f"{self.label_smoothing}")
        if not (self.mixup_alpha >= 0 and math.isfinite(self.mixup_alpha)):
            raise ValueError(f"mixup_alpha must be a finite number >= 0 (0 = no mixup), got {self.mixup_alpha}")
        self.lr_at(0)  # an unknown schedule fails here

    def lr_at(self, epoch: int) -> float:
        return lr_at_epoch(epoch, self.lr, self.lr_step, self.lr_gamma, self.lr_schedule, self.epochs or 1)

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)

    def draws(self, epoch: int, n: int, rank: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
        """Epoch ``epoch``'s sample order (n,) and augmentation (n, 3): flip (0/1), shift (dy, dx);
        and torch's global RNG (dropout) seeded for it. Everything random in an epoch derives from
        (seed, epoch), so a resumed run replays it exactly."""
        gen = generator(self.seed, epoch, 0)
        # dropout and any other global draws (other masks on each rank)
        seed_global(self.seed, epoch, 1, *([rank] if rank else []))
        order = torch.randperm(n, generator=gen)
        flips = torch.rand(n, generator=gen) < self.flip_p
        # drawn only when used, so that runs without translation keep their random stream
        shifts = (torch.randint(-self.crop_pad, self.crop_pad + 1, (n, 2), generator=gen) if self.crop_pad
                  else torch.zeros(n, 2, dtype=torch.int64))
        return order, torch.cat([flips.view(-1, 1).long(), shifts], 1)

    def mixing(self, epoch: int, rank: int = 0) -> Optional[Tuple[np.random.Generator, np.random.Generator]]:
        """Epoch ``epoch``'s mixup streams, ``None`` without mixup: λ of each minibatch (the same on
        every rank) and this rank's partners π (:func:`mixup_draw`); streams of their own, so a run
        without mixup draws what it always drew."""
        if not self.mixup_alpha:
            return None
        return (numpy_rng(derive_seed(self.seed, epoch, "mixup λ")),
                numpy_rng(derive_seed(self.seed, epoch, "mixup π", rank)))

    def fingerprint(self) -> Dict[str, Any]:
        """What a checkpoint of this recipe must match to be resumed."""
        out = _fingerprint(lr=self.lr, momentum=self.momentum, lr_step=int(self.lr_step), lr_gamma=self.lr_gamma,
                           batch_size=int(self.batch_size), weight_decay=self.weight_decay, flip_p=self.flip_p,
                           seed=int(self.seed))
        # only what differs from the paper's recipe: checkpoints of paper-recipe runs stay resumable
        recipe = {"crop_pad": int(self.crop_pad), "lr_schedule": self.lr_schedule,
                  "label_smoothing": float(self.label_smoothing)}
        out.update({k: v for k, v in recipe.items() if v != _PAPER_RECIPE[k]})
        if self.mixup_alpha:
            out["mixup_alpha"] = float(self.mixup_alpha)
        if self.lr_schedule == "cosine":  # its rates depend on the run's length: a longer run is another run
            out["epochs"] = int(self.epochs)
        return out


@dataclass
class Runtime:
    """Where :func:`fit` runs: the device, mixed precision (CUDA only), the memory layout, how data
    is held (in memory up to 2 GiB, else streamed by ``num_workers``), progress, and the
    ``torch.distributed`` group (``distributed``, ``sync_batchnorm``). None of it changes what is
    learned beyond float rounding."""
    device: Any = None
    amp: bool = False
    channels_last: Optional[bool] = None
    distributed: bool = False
    sync_batchnorm: bool = False
    num_workers: int = 0
    materialize: bool = True
    progress: Optional[bool] = None
    # set by place():
    dev: Optional[torch.device] = None
    rank: int = 0
    world: int = 1
    memory_format: torch.memory_format = torch.contiguous_format
    amp_dtype: Optional[torch.dtype] = None

    def place(self, model: nn.Module, batch_size: int) -> "Runtime":
        """Check the group and the device, move ``model`` there in its memory layout."""
        self.rank, self.world = _dist.rank_and_world(self.distributed, "fit")
        if self.world > 1 and batch_size < 2 * self.world:
            raise ValueError(f"batch_size {batch_size} is the global minibatch of {self.world} ranks: it must be at "
                             f"least {2 * self.world} (two images per rank, for BatchNorm)")
        self.dev = resolve_device(self.device)
        if self.sync_batchnorm and self.world > 1 and self.dev.type != "cuda":
            raise ValueError("sync_batchnorm=True needs CUDA devices (torch's SyncBatchNorm does not run on the CPU); "
                             "pass sync_batchnorm=False")
        model.to(self.dev)
        if self.channels_last is None:
            self.channels_last = channels_last_is_safe(model, self.dev)
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        model.to(memory_format=self.memory_format)
        if self.amp and self.dev.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return self

    def scaler(self) -> "torch.amp.GradScaler":
        return torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

    def fork_devices(self) -> List[int]:
        """The CUDA devices whose RNG :func:`fit` forks (none on the CPU)."""
        if self.dev.type != "cuda":
            return []
        return [self.dev.index if self.dev.index is not None else torch.cuda.current_device()]


@dataclass
class Checkpointer:
    """``fit.pt`` in ``folder`` (none: no checkpoints): written atomically after every ``every``
    epochs and after the last, by rank 0; resumed from when its ``fingerprint`` matches."""
    folder: Optional[Union[str, Path]]
    fingerprint: Dict[str, Any]
    every: int = 1

    @property
    def path(self) -> Optional[Path]:
        return Path(self.folder) / CHECKPOINT_FILE if self.folder is not None else None

    def resume(self, model: nn.Module, optimizer, scaler, epochs: int) -> Tuple[List[Dict[str, Any]], int]:
        """The history so far and the first epoch to train (``[], 0`` without a checkpoint)."""
        ck = _load_checkpoint(self.path, self.fingerprint, restart_on=("world_size", "sync_batchnorm")) \
            if self.path is not None else None
        if ck is None:
            return [], 0
        if ck["epoch"] > epochs:
            raise ValueError(f"{self.path} holds {ck['epoch']} finished epochs, more than the {epochs} "
                             "asked for; remove it or use another checkpoint_dir")
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scaler.load_state_dict(ck["scaler"])
        return list(ck["history"]), int(ck["epoch"])

    def after_epoch(self, done: int, epochs: int, model: nn.Module, optimizer, scaler,
                    history: List[Dict[str, Any]], runtime: Runtime) -> None:
        if self.path is None or (done % max(self.every, 1) != 0 and done != epochs):
            return
        if runtime.rank == 0:
            atomic_torch_save({"epoch": done, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scaler": scaler.state_dict(), "history": history,
                               "fingerprint": self.fingerprint}, self.path)
        _dist.barrier(runtime.world)  # no rank runs ahead of the checkpoint it would resume from


def fit(model: nn.Module, train_data: Data, *, epochs: int = 25, lr: float = 0.001, momentum: float = 0.9,
        lr_step: int = 10, lr_gamma: float = 0.1, batch_size: int = 64, weight_decay: float = 0.0,
        flip_p: float = 0.5, crop_pad: int = 0, lr_schedule: str = "step", label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        soft_targets: Optional[torch.Tensor] = None, seed: int = 0, test_data: Optional[Data] = None,
        device=None, amp: bool = False,
        checkpoint_dir: Optional[Union[str, Path]] = None, checkpoint_every: int = 1,
        das: Any = None, das_strategy: str = "minibatch",
        das_weight: float = 1.0, num_workers: int = 0, materialize: bool = True,
        channels_last: Optional[bool] = None, progress: Optional[bool] = None,
        callback: Optional[Callable[[Dict[str, Any]], None]] = None, distributed: bool = False,
        sync_batchnorm: bool = False) -> List[Dict[str, Any]]:
    """Train ``model`` in place on ``train_data`` (see the module docstring for the recipe).

    Args:
        model: a FER model (``forward(x) -> logits``); moved to ``device``.
        train_data: a Dataset yielding ``(image 3xHxW in [0, 1], label)``, a TensorDataset or a
            tuple ``(images (N, 3, H, W), labels (N,))``. Labels must lie in
            ``0..num_classes-1`` (no ``-1``).
        epochs, lr, momentum, lr_step, lr_gamma, weight_decay: SGD with a step schedule
            (lr of 0-based epoch e = ``lr * lr_gamma ** (e // lr_step)``).
        lr_schedule: ``"step"`` (above, the paper's) or ``"cosine"`` (:func:`lr_at_epoch`).
        batch_size: images per minibatch (anchor images; DAS of the "minibatch" strategy come on top).
        flip_p: probability of a horizontal flip per training image.
        crop_pad: random translation of each training image by up to this many pixels in each
            direction (pad-and-crop with reflected borders, :func:`translate`); 0 = none (the paper's).
        label_smoothing: label smoothing ε of the training images' cross-entropy (not of the "minibatch"
            strategy's DAS term; distilled images of the "samples" strategy are training images).
        mixup_alpha: α of mixup on the training images (module docstring, :func:`mixup`); 0 = none
            (the paper's). Under mixup ``train_accuracy`` scores the mixed images against the label of
            each mix's first image.
        soft_targets: optional (N, num_classes) target distributions, one row per training image in
            the order of ``train_data`` (rows of non-negative numbers summing to 1): the cross-entropy
            is taken against them instead of the labels, which still give ``train_accuracy``; e.g. soft
            pseudo-labels (:func:`fit_final`'s ``vas_soft_labels``). Not with the "samples" DAS strategy.
        seed: non-negative int; fixes data order, flips, dropout.
        test_data: optional data scored after every epoch (``test_accuracy``).
        device: ``None``/``"auto"``, ``"cpu"``, ``"cuda[:N]"``.
        amp: mixed precision on CUDA (no-op on the CPU).
        checkpoint_dir: folder for ``fit.pt`` (resumed from when present).
        checkpoint_every: write the checkpoint after every this many epochs and after the last
            (VGG-16 with its momentum is ~1 GB: on a fast GPU a write per epoch can cost more
            than a few percent).
        das, das_strategy, das_weight: distilled auxiliary samples and how they join training.
        num_workers: DataLoader workers when data is streamed instead of held in memory.
        materialize: hold datasets of up to 2 GiB of images in memory as one tensor (fast);
            ``False`` always streams through a DataLoader (same numbers, slower on small data).
        channels_last: hold weights and activations channels-last (NHWC); ``None`` decides with
            :func:`channels_last_is_safe`. Measured on a 2-core CPU, the demo's small CNNs train
            1.3-1.6x faster so, and GPUs with tensor cores prefer it. The numbers differ from
            NCHW in the last bits (another convolution kernel).
        progress: show a progress bar (``None``: the ``OMNIFER_PROGRESS`` setting).
        callback: called with each epoch's history record after its checkpoint is written.
        distributed: train under the running ``torch.distributed`` process group (module
            docstring; ``batch_size`` is then the global minibatch, at least 2 per rank).
        sync_batchnorm: with ``distributed`` on CUDA, BatchNorm statistics over the global minibatch.

    Returns:
        The history, one dict per epoch: ``epoch`` (1-based), ``lr``, ``loss`` (mean training
        loss), ``train_accuracy`` (percent, on the training images as augmented, in training
        mode), ``test_accuracy`` (percent; only with ``test_data``), ``seconds`` (training time
        of the epoch, without the test), ``images_per_second``. The model is left in eval mode.
    """
    recipe = Recipe(epochs, lr, momentum, lr_step, lr_gamma, batch_size, weight_decay, flip_p, crop_pad, lr_schedule,
                    label_smoothing, seed, mixup_alpha)
    recipe.check()
    if das_strategy not in DAS_STRATEGIES:
        raise ValueError(f"das_strategy must be one of {DAS_STRATEGIES}, got {das_strategy!r}")
    rt = Runtime(device, amp, channels_last, distributed, sync_batchnorm, num_workers, materialize, progress)
    rt.place(model, batch_size)
    src = _prepare_training_set(train_data, das, das_strategy, soft_targets, rt, getattr(model, "num_classes", None))
    test_pair = None if test_data is None else as_tensors(test_data, max_bytes=MATERIALIZE_MAX_BYTES if materialize
                                                          else 0, progress=progress)
    optimizer, scaler = recipe.optimizer(model), rt.scaler()
    checkpoints = Checkpointer(checkpoint_dir, _fit_fingerprint(model, src, recipe, rt, das_strategy, das_weight),
                               checkpoint_every)
    history, start = checkpoints.resume(model, optimizer, scaler, epochs)
    bounds = _batch_bounds(src.n_total, batch_size, min_last=2 * rt.world)
    if rt.world > 1 and src.n_total < 2 * rt.world:
        raise ValueError(f"{src.n_total} training images cannot be dealt to {rt.world} ranks (two per rank at least)")
    batchnorms = _batchnorm_layers(model) if sync_batchnorm and rt.world > 1 else {}
    trained = _wrap_for_ranks(model, rt.dev, rt.world, sync_batchnorm)
    bar = _progress(total=(epochs - start) * len(bounds), desc="training", enable=progress if rt.rank == 0 else False)
    try:
        with forked(rt.fork_devices()):
            for epoch in range(start, epochs):
                bar.set_description(f"epoch {epoch + 1}/{epochs}")
                for group in optimizer.param_groups:
                    group["lr"] = recipe.lr_at(epoch)
                order, augment = recipe.draws(epoch, src.n_total, rt.rank)
                record = _train_epoch(trained, optimizer, scaler, src, order, augment, bounds, rt.dev, num_workers,
                                      das_strategy, das_weight, rt.amp_dtype, bar, rt.memory_format,
                                      (rt.rank, rt.world), crop_pad, label_smoothing,
                                      (mixup_alpha, recipe.mixing(epoch, rt.rank)))
                record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], **record}
                if not math.isfinite(record["loss"]):
                    raise FloatingPointError(f"training loss became {record['loss']} in epoch {epoch + 1} "
                                             f"(lr {record['lr']}); lower the learning rate")
                if test_data is not None:
                    record["test_accuracy"] = _test_accuracy(model, test_pair if test_pair is not None else test_data,
                                                             rt.dev, amp, num_workers)
                history.append(record)
                _report_epoch(bar, record, epochs, rt.rank)
                checkpoints.after_epoch(epoch + 1, epochs, model, optimizer, scaler, history, rt)
                if callback is not None:
                    callback(record)
    finally:
        bar.close()
        _put_back(model, batchnorms)  # the SyncBatchNorm layers share their weights with these
    model.eval()
    return history


def _fit_fingerprint(model: nn.Module, src: "_TrainingSet", recipe: Recipe, rt: Runtime, das_strategy: str,
                     das_weight: float) -> Dict[str, Any]:
    """What a checkpoint must match to be resumed: the model, the training set, the recipe, AMP,
    the DAS and how they join; the world size (another deals other minibatches)."""
    out = _fingerprint(model=str(getattr(model, "config", {}).get("name", type(model).__name__)),
                       n_train=int(src.n_real), label_sum=src.label_sum, **recipe.fingerprint(), amp=bool(rt.amp),
                       das=None if src.das_x is None and src.n_das == 0 else
                       f"{das_strategy}:{src.n_das}:{float(das_weight)}")
    if src.soft is not None:
        out["soft_targets"] = hashlib.sha256(src.soft.cpu().numpy().tobytes()).hexdigest()[:16]
    if rt.world > 1:
        out.update(world_size=rt.world, sync_batchnorm=bool(rt.sync_batchnorm))
    return out


def _report_epoch(bar, record: Dict[str, Any], epochs: int, rank: int) -> None:
    bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['train_accuracy']:.1f}")
    if rank == 0:
        report(f"epoch {record['epoch']}/{epochs}: loss {record['loss']:.3f}, "
               f"train accuracy {record['train_accuracy']:.1f} %")


def _wrap_for_ranks(model: nn.Module, dev: torch.device, world: int, sync_batchnorm: bool) -> nn.Module:
    """``model`` itself in one process; under several ranks, wrapped in DistributedDataParallel
    (which broadcasts rank 0's weights and buffers, then all-reduces the gradients)."""
    if world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if sync_batchnorm:
        nn.SyncBatchNorm.convert_sync_batchnorm(model)  # replaces model's BatchNorm children in place
    ids = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _batchnorm_layers(model: nn.Module) -> Dict[str, nn.Module]:
    """Every BatchNorm layer of ``model`` by its name (what SyncBatchNorm conversion replaces)."""
    return {name: m for name, m in model.named_modules()
            if name and isinstance(m, nn.modules.batchnorm._BatchNorm)}


def _put_back(model: nn.Module, layers: Dict[str, nn.Module]) -> None:
    """Put ``layers`` (from :func:`_batchnorm_layers`) back in their places, with the weights and
    statistics the layers now there learned (the model leaves :func:`fit` as it came in)."""
    for name, layer in layers.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        current = getattr(parent, child)
        if current is not layer:
            layer.load_state_dict(current.state_dict())
            setattr(parent, child, layer)


def channels_last_is_safe(model: nn.Module, device: torch.device) -> bool:
    """Whether :func:`fit` trains ``model`` channels-last by default on ``device``.

    Always on CUDA. On the CPU only when every convolution past the RGB input has at least 16
    input channels: with torch 2.14's oneDNN, the backward pass of a channels-last 1x1
    stride-2 convolution with 4 or 8 input channels crashed the process (segmentation fault)
    for odd batch sizes (e.g. 39 = a batch of 32 plus the seven distilled images), which the
    smoke profile's width-4 nets hit; from 16 channels up no crash was found.
    """
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    return all(m.in_channels == 3 or m.in_channels >= 16 for m in model.modules() if isinstance(m, nn.Conv2d))


@dataclass
class _TrainingSet:
    """What one epoch iterates: tensors in memory (``images``/``labels``) or a streamed
    ``dataset``; indices ``>= n_real`` are distilled samples of the "samples" strategy."""

    images: Optional[torch.Tensor]
    labels: Optional[torch.Tensor]
    dataset: Optional[Dataset]
    n_real: int
    n_total: int
    label_sum: int
    das_x: Optional[torch.Tensor]  # the "minibatch" strategy's DAS, on the device
    das_y: Optional[torch.Tensor]
    n_das: int
    soft: Optional[torch.Tensor] = None  # (n_real, K) target distributions on the device (fit's soft_targets)


def _check_soft_targets(soft: Any, src: _TrainingSet, num_classes: Optional[int]) -> torch.Tensor:
    soft = torch.as_tensor(soft, dtype=torch.float32)
    if soft.dim() != 2 or len(soft) != src.n_real or (num_classes is not None and soft.shape[1] != num_classes):
        raise ValueError(f"soft_targets must be ({src.n_real}, {num_classes or 'K'}): one distribution over the "
                         f"classes per training image; got {tuple(soft.shape)}")
    if src.n_total != src.n_real:
        raise ValueError("soft_targets cover the training images only: use das_strategy='minibatch' with them")
    if not torch.isfinite(soft).all() or (soft < 0).any() or not torch.allclose(soft.sum(1), torch.ones(len(soft)),
                                                                               atol=1e-3):
        raise ValueError("soft_targets rows must be probabilities: finite, non-negative, each summing to 1")
    return soft


def _prepare_training_set(train_data: Data, das: Any, das_strategy: str, soft_targets: Any, rt: Runtime,
                          num_classes: Optional[int]) -> _TrainingSet:
    """The training set as one epoch iterates it (:class:`_TrainingSet`), on ``rt``'s device."""
    src = _training_set(train_data, das, das_strategy, rt.materialize, rt.progress, rt.dev, num_classes)
    if soft_targets is not None:
        src.soft = _check_soft_targets(soft_targets, src, num_classes).to(rt.dev)
    if src.das_x is not None:
        src.das_x = src.das_x.contiguous(memory_format=rt.memory_format)
    return src


def _training_set(train_data: Data, das: Any, das_strategy: str, materialize: bool, progress: Optional[bool],
                  dev: torch.device, num_classes: Optional[int]) -> _TrainingSet:
    pair = as_tensors(train_data, max_bytes=MATERIALIZE_MAX_BYTES if materialize else 0, progress=progress)
    images, labels = pair if pair is not None else (None, None)
    dataset = None if pair is not None else train_data
    n_real = len(labels) if pair is not None else len(train_data)
    if labels is not None:
        _check_labels(labels, num_classes)
    label_sum = int(labels.sum()) if labels is not None else -1
    das_x, das_y = _das_tensors(das) if das is not None else (None, None)
    n_das = 0 if das_x is None else len(das_x)
    if das_x is not None and das_strategy == "samples":
        if images is not None:
            if das_x.shape[1:] != images.shape[1:]:
                raise ValueError(f"das images are {tuple(das_x.shape[1:])}, training images "
                                 f"{tuple(images.shape[1:])}; they must match")
            images, labels = torch.cat([images, das_x]), torch.cat([labels, das_y])
        else:
            dataset = ConcatDataset([dataset, PairDataset(das_x, das_y)])
        n_total, das_x, das_y = n_real + n_das, None, None
    else:
        n_total = n_real
    if das_x is not None:
        das_x, das_y = das_x.to(dev), das_y.to(dev)
    if images is not None and dev.type == "cuda":
        # small enough to have been materialised: keep it on the GPU, index batches there
        images, labels = images.to(dev), labels.to(dev)
    return _TrainingSet(images, labels, dataset, n_real, n_total, label_sum, das_x, das_y, n_das)


def _train_epoch(model: nn.Module, optimizer, scaler, src: _TrainingSet, order: torch.Tensor,
                 augment: torch.Tensor, bounds, dev: torch.device, num_workers: int, das_strategy: str,
                 das_weight: float, amp_dtype, bar,
                 memory_format: torch.memory_format = torch.contiguous_format,
                 part: Tuple[int, int] = (0, 1), crop_pad: int = 0,
                 label_smoothing: float = 0.0, mixing: Tuple[float, Optional[tuple]] = (0.0, None)
                 ) -> Dict[str, float]:
    """One pass over the training set (this rank's ``part = (rank, world)`` of every minibatch);
    ``augment`` (N, 3) int: per position of the epoch's order, flip (0/1) and shift (dy, dx);
    ``mixing``: mixup's α and the epoch's streams (:meth:`Recipe.mixing`; ``None``: no mixup).
    Returns loss, train_accuracy, seconds, images_per_second, over all ranks."""
    model.train()
    t0 = time.perf_counter()
    world = part[1]
    if src.images is not None:
        batches = _tensor_batches(src.images, src.labels, order, augment, bounds, dev, part)
    else:
        batches = _loader_batches(src.dataset, order, augment, bounds, dev, num_workers, dev.type == "cuda", part)
    weighted = das_strategy == "samples" and src.n_total > src.n_real and das_weight != 1.0
    # running sums stay on the device: no host synchronisation per batch
    loss_sum = torch.zeros((), device=dev)
    correct = torch.zeros((), device=dev, dtype=torch.int64)
    seen = torch.zeros((), device=dev, dtype=torch.int64)
    for (s, e), (x, y, aug, idx) in zip(bounds, batches):
        x = torch.where(aug[:, 0].bool().view(-1, 1, 1, 1), x.flip(3), x)
        x = translate(x, aug[:, 1:], crop_pad).contiguous(memory_format=memory_format)
        weight = torch.where(idx >= src.n_real, float(das_weight), 1.0).to(dev) if weighted else None
        # DDP averages the ranks' gradients: scaled so, that average is the global minibatch's mean
        scale = len(y) * world / (e - s) if world > 1 else 1.0
        target = src.soft[idx.to(src.soft.device)] if src.soft is not None else None
        mix = None
        if mixing[1] is not None:
            lam, perm = mixup_draw(*mixing[1], mixing[0], len(y))
            perm = perm.to(dev)
            x = mixup(x, lam, perm)
            mix = (lam, perm)
        loss, logits = _step(model, optimizer, scaler, x, y, weight, src.das_x, src.das_y, das_weight,
                             amp_dtype, dev, scale, label_smoothing, target, mix)
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        bar.update(1)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    if world > 1:
        totals = _dist.all_reduce_sum(torch.stack([loss_sum.double(), correct.double(), seen.double()]), world)
        loss_total, n_correct, n_seen = (float(v) for v in totals)
    else:
        loss_total, n_correct, n_seen = float(loss_sum), float(correct), int(seen)
    return {"loss": loss_total / max(n_seen, 1), "train_accuracy": 100.0 * n_correct / max(n_seen, 1),
            "seconds": seconds, "images_per_second": n_seen / seconds if seconds > 0 else float("nan")}


def _test_accuracy(model: nn.Module, data: Data, dev: torch.device, amp: bool, num_workers: int) -> float:
    from .evaluate import dataset_labels

    y_pred = predict(model, data, device=dev, amp=amp, num_workers=num_workers, progress=False)
    y_true = dataset_labels(data).cpu()
    known = y_true >= 0
    return 100.0 * float((y_pred[known] == y_true[known]).float().mean())


def _check_labels(labels: torch.Tensor, num_classes: Optional[int]) -> None:
    if len(labels) == 0:
        raise ValueError("the training data is empty")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0:
        raise ValueError(f"the training data has {int((labels < 0).sum())} samples with the unknown label -1; "
                         "train on labeled (or pseudo-labeled) samples only")
    if num_classes is not None and hi >= num_classes:
        raise ValueError(f"training label {hi} is out of range for a model with {num_classes} classes")


def _tensor_batches(images: torch.Tensor, labels: torch.Tensor, order: torch.Tensor, augment: torch.Tensor,
                    bounds: Sequence[Tuple[int, int]], dev: torch.device, part: Tuple[int, int] = (0, 1)):
    rank, world = part
    order_d = order.to(images.device)
    augment_d = augment.to(dev)
    for s, e in bounds:
        idx = order_d[s:e][rank::world]
        yield (images[idx].to(dev, non_blocking=True), labels[idx].to(dev, non_blocking=True),
               augment_d[s:e][rank::world], order[s:e][rank::world])


def _loader_batches(data: Dataset, order: torch.Tensor, augment: torch.Tensor, bounds: Sequence[Tuple[int, int]],
                    dev: torch.device, num_workers: int, pin: bool, part: Tuple[int, int] = (0, 1)):
    rank, world = part
    # this rank's share of each minibatch only: its loader never reads the other ranks' images
    batch_sampler = [order[s:e][rank::world].tolist() for s, e in bounds]
    # An own generator: a DataLoader otherwise draws its worker base seed from the global RNG,
    # which would shift the dropout draws of this epoch relative to the in-memory path.
    loader = DataLoader(data, batch_sampler=batch_sampler, num_workers=num_workers, pin_memory=pin,
                        generator=torch_generator(int(order[0]) if len(order) else 0))
    augment_d = augment.to(dev)
    for (s, e), (x, y) in zip(bounds, loader):
        s_part = slice(s + rank, e, world)
        y = torch.as_tensor(y, dtype=torch.int64)
        if int(y.min()) < 0:
            raise ValueError("the training data has samples with the unknown label -1; "
                             "train on labeled (or pseudo-labeled) samples only")
        yield x.to(dev, non_blocking=True), y.to(dev, non_blocking=True), augment_d[s_part], order[s_part]


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: "torch.amp.GradScaler",
          x: torch.Tensor, y: torch.Tensor, weight: Optional[torch.Tensor], das_x: Optional[torch.Tensor],
          das_y: Optional[torch.Tensor], das_weight: float, amp_dtype, dev: torch.device, scale: float = 1.0,
          label_smoothing: float = 0.0, target: Optional[torch.Tensor] = None,
          mix: Optional[Tuple[float, torch.Tensor]] = None):
    """One SGD step; returns (loss, logits of the ``x`` part). ``scale`` multiplies the ``x`` part's
    loss in the gradient only (the ranks' shares of a minibatch, :func:`_train_epoch`); ``target``
    (B, K) distributions replace the labels ``y`` in the loss (soft targets); ``mix = (λ, π)``: ``x``
    is mixed (:func:`mixup`), so the loss is mixed too."""
    target = y if target is None else target
    n = len(y)
    ctx = torch.autocast(dev.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    with ctx:
        inputs = x if das_x is None else torch.cat([x, das_x])
        logits_all = model(inputs)
        logits = logits_all[:n]
        if mix is not None:
            loss = mixup_loss(logits.float(), target, *mix, weight=weight, label_smoothing=label_smoothing)
        elif weight is None:
            loss = F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)
        else:
            loss = (F.cross_entropy(logits.float(), target, reduction="none", label_smoothing=label_smoothing)
                    * weight).mean()
        das_loss = das_weight * F.cross_entropy(logits_all[n:].float(), das_y) if das_x is not None else None
        objective = loss if scale == 1.0 else loss * scale
        if das_loss is not None:
            loss, objective = loss + das_loss, objective + das_loss
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(objective).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss, logits.detach()


def mixup_draw(lam_rng: np.random.Generator, perm_rng: np.random.Generator, alpha: float,
               n: int) -> Tuple[float, torch.Tensor]:
    """One minibatch's mixup draw: λ ~ Beta(α, α) from ``lam_rng`` and a permutation π of ``n`` (int64)
    from ``perm_rng``."""
    return float(lam_rng.beta(alpha, alpha)), torch.as_tensor(perm_rng.permutation(n), dtype=torch.int64)


def mixup(values: torch.Tensor, lam: float, perm: torch.Tensor) -> torch.Tensor:
    """``λ · values + (1 - λ) · values[π]`` along the first dimension: images ``(B, 3, H, W)``,
    per-image weights ``(B,)`` or target distributions ``(B, K)``."""
    return lam * values + (1.0 - lam) * values[perm]


def mixup_loss(logits: torch.Tensor, target: torch.Tensor, lam: float, perm: torch.Tensor, *,
               weight: Optional[torch.Tensor] = None, label_smoothing: float = 0.0) -> torch.Tensor:
    """The mean cross-entropy of images mixed by (λ, π): ``λ ℓ(t_i) + (1 - λ) ℓ(t_π(i))`` per image,
    ``target`` labels ``(B,)`` or distributions ``(B, K)``. With per-image weights ``weight`` ``(B,)``
    (of the images before mixing) each term carries its own image's weight,
    ``λ w_i ℓ(t_i) + (1 - λ) w_π(i) ℓ(t_π(i))``, so an image of weight 0 teaches nothing. Cross-entropy
    is linear in the target, so without weights this is the loss against the mixed one-hot (or soft)
    targets."""
    def ce(t: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, t, reduction="none", label_smoothing=label_smoothing)

    if weight is None:
        return (lam * ce(target) + (1.0 - lam) * ce(target[perm])).mean()
    return (lam * weight * ce(target) + (1.0 - lam) * weight[perm] * ce(target[perm])).mean()


# --------------------------------------------------------------------------------------
# final-training modes, face pretraining


def union(*datasets: Data) -> Data:
    """The union of datasets (anchor ∪ VAS): one tensor pair when all are tensor pairs, else a
    ``ConcatDataset``. Image sizes must agree."""
    pairs = [_as_pair(d) for d in datasets]
    if all(p is not None for p in pairs):
        shapes = {tuple(p[0].shape[1:]) for p in pairs}
        if len(shapes) > 1:
            raise ValueError(f"cannot join datasets of different image shapes {sorted(shapes)}")
        return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
    return ConcatDataset([PairDataset(*p) if p is not None else d for p, d in zip(pairs, datasets)])


def fit_final(model: nn.Module, anchor: Data, mode: str = "anchor", *, vas: Optional[Data] = None,
              das: Any = None, vas_soft_labels: Optional[Any] = None, **fit_kwargs: Any) -> List[Dict[str, Any]]:
    """Train a final learner in one of :data:`FINAL_MODES` (module docstring); ``fit_kwargs``
    go to :func:`fit` (e.g. ``das_strategy``, ``das_weight``, ``epochs``). ``vas_soft_labels``
    (M, K), with mode ``"anchor+VAS"``: train the M auxiliary samples on these distributions (e.g.
    :func:`omnifer_lib.select.soft_pseudo_labels`) instead of their pseudo-labels; the anchor keeps
    its labels (one-hot)."""
    if mode not in FINAL_MODES:
        raise ValueError(f"mode must be one of {FINAL_MODES}, got {mode!r}")
    if vas_soft_labels is not None and mode != "anchor+VAS":
        raise ValueError(f"vas_soft_labels apply to mode 'anchor+VAS', not {mode!r}")
    if mode == "anchor":
        return fit(model, anchor, **fit_kwargs)
    if mode == "anchor+VAS":
        if vas is None:
            raise ValueError("mode 'anchor+VAS' needs vas= (the selected auxiliary samples with pseudo-labels)")
        soft = None
        if vas_soft_labels is not None:
            from .evaluate import dataset_labels

            vas_soft = torch.as_tensor(vas_soft_labels, dtype=torch.float32)
            n_vas = len(dataset_labels(vas))
            if vas_soft.dim() != 2 or len(vas_soft) != n_vas:
                raise ValueError(f"vas_soft_labels must be ({n_vas}, K), one distribution per auxiliary sample; "
                                 f"got {tuple(vas_soft.shape)}")
            hard = F.one_hot(dataset_labels(anchor).long(), vas_soft.shape[1]).float()
            soft = torch.cat([hard, vas_soft])
        return fit(model, union(anchor, vas), soft_targets=soft, **fit_kwargs)
    if das is None:
        raise ValueError("mode 'anchor+DAS' needs das= (distilled images and labels)")
    return fit(model, anchor, das=das, **fit_kwargs)


def pretrain_identity(model: nn.Module, dataset: Data, *, subjects: Optional[Sequence] = None,
                      num_classes: int = 7, epochs: int = 10, lr: float = 0.01, seed: int = 0,
                      **fit_kwargs: Any) -> Tuple[nn.Module, List[Dict[str, Any]]]:
    """Face pretraining (the demo's stand-in for VGG-Face's celebrity training): train ``model``
    to classify the identities of ``dataset`` with a temporary identity head, then give it a
    fresh ``num_classes`` expression head.

    ``subjects``: identity of each sample (any hashable values); default ``dataset.subjects``.
    Returns ``(model, history)``; ``fit_kwargs`` go to :func:`fit` (flip, batch size,
    checkpoint_dir, ...). The model must offer ``replace_head`` semantics (an ``omnifer_lib``
    FER model).
    """
    from .models import replace_head

    if subjects is None:
        subjects = getattr(dataset, "subjects", None)
    if subjects is None:
        raise ValueError("pretrain_identity needs identities: pass subjects= or a dataset with a .subjects "
                         "attribute (e.g. the synthetic 'ms1m' domain)")
    subjects = np.asarray(subjects)
    _, ids = np.unique(subjects, return_inverse=True)
    n_ids = int(ids.max()) + 1
    if n_ids < 2:
        raise ValueError(f"identity pretraining needs at least 2 identities, got {n_ids}")
    pair = as_tensors(dataset, max_bytes=None if fit_kwargs.get("materialize", True) else 0)
    if pair is None:  # only with materialize=False: stream the images, relabelled by identity
        raise ValueError("pretrain_identity holds the pretraining images in memory; use materialize=True")
    if len(pair[0]) != len(ids):
        raise ValueError(f"{len(ids)} subjects for {len(pair[0])} images")
    replace_head(model, n_ids, seed=derive_seed(seed, 1))
    history = fit(model, (pair[0], torch.as_tensor(ids, dtype=torch.int64)), epochs=epochs, lr=lr, seed=seed,
                  **fit_kwargs)
    replace_head(model, num_classes, seed=derive_seed(seed, 2))
    return model, history
