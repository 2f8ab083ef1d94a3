"""Trained and evaluated learners (cached): the primitive learner of §3.2 and the final
learners of §4.4 (anchor only, anchor + VAS, anchor + DAS)."""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from omnifer_lib import models
from omnifer_lib._progress import stage
from omnifer_lib.book.pipeline._common import (MODES, TRAIN_KEYS, NotTrainedYet, anchor_of, data_config, device_of,
                                               get_or_train, pick, pool_of, selection_config, stage_code, write_json)
from omnifer_lib.book.pipeline.datasets import dataset, eval_targets, eval_targets_of
from omnifer_lib.book.pipeline.pretraining import face_pretraining, initial_model
from omnifer_lib.book.store import Artifact
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
                                      "num_workers")}, "distributed": is_running()}


@functools.lru_cache(maxsize=16)
def _learner_cached(params_json: str, backbone: str, train_on: str, mode: str, seed: int,
                    das_method: str, selection_json: str, das_strategy: Optional[str]) -> Artifact:
    params = json.loads(params_json)
    selection_over = json.loads(selection_json)
    return _learner(params, backbone, train_on, mode, seed, das_method, selection_over, das_strategy)


def learner(params: Mapping[str, Any], backbone: str, mode: str = "anchor", *, seed: Optional[int] = None,
            train_on: Optional[str] = None, das_method: str = "algorithm1",
            selection: Optional[Mapping[str, Any]] = None,
            das_strategy: Optional[str] = None) -> Artifact:
    """A trained and evaluated learner (cached).

    ``mode``: ``"anchor"`` (baseline; with ``seed = params["seed"]`` on the anchor this is the
    primitive learner), ``"anchor+VAS"`` or ``"anchor+DAS"`` (§4.4). ``train_on``: the labeled
    training set (default: the profile's anchor, the paper's ``rafdb`` for Table 1 and the
    cross-dataset tables; ``fer2013`` for Table 2). ``mode`` may also be :data:`ORACLE` (a control:
    the anchor with the whole pool under its hidden true labels).
    ``das_method``: which set plays the DAS (Algorithm 1 or a baseline of
    :data:`DAS_METHODS`); ``selection``: overrides of the selection parameters (rule, δ) for the
    VAS/DAS; ``das_strategy``: override of ``params["das_strategy"]``.

    The artifact holds ``model.pt``, ``history.json`` (per epoch: loss, accuracies, seconds) and
    ``evaluation.json`` (per test set: accuracy, mean class accuracy, confusion matrix)."""
    seed = int(params["seed"] if seed is None else seed)
    train_on = train_on or anchor_of(params)
    if mode not in (*MODES, ORACLE):
        raise ValueError(f"mode must be one of {(*MODES, ORACLE)}, got {mode!r}")
    try:
        return _learner_cached(json.dumps(dict(params), sort_keys=True), backbone, train_on, mode, seed, das_method,
                               json.dumps(dict(selection or {}), sort_keys=True), das_strategy)
    except NotTrainedYet as missing:  # looked up only (side_by_side): say how to train it, unless an upstream learner
        missing.call = missing.call or (learner, (dict(params), backbone, mode),
                                        dict(seed=seed, train_on=train_on, das_method=das_method,
                                             selection=dict(selection or {}), das_strategy=das_strategy))
        raise


def _learner(params: Mapping[str, Any], backbone: str, train_on: str, mode: str, seed: int, das_method: str,
             selection_over: Mapping[str, Any], das_strategy: Optional[str]) -> Artifact:
    from omnifer_lib.book.pipeline.distillation import distilled
    from omnifer_lib.book.pipeline.selection import (auxiliary_samples, manifest_dir, require_auxiliary_samples,
                                                     selection)
    from omnifer_lib.distill import load_das
    from omnifer_lib.select import soft_pseudo_labels
    from omnifer_lib.evaluate import evaluate
    from omnifer_lib.train import fit_final

    strategy = das_strategy or params["das_strategy"]
    config: Dict[str, Any] = {"backbone": backbone, "train_on": train_on, "mode": mode, "seed": seed,
                              **pick(params, TRAIN_KEYS),
                              "data": data_config(params, list(eval_targets_of(train_on, params)))}
    upstream: Dict[str, str] = {}
    code = ("pretraining", "learners")
    vas = das = soft = None
    if mode == ORACLE:
        config["data"] = data_config(params, [*eval_targets_of(train_on, params), pool_of(params)])
        vas = oracle_pool(params)
    elif mode != "anchor":
        sel_params = {**dict(params), **dict(selection_over)}
        config.update(selection_config(sel_params))
        if mode == "anchor+VAS":
            sel = selection(sel_params, backbone)  # the overrides may pick another round or scoring
            upstream["selection"] = sel.key
            vas = auxiliary_samples(sel_params, backbone)
            require_auxiliary_samples(vas, sel_params, backbone, "train the anchor+VAS learner")
            code += ("selection",)  # the VAS are re-thresholded from the manifest here
            if sel_params.get("vas_soft_labels"):  # in the key only when on: hard-label learners keep theirs
                config["vas_soft_labels"] = True
                soft = soft_pseudo_labels(manifest_dir(sel_params, backbone), vas.selection)
        else:
            d = distilled(sel_params, backbone, das_method)
            upstream["das"] = d.key
            config.update({"das_method": das_method, "das_strategy": strategy, "das_weight": params["das_weight"]})
            das = load_das(d.file("das.pt"))
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
        for name, test in eval_targets(params, train_on).items():
            res = evaluate(model, test, device=device_of(params))
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
                        code=stage_code(*code), scratch=("ckpt",))


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


def primitive_learner(params: Mapping[str, Any], backbone: str) -> Artifact:
    """The primitive learner of §3.2: the anchor-only learner with the master seed."""
    return learner(params, backbone, "anchor", seed=params["seed"], train_on=anchor_of(params))


def primitive_learners(params: Mapping[str, Any], backbones: Sequence[str]) -> Dict[str, Artifact]:
    """:func:`primitive_learner` of each backbone, those not cached yet trained side by side
    (:func:`~omnifer_lib.book.pipeline.side_by_side.train_side_by_side`)."""
    from omnifer_lib.book.pipeline.side_by_side import train_side_by_side

    train_side_by_side(params, [(primitive_learner, (dict(params), backbone), {}) for backbone in backbones])
    return {backbone: primitive_learner(params, backbone) for backbone in backbones}


def history(artifact: Artifact) -> pd.DataFrame:
    return pd.DataFrame(json.loads(artifact.file("history.json").read_text()))


def evaluation(artifact: Artifact) -> Dict[str, Any]:
    return json.loads(artifact.file("evaluation.json").read_text())
