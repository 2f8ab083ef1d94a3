"""The interface every FER model of omnifer implements.

A model maps images ``(B, 3, H, W)`` float in ``[0, 1]`` to logits ``(B, num_classes)`` in two
steps: ``features(x) -> (B, feature_dim)``, the layer before the softmax output that §3.3 uses
for the class centroids (Eq. 3) and the cosine selection (Eq. 4-5), and
``classify(features) -> (B, num_classes)``, the expression head. ``forward`` is their
composition. Each model normalises its input itself, with the statistics of the data it was
(or would be) pretrained on, so callers always hand in ``[0, 1]`` images.
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, Sequence

import torch
from torch import nn

from ..seeds import torch_seeded


class FERModel(nn.Module):
    """Base class: input normalisation, ``features``/``classify``/``forward``, ``head``.

    Subclasses define ``self.head`` (the ``nn.Linear`` that produces the logits), set
    ``self.feature_dim`` and implement :meth:`_features` (on normalised input) and
    :meth:`init_weights` (their family's own initialiser, used by
    :func:`omnifer_lib.models.reinitialize`).
    """

    #: Architecture family: ``"vgg"`` (plain conv net, no BatchNorm) or ``"resnet"``.
    family: str = ""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        # Not persistent: the statistics are part of the architecture, not learned weights,
        # so state dicts stay exactly the learned tensors.
        self.register_buffer("input_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("input_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.feature_dim: int = 0
        #: How the model was built: ``{"name": ..., "num_classes": ..., **options}``.
        self.config: Dict[str, Any] = {}
        self.head: nn.Linear

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``[0, 1]`` images -> the input statistics the backbone expects."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(x.shape)}")
        return (x - self.input_mean.to(x.dtype)) / self.input_std.to(x.dtype)

    def _features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` images in ``[0, 1]`` -> ``(B, feature_dim)`` features."""
        return self._features(self.normalize(x))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, feature_dim)`` features -> ``(B, num_classes)`` logits."""
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))

    def init_weights(self) -> None:  # pragma: no cover - abstract
        """Draw every weight from the family's initialiser (uses torch's global RNG)."""
        raise NotImplementedError

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """All parameters except those of the expression head."""
        head = {id(p) for p in self.head.parameters()}
        return (p for p in self.parameters() if id(p) not in head)


def init_vgg_style(module: nn.Module) -> None:
    """VGG initialiser (as torchvision's VGG): He-normal convs (fan_out), N(0, 0.01) linears,
    zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


def init_resnet_style(module: nn.Module) -> None:
    """ResNet initialiser (as torchvision's ResNet): He-normal convs (fan_out), BatchNorm
    weight 1 / bias 0 with fresh running statistics, PyTorch's default for linears."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
        elif isinstance(m, nn.Linear):
            m.reset_parameters()


@contextlib.contextmanager
def seeded(seed: int, module: nn.Module | None = None):
    """Run a block with torch's global RNG seeded by ``seed`` and restore it afterwards, so
    initialising a model with a seed leaves the caller's random state untouched. The CUDA
    generator of the module's device is forked too when the module lives on a GPU."""
    devices = []
    if module is not None:
        for p in module.parameters():
            if p.is_cuda:
                devices = [p.device.index if p.device.index is not None else torch.cuda.current_device()]
            break
    with torch_seeded(seed, devices):
        yield


class FlipAveraged(nn.Module):
    """A FER model whose features are the mean of its features of an image and of the image
    mirrored left to right; ``classify`` is the model's own linear head, so its logits are the mean
    of the two views' logits too. Test-time augmentation for scoring a pool before selecting
    (a face and its mirror carry the same expression). Shares the model's weights."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` images in ``[0, 1]`` -> ``(B, feature_dim)``, the two views' mean."""
        return 0.5 * (self.model.features(x) + self.model.features(x.flip(3)))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.classify(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))
