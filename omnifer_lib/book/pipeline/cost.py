"""Table 8's epoch costs, timed one mode at a time in this process (cached).

The final learners record their seconds per epoch as they train, but on the CPU they train two at a
time (:mod:`~omnifer_lib.book.pipeline.side_by_side`), and how much the learner in the other worker
slows a learner down depends on which learner that is. Those seconds cannot be compared across modes:
on an AMD EPYC (2 cores), VGG-small's anchor + DAS epochs came out at 0.89-0.97 × its anchor-only
epochs, although each of their steps processes the seven DAS on top of the minibatch.

:func:`epoch_costs` times the three modes of §4.4 on a scaled-down copy of their training sets
instead: a fraction ``steps × batch_size / |anchor|`` of the anchor and the same fraction of the
VAS (the DAS are kept whole; with ``das_strategy="minibatch"`` they ride along in every
minibatch), trained for three epochs from the initial learner with the profile's recipe and
threads; the faster of the second and third epochs (the first warms up), divided by the fraction,
is the mode's seconds per epoch. The modes alternate and the whole round is repeated, so that a
slow moment of the machine hits every mode alike; the repeats play the seeds' part in
:func:`~omnifer_lib.book.reporting.cost_table`. Nothing else of the pipeline runs meanwhile, but
a chapter run beside others (``omnifer reproduce --jobs``) shares the cores with them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Sequence

import numpy as np
import pandas as pd
from torch.utils.data import Subset

from omnifer_lib.book.pipeline._common import (MODES, TRAIN_KEYS, anchor_of, data_config, device_of, family,
                                               get_or_train, pick, selection_config, stage_code)
from omnifer_lib.book.pipeline.datasets import dataset
from omnifer_lib.book.pipeline.pretraining import face_pretraining, initial_model
from omnifer_lib.book.store import Artifact


def epoch_costs(params: Mapping[str, Any], backbone: str, *, steps: int = 16, repeats: int = 3) -> Artifact:
    """Seconds per epoch of ``backbone`` in each mode of §4.4 (module docstring), cached.

    ``steps``: minibatches of anchor images in the timed copy of an epoch (at most the whole
    anchor); ``repeats``: rounds over the modes. The artifact's summary holds, per mode,
    ``seconds_per_epoch`` (one value per repeat), ``train_images`` (of the full epoch) and
    ``fraction`` (the share of it that was timed)."""
    from omnifer_lib.book.pipeline.distillation import distilled
    from omnifer_lib.book.pipeline.learners import fit_kwargs
    from omnifer_lib.book.pipeline.selection import auxiliary_samples, require_auxiliary_samples
    from omnifer_lib.distill import load_das
    from omnifer_lib.train import fit_final

    if steps < 1 or repeats < 1:
        raise ValueError(f"steps and repeats must be >= 1, got {steps} and {repeats}")
    train_on = anchor_of(params)
    config: Dict[str, Any] = {"backbone": backbone, "train_on": train_on, "steps": int(steps),
                              "repeats": int(repeats), **pick(params, TRAIN_KEYS), **selection_config(params),
                              "das_strategy": params["das_strategy"], "das_weight": params["das_weight"],
                              "data": data_config(params, [train_on])}
    das_art = distilled(params, backbone, "algorithm1")
    upstream = {"das": das_art.key}
    pre = face_pretraining(params, backbone)
    if pre is not None:
        upstream["face_pretraining"] = pre.key

    def compute(work: Path):
        anchor = dataset(params, train_on, "train")
        vas = auxiliary_samples(params, backbone)
        require_auxiliary_samples(vas, params, backbone, "time the anchor+VAS epoch")
        das = load_das(das_art.file("das.pt"))
        n_anchor = min(len(anchor), steps * params["batch_size"])
        fraction = n_anchor / len(anchor)
        pick_rng = np.random.default_rng(params["seed"])
        part_anchor = Subset(anchor, np.sort(pick_rng.permutation(len(anchor))[:n_anchor]).tolist())
        n_vas = max(1, round(fraction * len(vas)))
        part_vas = Subset(vas, np.sort(pick_rng.permutation(len(vas))[:n_vas]).tolist())
        recipe = {**fit_kwargs(params), "epochs": 3, "progress": False}
        seconds: Dict[str, list] = {mode: [] for mode in MODES}
        for _ in range(repeats):
            for mode in MODES:
                model = initial_model(params, backbone, params["seed"], pre)
                history = fit_final(model, part_anchor, mode, vas=part_vas if mode == "anchor+VAS" else None,
                                    das=das if mode == "anchor+DAS" else None, seed=params["seed"],
                                    device=device_of(params), das_strategy=params["das_strategy"],
                                    das_weight=params["das_weight"], **recipe)
                # the first epoch warms up; the faster of the other two is the least disturbed
                seconds[mode].append(min(h["seconds"] for h in history[1:]) / fraction)
        return {mode: {"seconds_per_epoch": seconds[mode], "fraction": fraction,
                       "train_images": len(anchor) + (len(vas) if mode == "anchor+VAS" else 0)}
                for mode in MODES}

    return get_or_train(params, "epoch_costs", config, compute, upstream=upstream,
                        code=stage_code("pretraining", "learners", "selection", "cost"))


def epoch_cost_table(params: Mapping[str, Any], backbones: Sequence[str], **options: Any) -> pd.DataFrame:
    """:func:`epoch_costs` of each backbone as rows backbone, family, mode, seed (the repeat),
    seconds_per_epoch, train_images: the input of :func:`~omnifer_lib.book.reporting.cost_table`
    and :func:`~omnifer_lib.book.reporting.epoch_cost_ratios`."""
    rows = []
    for backbone in backbones:
        summary = epoch_costs(params, backbone, **options).meta["summary"]
        for mode in MODES:
            for repeat, sec in enumerate(summary[mode]["seconds_per_epoch"]):
                rows.append({"backbone": backbone, "family": family(backbone), "mode": mode, "seed": repeat,
                             "seconds_per_epoch": float(sec), "train_images": summary[mode]["train_images"]})
    return pd.DataFrame(rows)
