"""The VGG family: VGG-Face (VGG-16, Parkhi et al. 2015) and a small VGG-style CPU net.

Both are plain stacks of 3x3 convolutions with ReLU and max pooling, without BatchNorm,
followed by two fully connected layers (fc6, fc7) whose ReLU output is the feature vector,
and a dropout + linear expression head (fc8's place).

VGG-Face weights
----------------
:func:`load_vgg_face_weights` maps a local file onto :class:`VGGFace16`. Two widely shared
PyTorch conversions are accepted (a plain state dict, optionally wrapped in
``{"state_dict": ...}`` and/or prefixed by ``module.``):

* ``"dag"`` - ``vgg_face_dag.pth`` of the MatConvNet -> PyTorch model zoo (S. Albanie):
  keys ``conv1_1.weight, conv1_1.bias, conv1_2.*, conv2_1.*, conv2_2.*, conv3_1.*, conv3_2.*,
  conv3_3.*, conv4_1.*, conv4_2.*, conv4_3.*, conv5_1.*, conv5_2.*, conv5_3.*, fc6.*, fc7.*,
  fc8.*``. It expects RGB input with the mean subtracted on the 0-255 scale.
* ``"t7"`` - the port of the original Torch ``VGG_FACE.t7`` (the ``VGG_16`` class of
  vgg-face.pytorch, saved with ``torch.save(model.state_dict())``): keys ``conv_1_1.weight``
  ... ``conv_5_3.bias``, ``fc6.*``, ``fc7.*``, ``fc8.*``. These weights come from the Caffe
  model and expect BGR input, so the input channels of ``conv_1_1.weight`` are reversed here
  to take RGB input like the rest of omnifer.

Shapes (both formats): ``convA_B.weight`` ``(out, in, 3, 3)`` with channels
64,64 | 128,128 | 256,256,256 | 512,512,512 | 512,512,512; ``fc6.weight (4096, 25088)``,
``fc7.weight (4096, 4096)``, ``fc8.weight (2622, 4096)`` (the 2622 celebrity identities;
optional, it is discarded: the expression head is freshly initialised).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .base import FERModel, init_vgg_style

#: VGG-Face's mean face colour on the 0-255 scale, RGB order (its std is 1 on that scale).
VGG_FACE_MEAN_255 = (129.186279296875, 104.76238250732422, 93.59396362304688)
#: VGG-16's conv channels per block (13 convolutions).
VGG16_BLOCKS: Tuple[Tuple[int, ...], ...] = ((64, 64), (128, 128), (256, 256, 256),
                                             (512, 512, 512), (512, 512, 512))
VGG_FACE_IDENTITIES = 2622


def _conv_names(blocks: Sequence[Sequence[int]]) -> List[Tuple[str, int, int]]:
    """``[(name, in_channels, out_channels), ...]`` with the dag naming ``conv{block}_{i}``."""
    out, cin = [], 3
    for b, block in enumerate(blocks, start=1):
        for i, cout in enumerate(block, start=1):
            out.append((f"conv{b}_{i}", cin, cout))
            cin = cout
    return out


class _PlainVGG(FERModel):
    """Conv blocks (3x3 conv + ReLU, 2x2 max pool after each block) -> adaptive average pool to
    ``pool_size`` -> fc6 + ReLU + dropout -> fc7 + ReLU (= features) -> dropout -> head."""

    family = "vgg"

    def __init__(self, blocks: Sequence[Sequence[int]], pool_size: int, fc_dim: int,
                 num_classes: int, dropout: float, mean: Sequence[float], std: Sequence[float]):
        super().__init__(mean, std)
        self._blocks = [len(b) for b in blocks]
        self._conv_names = []
        for name, cin, cout in _conv_names(blocks):
            self.add_module(name, nn.Conv2d(cin, cout, kernel_size=3, padding=1))
            self._conv_names.append(name)
        # At the design resolution the pool is the identity (VGG-Face: 7x7 at 224 px); at other
        # resolutions it keeps fc6's input size fixed, as torchvision's VGG does.
        self.pool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        self.fc6 = nn.Linear(blocks[-1][-1] * pool_size * pool_size, fc_dim)
        self.fc7 = nn.Linear(fc_dim, fc_dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(fc_dim, num_classes)
        self.feature_dim = fc_dim
        self.init_weights()

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        k = 0
        for n in self._blocks:
            for _ in range(n):
                x = torch.relu(getattr(self, self._conv_names[k])(x))
                k += 1
            x = nn.functional.max_pool2d(x, 2)
        x = torch.flatten(self.pool(x), 1)
        x = self.dropout(torch.relu(self.fc6(x)))
        return torch.relu(self.fc7(x))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(features))

    def init_weights(self) -> None:
        init_vgg_style(self)


class VGGFace16(_PlainVGG):
    """VGG-Face: VGG-16 (13 convs, fc6/fc7 of 4096) for 224x224 faces.

    ``features`` is fc7 after ReLU: ``(B, 4096)``. The input is normalised as VGG-Face was
    trained: ``x * 255 - mean`` with :data:`VGG_FACE_MEAN_255` (RGB).
    """

    def __init__(self, num_classes: int = 7, dropout: float = 0.5):
        mean = tuple(m / 255.0 for m in VGG_FACE_MEAN_255)
        super().__init__(VGG16_BLOCKS, pool_size=7, fc_dim=4096, num_classes=num_classes,
                         dropout=dropout, mean=mean, std=(1 / 255.0,) * 3)


class VGGSmall(_PlainVGG):
    """A VGG-style CPU net for 32-64 px faces: three blocks of two 3x3 convs (``width``,
    ``2*width``, ``4*width`` channels), no BatchNorm, like VGG-Face; 3x3 adaptive pool;
    fc6/fc7 of ``fc_dim`` (default ``8*width``). ``features``: ``(B, fc_dim)``.
    Input normalised as ``(x - 0.5) / 0.25``. Initialiser: He-normal (fan_in) convs and fc6/fc7,
    N(0, 0.01) head. ``dropout`` defaults to 0: on the demo data dropout 0.3 kept the small
    net on its initial plateau for 8+ epochs (VGG-Face's 0.5 is kept for ``vgg_face``).
    """

    def __init__(self, num_classes: int = 7, width: int = 16, fc_dim: Optional[int] = None,
                 dropout: float = 0.0):
        if width < 1:
            raise ValueError(f"width must be a positive int, got {width}")
        blocks = ((width, width), (2 * width, 2 * width), (4 * width, 4 * width))
        super().__init__(blocks, pool_size=3, fc_dim=int(fc_dim or 8 * width), num_classes=num_classes,
                         dropout=dropout, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))

    def init_weights(self) -> None:
        init_vgg_style(self)
        # Without BatchNorm a plain net from scratch sits on a loss plateau (predicting the class
        # prior) for several epochs before it learns. He-normal weights scaled by fan_in keep
        # the activation scale through every layer and shorten that plateau: N(0, 0.01) fc
        # layers shrink the signal ~5x per layer and fan_out scaling shrinks it in layers that
        # widen (measured on the synthetic rafdb domain, 48 px, width 8: loss leaves the
        # plateau ~2 epochs earlier).
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m is not self.head:
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")


# --------------------------------------------------------------------------------------
# VGG-Face weight files


def vgg_face_expected_shapes() -> Dict[str, Tuple[int, ...]]:
    """Every tensor of a VGG-Face state dict in the ``dag`` naming, with its shape."""
    shapes: Dict[str, Tuple[int, ...]] = {}
    for name, cin, cout in _conv_names(VGG16_BLOCKS):
        shapes[f"{name}.weight"] = (cout, cin, 3, 3)
        shapes[f"{name}.bias"] = (cout,)
    shapes.update({"fc6.weight": (4096, 512 * 7 * 7), "fc6.bias": (4096,),
                   "fc7.weight": (4096, 4096), "fc7.bias": (4096,),
                   "fc8.weight": (VGG_FACE_IDENTITIES, 4096), "fc8.bias": (VGG_FACE_IDENTITIES,)})
    return shapes


def _unwrap(obj: object) -> Dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError("expected a state dict (a mapping of parameter names to tensors)")
    out = {}
    for k, v in obj.items():
        out[k[len("module."):] if k.startswith("module.") else k] = v
    return out


def _t7_to_dag(key: str) -> str:
    # conv_3_2.weight -> conv3_2.weight ; fc6.* unchanged
    if key.startswith("conv_"):
        block, rest = key[len("conv_"):].split("_", 1)
        return f"conv{block}_{rest}"
    return key


def detect_vgg_face_format(state: Mapping[str, torch.Tensor]) -> str:
    """``"dag"`` when the keys are ``conv1_1.weight``..., ``"t7"`` when ``conv_1_1.weight``...;
    raises ``ValueError`` otherwise."""
    if "conv1_1.weight" in state:
        return "dag"
    if "conv_1_1.weight" in state:
        return "t7"
    sample = ", ".join(list(state)[:6])
    raise ValueError("not a VGG-Face state dict: expected keys conv1_1.weight ... fc8.weight "
                     "(vgg_face_dag.pth) or conv_1_1.weight ... fc8.weight (VGG_FACE.t7 port); "
                     f"the file has {len(state)} keys starting with: {sample}")


def vgg_face_state_to_model(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Map a VGG-Face state dict in either accepted format to :class:`VGGFace16`'s backbone
    keys (conv*, fc6, fc7; fc8 dropped), checking every key and shape.

    Raises ``ValueError`` naming the missing keys and the mismatched shapes."""
    fmt = detect_vgg_face_format(state)
    mapped = {(_t7_to_dag(k) if fmt == "t7" else k): v for k, v in state.items()}
    expected = vgg_face_expected_shapes()
    optional = {"fc8.weight", "fc8.bias"}
    missing = [k for k in expected if k not in mapped and k not in optional]
    wrong = [f"{k}: expected {expected[k]}, got {tuple(mapped[k].shape)}"
             for k in expected if k in mapped and tuple(mapped[k].shape) != expected[k]]
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if wrong:
            parts.append("wrong shapes: " + "; ".join(wrong))
        raise ValueError(f"VGG-Face weights ({fmt} format) do not match VGG-16: " + ", ".join(parts))
    out = {k: v.detach().to(torch.float32).clone() for k, v in mapped.items()
           if k in expected and k not in optional}
    if fmt == "t7":
        # Caffe-derived weights see BGR; reverse conv1_1's input channels to take RGB.
        out["conv1_1.weight"] = out["conv1_1.weight"].flip(1).contiguous()
    return out


def load_vgg_face_weights(model: VGGFace16, path: Union[str, os.PathLike]) -> VGGFace16:
    """Load a local VGG-Face file (see module docstring for the accepted formats) into
    ``model``'s backbone; the expression head keeps its fresh initialisation."""
    return apply_vgg_face_state(model, read_state_file(path, "vgg_face_dag.pth or a VGG_FACE.t7 port "
                                                       "saved with torch.save(model.state_dict())"), path)


def apply_vgg_face_state(model: VGGFace16, raw: object, source: object = "state dict") -> VGGFace16:
    """Map an already loaded VGG-Face state dict (either format) onto ``model``'s backbone."""
    try:
        state = vgg_face_state_to_model(_unwrap(raw))
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Only the head may be left out: anything else means the architecture changed.
    left = [k for k in missing if not k.startswith("head.")]
    if left or unexpected:
        raise ValueError(f"{source}: could not map onto VGGFace16 (missing {left}, unexpected {unexpected})")
    return model


def read_state_file(path: Union[str, os.PathLike], expected: str) -> object:
    """``torch.load(path, weights_only=True)`` with an error that says what was expected."""
    from ..files import torch_load

    try:
        return torch_load(Path(path))
    except Exception as exc:  # unpickling errors, not a torch file, a pickled module ...
        raise ValueError(f"could not read {path} as a weights-only PyTorch state dict ({exc}); "
                         f"expected {expected}") from exc
