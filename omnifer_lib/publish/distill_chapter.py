"""The distillation chapter (04, §3.4 / Algorithm 1) on the cached stages: each function returns one
section's tables and the values its text states (glued under their names by
:func:`~omnifer_lib.publish.reporting.glue_values`). The science is :mod:`omnifer_lib.distill`
(:func:`~omnifer_lib.distill.outer_step`, :func:`~omnifer_lib.distill.step_size_gradient_check`,
:func:`~omnifer_lib.distill.compare_distilled`); this module feeds it the pipeline's learner, auxiliary
samples and distilled sets and puts its results in the chapter's words."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Tuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from omnifer_lib.engine import pipeline
from omnifer_lib.publish import paper
from omnifer_lib.publish.distill_plots import evaluations_table
from omnifer_lib.publish.reporting import show_figure
from omnifer_lib.distill.registry import DISTILLERS
from omnifer_lib.engine.store import Artifact
from omnifer_lib.data import LABELS, to_tensors
from omnifer_lib.distill import (DistillConfig, DistillResult, InitSampler, OuterStep, compare_distilled, outer_step,
                                 step_size_gradient_check, with_step_sizes)
from omnifer_lib.distill.result import RealSamples
from omnifer_lib.seeds import torch_generator

#: θ0 of "one step of Algorithm 1, by hand": ``InitSampler(model, scope).sample(INIT_SEED)``, a draw no
#: distillation or evaluation uses.
INIT_SEED = 2024
#: The baselines the chapter compares with Algorithm 1: name in the tables -> ``DAS_METHODS`` entry.
BASELINES = {DISTILLERS[name].label: name for name in ("random_real", "mean_image", "distribution_matching")}


@dataclass
class ChapterRun:
    """What every section reads: the profile's parameters, its first backbone (the learner the DAS are
    distilled for), the Algorithm 1 settings, the device, the primitive learner (artifact and model on the
    device), its vanilla auxiliary samples (VAS) and the DAS distilled from them (artifact and set)."""

    params: Mapping[str, Any]
    backbone: str
    config: DistillConfig
    device: torch.device
    primitive: Artifact
    model: nn.Module
    vas: Any
    das_artifact: Artifact
    das: DistillResult

    def distilled(self, method: str = "algorithm1", source: str = "vas", **overrides: Any) -> DistillResult:
        """A distilled set of this learner (cached stage), with profile parameters ``overrides``."""
        return pipeline.load_distilled(pipeline.distilled({**self.params, **overrides}, self.backbone, method, source))

    def test_set(self) -> Tuple[Tensor, Tensor]:
        """The anchor's test split as ``(images (N, 3, H, W), labels (N,))``."""
        return to_tensors(pipeline.dataset(self.params, pipeline.anchor_of(self.params), "test"))


def load(params: Mapping[str, Any]) -> ChapterRun:
    """The chapter's learner, auxiliary samples and Algorithm 1's DAS (computed if not cached)."""
    backbone = params["backbones"][0]
    dev = pipeline.device_of(params)
    prim = pipeline.primitive_learner(params, backbone)
    vas = pipeline.auxiliary_samples(params, backbone)
    art = pipeline.distilled(params, backbone, "algorithm1", "vas")
    return ChapterRun(params, backbone, DistillConfig.from_params(params), dev, prim,
                      pipeline.load_model(prim, device=dev), vas, art, pipeline.load_distilled(art))


def settings(run: ChapterRun) -> Dict[str, Any]:
    """The settings the text names: ``backbone`` (display name), ``scope`` (what p(θ0) draws),
    ``bn_mode``, ``iterations`` T, ``inits`` K, ``inner_steps`` S and ``eta0_value`` η0; and the
    paper's counts of selected auxiliary samples, ``paper_443`` (§4.4.3) and ``paper_33`` (§3.3)."""
    cfg = run.config
    counts = paper.counts()
    return {"backbone": pipeline.display_backbone(run.backbone), "scope": cfg.init_scope, "bn_mode": cfg.bn_mode,
            "iterations": int(cfg.iterations), "inits": int(cfg.inits), "inner_steps": int(cfg.inner_steps),
            "eta0_value": float(run.params["eta0"]),
            "paper_443": int(counts["selected_auxiliary_samples_sec_4_4_3"]),
            "paper_33": int(counts["selected_auxiliary_samples_sec_3_3"])}


@dataclass
class DataSection:
    """"The data": the datasets in their roles (two lines of text), the sizes of the VAS and the DAS
    beside the paper's, the auxiliary samples per class, and the values the text states
    (``empty_note``, ``largest_class``, ``largest_share`` in %)."""

    roles: str
    sizes: pd.DataFrame
    per_class: pd.DataFrame
    values: Dict[str, Any]


def data_section(run: ChapterRun) -> DataSection:
    """The auxiliary samples the DAS are distilled from, counted (§4.4.3's 117,369 beside this run's)."""
    params, vas = run.params, run.vas
    counts = np.bincount(np.asarray(vas.labels, dtype=int), minlength=len(LABELS))
    roles = (f"anchor: {pipeline.role_description(params, pipeline.anchor_of(params))}\n"
             f"unlabeled pool: {pipeline.role_description(params, pipeline.pool_of(params))}")
    n_das = params["images_per_class"] * len(LABELS)
    n_paper = paper.counts()["selected_auxiliary_samples_sec_4_4_3"]
    sizes = pd.DataFrame([
        {"": "selected auxiliary samples (VAS)", "paper": f"{n_paper:,} (§4.4.3)", "this run": f"{len(vas):,}"},
        {"": "distilled auxiliary samples (DAS)", "paper": "7", "this run": str(n_das)},
        {"": "compression", "paper": f"{n_paper / 7:,.0f} : 1", "this run": f"{len(vas) / n_das:,.0f} : 1"}])
    per_class = pd.DataFrame([{"": "auxiliary samples per class", **dict(zip(LABELS, counts.tolist()))}])
    empty = [LABELS[k] for k in range(len(LABELS)) if counts[k] == 0]
    note = (f"Classes without auxiliary samples in this run: {', '.join(empty)}. The distilled image of such a "
            "class is never pulled towards any real sample: it keeps the uniform noise it starts from, and a "
            "learner trained on the DAS learns that this noise means that class (Fig. 4 below shows it)."
            if empty else "Every class has auxiliary samples in this run.")
    return DataSection(roles, sizes, per_class, {
        "empty_note": note, "largest_class": LABELS[int(counts.argmax())],
        "largest_share": float(100 * counts.max() / max(1, counts.sum()))})


@dataclass
class ByHand:
    """"One step of Algorithm 1, by hand": θ0 (``theta0``, ``buffers``) drawn from p(θ0), the real batch
    x_t (``real_images`` ``(M, 3, H, W)``, ``real_labels`` ``(M,)``), the measured step (``step``), its
    report in two lines and the values the text states (``L0``, ``L1``: the outer loss before and
    after the inner steps)."""

    theta0: Dict[str, Tensor]
    buffers: Dict[str, Tensor]
    real_images: Tensor
    real_labels: Tensor
    step: OuterStep
    report: str
    values: Dict[str, float]


def by_hand(run: ChapterRun, init_seed: int = INIT_SEED) -> ByHand:
    """One outer iteration of Algorithm 1 for the DAS this run ended with: θ0 =
    ``InitSampler(model, scope).sample(init_seed)``, x_t = ``distill_real_batch`` auxiliary samples drawn
    without replacement by a generator seeded with the master seed (``params["seed"]``)."""
    cfg, dev, das = run.config, run.device, run.das
    theta0, buffers = InitSampler(run.model, scope=cfg.init_scope).sample(seed=init_seed)
    real = RealSamples(run.vas, run.vas.labels, len(LABELS))
    x_t, y_t = real.random_batch(cfg.real_batch, torch_generator(run.params["seed"]))
    x_t, y_t = x_t.to(dev), y_t.to(dev)
    step = outer_step(run.model, theta0, buffers, das.images.to(dev), das.labels.to(dev), das.step_sizes.to(dev),
                      x_t, y_t, bn_stats=cfg.bn_mode)
    report = (f"outer loss on the real batch: before the inner steps {step.loss_before:.3f}, after them "
              f"L = {step.loss:.3f}\n∂L/∂η per inner step: {[f'{float(g):+.4f}' for g in step.grad_step_sizes]}")
    return ByHand(theta0, buffers, x_t, y_t, step, report, {"L0": step.loss_before, "L1": step.loss})


def _eps_text(eps: float) -> str:
    return f"{eps:.0e}".replace("e-0", "e-").replace("e+0", "e+")


def gradient_check(run: ChapterRun, hand: ByHand, eps: float = 1e-7,
                   coarse_eps: float = 1e-4) -> Tuple[pd.DataFrame, Dict[str, float]]:
    """∂L/∂η of :func:`by_hand`'s step by autograd beside central differences with ``eps`` and
    ``coarse_eps`` in double precision (:func:`~omnifer_lib.distill.step_size_gradient_check`): the
    table (relative errors written ``1.2e-08``) and ``fd_max_err``, the largest relative error."""
    das, dev = run.das, run.device
    rows = step_size_gradient_check(run.model, hand.theta0, hand.buffers, das.images.to(dev), das.labels.to(dev),
                                    das.step_sizes.to(dev), hand.real_images, hand.real_labels, eps=eps,
                                    coarse_eps=coarse_eps, bn_stats=run.config.bn_mode)
    table = pd.DataFrame([{"inner step s": r.step, "η_s": r.step_size, "∂L/∂η_s (autograd)": r.autograd,
                           f"central difference, ε = {_eps_text(eps)}": r.central, "relative error": r.relative_error,
                           f"central difference, ε = {_eps_text(coarse_eps)}": r.central_coarse} for r in rows])
    worst = float(table["relative error"].max())
    return table.assign(**{"relative error": [f"{e:.1e}" for e in table["relative error"]]}), {"fd_max_err": worst}


def show_images(params: Mapping[str, Any], plot: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Draw ``plot(*args, **kwargs)`` and show it, or print :data:`~omnifer_lib.engine.pipeline.IMAGES_WITHHELD`
    where the profile's data may not be shown (:func:`~omnifer_lib.engine.pipeline.images_may_be_shown`)."""
    show_figure(plot(*args, **kwargs) if pipeline.images_may_be_shown(params) else None, pipeline.IMAGES_WITHHELD)


def training_values(das: DistillResult) -> Dict[str, Any]:
    """The training curves in words: the mean outer loss of the first and the last ``w`` iterations
    (``loss_first``, ``loss_last``; w = half the run, at most 10) and the learned step sizes
    (``eta_final``, e.g. ``"0.123, 0.456"``)."""
    hist = np.asarray(das.loss_history)
    if hist.size == 0:
        raise ValueError(f"the {das.method} set has no loss history (not distilled by Algorithm 1?)")
    w = max(1, min(10, len(hist) // 2))
    return {"loss_first": float(hist[:w].mean()), "loss_last": float(hist[-w:].mean()),
            "eta_final": ", ".join(f"{float(e):.3f}" for e in das.step_sizes)}


def fig4(run: ChapterRun) -> Tuple[Dict[str, DistillResult], Dict[str, float]]:
    """Fig. 4's rows (the DAS from the anchor training set, the DAS from the auxiliary samples, and the
    random real sample per class that run started from) and ``pixel_change``: the mean absolute pixel
    difference between the DAS of classes with auxiliary samples and their starting images."""
    start = run.distilled("random_real")
    rows = {"DAS from the\nanchor training set\n(RAF-DB's role)": run.distilled("algorithm1", "anchor"),
            "DAS from the\nauxiliary samples\n(MS1M's role)": run.das,
            "start of that run:\na random auxiliary\nsample per class": start}
    present = torch.isin(run.das.labels, start.labels)
    return rows, {"pixel_change": float((run.das.images[present] - start.images).abs().mean())}


def _protocol(run: ChapterRun) -> Dict[str, Any]:
    """How every set is judged: ``distill_eval_inits`` initialisations from the master seed, the run's
    p(θ0), and plain SGD for ``distill_sgd_epochs`` at ``distill_sgd_lr``."""
    p = run.params
    return dict(inits=p["distill_eval_inits"], seed=p["seed"], init_scope=run.config.init_scope,
                fixed_init=run.config.fixed_init, sgd_epochs=p["distill_sgd_epochs"], sgd_lr=p["distill_sgd_lr"],
                device=run.device)


def evaluations(run: ChapterRun) -> Tuple[pd.DataFrame, Dict[str, float]]:
    """"Do the distilled images teach?": Algorithm 1's DAS and the baselines (:data:`BASELINES`) trained
    both ways, the random real set with the DAS's learned η, and the DAS from the anchor, each by
    :func:`~omnifer_lib.distill.compare_distilled` with one protocol, tested on the anchor's test split.
    Returns the table (:func:`~omnifer_lib.publish.distill_plots.evaluations_table`) and the values the text
    states (accuracies in %: ``das_learned``, ``das_sgd``, ``rr_learned``, ``rr_sgd``, ``rr_eta``,
    ``anchor_learned``, ``chance``, ``prim_acc``; ``fixed_step``: the step size of sets without learned ones)."""
    test_x, test_y = run.test_set()
    sets = {name: run.distilled(method) for name, method in BASELINES.items()}
    protocol = _protocol(run)
    evals = compare_distilled([("Algorithm 1 (DAS)", run.das), *sets.items()], run.model, test_x, test_y, **protocol)
    evals += compare_distilled([("random real, DAS's η", with_step_sizes(sets["random real"], run.das.step_sizes))],
                               run.model, test_x, test_y, ways=("learned",), **protocol)
    evals += compare_distilled([("DAS from the anchor", run.distilled("algorithm1", "anchor"))], run.model, test_x,
                               test_y, **protocol)
    table = evaluations_table(evals)
    acc = {(r["set"], r["trained with"]): r["accuracy (%)"] for _, r in table.iterrows()}
    learned, sgd = "learned η and steps", "plain SGD"
    anchor = pipeline.anchor_of(run.params)
    values = {"das_learned": acc[("Algorithm 1 (DAS)", learned)], "das_sgd": acc[("Algorithm 1 (DAS)", sgd)],
              "rr_learned": acc[("random real", learned)], "rr_sgd": acc[("random real", sgd)],
              "rr_eta": acc[("random real, DAS's η", learned)],
              "fixed_step": ", ".join(f"{float(e):g}" for e in sets["random real"].step_sizes),
              "anchor_learned": acc[("DAS from the anchor", learned)], "chance": 100 / len(LABELS),
              "prim_acc": pipeline.evaluation(run.primitive)[anchor]["accuracy"]}
    return table, {k: (v if isinstance(v, str) else float(v)) for k, v in values.items()}


def scope_sweep(run: ChapterRun) -> Tuple[pd.DataFrame, Dict[str, float]]:
    """"What p(θ0) draws, measured": for the run's ``distill_init_scope`` and the other, Algorithm 1's DAS
    distilled with that scope and trained the learned way, beside one random real sample per class trained
    with plain SGD, both with θ0 drawn by that scope. Returns the table (accuracies in %) and ``all_das``,
    ``all_rr``: its two accuracies for ``"all"``."""
    test_x, test_y = run.test_set()
    rr = run.distilled("random_real")
    rows: List[Dict[str, Any]] = []
    for scope in dict.fromkeys([run.config.init_scope, "all", "head"]):
        protocol = {**_protocol(run), "init_scope": scope}
        (_, learned), = compare_distilled([("DAS", run.distilled(distill_init_scope=scope))], run.model, test_x,
                                          test_y, ways=("learned",), **protocol)
        (_, plain), = compare_distilled([("random real", rr)], run.model, test_x, test_y, ways=("sgd",), **protocol)
        rows.append({"distill_init_scope": scope,
                     "θ0 drawn from p(θ0)": "every weight, family initialiser" if scope == "all" else
                     "classifier head on the primitive learner's backbone",
                     "DAS, learned η and steps (%)": 100 * learned.mean, "± std": 100 * learned.std,
                     "random real, plain SGD (%)": 100 * plain.mean, "± std ": 100 * plain.std,
                     "chance (%)": 100 / len(LABELS)})
    table = pd.DataFrame(rows)
    by_scope = table.set_index("distill_init_scope")
    return table, {"all_das": float(by_scope.loc["all", "DAS, learned η and steps (%)"]),
                   "all_rr": float(by_scope.loc["all", "random real, plain SGD (%)"])}


def exported_images(run: ChapterRun) -> List[str]:
    """The PNG files exported with the DAS (one per image), sorted by name."""
    return sorted(p.name for p in (run.das_artifact.path / "images").iterdir())
