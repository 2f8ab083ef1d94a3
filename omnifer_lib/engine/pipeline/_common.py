"""What every stage shares: the paper's roles, the parameters each stage reads, the store.

Each stage is a pure function of the profile parameters it depends on, of the artifacts
upstream of it and of the code it runs (:func:`stage_code`); anything else never
invalidates it.
"""
from __future__ import annotations

import contextlib
import contextvars
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple

import torch

from omnifer_lib import models
from omnifer_lib.engine.fingerprint import code_fingerprint
from omnifer_lib.engine.roles import (ANCHOR, ANCHOR_REST, CROSS_TARGETS, FOLDER, POOL, SPLIT_DATASETS,  # noqa: F401
                                   SPLIT_KEYS, anchor_of, cross_targets_of, is_semi_supervised, paper_roles,
                                   pool_of, split_text)
from omnifer_lib.engine.store import Artifact, Store, key_for
from omnifer_lib.device import resolve_device
from omnifer_lib.data import registry as fdata_registry
from omnifer_lib.select.rules import RULE_PARAMETERS
from omnifer_lib.seeds import split_seed_of
from omnifer_lib.names import MODES, family  # noqa: F401  (the stages' modes and families)

#: the paper's datasets (from the dataset records)
REAL_DATASETS = fdata_registry.PAPER_DATASETS
SNAPSHOTS_FILE = "snapshots.pt"
PRETRAINED_WEIGHTS = {"vgg_face": "vgg_face_weights", "resnet34": "resnet34_weights"}

# Parameters each stage depends on (beyond upstream keys); anything else never invalidates it.
DATA_KEYS = ("data_source", "image_size", "seed")  # what every dataset depends on
#: the size parameters of each dataset's synthetic stand-in (from the dataset records)
SIZE_KEYS = fdata_registry.SIZE_KEYS
TRAIN_KEYS = ("epochs", "lr", "lr_step", "lr_gamma", "momentum", "weight_decay", "batch_size", "flip_p", "amp",
              "width", "crop_pad", "lr_schedule", "label_smoothing")
#: training options of the final learners only (the primitive learner, the teacher, trains without them),
#: with their off value: in a learner's key only when set otherwise, so a learner that does not use one
#: keeps the key it had before the option existed
STUDENT_TRAIN_KEYS = {"mixup_alpha": 0.0}
#: how a learner is tested, with its off value: in a learner's key only when set otherwise (as above)
EVAL_KEYS = {"test_flip_average": False}
PRETRAIN_KEYS = ("pretrain_epochs", "pretrain_lr", "n_pretrain", "width", "batch_size", "flip_p", "momentum",
                 "weight_decay", "amp")
DISTILL_KEYS = ("images_per_class", "distill_iterations", "distill_inits", "distill_inner_steps", "distill_lr",
                "distill_eta_lr", "eta0", "distill_real_batch", "distill_fixed_init", "distill_init_scope",
                "snapshot_every", "dm_iterations")
#: the selection parameters: the rule, δ, each rule's own parameter (from the rule records), the cap
SELECT_KEYS = ("selection_rule", "delta", *RULE_PARAMETERS, "per_class_cap")


def selection_config(params: Mapping[str, Any]) -> Dict[str, Any]:
    """The selection parameters a result made from the auxiliary samples depends on: the rule and
    what it reads (:func:`omnifer_lib.select.rule_parameters`), so that e.g. a softmax threshold
    never retrains a learner of the margin rule."""
    from omnifer_lib.select import rule_parameters

    rule = params["selection_rule"]
    return {"selection_rule": rule, **rule_parameters(rule, **{k: params[k] for k in SELECT_KEYS[1:]})}


def seed_params(params: Mapping[str, Any], seed: int) -> Dict[str, Any]:
    """The parameters of seed ``seed``'s run. With ``seeds_redraw_pipeline`` the seed redraws the
    whole pipeline: ``seed`` becomes the master seed (primitive learner, selection, distillation)
    and, for a pool that is the anchor's rest, the labeled split is redrawn (``split_seed + seed``,
    so seed 0 keeps the profile's split). Without it, ``params`` as they are: every seed shares the
    master seed's upstream stages (the paper's protocol)."""
    if not params.get("seeds_redraw_pipeline"):
        return dict(params)
    out = {**dict(params), "seed": int(seed)}
    if is_semi_supervised(params):
        out["split_seed"] = split_seed_of(params.get("split_seed") or 0, seed)
    return out


def store() -> Store:
    return Store()


class NotTrainedYet(Exception):
    """A learner stage looked up under :func:`lookup_only` is not cached. Its upstream stages were
    computed on the way; ``call`` = ``(function, args, kwargs)`` trains it (set by the innermost
    public stage function the lookup went through, e.g. the primitive learner a selection needs)."""

    def __init__(self, stage: str, key: str):
        super().__init__(f"{stage} {key} is not trained yet")
        self.stage, self.key = stage, key
        self.call: Optional[Tuple[Callable[..., Any], tuple, Dict[str, Any]]] = None


_LOOKUP_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("omnifer_lookup_only", default=False)


@contextlib.contextmanager
def lookup_only() -> Iterator[None]:
    """Inside the block a learner stage that is not cached raises :class:`NotTrainedYet` instead of
    training; every other stage computes as usual (:mod:`~omnifer_lib.engine.pipeline.side_by_side`)."""
    token = _LOOKUP_ONLY.set(True)
    try:
        yield
    finally:
        _LOOKUP_ONLY.reset(token)


def train_threads(params: Mapping[str, Any]) -> Optional[int]:
    """CPU threads each learner trains with (``params["train_threads"]``; ``None`` = torch's default)."""
    n = params.get("train_threads")
    return None if n is None else int(n)


@contextlib.contextmanager
def training_threads(params: Mapping[str, Any]) -> Iterator[None]:
    """torch's CPU threads set to :func:`train_threads` for the block, and set back after. The
    thread count orders a convolution's sums, so a learner's numbers depend on it: it is fixed by
    the profile, not by where (which process) the learner happens to train."""
    n = train_threads(params)
    if n is None or device_of(params).type != "cpu" or n == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def get_or_train(params: Mapping[str, Any], stage: str, config: Mapping[str, Any],
                 compute: Callable[[Path], Optional[Mapping[str, Any]]], **kwargs: Any) -> Artifact:
    """:meth:`Store.get_or_compute` for a stage that trains a learner: with the profile's
    ``train_threads``, and under :func:`lookup_only` a lookup that raises :class:`NotTrainedYet`."""
    if _LOOKUP_ONLY.get():
        key = key_for(stage, config, **kwargs)
        found = store().lookup(stage, key)
        if found is None:
            raise NotTrainedYet(stage, key)
        return found
    with training_threads(params):  # the machine record of the artifact then says how many
        return store().get_or_compute(stage, config, compute, **kwargs)


def stage_code(*modules: str) -> Dict[str, Any]:
    """The code fingerprint of a stage that runs the pipeline modules ``modules`` (e.g.
    ``"learners"``) and, through them, whatever of the library they import. Raises
    :class:`~omnifer_lib.engine.fingerprint.CodeChangedError` when that code changed on disk after this
    process imported it (restart the kernel)."""
    return code_fingerprint([f"engine.pipeline.{m}" for m in ("_common", "datasets", *modules)])


def pick(params: Mapping[str, Any], keys: Sequence[str]) -> Dict[str, Any]:
    return {k: params[k] for k in keys if k in params}


def train_config(params: Mapping[str, Any]) -> Dict[str, Any]:
    """The training parameters a learner's key holds: :data:`TRAIN_KEYS`, and each of
    :data:`STUDENT_TRAIN_KEYS` and :data:`EVAL_KEYS` set to other than its off value."""
    return {**pick(params, TRAIN_KEYS), **{k: params[k] for k, off in {**STUDENT_TRAIN_KEYS, **EVAL_KEYS}.items()
                                           if params.get(k, off) != off}}


def data_config(params: Mapping[str, Any], names: Sequence[str]) -> Dict[str, Any]:
    """The data parameters that datasets ``names`` depend on (source, image size, seed, their
    synthetic sizes, their roots, the test split and, for the two parts of a semi-supervised split,
    the split's parameters) — and nothing else, so that e.g. a larger pool does not retrain the
    anchor-only learners."""
    keys = list(DATA_KEYS)
    for name in names:
        if name == ANCHOR_REST or (name == anchor_of(params) and is_semi_supervised(params)):
            keys += SPLIT_KEYS
            name = anchor_of(params)
        keys += list(SIZE_KEYS.get(name, ())) + [f"{name}_root"]
        if name in SPLIT_DATASETS and params.get("data_source") == "real":
            keys.append("test_split")
    out = pick(params, dict.fromkeys(keys))
    if aligns_target(params, names):  # only then: a profile that does not align keeps its keys
        out["align_cross_targets"] = True
    return out


#: The lab datasets that play cross-dataset targets: whole frames or heads, aligned on request.
ALIGNABLE_TARGETS = ("ckplus", "jaffe", "mmi")


def aligns_target(params: Mapping[str, Any], names: Sequence[str]) -> bool:
    """Whether any of ``names`` is a real lab dataset that ``align_cross_targets`` asks to align."""
    return bool(params.get("align_cross_targets") and params.get("data_source") == "real"
                and any(n in ALIGNABLE_TARGETS for n in names))


def device_of(params: Mapping[str, Any]) -> torch.device:
    return resolve_device(params.get("device", "auto"))


def load_model(artifact: Artifact, device=None):
    """The trained model of a learner artifact."""
    return models.load(artifact.file("model.pt"), device=device)
