"""The ResNet family: torchvision's ResNet-34 and a small ResNet-style CPU net.

Both are residual networks with BatchNorm (torchvision's ``BasicBlock``); ``features`` is the
global-average-pooled output of the last stage, ``classify`` a linear head.

ResNet-34 weights
-----------------
``weights=`` takes a local ImageNet checkpoint in torchvision's format (the state dict that
``torchvision.models.resnet34(weights="IMAGENET1K_V1")`` downloads, file
``resnet34-b627a593.pth``: keys ``conv1.weight``, ``bn1.*``, ``layer1.0.conv1.weight``, ...,
``fc.weight (1000, 512)``, ``fc.bias``). ``fc.*`` is discarded for the fresh expression head.
Nothing is ever downloaded.
"""
from __future__ import annotations

import os
from typing import Dict, Mapping, Sequence, Union

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock

from .base import FERModel, init_resnet_style

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: File name of torchvision's ImageNet ResNet-34 checkpoint (as stored in the hub cache).
RESNET34_FILE = "resnet34-b627a593.pth"


class ResNet34(FERModel):
    """torchvision's ResNet-34 with a ``num_classes`` head; ``features``: ``(B, 512)``.
    Input normalised with the ImageNet mean/std."""

    family = "resnet"

    def __init__(self, num_classes: int = 7):
        super().__init__(IMAGENET_MEAN, IMAGENET_STD)
        # weights=None builds the architecture only (torchvision never downloads then).
        net = torchvision.models.resnet34(weights=None)
        # Adopt torchvision's modules under their own names, so torchvision checkpoints map
        # key for key (minus fc.*, replaced by our head).
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"):
            self.add_module(name, getattr(net, name))
        self.head = nn.Linear(512, num_classes)
        self.feature_dim = 512
        self.init_weights()

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def init_weights(self) -> None:
        init_resnet_style(self)


class ResNetSmall(FERModel):
    """A ResNet-style CPU net for 32-64 px faces: 3x3 stem (``width`` channels, no max pool)
    and four stages of ``blocks[i]`` BasicBlocks with ``width * (1, 2, 4, 8)`` channels
    (strides 1, 2, 2, 2), BatchNorm throughout; global average pool.
    ``features``: ``(B, 8 * width)``. Input normalised as ``(x - 0.5) / 0.25``."""

    family = "resnet"

    def __init__(self, num_classes: int = 7, width: int = 16, blocks: Sequence[int] = (1, 1, 1, 1)):
        super().__init__((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        if width < 1 or len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"width must be >= 1 and blocks four ints >= 1, got width={width}, blocks={blocks}")
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for i, (n, mult) in enumerate(zip(blocks, (1, 2, 4, 8)), start=1):
            cout, stride = width * mult, 1 if i == 1 else 2
            layers = []
            for j in range(n):
                down = None
                if j == 0 and (stride != 1 or cin != cout):
                    down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
                layers.append(BasicBlock(cin, cout, stride=stride if j == 0 else 1, downsample=down))
                cin = cout
            self.add_module(f"layer{i}", nn.Sequential(*layers))
        self.head = nn.Linear(cin, num_classes)
        self.feature_dim = cin
        self.init_weights()

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))

    def init_weights(self) -> None:
        init_resnet_style(self)


def resnet34_state_to_model(state: Mapping[str, torch.Tensor], model: ResNet34) -> Dict[str, torch.Tensor]:
    """Check a torchvision ResNet-34 state dict against ``model`` and return its backbone part.
    Raises ``ValueError`` naming missing keys and mismatched shapes."""
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    # Older torchvision checkpoints carry no BatchNorm num_batches_tracked counters.
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    wrong = [f"{k}: expected {tuple(own[k].shape)}, got {tuple(state[k].shape)}"
             for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or wrong:
        parts = []
        if missing:
            shown = missing[:8] + (["..."] if len(missing) > 8 else [])
            parts.append(f"{len(missing)} missing keys {shown}")
        if wrong:
            parts.append("wrong shapes: " + "; ".join(wrong[:8]))
        raise ValueError("not a torchvision ResNet-34 state dict (keys conv1.weight, bn1.*, "
                         "layer1.0.conv1.weight ... layer4.2.bn2.*, fc.*): " + ", ".join(parts))
    return {k: state[k].detach().clone() for k in own if k in state}


def load_resnet34_weights(model: ResNet34, path: Union[str, os.PathLike]) -> ResNet34:
    """Load a local torchvision ImageNet ResNet-34 checkpoint into ``model``'s backbone."""
    from .vgg import read_state_file

    return apply_resnet34_state(model, read_state_file(path, f"torchvision's {RESNET34_FILE}"), path)


def apply_resnet34_state(model: ResNet34, raw: object, source: object = "state dict") -> ResNet34:
    """Map an already loaded torchvision ResNet-34 state dict onto ``model``'s backbone."""
    from .vgg import _unwrap

    try:
        state = resnet34_state_to_model(_unwrap(raw), model)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    model.load_state_dict(state, strict=False)
    return model
