"""The learner stage (cached): a backbone trained on the labeled anchor plus what a mode adds,
and evaluated; the primitive learner of §3.2 is its anchor-only learner with the master seed.

This module knows no selection or distillation: what a mode adds to the anchor (a
:class:`TrainingSet`) is resolved by the module of that data, and
:func:`~omnifer_lib.engine.pipeline.final.learner` puts the two together for the final learners of
§4.4, so the stages import one another in one direction only (learners → selection →
distillation → final)."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from omnifer_lib import models
from omnifer_lib._progress import stage
from omnifer_lib.files import write_json
from omnifer_lib.engine.pipeline._common import (EVAL_KEYS, STUDENT_TRAIN_KEYS, NotTrainedYet, anchor_of, data_config,
                                               device_of, get_or_train, pool_of, stage_code, train_config)
from omnifer_lib.engine.pipeline.datasets import dataset, eval_targets, eval_targets_of
from omnifer_lib.engine.pipeline.pretraining import face_pretraining, initial_model
from omnifer_lib.engine.store import Artifact
from omnifer_lib.device import describe_device


#: A control beyond the paper's modes: the anchor with the whole pool under its true labels (an
#: oracle selection; only for a pool whose labels are hidden, not absent).
ORACLE = "anchor+pool"


def fit_kwargs(params: Mapping[str, Any]) -> Dict[str, Any]:
    """The arguments of :func:`omnifer_lib.train.fit` that come from the profile (``num_workers``
    too, which changes no result and so is in no key), and ``distributed`` when this process is a
    rank of a ``torch.distributed`` group (``omnifer reproduce --nproc-per-node``)."""
    from omnifer_lib.distributed import is_running

    return {**{k: params[k] for k in ("epochs", "lr", "lr_step", "lr_gamma", "momentum", "weight_decay", "batch_size",
                                      "flip_p", "crop_pad", "lr_schedule", "label_smoothing", "amp",
                                      "num_workers")},
            **{k: params.get(k, off) for k, off in STUDENT_TRAIN_KEYS.items()}, "distributed": is_running()}


def equal_step_params(params: Mapping[str, Any], n_train: int, n_anchor: int) -> Dict[str, Any]:
    """``params`` with ``epochs`` (and ``lr_step``) scaled by ``n_anchor / n_train``: a learner on
    ``n_train`` images then takes about as many SGD steps as one on the anchor's ``n_anchor`` with
    the profile's epochs (rounded to whole epochs, at least one)."""
    scale = n_anchor / max(n_train, 1)
    out = dict(params)
    out["epochs"] = max(1, int(round(params["epochs"] * scale)))
    out["lr_step"] = max(1, int(round(params["lr_step"] * scale)))
    return out


def tested_model(params: Mapping[str, Any], model):
    """The model as a learner is tested: on the mean logits of each image and its mirror image
    (:class:`~omnifer_lib.models.FlipAveraged`) with ``test_flip_average``, else as it is."""
    return models.FlipAveraged(model) if params.get("test_flip_average") else model


@dataclass
class TrainingSet:
    """What a final-training mode adds to the labeled anchor, resolved by the module of its data
    (:func:`~omnifer_lib.engine.pipeline.selection.vas_training_set`,
    :func:`~omnifer_lib.engine.pipeline.distillation.das_training_set`, :func:`oracle_training_set`):
    the samples (``vas``: a dataset with pseudo-labels; ``das``: a distilled set; ``soft``: soft
    labels of the VAS), the entries they add to the learner's key (``config``, ``upstream``), the
    pipeline modules that compute them (``code``) and whether the learner is cut to the anchor's SGD
    steps (``anchor_steps``: :func:`equal_step_params`)."""
    config: Dict[str, Any] = field(default_factory=dict)
    upstream: Dict[str, str] = field(default_factory=dict)
    code: Tuple[str, ...] = ()
    vas: Any = None
    das: Any = None
    soft: Any = None
    anchor_steps: bool = False


def train_learner(params: Mapping[str, Any], backbone: str, train_on: str, mode: str, seed: int,
                  added: Optional[TrainingSet] = None) -> Artifact:
    """The learner stage (cached): ``backbone`` trained on ``train_on``'s train split plus what
    ``added`` brings for ``mode`` (see :func:`~omnifer_lib.engine.pipeline.final.learner`, which
    resolves it), evaluated on ``train_on``'s test split and the cross targets (with
    ``test_flip_average``, on the mean logits of each image and its mirror image). With
    ``added.anchor_steps`` its epochs are cut so that it takes the anchor's SGD steps."""
    from omnifer_lib.evaluate import evaluate
    from omnifer_lib.train import fit_final

    added = added or TrainingSet()
    if added.anchor_steps and added.vas is not None:  # the epochs in the key are the ones it trains
        n_anchor = len(dataset(params, train_on, "train"))
        params = equal_step_params(params, n_anchor + len(added.vas), n_anchor)
    strategy = added.config.get("das_strategy", params["das_strategy"])
    config: Dict[str, Any] = {"backbone": backbone, "train_on": train_on, "mode": mode, "seed": seed,
                              **train_config(params),
                              "data": data_config(params, list(eval_targets_of(train_on, params))), **added.config}
    upstream = dict(added.upstream)
    vas, das, soft = added.vas, added.das, added.soft
    pre = face_pretraining(params, backbone)
    if pre is not None:
        upstream["face_pretraining"] = pre.key

    def compute(work: Path):
        model = initial_model(params, backbone, seed, pre)
        train = dataset(params, train_on, "train")
        with stage(f"learner {backbone} · {mode} · trained on {train_on} · seed {seed}"):
            history = fit_final(model, train, "anchor+VAS" if mode == ORACLE else mode, vas=vas, das=das,
                                vas_soft_labels=soft, seed=seed,
                                device=device_of(params),
                                checkpoint_dir=work / "ckpt", das_strategy=strategy,
                                das_weight=params["das_weight"], **fit_kwargs(params))
        models.save(model, work / "model.pt")
        evaluation = {}
        tested = tested_model(params, model)
        for name, test in eval_targets(params, train_on).items():
            res = evaluate(tested, test, device=device_of(params))
            evaluation[name] = {"n": res["n"], "accuracy": res["accuracy"],
                                "mean_class_accuracy": res["mean_class_accuracy"],
                                "confusion": np.asarray(res["confusion"]).tolist()}
        write_json(work / "history.json", history)
        write_json(work / "evaluation.json", evaluation)
        summary = {"accuracy": {k: v["accuracy"] for k, v in evaluation.items()},
                   "seconds_per_epoch": float(np.mean([h["seconds"] for h in history])),
                   "train_images": int(len(train) + (len(vas) if vas is not None else 0)),
                   "device": describe_device(device_of(params))}
        if vas is not None:
            summary["vas_images"] = int(len(vas))
        return summary

    return get_or_train(params, "learner", config, compute, upstream=upstream, resumable=True,
                        code=stage_code("pretraining", "learners", *added.code), scratch=("ckpt",))


def oracle_training_set(params: Mapping[str, Any], train_on: str) -> TrainingSet:
    """The :data:`ORACLE` control's addition: the whole pool under its hidden true labels."""
    return TrainingSet(config={"data": data_config(params, [*eval_targets_of(train_on, params), pool_of(params)])},
                       vas=oracle_pool(params))


def oracle_pool(params: Mapping[str, Any]):
    """The pool with its true labels (the :data:`ORACLE` control); ``ValueError`` when the pool
    has no hidden labels to reveal (a real MS-Celeb-1M or a folder of faces)."""
    from omnifer_lib.data.protocols import DatasetView

    pool = dataset(params, pool_of(params), "train")
    truth = np.asarray(getattr(pool, "true_labels", pool.labels))
    if len(truth) == 0 or (truth < 0).any():
        raise ValueError(f"the oracle control needs a pool with hidden labels (pool {pool_of(params)!r} has "
                         f"{int((truth < 0).sum())} unlabeled images); use -p pool anchor_rest")
    return DatasetView(pool, np.arange(len(pool)), labels=truth, name=f"{getattr(pool, 'name', 'pool')}[true labels]")


@functools.lru_cache(maxsize=16)
def _primitive_cached(params_json: str, backbone: str) -> Artifact:
    params = json.loads(params_json)
    return train_learner(params, backbone, anchor_of(params), "anchor", int(params["seed"]))


def primitive_learner(params: Mapping[str, Any], backbone: str) -> Artifact:
    """The primitive learner of §3.2: the anchor-only learner with the master seed, trained without
    mixup whatever ``mixup_alpha`` says (mixup regularises the final learners, as Margin-Mix's student;
    the teacher's features and margins stay the paper's) and tested on one view whatever
    ``test_flip_average`` says (how a learner is tested moves no selection or distillation); without
    either the same artifact as ``final.learner(params, backbone, "anchor")``. Held in memory once found:
    every selection and distillation asks for it."""
    params = {**dict(params), **STUDENT_TRAIN_KEYS, **EVAL_KEYS}
    try:
        return _primitive_cached(json.dumps(params, sort_keys=True), backbone)
    except NotTrainedYet as missing:  # looked up only (side_by_side): say how to train it
        missing.call = missing.call or (primitive_learner, (dict(params), backbone), {})
        raise


def primitive_learners(params: Mapping[str, Any], backbones: Sequence[str]) -> Dict[str, Artifact]:
    """:func:`primitive_learner` of each backbone, those not cached yet trained side by side
    (:func:`~omnifer_lib.engine.pipeline.side_by_side.train_side_by_side`)."""
    from omnifer_lib.engine.pipeline.side_by_side import train_side_by_side

    train_side_by_side(params, [(primitive_learner, (dict(params), backbone), {}) for backbone in backbones])
    return {backbone: primitive_learner(params, backbone) for backbone in backbones}


def history(artifact: Artifact) -> pd.DataFrame:
    return pd.DataFrame(json.loads(artifact.file("history.json").read_text()))


def evaluation(artifact: Artifact) -> Dict[str, Any]:
    return json.loads(artifact.file("evaluation.json").read_text())
