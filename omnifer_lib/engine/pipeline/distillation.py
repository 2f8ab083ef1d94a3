"""Distilled auxiliary samples (§3.4, Algorithm 1) and the baseline sets, cached."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from omnifer_lib._progress import stage
from omnifer_lib.engine.pipeline._common import (DISTILL_KEYS, SNAPSHOTS_FILE, anchor_of,
                                               data_config, device_of, load_model, pick, pool_of, selection_config,
                                               stage_code, store)
from omnifer_lib.engine.pipeline.datasets import dataset
from omnifer_lib.engine.pipeline.learners import TrainingSet, primitive_learner
from omnifer_lib.engine.pipeline.selection import auxiliary_samples, require_auxiliary_samples, selection
from omnifer_lib.engine.store import Artifact
from omnifer_lib.files import atomic_torch_save
from omnifer_lib.distill.registry import DISTILLERS
from omnifer_lib.distributed import is_running

#: The distillers (``das_method``), from their records. Defined here, with the stage that runs them, not in
#: ``_common``: every stage's key covers ``_common``'s code, and only this stage's the distillers'.
DAS_METHODS = tuple(DISTILLERS)


def distilled(params: Mapping[str, Any], backbone: str, method: str = "algorithm1", source: str = "vas") -> Artifact:
    """Distilled auxiliary samples (DAS) of ``backbone``'s family (cached; ``das.pt`` and PNGs).

    ``method``: Algorithm 1 or a baseline (:data:`DAS_METHODS`). ``source``: ``"vas"`` (the
    selected auxiliary samples, as in the paper) or ``"anchor"`` (the labeled anchor training
    set; Fig. 4 shows both)."""
    from omnifer_lib.distill import export_das
    from omnifer_lib.distill.registry import distiller

    if method not in DAS_METHODS:
        raise ValueError(f"method must be one of {DAS_METHODS}, got {method!r}")
    if source not in ("vas", "anchor"):
        raise ValueError(f"source must be 'vas' or 'anchor', got {source!r}")
    prim = primitive_learner(params, backbone)
    upstream = {"primitive": prim.key}
    config: Dict[str, Any] = {"backbone": backbone, "method": method, "source": source,
                              **pick(params, DISTILL_KEYS),
                              "data": data_config(params, [anchor_of(params), pool_of(params)]),
                              "seed": params["seed"]}
    if source == "vas":
        upstream["selection"] = selection(params, backbone).key
        config.update(selection_config(params))

    def compute(work: Path):
        if source == "vas":
            real = auxiliary_samples(params, backbone)
            require_auxiliary_samples(real, params, backbone, f"distil them ({method})")
        else:
            real = dataset(params, anchor_of(params), "train")
        model = load_model(prim)
        dev = device_of(params)
        with stage(f"distilled set {method} of {backbone} from {len(real)} {source} images"):
            result = distiller(method).run(model, real, params, device=dev, checkpoint=work / "checkpoint.pt",
                                           distributed=is_running())
        export_das(result, work)
        if result.snapshots:  # §4.5 trains on the intermediate images; das.pt holds the final set only
            atomic_torch_save(result.snapshots, work / SNAPSHOTS_FILE)
        return {"method": method, "num_real": int(len(real)),
                "final_loss": float(result.loss_history[-1]) if result.loss_history else None,
                "step_sizes": [float(e) for e in result.step_sizes]}

    return store().get_or_compute("distilled", config, compute, upstream=upstream, resumable=True,
                                  code=stage_code("selection", "distillation"), scratch=("checkpoint.pt",))


def das_training_set(params: Mapping[str, Any], backbone: str, das_method: str = "algorithm1",
                     das_strategy: Optional[str] = None) -> TrainingSet:
    """What the anchor+DAS learner adds to the anchor: the distilled set of ``das_method``
    (:func:`distilled` from the VAS of ``params``), and how it joins the anchor's minibatches
    (``das_strategy``, default the profile's; ``das_weight``)."""
    from omnifer_lib.distill import load_das

    d = distilled(params, backbone, das_method)
    config = {**selection_config(params), "das_method": das_method,
              "das_strategy": das_strategy or params["das_strategy"], "das_weight": params["das_weight"]}
    # das.pt is read here (load_das), so this module's code is the learner's too
    return TrainingSet(config=config, upstream={"das": d.key}, code=("distillation",), das=load_das(d.file("das.pt")))


def load_distilled(artifact: Artifact):
    """The :class:`~omnifer_lib.distill.DistillResult` of a :func:`distilled` artifact, with its
    snapshots (intermediate distilled images) when the method kept any."""
    from omnifer_lib.distill import load_das
    from omnifer_lib.files import torch_load

    result = load_das(artifact.file("das.pt"))
    if artifact.file(SNAPSHOTS_FILE).is_file():
        result.snapshots = list(torch_load(artifact.file(SNAPSHOTS_FILE)))
    return result
