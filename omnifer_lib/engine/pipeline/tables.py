"""Result tables over the cached learners (one row per learner and test set) and the timed epoch costs."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import pandas as pd

from omnifer_lib.engine.pipeline._common import MODES, anchor_of, family, seed_params
from omnifer_lib.engine.pipeline.cost import epoch_costs
from omnifer_lib.engine.pipeline.kfold import kfold_learner
from omnifer_lib.engine.pipeline.final import learner
from omnifer_lib.engine.pipeline.learners import evaluation, history
from omnifer_lib.engine.pipeline.side_by_side import train_side_by_side
from omnifer_lib.engine.provenance import machine_text


def results_table(params: Mapping[str, Any], backbones: Sequence[str], modes: Sequence[str] = MODES, *,
                  train_on: Optional[str] = None, seeds: Optional[Sequence[int]] = None, das_method: str = "algorithm1",
                  selection_over: Optional[Mapping[str, Any]] = None, das_strategy: Optional[str] = None,
                  label: Optional[str] = None) -> pd.DataFrame:
    """One row per (backbone, mode, seed, test set): accuracy (%), mean class accuracy, seconds
    per epoch, and the machine the learner was trained on (processor, threads, versions; the
    device alone for learners cached before machines were recorded). Trains whatever is not
    cached yet (side by side in worker processes when the profile says so: ``learner_processes``).
    ``train_on`` defaults to the profile's anchor. With ``seeds_redraw_pipeline`` seed s's learners
    are built on seed s's own data draw, primitive learner, selection and distillation
    (:func:`~omnifer_lib.engine.pipeline.seed_params`), so the seeds' spread holds every source of noise."""
    options = _learner_options(params, train_on, das_method, selection_over, das_strategy)
    train_on = options["train_on"]
    runs = _learner_calls(params, backbones, modes, seeds, options)
    train_side_by_side(params, runs)
    rows = []
    for _, (run, backbone, mode), kwargs in runs:
        seed = kwargs["seed"]
        art = learner(run, backbone, mode, **kwargs)
        hist = history(art)
        made_on = _machine_of(art)
        for target, ev in evaluation(art).items():
            rows.append({"backbone": backbone, "family": family(backbone), "mode": mode, "seed": seed,
                         "train_on": train_on, "target": target, "accuracy": ev["accuracy"],
                         "mean_class_accuracy": ev.get("mean_class_accuracy"),
                         "seconds_per_epoch": float(hist["seconds"].mean()),
                         "train_images": art.meta["summary"].get("train_images"),
                         "das_method": das_method if mode == "anchor+DAS" else None,
                         "variant": label, "machine": made_on})
    return pd.DataFrame(rows)


def results_tables(params: Mapping[str, Any], backbones: Sequence[str],
                   variants: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """:func:`results_table` of each variant, one after the other in one table (its label in the
    ``variant`` column); ``variants`` maps a label to the keyword arguments of its
    :func:`results_table` call (``modes``, ``das_method``, ``selection_over``, ...). The learners of
    all variants train side by side at once (``learner_processes``), not a variant at a time."""
    calls = []
    for over in variants.values():
        options = _learner_options(params, **{k: v for k, v in over.items() if k not in ("modes", "seeds")})
        calls += _learner_calls(params, backbones, over.get("modes", MODES), over.get("seeds"), options)
    train_side_by_side(params, calls)
    return pd.concat([results_table(params, backbones, **over, label=label) for label, over in variants.items()],
                     ignore_index=True)


def _learner_options(params: Mapping[str, Any], train_on: Optional[str] = None, das_method: str = "algorithm1",
                     selection_over: Optional[Mapping[str, Any]] = None,
                     das_strategy: Optional[str] = None) -> Dict[str, Any]:
    """The keyword arguments of :func:`learner` for a :func:`results_table` call's options."""
    return dict(train_on=train_on or anchor_of(params), das_method=das_method, selection=selection_over,
                das_strategy=das_strategy)


def _learner_calls(params: Mapping[str, Any], backbones: Sequence[str], modes: Sequence[str],
                   seeds: Optional[Sequence[int]], options: Mapping[str, Any]) -> list:
    return [(learner, (seed_params(params, seed), backbone, mode), dict(options, seed=seed))
            for backbone in backbones for mode in modes for seed in (seeds if seeds is not None else params["seeds"])]


def kfold_table(params: Mapping[str, Any], backbone: str, modes: Sequence[str] = ("anchor", "anchor+DAS"),
                dataset_name: str = "ckplus") -> pd.DataFrame:
    """Per-fold accuracies of the k-fold protocol (Table 3), one row per (mode, fold)."""
    runs = [(mode, fold) for mode in modes for fold in range(int(params["ckplus_folds"]))]
    train_side_by_side(params, [(kfold_learner, (params, backbone, mode, fold), dict(dataset_name=dataset_name))
                                for mode, fold in runs])
    rows = []
    for mode, fold in runs:
        res = kfold_learner(params, backbone, mode, fold, dataset_name=dataset_name)
        rows.append({"backbone": backbone, "family": family(backbone), "mode": mode, "fold": fold, **res})
    return pd.DataFrame(rows)


def epoch_cost_table(params: Mapping[str, Any], backbones: Sequence[str], **options: Any) -> pd.DataFrame:
    """:func:`epoch_costs` of each backbone as rows backbone, family, mode, seed (the timing round),
    seconds_per_epoch, train_images and machine (where the timing was made): the input of
    :func:`~omnifer_lib.publish.reporting.cost_table` and
    :func:`~omnifer_lib.publish.reporting.epoch_cost_ratios`."""
    rows = []
    for backbone in backbones:
        art = epoch_costs(params, backbone, **options)
        made_on = _machine_of(art)
        summary = art.meta["summary"]
        for mode in MODES:
            for repeat, sec in enumerate(summary[mode]["seconds_per_epoch"]):
                rows.append({"backbone": backbone, "family": family(backbone), "mode": mode, "seed": repeat,
                             "seconds_per_epoch": float(sec), "train_images": summary[mode]["train_images"],
                             "machine": made_on})
    return pd.DataFrame(rows)


def _machine_of(art) -> str:
    """Where an artifact was made (processor, threads, versions); the device alone for artifacts
    cached before machines were recorded."""
    made_on = (art.meta.get("created_by") or {}).get("machine")
    return machine_text(made_on) if made_on else art.meta["summary"].get("device", "not recorded")
