"""The datasets playing the paper's roles, and the cached rendering of the synthetic ones.

Datasets are named after the paper's datasets (``rafdb``, ``fer2013``, ``ckplus``, ``jaffe``,
``mmi``, ``ms1m``); with ``data_source="synthetic"`` each name is played by the synthetic domain
of that name.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple

import torch

from omnifer_lib import data as fdata
from omnifer_lib.book.pipeline._common import ANCHOR, CROSS_TARGETS, POOL, data_config, stage_code, store
from omnifer_lib.files import atomic_torch_save, torch_load


def _real_transform(size: int):
    from torchvision import transforms as T

    # Aligned face crops are resized to the learners' input size (§4.3: 224 x 224).
    return T.Compose([T.Lambda(lambda im: im.convert("RGB")), T.Resize((size, size)), T.ToTensor()])


def _synthetic_size(params: Mapping[str, Any], name: str, split: str) -> int:
    if name == POOL:
        return int(params["n_pool"])
    if name == ANCHOR:
        return int(params["n_anchor_train"] if split == "train" else params["n_anchor_test"])
    if name == "fer2013":  # Table 2's training set; its test split doubles as Table 7's target
        return int(params["n_fer2013_train"] if split == "train" else params["n_anchor_test"])
    return int(params["n_cross_test"])


def dataset(params: Mapping[str, Any], name: str, split: str = "train"):
    """The dataset playing ``name``'s role, ``split`` in {"train", "test"} (``"all"`` for the
    real lab datasets, which have no official split)."""
    key = tuple(sorted(data_config(params, [name]).items()))
    return _dataset_cached(key, name, split)


@functools.lru_cache(maxsize=32)
def _dataset_cached(key: Tuple, name: str, split: str):
    params = dict(key)
    if params["data_source"] == "synthetic":
        ds = fdata.load("synthetic", split=split, domain=name, size=_synthetic_size(params, name, split),
                        image_size=params["image_size"], seed=params["seed"])
        if ds.caches_images:  # render once per machine, not once per notebook process
            ds.use_rendered(_rendered_images(ds, name, split, len(ds), params["image_size"], params["seed"]))
        return ds
    if params["data_source"] != "real":
        raise ValueError(f"data_source must be 'synthetic' or 'real', got {params['data_source']!r}")
    root = params.get(f"{name}_root")
    if name in ("ckplus", "jaffe", "mmi"):
        split = "all"
    # The pool too: MS1M's 112 px crops must reach the learners at their input size.
    return fdata.load(name, root=root, split=split, transform=_real_transform(params["image_size"]))


def _rendered_images(ds, name: str, split: str, size: int, image_size: int, seed: int) -> torch.Tensor:
    config = {"domain": name, "split": split, "size": size, "image_size": image_size, "seed": seed}

    def compute(work: Path):
        atomic_torch_save(ds.rendered(), work / "images.pt")

    art = store().get_or_compute("rendered", config, compute, version=1, code=stage_code())
    return torch_load(art.file("images.pt"))


def eval_targets_of(train_on: str) -> Tuple[str, ...]:
    """Names of the test sets of a learner trained on ``train_on``: its own test split, and for
    the anchor also the cross-dataset targets (Tables 4-7)."""
    return (train_on, *CROSS_TARGETS) if train_on == ANCHOR else (train_on,)


def eval_targets(params: Mapping[str, Any], train_on: str) -> Dict[str, Any]:
    """The test sets of :func:`eval_targets_of`, by name."""
    return {name: dataset(params, name, "test") for name in eval_targets_of(train_on)}
