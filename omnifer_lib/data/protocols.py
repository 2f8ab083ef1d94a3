"""Evaluation protocols of the paper (§4.1) as views over datasets.

* :func:`official_splits` — the published train/val/test splits (RAF-DB, FER-2013, and the
  synthetic domains' train/test);
* :func:`subject_kfold` — k-fold cross-validation with disjoint subjects per fold (CK+:
  10 folds, the paper's inner-dataset CK+ protocol after its ref. [20]);
* :func:`leave_one_subject_out` — one fold per subject (JAFFE);
* :func:`semi_supervised_split` — a labeled count or fraction per class becomes the anchor,
  the rest an unlabeled pool whose labels are hidden (``-1``) from the pipeline and kept in
  ``true_labels`` only for analysis (pseudo-label precision).

Every protocol returns :class:`DatasetView` objects: subsets that keep the dataset
attributes (``labels``, ``true_labels``, ``subjects``, ``classes``, ``name``, and anything
else of the underlying dataset such as ``domain``) and its batched ``__getitems__``.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from torch.utils.data import Dataset

from ..seeds import numpy_rng
from ._base import DatasetLayoutError
from .registry import RECORDS, load


class DatasetView(Dataset):
    """The samples ``indices`` of ``dataset``, yielding ``(image, labels[i])``.

    ``labels`` defaults to the dataset's labels at those indices; pass an array to
    override them (e.g. all ``-1`` for an unlabeled pool). ``true_labels`` is the
    dataset's ``true_labels`` when it has them (synthetic data), else its labels — never
    the overridden ones. Attributes the view does not define are read from the dataset.
    """

    def __init__(self, dataset, indices: Sequence[int], labels: Optional[np.ndarray] = None,
                 name: Optional[str] = None):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= len(dataset)):
            raise IndexError(f"view indices must lie in 0..{len(dataset) - 1}")
        base_labels = np.asarray(dataset.labels, dtype=np.int64)
        base_true = np.asarray(getattr(dataset, "true_labels", base_labels), dtype=np.int64)
        self.true_labels = base_true[self.indices]
        if labels is None:
            self.labels = base_labels[self.indices].copy()
        else:
            self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
            if len(self.labels) != len(self.indices):
                raise ValueError(f"{len(self.labels)} labels for {len(self.indices)} indices")
        subjects = getattr(dataset, "subjects", None)
        self.subjects = None if subjects is None else np.asarray(subjects)[self.indices]
        self.classes = tuple(dataset.classes)
        self.name = name or getattr(dataset, "name", type(dataset).__name__)

    # attributes such as domain, spec, description, missing_classes come from the dataset
    def __getattr__(self, item: str):
        if item.startswith("__") or "dataset" not in self.__dict__:
            raise AttributeError(item)
        return getattr(self.__dict__["dataset"], item)

    @property
    def transform(self):
        return self.dataset.transform

    @transform.setter
    def transform(self, value) -> None:
        self.dataset.transform = value

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        if i < 0:
            i += len(self)
        img, _ = self.dataset[int(self.indices[i])]
        return img, int(self.labels[i])

    def __getitems__(self, ids: Sequence[int]):
        ids = np.asarray(ids, dtype=np.int64)
        src = self.indices[ids].tolist()
        if hasattr(self.dataset, "__getitems__"):
            items = self.dataset.__getitems__(src)
        else:
            items = [self.dataset[j] for j in src]
        return [(img, int(lab)) for (img, _), lab in zip(items, self.labels[ids])]

    def __repr__(self) -> str:
        return f"<DatasetView {self.name!r}: {len(self)} of {len(self.dataset)} images>"


def official_splits(name: str, root=None, **options) -> Dict[str, Dataset]:
    """The dataset's published splits by name (its record's ``splits``): rafdb {train, test};
    fer2013 {train, val, test} (val only where the release has it); synthetic {train, test}; the
    others {all} (use the fold protocols below)."""
    record = RECORDS[name] if name in RECORDS else None
    if record is None:
        load(name)  # raises the unknown-dataset error
    out: Dict[str, Dataset] = {}
    for split in record.splits:
        try:
            ds = load(name, root=root, split=None if split == "all" else split, **options)
        except DatasetLayoutError:
            if split in record.optional_splits:
                continue
            raise
        out[split] = ds
    return out


def _subjects_of(dataset) -> np.ndarray:
    subjects = getattr(dataset, "subjects", None)
    if subjects is None:
        raise ValueError(f"{getattr(dataset, 'name', dataset)} has no subjects; subject-independent "
                         "protocols need a dataset with identity information (CK+, JAFFE, MMI, synthetic)")
    return np.asarray(subjects)


def subject_kfold(dataset, k: int = 10, seed: int = 0) -> List[Tuple[DatasetView, DatasetView]]:
    """``k`` (train, test) pairs whose test sets partition the dataset with every subject in
    exactly one test fold. Subjects are shuffled by ``seed`` then assigned, largest first,
    to the fold with the fewest images, so folds are balanced in size."""
    subjects = _subjects_of(dataset)
    uniq, counts = np.unique(subjects, return_counts=True)
    if len(uniq) < k:
        raise ValueError(f"{getattr(dataset, 'name', 'dataset')}: {len(uniq)} subjects cannot fill {k} "
                         "subject-disjoint folds")
    rng = numpy_rng(seed)
    order = rng.permutation(len(uniq))
    order = order[np.argsort(-counts[order], kind="stable")]
    fold_of_subject: Dict = {}
    sizes = np.zeros(k, dtype=np.int64)
    for j in order:
        f = int(np.argmin(sizes))
        fold_of_subject[uniq[j]] = f
        sizes[f] += counts[j]
    fold = np.array([fold_of_subject[s] for s in subjects])
    name = getattr(dataset, "name", "dataset")
    out = []
    for f in range(k):
        test = np.flatnonzero(fold == f)
        train = np.flatnonzero(fold != f)
        out.append((DatasetView(dataset, train, name=f"{name}[fold {f + 1}/{k} train]"),
                    DatasetView(dataset, test, name=f"{name}[fold {f + 1}/{k} test]")))
    return out


def leave_one_subject_out(dataset) -> List[Tuple[DatasetView, DatasetView]]:
    """One (train, test) pair per subject (sorted): the test set holds exactly that subject."""
    subjects = _subjects_of(dataset)
    name = getattr(dataset, "name", "dataset")
    out = []
    for s in np.unique(subjects):
        test = np.flatnonzero(subjects == s)
        train = np.flatnonzero(subjects != s)
        out.append((DatasetView(dataset, train, name=f"{name}[without {s}]"),
                    DatasetView(dataset, test, name=f"{name}[subject {s}]")))
    return out


def semi_supervised_split(dataset, labeled: Union[int, float], seed: int = 0,
                          ) -> Tuple[DatasetView, DatasetView]:
    """Split a labeled dataset into an anchor and an unlabeled pool.

    ``labeled``: an int = that many images per class in the anchor; a float in (0, 1] =
    that fraction of each class (at least one image of every class present). The pool
    gets every other sample with ``labels`` all ``-1``; its real labels are in
    ``pool.true_labels`` for analysis only. Samples already unlabeled go to the pool.
    Raises ``ValueError`` when a class has fewer images than asked for."""
    labels = np.asarray(dataset.labels, dtype=np.int64)
    if isinstance(labeled, bool) or not isinstance(labeled, (int, float, np.integer, np.floating)):
        raise ValueError(f"labeled must be an int (per class) or a float fraction, got {labeled!r}")
    if isinstance(labeled, (float, np.floating)) and not 0 < labeled <= 1:
        raise ValueError(f"a labeled fraction must lie in (0, 1], got {labeled}")
    if isinstance(labeled, (int, np.integer)) and labeled < 0:
        raise ValueError(f"a labeled count per class must be >= 0, got {labeled}")
    rng = numpy_rng(seed)
    chosen = []
    for c in range(len(dataset.classes)):
        idx = np.flatnonzero(labels == c)
        if len(idx) == 0:
            continue
        if isinstance(labeled, (int, np.integer)):
            n = int(labeled)
            if n > len(idx):
                raise ValueError(f"class {dataset.classes[c]!r} has {len(idx)} images, fewer than the "
                                 f"{n} labeled per class asked for")
        else:
            n = max(1, int(round(labeled * len(idx))))
        chosen.append(rng.choice(idx, size=n, replace=False))
    anchor_idx = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[anchor_idx] = False
    pool_idx = np.flatnonzero(mask)
    name = getattr(dataset, "name", "dataset")
    anchor = DatasetView(dataset, anchor_idx, name=f"{name}[anchor]")
    pool = DatasetView(dataset, pool_idx, labels=np.full(len(pool_idx), -1, dtype=np.int64),
                       name=f"{name}[unlabeled pool]")
    return anchor, pool
