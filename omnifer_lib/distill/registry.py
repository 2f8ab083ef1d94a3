"""The distillers: each way of making a small labelled set from real samples, declared once.

A :class:`Distiller` names a method (``das_method`` in the profiles), says how tables call it and
runs it from the profile parameters; :data:`DISTILLERS` lists them, Algorithm 1 first. Every list of
distillers (the book's ``DAS_METHODS``, the real-faces study's comparison, the chapters' labels) is
derived from it, so adding one is its function and one record here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

from torch import nn

from .algorithm import DistillConfig, distill
from .baselines import DMConfig, distribution_matching, mean_image, random_real
from .result import DistillResult


@dataclass(frozen=True)
class Distiller:
    """One distiller. ``run(model, real, params, *, device, checkpoint, distributed)`` makes the set
    from ``real`` (a dataset of labelled or pseudo-labelled samples) with ``model`` (the primitive
    learner) and the profile parameters ``params`` it reads; ``checkpoint`` (a file) and
    ``distributed`` are for the long ones. ``learned``: it optimises the images (else it picks or
    averages real ones)."""
    name: str
    label: str
    run: Callable[..., DistillResult]
    learned: bool = True


def _algorithm1(model: nn.Module, real: Any, params: Mapping[str, Any], *, device: Any = "cpu",
                checkpoint: Optional[Path] = None, distributed: bool = False) -> DistillResult:
    return distill(model, real, config=DistillConfig.from_params(params), device=device, checkpoint=checkpoint,
                   distributed=distributed)  # K inits split over the ranks under torchrun


def _distribution_matching(model: nn.Module, real: Any, params: Mapping[str, Any], *, device: Any = "cpu",
                           **_: Any) -> DistillResult:
    config = DMConfig(images_per_class=params["images_per_class"], iterations=params["dm_iterations"],
                      seed=params["seed"])
    return distribution_matching(model, real, config=config, device=device)


def _random_real(model: nn.Module, real: Any, params: Mapping[str, Any], **_: Any) -> DistillResult:
    return random_real(real, images_per_class=params["images_per_class"], seed=params["seed"],
                       step_size=params["eta0"])


def _mean_image(model: nn.Module, real: Any, params: Mapping[str, Any], **_: Any) -> DistillResult:
    return mean_image(real, images_per_class=params["images_per_class"], seed=params["seed"],
                      step_size=params["eta0"])


#: Every distiller by ``das_method`` name: Algorithm 1 (the paper's) first, then the baselines.
DISTILLERS: Dict[str, Distiller] = {d.name: d for d in (
    Distiller("algorithm1", "Algorithm 1", _algorithm1),
    Distiller("distribution_matching", "distribution matching", _distribution_matching),
    Distiller("random_real", "random real", _random_real, learned=False),
    Distiller("mean_image", "mean image", _mean_image, learned=False),
)}


def distiller(name: str) -> Distiller:
    """The :class:`Distiller` named ``name``; ``ValueError`` naming the known ones otherwise."""
    if name not in DISTILLERS:
        raise ValueError(f"unknown distiller {name!r}; expected one of {', '.join(DISTILLERS)}")
    return DISTILLERS[name]
