"""The subject-independent k-fold protocol on CK+ (§4.2; Table 3), one cached stage per fold."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np

from omnifer_lib import data as fdata
from omnifer_lib._progress import stage
from omnifer_lib.engine.pipeline._common import (NotTrainedYet, data_config, device_of, get_or_train,
                                               selection_config, stage_code, train_config)
from omnifer_lib.engine.pipeline.datasets import dataset
from omnifer_lib.engine.pipeline.learners import fit_kwargs, tested_model
from omnifer_lib.engine.pipeline.pretraining import face_pretraining, initial_model


def kfold_learner(params: Mapping[str, Any], backbone: str, mode: str, fold: int, k: Optional[int] = None,
                  dataset_name: str = "ckplus") -> Dict[str, Any]:
    """One fold of the subject-independent k-fold protocol on CK+ (§4.2; Table 3): trained on the
    other folds (+ DAS), tested on this one. Returns ``{"accuracy", "n", "correct"}`` (cached)."""
    try:
        return _kfold_learner(params, backbone, mode, fold, k, dataset_name)
    except NotTrainedYet as missing:  # looked up only (side_by_side): say how to train it, unless an upstream learner
        missing.call = missing.call or (kfold_learner, (dict(params), backbone, mode, fold),
                                        dict(k=k, dataset_name=dataset_name))
        raise


def _kfold_learner(params: Mapping[str, Any], backbone: str, mode: str, fold: int, k: Optional[int],
                   dataset_name: str) -> Dict[str, Any]:
    from omnifer_lib.engine.pipeline.distillation import distilled, load_distilled
    from omnifer_lib.evaluate import accuracy, predict
    from omnifer_lib.train import fit_final

    if mode not in ("anchor", "anchor+DAS"):
        raise ValueError("the paper runs CK+ only without auxiliary samples and with DAS (Table 3)")
    k = int(params["ckplus_folds"] if k is None else k)
    full = _kfold_source(params, dataset_name)
    folds = fdata.protocols.subject_kfold(full, k=k, seed=params["seed"])
    train, test = folds[fold]
    config = {"backbone": backbone, "mode": mode, "fold": fold, "k": k, "dataset": dataset_name,
              **train_config(params), "data": data_config(params, [dataset_name])}
    upstream: Dict[str, str] = {}
    code = ("pretraining", "learners", "kfold")
    das = None
    if mode == "anchor+DAS":
        d = distilled(params, backbone, "algorithm1")
        upstream["das"] = d.key
        config.update({"das_strategy": params["das_strategy"], "das_weight": params["das_weight"],
                       **selection_config(params)})
        das = load_distilled(d)
        code += ("distillation",)  # load_distilled runs here
    pre = face_pretraining(params, backbone)
    if pre is not None:
        upstream["face_pretraining"] = pre.key

    def compute(work: Path):
        model = initial_model(params, backbone, params["seed"], pre)
        with stage(f"{dataset_name} fold {fold + 1}/{k}: learner {backbone} · {mode}"):
            fit_final(model, train, mode, das=das, seed=params["seed"], device=device_of(params),
                      das_strategy=params["das_strategy"], das_weight=params["das_weight"], **fit_kwargs(params))
        y_pred = predict(tested_model(params, model), test, device=device_of(params))
        y_true = np.asarray(test.labels)
        return {"accuracy": float(accuracy(y_true, y_pred)), "n": int(len(y_true)),
                "correct": int((np.asarray(y_pred) == y_true).sum())}

    art = get_or_train(params, "kfold_learner", config, compute, upstream=upstream, code=stage_code(*code))
    return dict(art.meta["summary"])


def _kfold_source(params: Mapping[str, Any], name: str):
    if params["data_source"] == "synthetic":
        return dataset(params, name, "train")
    return dataset(params, name, "all")
