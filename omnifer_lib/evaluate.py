"""Evaluation of FER learners: the paper's metrics, cross-dataset tables, fold protocols, seeds.

Metrics are in **percent** (0-100), as in the paper's tables.

* :func:`accuracy` - the paper's "mean classification accuracy": correct / all test images.
* :func:`mean_class_accuracy` - the mean of the per-class recalls (robust to class imbalance).
* :func:`confusion_matrix` - rows: true class, columns: predicted class.
* :func:`predict`, :func:`predict_logits`, :func:`extract_features` - a model over a dataset.
* :func:`evaluate` / :func:`evaluate_targets` - one dataset / a list of (cross-dataset) targets.
* :func:`cross_validate` - k-fold (CK+) and leave-one-subject-out (JAFFE) from fold index lists.
* :func:`mean_std`, :func:`format_mean_std`, :func:`summarize_seeds` - several seeds as mean ± std.

Samples with the unknown label ``-1`` are left out of every metric.

Data arguments accept a torch ``Dataset`` yielding ``(image, label)``, a ``TensorDataset``, or
a tuple ``(images (N, 3, H, W) float, labels (N,) int)``. :func:`as_tensors` turns small ones
into two tensors (training uses it too), so iterating costs one index per batch instead of
a Python call per image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ._progress import progress as _progress
from .data import to_tensors
from .device import resolve_device
from .seeds import torch_generator

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[int]]
Data = Union[Dataset, Tuple[torch.Tensor, torch.Tensor]]

#: Datasets whose images take more memory than this are streamed through a DataLoader
#: rather than stacked into one tensor.
MATERIALIZE_MAX_BYTES = 2 * 1024 ** 3


# --------------------------------------------------------------------------------------
# data plumbing (shared with omnifer_lib.train)


def _as_pair(data: Any) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """``(images, labels)`` without copying when ``data`` already is tensors, else ``None``."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        images, labels = data
    elif isinstance(data, TensorDataset) and len(data.tensors) == 2:
        images, labels = data.tensors
    else:
        return None
    labels = torch.as_tensor(labels, dtype=torch.int64)
    if images.dim() != 4 or labels.dim() != 1 or len(images) != len(labels):
        raise ValueError(f"expected images (N, 3, H, W) and labels (N,), got {tuple(images.shape)} "
                         f"and {tuple(labels.shape)}")
    return images, labels


def dataset_labels(data: Data) -> torch.Tensor:
    """The ``(N,)`` int64 labels of ``data`` (its ``labels`` attribute when it has one)."""
    pair = _as_pair(data)
    if pair is not None:
        return pair[1]
    labels = getattr(data, "labels", None)
    if labels is not None and len(labels) == len(data):
        return torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    return torch.tensor([int(data[i][1]) for i in range(len(data))], dtype=torch.int64)


def as_tensors(data: Data, *, max_bytes: Optional[int] = MATERIALIZE_MAX_BYTES,
               batch_size: int = 256, num_workers: int = 0,
               progress: Optional[bool] = None) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """``(images (N, 3, H, W) float32, labels (N,) int64)`` of ``data`` on the CPU, or ``None``
    when the images would take more than ``max_bytes`` (``None``: no limit) - stream those."""
    pair = _as_pair(data)
    if pair is not None:
        if not pair[0].is_floating_point():
            raise ValueError(f"expected float images in [0, 1], got dtype {pair[0].dtype}")
        return pair[0].float() if pair[0].dtype != torch.float32 else pair[0], pair[1]
    n = len(data)
    if n == 0:
        raise ValueError("the dataset is empty")
    first = data[0][0]
    if not isinstance(first, torch.Tensor) or first.dim() != 3:
        raise ValueError("expected a dataset yielding (image tensor 3 x H x W, label); got image of "
                         f"type {type(first).__name__}; give the dataset a transform that returns a tensor")
    if max_bytes is not None and n * first.numel() * 4 > max_bytes:
        return None
    return to_tensors(data, batch_size=batch_size, num_workers=num_workers, progress=progress)


def _batches(data: Data, batch_size: int, num_workers: int = 0,
             pin_memory: bool = False) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Batches ``(images, labels)`` in dataset order (tensor slicing or a DataLoader)."""
    pair = _as_pair(data)
    if pair is not None:
        images, labels = pair
        for i in range(0, len(images), batch_size):
            yield images[i:i + batch_size], labels[i:i + batch_size]
        return
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=pin_memory, generator=torch_generator(0))
    for x, y in loader:
        yield x, torch.as_tensor(y, dtype=torch.int64)


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    import contextlib

    return contextlib.nullcontext()


def _infer(model: nn.Module, data: Data, fn: Callable[[nn.Module, torch.Tensor], torch.Tensor], *,
           batch_size: int, device, amp: bool, num_workers: int, progress: Optional[bool],
           desc: str) -> torch.Tensor:
    dev = resolve_device(device)
    was_training = model.training
    model.to(dev).eval()
    outs: List[torch.Tensor] = []
    n = len(data[0]) if _as_pair(data) is not None else len(data)
    total = math.ceil(n / batch_size)
    try:
        with torch.inference_mode(), _autocast(dev, amp):
            for x, _ in _progress(_batches(data, batch_size, num_workers, dev.type == "cuda"),
                                  desc=desc, total=total, enable=progress):
                outs.append(fn(model, x.to(dev, non_blocking=True)).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


def predict_logits(model: nn.Module, data: Data, *, batch_size: int = 256, device=None, amp: bool = False,
                   num_workers: int = 0, progress: Optional[bool] = None) -> torch.Tensor:
    """``(N, num_classes)`` float32 logits of ``model`` (eval mode) on the CPU."""
    return _infer(model, data, lambda m, x: m(x), batch_size=batch_size, device=device, amp=amp,
                  num_workers=num_workers, progress=progress, desc="predicting")


def predict(model: nn.Module, data: Data, *, batch_size: int = 256, device=None, amp: bool = False,
            num_workers: int = 0, progress: Optional[bool] = None) -> torch.Tensor:
    """``(N,)`` int64 predicted labels (argmax of the logits)."""
    return predict_logits(model, data, batch_size=batch_size, device=device, amp=amp,
                          num_workers=num_workers, progress=progress).argmax(1)


def extract_features(model: nn.Module, data: Data, *, batch_size: int = 256, device=None, amp: bool = False,
                     num_workers: int = 0, progress: Optional[bool] = None) -> torch.Tensor:
    """``(N, model.feature_dim)`` float32 features (the layer before the softmax, §3.3)."""
    return _infer(model, data, lambda m, x: m.features(x), batch_size=batch_size, device=device, amp=amp,
                  num_workers=num_workers, progress=progress, desc="features")


# --------------------------------------------------------------------------------------
# metrics


def _labels_pair(y_true: ArrayLike, y_pred: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true.cpu() if isinstance(y_true, torch.Tensor) else y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred.cpu() if isinstance(y_pred, torch.Tensor) else y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    keep = t >= 0  # -1: unknown label, not scored
    return t[keep], p[keep]


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """The paper's "mean classification accuracy": percent of test images classified right.
    ``nan`` when no labeled sample is given."""
    t, p = _labels_pair(y_true, y_pred)
    return float(100.0 * np.mean(t == p)) if len(t) else float("nan")


def per_class_accuracy(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int = 7) -> np.ndarray:
    """``(num_classes,)`` recall of each class in percent; ``nan`` for classes absent from
    ``y_true`` (e.g. neutral in CK+48)."""
    t, p = _labels_pair(y_true, y_pred)
    out = np.full(num_classes, np.nan)
    for k in range(num_classes):
        mask = t == k
        if mask.any():
            out[k] = 100.0 * np.mean(p[mask] == k)
    return out


def mean_class_accuracy(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int = 7) -> float:
    """Mean of the per-class recalls (percent) over the classes present in ``y_true``."""
    acc = per_class_accuracy(y_true, y_pred, num_classes)
    return float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan")


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int = 7,
                     normalize: Optional[str] = None) -> np.ndarray:
    """``(num_classes, num_classes)`` counts, rows = true class, columns = predicted class.
    ``normalize="true"`` divides each row by its total (rows of absent classes stay 0)."""
    t, p = _labels_pair(y_true, y_pred)
    if len(t) and (t.max() >= num_classes or p.max() >= num_classes or p.min() < 0):
        raise ValueError(f"labels must lie in 0..{num_classes - 1} (or -1 for unknown true labels)")
    cm = np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    if normalize is None:
        return cm
    if normalize != "true":
        raise ValueError(f"normalize must be None or 'true', got {normalize!r}")
    rows = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)


def scores(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int = 7) -> Dict[str, float]:
    """``{"n", "accuracy", "mean_class_accuracy"}`` of one prediction."""
    t, _ = _labels_pair(y_true, y_pred)
    return {"n": int(len(t)), "accuracy": accuracy(y_true, y_pred),
            "mean_class_accuracy": mean_class_accuracy(y_true, y_pred, num_classes)}


# --------------------------------------------------------------------------------------
# datasets, targets, folds


def evaluate(model: nn.Module, data: Data, *, num_classes: Optional[int] = None, batch_size: int = 256,
             device=None, amp: bool = False, num_workers: int = 0,
             progress: Optional[bool] = None) -> Dict[str, Any]:
    """Scores of ``model`` on one dataset: ``{"n", "accuracy", "mean_class_accuracy",
    "confusion" (C x C counts), "y_true", "y_pred"}`` (labels as numpy arrays)."""
    num_classes = num_classes or getattr(model, "num_classes", 7)
    y_pred = predict(model, data, batch_size=batch_size, device=device, amp=amp,
                     num_workers=num_workers, progress=progress).numpy()
    y_true = dataset_labels(data).numpy()
    out: Dict[str, Any] = scores(y_true, y_pred, num_classes)
    out["confusion"] = confusion_matrix(y_true, y_pred, num_classes)
    out["y_true"], out["y_pred"] = y_true, y_pred
    return out


def evaluate_targets(model: nn.Module, targets: Mapping[str, Data], **kwargs: Any) -> pd.DataFrame:
    """Evaluate ``model`` on each named target dataset (inner- and cross-dataset tests).

    Returns a tidy table, one row per target: ``target, n, accuracy, mean_class_accuracy``.
    ``kwargs`` go to :func:`evaluate`."""
    rows = []
    for name, data in targets.items():
        res = evaluate(model, data, **kwargs)
        rows.append({"target": name, "n": res["n"], "accuracy": res["accuracy"],
                     "mean_class_accuracy": res["mean_class_accuracy"]})
    return pd.DataFrame(rows, columns=["target", "n", "accuracy", "mean_class_accuracy"])


def cross_validate(folds: Sequence[Tuple[Sequence[int], Sequence[int]]],
                   train_and_predict: Callable[[np.ndarray, np.ndarray], Tuple[ArrayLike, ArrayLike]], *,
                   num_classes: int = 7, progress: Optional[bool] = None) -> Dict[str, Any]:
    """k-fold (CK+: 10 folds) or leave-one-subject-out (JAFFE: one fold per subject).

    ``folds``: ``[(train_idx, test_idx), ...]`` index lists (from the data module's protocol
    helpers). ``train_and_predict(train_idx, test_idx)`` trains a learner on ``train_idx`` and
    returns ``(y_true, y_pred)`` for ``test_idx``.

    Returns ``{"folds": DataFrame(fold, n_train, n_test, accuracy, mean_class_accuracy),
    "mean", "std"`` (of the per-fold accuracies; std with ddof=1), ``"pooled"`` (accuracy of
    all test predictions together - the fairer summary when folds differ in size, as in LOSO),
    ``"pooled_mean_class_accuracy"``, ``"confusion"`` (pooled counts)}.
    """
    if not folds:
        raise ValueError("folds is empty; expected a list of (train_idx, test_idx) pairs")
    rows, all_t, all_p = [], [], []
    for k, (tr, te) in enumerate(_progress(folds, desc="folds", enable=progress)):
        tr, te = np.asarray(tr, dtype=np.int64), np.asarray(te, dtype=np.int64)
        if np.intersect1d(tr, te).size:
            raise ValueError(f"fold {k}: train and test indices overlap")
        y_true, y_pred = train_and_predict(tr, te)
        t, p = _labels_pair(y_true, y_pred)
        all_t.append(t)
        all_p.append(p)
        rows.append({"fold": k, "n_train": len(tr), "n_test": len(te), "accuracy": accuracy(t, p),
                     "mean_class_accuracy": mean_class_accuracy(t, p, num_classes)})
    table = pd.DataFrame(rows)
    t, p = np.concatenate(all_t), np.concatenate(all_p)
    st = seed_statistics(table["accuracy"])
    return {"folds": table, "mean": st.mean, "std": st.std, "pooled": accuracy(t, p),
            "pooled_mean_class_accuracy": mean_class_accuracy(t, p, num_classes),
            "confusion": confusion_matrix(t, p, num_classes)}


# --------------------------------------------------------------------------------------
# seeds: the one home of mean ± std, standard errors and the 2 x s.e. rule

#: A difference counts as real when it exceeds this many standard errors (about a 95 %
#: two-sided bound); tables, the claims page and the chapters all use it.
NOISE_FACTOR = 2.0


@dataclass(frozen=True)
class SeedStatistics:
    """Repeated measurements of one setting (per-seed or per-fold values): ``mean``, sample
    standard deviation ``std`` (ddof=1; ``nan`` for one value), count ``n`` and standard error of
    the mean ``se`` (``nan`` for fewer than two values)."""

    mean: float
    std: float
    n: int

    @property
    def se(self) -> float:
        return self.std / math.sqrt(self.n) if self.n > 1 else float("nan")

    def text(self, digits: int = 1, with_n: bool = False) -> str:
        """``"85.2 ± 0.4"`` (with ``with_n``: ``"85.20 ± 0.40 (n=3)"`` for several values)."""
        out = format_mean_std(self.mean, self.std, digits)
        return f"{out} (n={self.n})" if with_n and self.n > 1 else out


def seed_statistics(values: Iterable[float]) -> SeedStatistics:
    """:class:`SeedStatistics` of the finite ``values`` (all ``nan`` when there are none)."""
    v = np.asarray([float(x) for x in values], dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return SeedStatistics(float("nan"), float("nan"), 0)
    return SeedStatistics(float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan"), int(len(v)))


def format_mean_std(mean: float, std: float = float("nan"), digits: int = 1) -> str:
    """``"85.2 ± 0.4"``; just ``"85.2"`` when std is ``nan``; ``"–"`` when mean is ``nan``."""
    if not math.isfinite(mean):
        return "–"
    if not math.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def difference(left: Iterable[float], right: Iterable[float]) -> Tuple[float, float]:
    """``(mean(left) - mean(right), its standard error)`` for two independent sets of per-seed
    values; a side with one value adds no variance (its s.e. is unknown), so two single values
    give a standard error of 0."""
    a, b = seed_statistics(left), seed_statistics(right)
    var = sum(s.std ** 2 / s.n for s in (a, b) if s.n > 1)
    return a.mean - b.mean, math.sqrt(var)


def paired_difference(left: Mapping[Any, float], right: Mapping[Any, float]) -> SeedStatistics:
    """Per-seed differences ``left[s] - right[s]`` over the seeds both have (a condition against its
    own baseline, seed by seed), as :class:`SeedStatistics`: ``mean`` is the paired gain, ``se`` its
    standard error (``std / sqrt(n)``), ``std`` the spread of the pairs. Pairing removes what the two
    share within a seed (the labeled split, the primitive learner...), which an unpaired
    :func:`difference` counts as noise."""
    shared = [s for s in left if s in right]
    return seed_statistics(float(left[s]) - float(right[s]) for s in shared)


def beyond_noise(diff: float, se: float, noise_factor: float = NOISE_FACTOR) -> bool:
    """Whether a difference exceeds ``noise_factor`` standard errors (any nonzero difference when
    the standard error is 0 or unknown)."""
    if not math.isfinite(se) or se <= 0:
        return diff != 0
    return abs(diff) > noise_factor * se


def summarize_seeds(table: pd.DataFrame, by: Union[str, Sequence[str]], value: str = "accuracy",
                    digits: int = 1) -> pd.DataFrame:
    """Aggregate a tidy table with one row per (setting, seed) into one row per setting.

    ``by``: the columns that name a setting (e.g. ``["backbone", "mode", "target"]``).
    Returns ``by`` columns + ``mean, std, n, se, text`` (``text`` = ``"85.2 ± 0.4"``), settings in
    the order they first appear.
    """
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*by, value] if c not in table.columns]
    if missing:
        raise ValueError(f"summarize_seeds: columns {missing} not in the table (columns: {list(table.columns)})")
    rows = []
    for key, grp in table.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        st = seed_statistics(grp[value])
        rows.append({**dict(zip(by, key)), "mean": st.mean, "std": st.std, "n": st.n, "se": st.se,
                     "text": st.text(digits)})
    return pd.DataFrame(rows, columns=[*by, "mean", "std", "n", "se", "text"])
