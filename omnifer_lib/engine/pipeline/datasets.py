"""The datasets playing the paper's roles, and the cached rendering of the synthetic ones.

Datasets are named after the paper's datasets (``rafdb``, ``fer2013``, ``ckplus``, ``jaffe``,
``mmi``, ``ms1m``); with ``data_source="synthetic"`` each name is played by the synthetic domain
of that name. Two more names play the pool: ``anchor_rest`` (the anchor's train split minus its
labeled part, labels hidden: the semi-supervised protocol) and ``folder`` (unlabeled face images
at ``folder_root``). Which name plays which role is a profile parameter (``anchor``, ``pool``,
``cross_targets``); the test split of RAF-DB and FER-2013 is ``test_split``.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import torch

from omnifer_lib import data as fdata
from omnifer_lib.engine.pipeline._common import (ALIGNABLE_TARGETS, ANCHOR, ANCHOR_REST, FOLDER, POOL, aligns_target,
                                               anchor_of, cross_targets_of, data_config, is_semi_supervised,
                                               stage_code, store)
from omnifer_lib.files import atomic_torch_save, torch_load


def _real_transform(size: int):
    from torchvision import transforms as T

    # Aligned face crops are resized to the learners' input size (§4.3: 224 x 224).
    return T.Compose([T.Lambda(lambda im: im.convert("RGB")), T.Resize((size, size)), T.ToTensor()])


def _synthetic_size(params: Mapping[str, Any], name: str, split: str) -> int:
    if name == POOL:  # the synthetic celebrity pool is named after MS-Celeb-1M whatever role it plays
        return int(params["n_pool"])
    if name == ANCHOR:
        return int(params["n_anchor_train"] if split == "train" else params["n_anchor_test"])
    if name == "fer2013":  # Table 2's training set; its test split doubles as Table 7's target
        return int(params["n_fer2013_train"] if split == "train" else params["n_anchor_test"])
    return int(params["n_cross_test"])


def dataset(params: Mapping[str, Any], name: str, split: str = "train"):
    """The dataset ``name`` (or ``anchor_rest`` / ``folder``), ``split`` in {"train", "test"}
    (``"all"`` for the real lab datasets, which have no official split; ``"test"`` reads
    ``params["test_split"]`` for RAF-DB and FER-2013). In a semi-supervised profile the anchor's
    ``"train"`` is its labeled part and ``anchor_rest`` the rest, labels ``-1`` (``true_labels``
    keeps them for analysis)."""
    key = tuple(sorted(data_config(params, [name]).items()))
    return _dataset_cached(key, name, split)


def split_labeled(params: Mapping[str, Any]):
    """The labeled part and the unlabeled rest of the anchor's train split
    (:func:`omnifer_lib.data.protocols.semi_supervised_split` with ``labeled_per_class`` or
    ``labeled_fraction`` and ``split_seed``)."""
    if params.get("labeled_per_class") is not None:
        labeled = int(params["labeled_per_class"])
    elif params.get("labeled_fraction") is not None:
        labeled = float(params["labeled_fraction"])
    else:
        raise ValueError("pool 'anchor_rest' needs labeled_fraction (e.g. -p labeled_fraction 0.1) or "
                         "labeled_per_class (e.g. -p labeled_per_class 100)")
    full = dataset({k: v for k, v in params.items() if k != "pool"}, anchor_of(params), "train")
    return fdata.protocols.semi_supervised_split(full, labeled, seed=int(params.get("split_seed") or 0))


@functools.lru_cache(maxsize=32)
def _dataset_cached(key: Tuple, name: str, split: str):
    params = dict(key)
    if name == ANCHOR_REST or (name == anchor_of(params) and split == "train" and is_semi_supervised(params)):
        anchor, rest = split_labeled(params)
        return rest if name == ANCHOR_REST else anchor
    if name == FOLDER:  # unlabeled faces a user brings, whatever data_source says of the others
        return fdata.load("folder", root=params.get("folder_root"), transform=_real_transform(params["image_size"]))
    if params["data_source"] == "synthetic":
        ds = fdata.load("synthetic", split=split, domain=name, size=_synthetic_size(params, name, split),
                        image_size=params["image_size"], seed=params["seed"])
        if ds.caches_images:  # render once per machine, not once per notebook process
            ds.use_rendered(_rendered_images(ds, name, split, len(ds), params["image_size"], params["seed"]))
        return ds
    if params["data_source"] != "real":
        raise ValueError(f"data_source must be 'synthetic' or 'real', got {params['data_source']!r}")
    root = params.get(f"{name}_root")
    if aligns_target(params, [name]):
        return _aligned_target(params, name)
    if name in ALIGNABLE_TARGETS:
        split = "all"
    elif split == "test" and params.get("test_split"):
        split = params["test_split"]
    # The pool too: MS1M's 112 px crops must reach the learners at their input size.
    return fdata.load(name, root=root, split=split, transform=_real_transform(params["image_size"]))


def _aligned_target(params: Mapping[str, Any], name: str):
    """The lab dataset ``name`` with every face aligned by MTCNN to the learners' input size
    (:func:`omnifer_lib.data.align.align_dataset`; cached): the anchor's tight framing instead of a
    whole frame or head shrunk to a few pixels. Images without a detected face are kept whole and
    counted in the dataset's ``notes``."""
    import numpy as np

    from omnifer_lib.data._base import ArrayImageDataset
    from omnifer_lib.data.align import align_dataset

    size = int(params["image_size"])

    def compute(work: Path):
        raw = fdata.load(name, root=params.get(f"{name}_root"), split="all", transform=_as_pil)
        images, found = align_dataset(raw, size, device=params.get("device"))
        np.savez(work / "aligned.npz", images=images, labels=raw.labels, found=found,
                 subjects=raw.subjects if raw.subjects is not None else np.array([]))
        return {"images": int(len(found)), "faces_found": int(found.sum())}

    # what the alignment reads, and nothing else: every seed that redraws the pipeline shares it
    config = {"dataset": name, "root": params.get(f"{name}_root"), "image_size": size}
    art = store().get_or_compute("aligned", config, compute, code=stage_code())
    with np.load(art.file("aligned.npz"), allow_pickle=False) as z:
        images, labels, found, subjects = z["images"], z["labels"], z["found"], z["subjects"]
    ds = ArrayImageDataset(images, labels, subjects if len(subjects) else None, name,
                                 transform=_real_transform(size))
    ds.notes.append(f"aligned by MTCNN to {size} px; {int((~found).sum())} of {len(found)} images without a "
                    "detected face kept whole")
    return ds


def _as_pil(image):
    return image.convert("RGB")


def _rendered_images(ds, name: str, split: str, size: int, image_size: int, seed: int) -> torch.Tensor:
    config = {"domain": name, "split": split, "size": size, "image_size": image_size, "seed": seed}

    def compute(work: Path):
        atomic_torch_save(ds.rendered(), work / "images.pt")

    art = store().get_or_compute("rendered", config, compute, version=1, code=stage_code())
    return torch_load(art.file("images.pt"))


def eval_targets_of(train_on: str, params: Optional[Mapping[str, Any]] = None) -> Tuple[str, ...]:
    """Names of the test sets of a learner trained on ``train_on``: its own test split, and for
    the anchor also the cross-dataset targets (Tables 4-7; ``params`` gives the profile's anchor
    and targets, else the paper's)."""
    params = params or {}
    if train_on != anchor_of(params):
        return (train_on,)
    return (train_on, *(t for t in cross_targets_of(params) if t != train_on))


def eval_targets(params: Mapping[str, Any], train_on: str) -> Dict[str, Any]:
    """The test sets of :func:`eval_targets_of`, by name."""
    return {name: dataset(params, name, "test") for name in eval_targets_of(train_on, params)}
