"""The final learners of §4.4 (anchor only, anchor + VAS, anchor + DAS) and the oracle control:
each mode's addition to the anchor resolved by the module of its data, trained by the learner
stage (:func:`~omnifer_lib.engine.pipeline.learners.train_learner`). The top of the pipeline's
stages: it imports them, none imports it."""
from __future__ import annotations

import functools
import json
from typing import Any, Mapping, Optional

from omnifer_lib.engine.pipeline._common import MODES, NotTrainedYet, anchor_of
from omnifer_lib.engine.pipeline.distillation import das_training_set
from omnifer_lib.engine.pipeline.learners import ORACLE, oracle_training_set, train_learner
from omnifer_lib.engine.pipeline.selection import vas_training_set
from omnifer_lib.engine.store import Artifact


@functools.lru_cache(maxsize=16)
def _learner_cached(params_json: str, backbone: str, train_on: str, mode: str, seed: int,
                    das_method: str, selection_json: str, das_strategy: Optional[str]) -> Artifact:
    params = json.loads(params_json)
    if mode == ORACLE:
        added = oracle_training_set(params, train_on)
    elif mode == "anchor+VAS":
        added = vas_training_set({**params, **json.loads(selection_json)}, backbone)
    elif mode == "anchor+DAS":
        added = das_training_set({**params, **json.loads(selection_json)}, backbone, das_method, das_strategy)
    else:
        added = None
    return train_learner(params, backbone, train_on, mode, seed, added)


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
