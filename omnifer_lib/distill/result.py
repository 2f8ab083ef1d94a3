"""The result type every distiller and baseline returns, and helpers they share."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

#: Default step size η given to sets whose step sizes were not learned (random real samples,
#: per-class mean images, distribution matching): the ``eta0`` that Algorithm 1 starts from.
DEFAULT_STEP_SIZE = 0.01

@dataclass
class DistillResult:
    """A distilled (or baseline) set of auxiliary samples.

    Attributes:
        images: ``(n·C, 3, H, W)`` float32 on the CPU, class-major order (all images of
            class 0, then class 1, ...); in ``[0, 1]`` unless distilled with ``clamp=False``.
        labels: ``(n·C,)`` int64 class indices (canonical label order).
        step_sizes: ``(T,)`` float32 step sizes η, one per inner step, positive. Learned by
            Algorithm 1; for the other methods ``[DEFAULT_STEP_SIZE]`` (documented default).
        method: ``"algorithm1"``, ``"random_real"``, ``"mean_image"`` or ``"distribution_matching"``.
        config: JSON-able settings that produced the set.
        loss_history: the objective per outer iteration (Algorithm 1: mean outer loss over the
            K initialisations; distribution matching: its matching loss); empty for fixed sets.
        step_size_history: η after each outer iteration (Algorithm 1), ``(iterations, T)`` as lists.
        snapshots: intermediate sets, each ``{"iteration": int, "images": Tensor,
            "step_sizes": Tensor}`` taken after every ``snapshot_every`` iterations (§4.5).
    """

    images: Tensor
    labels: Tensor
    step_sizes: Tensor
    method: str
    config: Dict[str, Any] = field(default_factory=dict)
    loss_history: List[float] = field(default_factory=list)
    step_size_history: List[List[float]] = field(default_factory=list)
    snapshots: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return int(self.config.get("num_classes", int(self.labels.max()) + 1))

    @property
    def inner_steps(self) -> int:
        return int(self.step_sizes.shape[0])

    def __repr__(self) -> str:
        return (f"DistillResult(method={self.method!r}, images={tuple(self.images.shape)}, "
                f"step_sizes={[round(float(e), 5) for e in self.step_sizes]}, "
                f"iterations={len(self.loss_history)}, snapshots={len(self.snapshots)})")




class RealSamples:
    """Labeled real images (the auxiliary samples) read by index: a pair of tensors or a Dataset.

    ``images`` may be a ``(N, 3, H, W)`` tensor (then ``labels`` ``(N,)`` is required) or a
    ``torch.utils.data.Dataset`` yielding ``(image 3xHxW, label)``; its labels come from
    ``labels``, else its ``.labels`` attribute, else by reading every item once. Datasets are
    read lazily, so a pool that does not fit in memory can be distilled.
    """

    def __init__(self, images: Union[Tensor, Dataset], labels: Optional[Union[Tensor, Sequence[int]]] = None,
                 num_classes: int = 7):
        if torch.is_tensor(images):
            if labels is None:
                raise ValueError("labels are required when real images are given as a tensor")
            if images.dim() != 4:
                raise ValueError(f"real images must be (N, C, H, W), got shape {tuple(images.shape)}")
            self._images: Optional[Tensor] = images
            self._dataset = None
        else:
            self._images = None
            self._dataset = images
            if labels is None:
                labels = getattr(images, "labels", None)
            if labels is None:
                labels = [int(images[i][1]) for i in range(len(images))]
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long).reshape(-1)
        if self._images is not None and self.labels.shape[0] != self._images.shape[0]:
            raise ValueError(f"{self._images.shape[0]} real images but {self.labels.shape[0]} labels")
        bad = (self.labels < 0) | (self.labels >= num_classes)
        if bool(bad.any()):
            raise ValueError(f"{int(bad.sum())} real samples have labels outside 0..{num_classes - 1} "
                             "(e.g. -1 = unlabeled); distil only labeled or pseudo-labeled samples")
        if self.labels.numel() == 0:
            raise ValueError("no real samples to distil from")
        self.num_classes = num_classes

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def images(self, index: Tensor) -> Tensor:
        """Images at ``index`` ``(B,)`` as a float32 ``(B, 3, H, W)`` CPU tensor."""
        if self._images is not None:
            return self._images[index].float()
        return torch.stack([torch.as_tensor(self._dataset[int(i)][0]) for i in index]).float()

    def class_indices(self, k: int) -> Tensor:
        return torch.nonzero(self.labels == k).reshape(-1)

    def random_batch(self, size: int, gen: torch.Generator) -> Tuple[Tensor, Tensor]:
        """``size`` samples drawn without replacement (all of them if fewer): ``(x, y)``."""
        idx = torch.randperm(len(self), generator=gen)[: min(size, len(self))]
        return self.images(idx), self.labels[idx]

    def per_class_random(self, n: int, gen: torch.Generator) -> Tuple[Tensor, List[int]]:
        """Indices of ``n`` random samples of each class, class-major ``(n·C,)``; classes with
        fewer than ``n`` samples repeat theirs. Returns ``(index, empty_classes)``; an empty
        class gets index -1 entries."""
        out, empty = [], []
        for k in range(self.num_classes):
            pool = self.class_indices(k)
            if pool.numel() == 0:
                empty.append(k)
                out.append(torch.full((n,), -1, dtype=torch.long))
                continue
            order = pool[torch.randperm(pool.numel(), generator=gen)]
            out.append(order[torch.arange(n) % pool.numel()])
        return torch.cat(out), empty


def class_major_labels(num_classes: int, per_class: int) -> Tensor:
    """``(num_classes·per_class,)`` labels ``[0]*n + [1]*n + ...``."""
    return torch.arange(num_classes).repeat_interleave(per_class)
