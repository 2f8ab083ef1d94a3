"""Auxiliary-sample selection (§3.3): the cached manifest of pool scores, and the VAS
re-thresholded from it for any δ or rule (not cached: cheap)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Mapping

import numpy as np

from omnifer_lib._progress import stage
from omnifer_lib.engine.pipeline._common import (SELECT_KEYS, NotTrainedYet, anchor_of, data_config, device_of,
                                               load_model, pool_of, selection_config, stage_code, store)
from omnifer_lib.engine.pipeline.datasets import dataset
from omnifer_lib.engine.pipeline.learners import TrainingSet, primitive_learner, train_learner
from omnifer_lib.engine.store import Artifact


class EmptySelectionError(ValueError):
    """The selection rule accepted no pool sample; the message says what would keep some."""


def teacher(params: Mapping[str, Any], backbone: str) -> Artifact:
    """The learner whose features and probabilities score the pool. Round 1 (the paper): the
    primitive learner of §3.2. Round r > 1 of select-then-retrain (``selection_rounds``, in the spirit
    of curriculum labelling): the anchor+VAS learner trained from scratch, with the master seed, on
    round r − 1's selection (the same artifact as ``final.learner(params_r−1, backbone, "anchor+VAS")``)."""
    rounds = int(params.get("selection_rounds") or 1)
    if rounds <= 1:
        return primitive_learner(params, backbone)
    previous = {**dict(params), "selection_rounds": rounds - 1}
    try:
        return train_learner(previous, backbone, anchor_of(previous), "anchor+VAS", int(params["seed"]),
                             vas_training_set(previous, backbone))
    except NotTrainedYet as missing:  # looked up only (side_by_side): say how to train it
        missing.call = missing.call or (teacher, (dict(params), backbone), {})
        raise


def vas_training_set(params: Mapping[str, Any], backbone: str) -> TrainingSet:
    """What the anchor+VAS learner adds to the anchor: the VAS of ``params``' rule, δ and round
    (:func:`auxiliary_samples`), with their soft labels when ``vas_soft_labels`` is on; with
    ``vas_equal_steps`` the learner is cut to the anchor's SGD steps (every round's, too)."""
    from omnifer_lib.select import soft_pseudo_labels

    sel = selection(params, backbone)
    vas = auxiliary_samples(params, backbone)
    require_auxiliary_samples(vas, params, backbone, "train the anchor+VAS learner")
    config = selection_config(params)
    soft = None
    if params.get("vas_soft_labels"):  # in the key only when on: hard-label learners keep theirs
        config["vas_soft_labels"] = True
        soft = soft_pseudo_labels(manifest_dir(params, backbone), vas.selection)
    # the VAS are re-thresholded from the manifest here, so this module's code is the learner's too
    return TrainingSet(config=config, upstream={"selection": sel.key}, code=("selection",), vas=vas, soft=soft,
                       anchor_steps=bool(params.get("vas_equal_steps")))


def selection(params: Mapping[str, Any], backbone: str) -> Artifact:
    """Scores of every pool sample against the class centroids of the :func:`teacher` (cached
    manifest). δ and the rule are *not* part of the key: :func:`auxiliary_samples` re-thresholds
    the manifest, so a new δ costs no feature extraction. With ``selection_flip_average`` each image
    is scored by the mean of its and its mirror image's features (:class:`~omnifer_lib.models.FlipAveraged`;
    the anchor's centroids too)."""
    from omnifer_lib.models import FlipAveraged
    from omnifer_lib.select.distributed import select_auxiliary_distributed

    prim = teacher(params, backbone)
    flip = bool(params.get("selection_flip_average"))
    config = {"backbone": backbone, "selection_batch_size": params["selection_batch_size"],
              "data": data_config(params, [anchor_of(params), pool_of(params)]),
              **({"flip_average": True} if flip else {})}  # absent when off: the paper's keys stay as they were

    def compute(work: Path):
        model = load_model(prim)
        pool = dataset(params, pool_of(params), "train")
        rounds = int(params.get("selection_rounds") or 1)
        who = f"round-{rounds} teacher" if rounds > 1 else "primitive"
        with stage(f"selection over the pool ({len(pool)} images) with the {who} {backbone}"
                   f"{' (flip-averaged)' if flip else ''}"):
            # one shard of the pool per rank under torchrun; select_auxiliary itself otherwise
            summary = select_auxiliary_distributed(FlipAveraged(model) if flip else model,
                                                   dataset(params, anchor_of(params), "train"), pool,
                                                   delta=params["delta"], manifest_dir=work / "manifest",
                                                   batch_size=params["selection_batch_size"],
                                                   device=device_of(params), num_workers=params["num_workers"],
                                                   identity=prim.key)
        return {"pool": int(len(pool)), "images_per_second": summary.to_dict().get("images_per_second")}

    return store().get_or_compute("selection", config, compute, upstream={"primitive": prim.key}, resumable=True,
                                  code=stage_code("selection"), shared=("manifest/",))


def selection_kwargs(params: Mapping[str, Any]) -> Dict[str, Any]:
    """The rule arguments of :func:`omnifer_lib.select.reselect` from the profile parameters. The
    ``curriculum`` rule's share grows with the round (curriculum labelling): round r of
    ``selection_rounds`` keeps the ``r × curriculum_share`` most confident part of the pool (at most all)."""
    kwargs = {"rule": params["selection_rule"], **{k: params[k] for k in SELECT_KEYS[1:]}}
    if kwargs["rule"] == "curriculum" and kwargs["curriculum_share"] is not None:
        kwargs["curriculum_share"] = min(1.0, int(params.get("selection_rounds") or 1) * kwargs["curriculum_share"])
    return kwargs


def manifest_dir(params: Mapping[str, Any], backbone: str) -> Path:
    return selection(params, backbone).path / "manifest"


def auxiliary_samples(params: Mapping[str, Any], backbone: str):
    """The vanilla auxiliary samples (VAS): pool samples accepted by the selection rule, with
    their pseudo-labels (an :class:`~omnifer_lib.select.AuxiliaryDataset`)."""
    from omnifer_lib.select import AuxiliaryDataset

    return AuxiliaryDataset(dataset(params, pool_of(params), "train"), manifest_dir(params, backbone),
                            **selection_kwargs(params))


def require_auxiliary_samples(vas, params: Mapping[str, Any], backbone: str, purpose: str) -> None:
    """Raise :class:`EmptySelectionError` when ``vas`` is empty: it names the chapter that
    needs samples (the runner's ``OMNIFER_NOTEBOOK``), the rule and δ given, and, for the margin
    rule, the largest margin in the pool - any δ below it keeps some."""
    if len(vas) > 0:
        return
    from omnifer_lib.select.reselect import decision_columns

    chapter = os.environ.get("OMNIFER_NOTEBOOK")
    who = f"chapter {chapter}" if chapter else "this step"
    rule = params["selection_rule"]
    hint = "lower delta or use another selection_rule"
    if rule == "curriculum" and params.get("curriculum_share") is not None:
        hint = "raise curriculum_share (the share of the pool each round adds)"
    if rule == "margin":
        margins = decision_columns(manifest_dir(params, backbone), "margin")["margin"]
        best = float(np.max(margins)) if len(margins) else float("nan")
        hint = (f"the largest margin in the pool is {best:.4f}, so a delta below it keeps some "
                f"(e.g. -p delta {np.floor(best * 1000) / 1000:g})") if best > 0 else \
            "no pool sample has a positive margin: the primitive learner separates nothing (train it longer)"
    raise EmptySelectionError(f"the selection (rule {rule}, delta {params['delta']}) accepted no auxiliary "
                              f"samples for {backbone}; {who} needs some to {purpose}: {hint}")
