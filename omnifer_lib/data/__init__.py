"""Datasets of omnifer: the paper's real datasets in their published layouts, the embedded
synthetic FER data, evaluation protocols and MTCNN alignment.

Canonical labels (:data:`LABELS`): neutral, anger, disgust, fear, happy, sad, surprise;
integer labels index this tuple and ``-1`` means unknown. Every loader maps its dataset's
own codes into it explicitly (see each module's docstring for the exact on-disk layout).

Entry point::

    ds = load("rafdb", root="/data/RAF-DB", split="train")
    ds = load("synthetic", split="train", domain="rafdb", size=3000, image_size=48, seed=0)

Names: ``rafdb``, ``fer2013``, ``ckplus``, ``jaffe``, ``mmi``, ``ms1m``, ``folder``,
``synthetic``. Each dataset is a torch ``Dataset`` yielding ``(image, label)`` with the
attributes ``labels`` (numpy int64), ``subjects`` (numpy array or ``None``), ``classes``,
``name`` and ``transform``. Without a transform, images are float32 tensors 3 x H x W in
[0, 1].

Before a long run, ``check_root("rafdb", "/data/RAF-DB")`` validates a root's layout in well
under a second (no image is decoded) and raises the :class:`DatasetLayoutError` the loader
would raise.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

from . import protocols, registry
from ._base import CONTEMPT, LABELS, DatasetLayoutError, DatasetRecord, FERDataset
from .registry import DISPLAY_NAMES, LAYOUT_CHECKS, RECORDS, REGISTRY, SIZE_KEYS, check_root, load
from .ckplus import load_ckplus  # noqa: F401  (the loaders, importable from here as before)
from .fer2013 import load_fer2013  # noqa: F401
from .folder import ImageFolder  # noqa: F401
from .jaffe import JAFFE  # noqa: F401
from .mmi import MMI  # noqa: F401
from .ms1m import MS1M  # noqa: F401
from .rafdb import RAFDB  # noqa: F401
from .synthetic import DOMAINS, SyntheticFER

__all__ = ["LABELS", "CONTEMPT", "RECORDS", "REGISTRY", "LAYOUT_CHECKS", "DISPLAY_NAMES", "SIZE_KEYS",
           "DatasetRecord", "DatasetLayoutError", "FERDataset", "load", "check_root",
           "describe", "to_tensors", "class_counts", "DOMAINS", "SyntheticFER", "protocols", "registry"]

def class_counts(dataset) -> np.ndarray:
    """Images per class (length ``len(dataset.classes)``); unknown labels (-1) not counted."""
    labels = np.asarray(dataset.labels)
    return np.bincount(labels[labels >= 0], minlength=len(dataset.classes))


def describe(dataset) -> str:
    """One line for tables and logs, e.g. ``"synthetic 'rafdb' domain (in-the-wild colour
    (RAF-DB's role: anchor)), train, 3000 images"``."""
    base = getattr(dataset, "description", "") or getattr(dataset, "name", type(dataset).__name__)
    parts = [base]
    split = getattr(dataset, "split", None)
    if split:
        parts.append(str(split))
    parts.append(f"{len(dataset)} images")
    labels = np.asarray(dataset.labels)
    if len(labels) and (labels < 0).all():
        parts.append("unlabeled" + (" (true labels kept for analysis)" if hasattr(dataset, "true_labels") else ""))
    elif (labels < 0).any():
        parts.append(f"{int((labels < 0).sum())} unlabeled")
    subjects = getattr(dataset, "subjects", None)
    if subjects is not None:
        parts.append(f"{len(np.unique(subjects))} subjects")
    missing = getattr(dataset, "missing_classes", ())
    if missing:
        parts.append("no " + "/".join(missing) + " class")
    if len(getattr(dataset, "classes", LABELS)) != len(LABELS):
        parts.append(f"{len(dataset.classes)} classes")
    return ", ".join(parts)


def to_tensors(dataset, batch_size: int = 256, indices=None, progress: Optional[bool] = None,
               num_workers: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Materialise a dataset (or the items ``indices`` of it): ``X`` float32 (N, 3, H, W), ``y``
    int64 (N,) as yielded, in order - the one place the library turns a dataset into tensors.

    Uses the dataset's vectorised ``__getitems__`` when it has one (synthetic data, views of it);
    ``num_workers > 0`` reads through a DataLoader with that many worker processes (file datasets).
    All images must share one size (give file datasets a resizing ``transform``)."""
    from torch.utils.data import DataLoader

    from .._progress import progress as _bar

    idx = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
    chunks = [idx[s:s + batch_size].tolist() for s in range(0, len(idx), batch_size)]
    if num_workers > 0:
        items_per_chunk = ((list(zip(x, y.tolist()))) for x, y in
                           DataLoader(dataset, batch_sampler=chunks, num_workers=num_workers))
    else:
        items_per_chunk = (dataset.__getitems__(c) if hasattr(dataset, "__getitems__") else [dataset[i] for i in c]
                           for c in chunks)
    xs, ys = [], []
    for items in _bar(items_per_chunk, total=len(chunks), desc=f"materialise {getattr(dataset, 'name', '')}",
                      enable=progress):
        for img, _ in items:
            if not isinstance(img, torch.Tensor) or img.dim() != 3:
                raise ValueError(f"to_tensors: {getattr(dataset, 'name', dataset)} yielded "
                                 f"{type(img).__name__}; expected (image tensor 3 x H x W, label) items "
                                 "(give the dataset a transform that returns a tensor)")
        try:
            xs.append(torch.stack([img.float() for img, _ in items]))
        except RuntimeError as exc:
            raise ValueError(f"to_tensors: images of {getattr(dataset, 'name', dataset)} differ in size "
                             f"({exc}); pass a transform that resizes them") from None
        ys.append(torch.as_tensor([int(lab) for _, lab in items], dtype=torch.int64))
    if not xs:
        return torch.empty(0, 3, 0, 0), torch.empty(0, dtype=torch.int64)
    return torch.cat(xs), torch.cat(ys)
