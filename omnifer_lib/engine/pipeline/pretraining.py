"""Model building: the demo's face pretraining (cached stage) and the initial learners."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from omnifer_lib import data as fdata
from omnifer_lib import models
from omnifer_lib._progress import stage
from omnifer_lib.files import write_json
from omnifer_lib.engine.pipeline._common import (POOL, PRETRAIN_KEYS, PRETRAINED_WEIGHTS, data_config, device_of, pick,
                                               stage_code, store)
from omnifer_lib.engine.pipeline.datasets import dataset
from omnifer_lib.engine.store import Artifact


def face_pretraining(params: Mapping[str, Any], backbone: str) -> Optional[Artifact]:
    """Identity pretraining of the demo's VGG-style net on the celebrity pool (the stand-in for
    VGG-Face's face training), cached; ``None`` for backbones that do not get it."""
    if backbone != "vgg_small" or int(params.get("pretrain_epochs", 0)) <= 0:
        return None
    # the celebrity corpus (MS-Celeb-1M's stand-in) with its identities, whatever plays the pool
    config = {"backbone": backbone, **pick(params, PRETRAIN_KEYS), "data": data_config(params, [POOL])}

    def compute(work: Path):
        from omnifer_lib.distributed import is_running
        from omnifer_lib.train import pretrain_identity

        pool = dataset(params, POOL, "train")
        index = pretraining_indices(pool.subjects, int(params["n_pretrain"]))
        subset = fdata.protocols.DatasetView(pool, index)
        model = models.build(backbone, width=params["width"], seed=params["seed"])
        with stage(f"face pretraining of {backbone}"):
            model, history = pretrain_identity(model, subset, subjects=np.asarray(pool.subjects)[index],
                                               epochs=params["pretrain_epochs"], lr=params["pretrain_lr"],
                                               seed=params["seed"], batch_size=params["batch_size"],
                                               flip_p=params["flip_p"], momentum=params["momentum"],
                                               weight_decay=params["weight_decay"], lr_step=10 ** 6,
                                               device=device_of(params), checkpoint_dir=work / "ckpt",
                                               distributed=is_running())  # DDP under torchrun
        models.save(model, work / "backbone.pt")
        write_json(work / "history.json", history)
        return {"identities": int(len(np.unique(np.asarray(pool.subjects)[index]))), "images": int(len(index)),
                "identity_accuracy": history[-1]["train_accuracy"]}

    return store().get_or_compute("face_pretraining", config, compute, resumable=True,
                                  code=stage_code("pretraining"), scratch=("ckpt",))


def pretraining_indices(subjects: Sequence, n: int) -> np.ndarray:
    """About ``n`` pool indices covering as few identities as possible (all images of the
    identities in order of first appearance): identity classification needs many images per
    identity, as VGG-Face's training set had (~1000 per celebrity). At least two identities are
    kept when the pool has them (a classifier needs two classes), even if that takes more than
    ``n`` images."""
    subjects = np.asarray(subjects)
    _, first = np.unique(subjects, return_index=True)
    order = subjects[np.sort(first)]
    chosen, total = [], 0
    counts = {s: c for s, c in zip(*np.unique(subjects, return_counts=True))}
    for s in order:
        if total >= n and len(chosen) >= 2:
            break
        chosen.append(s)
        total += counts[s]
    index = np.flatnonzero(np.isin(subjects, chosen))
    keep = max(n, 0)
    if len(chosen) >= 2:  # up to the first image of a second identity at least
        keep = max(keep, int(np.argmax(subjects[index] != subjects[index[0]])) + 1)
    return index[:keep]


def initial_model(params: Mapping[str, Any], backbone: str, seed: int, pretrained: Optional[Artifact] = None):
    """A fresh learner of ``backbone`` with its pretrained weights (VGG-Face / ImageNet files for
    the paper's backbones, ``pretrained`` = the :func:`face_pretraining` artifact for vgg_small)
    and a freshly drawn 7-way head (seeded by ``seed``)."""
    if pretrained is not None:
        return models.build(backbone, weights=pretrained.file("backbone.pt"), width=params["width"], seed=seed)
    if backbone in PRETRAINED_WEIGHTS:
        return models.build(backbone, weights=params.get(PRETRAINED_WEIGHTS[backbone]), seed=seed)
    return models.build(backbone, width=params["width"], seed=seed)
