"""The "simple CNN" of the paper's §4.5 (trained on the distilled images to ask whether they
carry class patterns; :mod:`omnifer_lib.distill.discussion` runs the experiment)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..seeds import torch_seeded


class SimpleCNN(nn.Module):
    """The "simple CNN" of §4.5 (the paper gives no architecture): three 3x3 conv layers
    (``width``, ``2·width``, ``2·width`` channels) with ReLU, 2x2 max-pooling after the first
    two, global average pooling and a linear classifier. No BatchNorm or dropout, so a trained
    net is a plain function of its weights. Input: ``(B, 3, H, W)`` in [0, 1]."""

    def __init__(self, num_classes: int = 7, width: int = 16):
        super().__init__()
        if width < 1 or num_classes < 2:
            raise ValueError(f"SimpleCNN needs width >= 1 and num_classes >= 2, got {width}, {num_classes}")
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.conv3 = nn.Conv2d(2 * width, 2 * width, 3, padding=1)
        self.head = nn.Linear(2 * width, num_classes)

    def features(self, x: Tensor) -> Tensor:
        x = (x - 0.5) / 0.25
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.conv3(x)).mean(dim=(2, 3))

    def classify(self, features: Tensor) -> Tensor:
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(self.features(x))


def simple_cnn(num_classes: int = 7, width: int = 16, seed: int = 0) -> SimpleCNN:
    """A :class:`SimpleCNN` with PyTorch's default initialisation drawn under the torch seed
    ``seed`` (the caller's global RNG state is left untouched)."""
    with torch_seeded(seed):
        return SimpleCNN(num_classes, width)
