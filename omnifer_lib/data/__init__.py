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

import inspect
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch

from . import ckplus, fer2013, folder, jaffe, mmi, ms1m, protocols, rafdb
from ._base import CONTEMPT, LABELS, DatasetLayoutError, FERDataset
from .ckplus import load_ckplus
from .fer2013 import load_fer2013
from .folder import ImageFolder
from .jaffe import JAFFE
from .mmi import MMI
from .ms1m import MS1M
from .rafdb import RAFDB
from .synthetic import DOMAINS, SyntheticFER

__all__ = ["LABELS", "CONTEMPT", "REGISTRY", "DatasetLayoutError", "FERDataset", "load", "check_root",
           "describe", "to_tensors", "class_counts", "DOMAINS", "SyntheticFER", "protocols"]

#: name -> ``(factory(root, split, transform, **options), default split, needs a root)``
REGISTRY: Dict[str, Tuple[Callable, str, bool]] = {
    "rafdb": (RAFDB, "train", True),
    "fer2013": (load_fer2013, "train", True),
    "ckplus": (load_ckplus, "all", True),
    "jaffe": (JAFFE, "all", True),
    "mmi": (MMI, "all", True),
    "ms1m": (MS1M, "train", True),
    "folder": (ImageFolder, "all", True),
    "synthetic": (SyntheticFER, "train", False),
}


#: name -> cheap layout check(root, **options) of the loader's module (see :func:`check_root`)
LAYOUT_CHECKS: Dict[str, Callable[..., None]] = {
    "rafdb": rafdb.check_layout, "fer2013": fer2013.check_layout, "ckplus": ckplus.check_layout,
    "jaffe": jaffe.check_layout, "mmi": mmi.check_layout, "ms1m": ms1m.check_layout,
    "folder": folder.check_layout,
}


def _options_of(factory: Callable) -> Tuple[str, ...]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    params = inspect.signature(target).parameters
    return tuple(n for n in params if n not in ("self", "root", "split", "transform"))


def _known(name: str) -> None:
    if name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(REGISTRY)}")


def _looks_like(root, name: str) -> Optional[str]:
    """The other real dataset whose layout ``root`` passes, if exactly one does (``folder``,
    which takes any folder of images, is not considered)."""
    fits = []
    for other, check in LAYOUT_CHECKS.items():
        if other in (name, "folder"):
            continue
        try:
            check(root)
        except (ValueError, OSError):  # DatasetLayoutError is an OSError
            continue
        fits.append(other)
    return fits[0] if len(fits) == 1 else None


def _with_hint(exc: DatasetLayoutError, name: str, root) -> DatasetLayoutError:
    """``exc`` with a last line naming the dataset whose layout ``root`` holds instead, if any."""
    other = _looks_like(root, name)
    if other is None:
        return exc
    return DatasetLayoutError(f"{exc}\n(root {root} is laid out as {other}: was the {other} root given "
                              f"for {name}?)")


def check_root(name: str, root, **options) -> None:
    """Check cheaply that ``root`` holds dataset ``name`` in the layout its loader expects.

    Reads no image and at most the first lines of label / index files (a CSV header and
    first row, an ``.idx`` first line and the record it points at), so it takes well under a
    second on a full dataset; meant for a preflight before long runs. ``options`` are the
    loader's layout options (rafdb/ckplus ``variant=``, fer2013 ``source=``, ms1m ``prefix=``,
    folder ``split=``/``recursive=``). Raises the loader's :class:`DatasetLayoutError` (first
    line: dataset, root, what is missing; then the expected layout; a last line names the
    dataset the folder holds instead, when it holds one), or ``ValueError`` for a malformed
    first label / index line.
    """
    _known(name)
    if name not in LAYOUT_CHECKS:
        raise ValueError(f"{name}: the synthetic data is rendered, it has no root to check")
    check = LAYOUT_CHECKS[name]
    allowed = tuple(n for n in inspect.signature(check).parameters if n != "root")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"check_root({name!r}): unknown option(s) {unknown}; accepted: {', '.join(allowed)}")
    try:
        check(root, **options)
    except DatasetLayoutError as exc:
        raise _with_hint(exc, name, root) from None


def load(name: str, root=None, split: Optional[str] = None, transform: Optional[Callable] = None,
         **options) -> FERDataset:
    """Open dataset ``name`` (see module docstring).

    ``split=None`` takes the dataset's default: ``"train"`` where an official split exists
    (rafdb, fer2013, ms1m, synthetic), ``"all"`` otherwise (ckplus, jaffe, mmi, folder; use
    :mod:`omnifer_lib.data.protocols` for their folds). ``options`` are passed to the
    loader (e.g. ``variant=``, ``ferplus=``, ``keep_contempt=``, ``skip_corrupt=``, or for
    ``synthetic``: ``domain=``, ``size=``, ``image_size=``, ``seed=``).

    Raises ``ValueError`` for an unknown name or option, :class:`DatasetLayoutError` (a
    ``FileNotFoundError``) when a root is missing or not in the expected layout.
    """
    _known(name)
    factory, default_split, needs_root = REGISTRY[name]
    split = default_split if split is None else split
    allowed = _options_of(factory)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {unknown}; accepted: {', '.join(allowed)}")
    if not needs_root:
        if root is not None:
            raise ValueError(f"{name}: the synthetic data is rendered, it takes no root (got {root!r})")
        return factory(split=split, transform=transform, **options)
    if root is None:
        from importlib import import_module

        layout = getattr(import_module(factory.__module__), "LAYOUT", "")
        raise DatasetLayoutError(f"{name}: no root given; pass root= pointing at a folder laid out as:\n{layout}")
    try:
        return factory(root, split=split, transform=transform, **options)
    except DatasetLayoutError as exc:
        raise _with_hint(exc, name, root) from None


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
