"""Several learners of one architecture as one network: grouped convolutions side by side.

The demo's small nets are overhead-bound on a CPU: a 16-channel convolution spends more time in
the framework than in arithmetic. K learners that differ only by their seed (initial weights,
minibatch order, augmentation) can then share each kernel launch: :func:`stack` builds one
network whose every ``Conv2d`` has K times the channels in K groups, every ``BatchNorm2d`` K
times the channels and every ``Linear`` a weight per learner, so that group k computes exactly
learner k's function on its own images. Nothing crosses between groups: BatchNorm's statistics
are per channel, hence per learner; the summed loss of K learners gives each group its own
learner's gradient; SGD with momentum and weight decay acts element by element. What changes is
the order of floating-point sums inside the kernels, as a change of machine or thread count does.

Shapes: :class:`Stacked` maps ``(K, B, 3, H, W)`` images in ``[0, 1]`` (learner k's minibatch at
index k) to ``(K, B, num_classes)`` logits; :func:`unstack` gives back K state dicts in the
original models' keys.

Models built of ``Conv2d``, ``BatchNorm2d``, ``Linear`` and channel-wise operations (ReLU, pooling,
residual sums, flattening channels-first) stack; a model that mixes channels any other way does not.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Sequence

import torch
from torch import nn

from .base import FERModel


class GroupedLinear(nn.Module):
    """K independent linear maps: ``(B, K * in_features)`` -> ``(B, K * out_features)``, block k of
    the output computed from block k of the input with ``weight[k] (out, in)`` and ``bias[k]``."""

    def __init__(self, groups: int, in_features: int, out_features: int):
        super().__init__()
        self.groups, self.in_features, self.out_features = groups, in_features, out_features
        self.weight = nn.Parameter(torch.empty(groups, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(groups, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        y = torch.baddbmm(self.bias.unsqueeze(1), x.view(b, self.groups, self.in_features).transpose(0, 1),
                          self.weight.transpose(1, 2))
        return y.transpose(0, 1).reshape(b, self.groups * self.out_features)


def _grouped(modules: Sequence[nn.Module]) -> nn.Module:
    """One module standing for ``modules`` (the same layer of K learners), their tensors stacked."""
    k, first = len(modules), modules[0]
    if isinstance(first, nn.Conv2d):
        out = nn.Conv2d(k * first.in_channels, k * first.out_channels, first.kernel_size, stride=first.stride,
                        padding=first.padding, dilation=first.dilation, groups=k * first.groups,
                        bias=first.bias is not None, padding_mode=first.padding_mode)
    elif isinstance(first, nn.BatchNorm2d):
        out = nn.BatchNorm2d(k * first.num_features, eps=first.eps, momentum=first.momentum, affine=first.affine,
                             track_running_stats=first.track_running_stats)
    elif isinstance(first, nn.Linear):
        out = GroupedLinear(k, first.in_features, first.out_features)
        with torch.no_grad():
            out.weight.copy_(torch.stack([m.weight for m in modules]))
            out.bias.copy_(torch.stack([m.bias for m in modules]))
        return out
    else:  # pragma: no cover - guarded by _STACKED
        raise TypeError(type(first).__name__)
    state = {name: torch.cat([m.state_dict()[name] for m in modules]) for name in first.state_dict()
             if name != "num_batches_tracked"}
    if "num_batches_tracked" in first.state_dict():
        state["num_batches_tracked"] = first.state_dict()["num_batches_tracked"].clone()
    out.load_state_dict(state)
    return out


_STACKED = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)


class Stacked(nn.Module):
    """K learners of one architecture as one grouped network (see the module docstring)."""

    def __init__(self, models: Sequence[FERModel]):
        super().__init__()
        if not models:
            raise ValueError("stack needs at least one model")
        kinds = {type(m) for m in models}
        if len(kinds) != 1:
            raise ValueError(f"stack needs models of one architecture, got {sorted(k.__name__ for k in kinds)}")
        shapes = [{k: tuple(v.shape) for k, v in m.state_dict().items()} for m in models]
        if any(s != shapes[0] for s in shapes):
            raise ValueError("stack needs models of the same shapes (width, classes)")
        self.k = len(models)
        self.net = copy.deepcopy(models[0])
        self._names: List[str] = []
        for name, module in list(models[0].named_modules()):
            if isinstance(module, _STACKED):
                parent, _, leaf = name.rpartition(".")
                same = [m.get_submodule(name) for m in models]
                setattr(self.net.get_submodule(parent) if parent else self.net, leaf, _grouped(same))
                self._names.append(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(K, B, 3, H, W)`` images in ``[0, 1]`` -> ``(K, B, num_classes)`` logits."""
        if x.dim() != 5 or x.shape[0] != self.k or x.shape[2] != 3:
            raise ValueError(f"expected images of shape ({self.k}, B, 3, H, W), got {tuple(x.shape)}")
        k, b = x.shape[:2]
        z = (x - self.net.input_mean.to(x.dtype)) / self.net.input_std.to(x.dtype)
        z = z.transpose(0, 1).reshape(b, k * 3, *x.shape[3:])
        logits = self.net.classify(self.net._features(z))
        return logits.view(b, k, -1).transpose(0, 1)


def stack(models: Sequence[FERModel]) -> Stacked:
    """One :class:`Stacked` network computing each of ``models`` (copied; the models are untouched)."""
    return Stacked(models)


def unstack(stacked: Stacked) -> List[Dict[str, torch.Tensor]]:
    """The K learners' state dicts, in the keys of the models :func:`stack` was given."""
    full = stacked.net.state_dict()
    out: List[Dict[str, torch.Tensor]] = [{} for _ in range(stacked.k)]
    for key, value in full.items():
        module, _, leaf = key.rpartition(".")
        if module in stacked._names and isinstance(stacked.net.get_submodule(module), GroupedLinear):
            parts = list(value.unbind(0))
        elif module in stacked._names and leaf != "num_batches_tracked":
            parts = list(value.chunk(stacked.k, dim=0))
        else:
            parts = [value] * stacked.k
        for k in range(stacked.k):
            out[k][key] = parts[k].clone()
    return out
