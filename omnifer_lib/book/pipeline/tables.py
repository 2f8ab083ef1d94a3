"""Result tables over the cached learners (one row per learner and test set)."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import pandas as pd

from omnifer_lib.book.pipeline._common import MODES, anchor_of, family
from omnifer_lib.book.pipeline.kfold import kfold_learner
from omnifer_lib.book.pipeline.learners import evaluation, history, learner
from omnifer_lib.book.provenance import machine_text


def results_table(params: Mapping[str, Any], backbones: Sequence[str], modes: Sequence[str] = MODES, *,
                  train_on: Optional[str] = None, seeds: Optional[Sequence[int]] = None, das_method: str = "algorithm1",
                  selection_over: Optional[Mapping[str, Any]] = None, das_strategy: Optional[str] = None,
                  label: Optional[str] = None) -> pd.DataFrame:
    """One row per (backbone, mode, seed, test set): accuracy (%), mean class accuracy, seconds
    per epoch, and the machine the learner was trained on (processor, threads, versions; the
    device alone for learners cached before machines were recorded). Trains whatever is not
    cached yet. ``train_on`` defaults to the profile's anchor."""
    train_on = train_on or anchor_of(params)
    rows = []
    for backbone in backbones:
        for mode in modes:
            for seed in (seeds if seeds is not None else params["seeds"]):
                art = learner(params, backbone, mode, seed=seed, train_on=train_on, das_method=das_method,
                              selection=selection_over, das_strategy=das_strategy)
                hist = history(art)
                made_on = (art.meta.get("created_by") or {}).get("machine")
                made_on = machine_text(made_on) if made_on else art.meta["summary"].get("device", "not recorded")
                for target, ev in evaluation(art).items():
                    rows.append({"backbone": backbone, "family": family(backbone), "mode": mode, "seed": seed,
                                 "train_on": train_on, "target": target, "accuracy": ev["accuracy"],
                                 "mean_class_accuracy": ev.get("mean_class_accuracy"),
                                 "seconds_per_epoch": float(hist["seconds"].mean()),
                                 "train_images": art.meta["summary"].get("train_images"),
                                 "das_method": das_method if mode == "anchor+DAS" else None,
                                 "variant": label, "machine": made_on})
    return pd.DataFrame(rows)


def kfold_table(params: Mapping[str, Any], backbone: str, modes: Sequence[str] = ("anchor", "anchor+DAS"),
                dataset_name: str = "ckplus") -> pd.DataFrame:
    """Per-fold accuracies of the k-fold protocol (Table 3), one row per (mode, fold)."""
    rows = []
    for mode in modes:
        for fold in range(int(params["ckplus_folds"])):
            res = kfold_learner(params, backbone, mode, fold, dataset_name=dataset_name)
            rows.append({"backbone": backbone, "family": family(backbone), "mode": mode, "fold": fold, **res})
    return pd.DataFrame(rows)
