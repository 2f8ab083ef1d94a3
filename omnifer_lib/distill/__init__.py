"""§3.4 of the paper: dataset distillation of the auxiliary samples (Algorithm 1) and baselines.

Main entry points:

* :func:`distill` / :class:`DistillConfig` -- Algorithm 1 (learned images x̃ and positive
  step sizes η, K sampled initialisations per outer iteration, resumable, snapshots).
* :func:`unrolled_loss` -- one outer loss L = l(x_t, θ_T) of Algorithm 1, differentiable
  w.r.t. the distilled images and the step sizes.
* :func:`random_real`, :func:`mean_image`, :func:`distribution_matching` -- baselines.
* :func:`evaluate_learned`, :func:`evaluate_sgd` -- train fresh learners on a set, test them;
  :func:`compare_distilled` -- several sets by one protocol (:func:`with_step_sizes`).
* :func:`outer_step`, :func:`step_size_gradient_check` -- one outer iteration of Algorithm 1 taken
  apart, and its ∂L/∂η against central finite differences.
* :func:`export_das`, :func:`load_das` -- write / read a distilled set.
* :data:`DISTILLERS` -- every distiller (Algorithm 1 and the baselines) as one :class:`Distiller`
  record each: its name, its label in tables, how it runs from the profile parameters.

BatchNorm handling is described in :mod:`omnifer_lib.distill.functional`.
"""
from .algorithm import DistillConfig, distill
from .baselines import DMConfig, distribution_matching, distribution_matching_loss, mean_image, random_real
from .check import OuterStep, StepSizeGradient, outer_step, step_size_gradient_check
from .evaluate import DistilledEvaluation, compare_distilled, evaluate_learned, evaluate_sgd, with_step_sizes
from .export import export_das, load_das
from .functional import InitSampler, inner_steps, split_state, unrolled_loss
from .registry import DISTILLERS, Distiller, distiller
from .result import DEFAULT_STEP_SIZE, DistillResult

__all__ = [
    "DistillConfig", "distill", "DMConfig", "distribution_matching", "distribution_matching_loss", "mean_image",
    "random_real",
    "DistilledEvaluation", "compare_distilled", "evaluate_learned", "evaluate_sgd", "with_step_sizes",
    "OuterStep", "StepSizeGradient", "outer_step", "step_size_gradient_check", "export_das", "load_das",
    "InitSampler", "inner_steps", "split_state", "unrolled_loss", "DEFAULT_STEP_SIZE", "DistillResult",
    "DISTILLERS", "Distiller", "distiller",
]
