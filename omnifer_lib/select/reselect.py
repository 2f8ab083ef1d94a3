"""Selections made from a manifest: the selected auxiliary samples (VAS) with pseudo-labels.

:func:`reselect` applies a rule — the paper's margin rule or a baseline / class-balanced
variant — to the stored similarities, without touching the images or the model. It holds
a few scalars per pool sample (about 20 bytes), never the features.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ..files import atomic_write_bytes
from .manifest import Manifest, ScoreTable, Source, open_manifest, write_json
from .rules import (RULES, balanced_quantile, balanced_topk, cap_per_class, confidence_rule,
                    margin_rule, _check_delta, _ranked)

_CENTROID_COLUMNS = ("pool_index", "nearest", "margin")
_SOFTMAX_COLUMNS = ("pool_index", "softmax_label", "softmax_confidence", "softmax_margin")


@dataclass(frozen=True)
class PoolSelection:
    """The selected auxiliary samples of a pool (only the accepted ones), in pool order.

    Attributes:
        pool_index: (M,) int64 indices into the pool dataset, increasing.
        pseudo_labels: (M,) int64 assigned class of each.
        similarity: (M,) float32 cosine similarity to the centroid of its pseudo-label.
        score: (M,) float64 what the rule ranked by: the margin (centroid rules) or the
            softmax confidence (softmax rule).
        n_pool: size of the pool the selection was made from.
        num_classes, label_names: the classes.
        rule: one of ``margin``, ``softmax``, ``balanced_topk``, ``balanced_quantile``.
        params: the rule's parameters as used (a matched ``per_class_k`` resolved to a number).
        source_tag: identity tag of the manifest (None for in-memory tables).
    """

    pool_index: np.ndarray
    pseudo_labels: np.ndarray
    similarity: np.ndarray
    score: np.ndarray
    n_pool: int
    num_classes: int
    label_names: List[str]
    rule: str
    params: Dict[str, Any] = field(default_factory=dict)
    source_tag: Optional[str] = None

    def __len__(self) -> int:
        return int(self.pool_index.shape[0])

    def counts(self) -> np.ndarray:
        """(K,) int64 selected samples per class."""
        return np.bincount(self.pseudo_labels, minlength=self.num_classes).astype(np.int64)

    def ranked(self, cls: int, n: Optional[int] = None) -> np.ndarray:
        """Pool indices of the samples selected for class ``cls``, most similar to its centroid
        first (ties by pool order) — the order of the paper's Fig. 3. At most ``n``."""
        members = np.flatnonzero(self.pseudo_labels == cls)
        order = _ranked(members, self.similarity.astype(np.float64))
        return self.pool_index[order[:n] if n is not None else order]

    @property
    def key(self) -> str:
        """Stable 12-hex-digit hash of (manifest tag, rule, params): names the selection file."""
        payload = json.dumps({"tag": self.source_tag, "rule": self.rule, "params": self.params},
                             sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def to_frame(self):
        """pandas DataFrame: pool_index, pseudo_label, label_name, similarity, score."""
        import pandas as pd

        return pd.DataFrame({"pool_index": self.pool_index, "pseudo_label": self.pseudo_labels,
                             "label_name": [self.label_names[k] for k in self.pseudo_labels],
                             "similarity": self.similarity, "score": self.score})

    def __repr__(self) -> str:
        counts = ", ".join(f"{n}={c}" for n, c in zip(self.label_names, self.counts()))
        return (f"PoolSelection(rule={self.rule!r}, params={self.params}, selected={len(self)}"
                f"/{self.n_pool}, counts: {counts})")


#: The parameter that sets each rule besides the paper's; left ``None`` it is matched to the count
#: of the margin rule at δ (:func:`decide`).
_OWN_PARAMETER = {"margin": None, "softmax": "softmax_threshold", "balanced_topk": "per_class_k",
                  "balanced_quantile": "class_quantile"}


def rule_parameters(rule: str, **params: Any) -> Dict[str, Any]:
    """Of ``params`` (``delta``, ``softmax_threshold``, ``per_class_k``, ``class_quantile``,
    ``per_class_cap``), those :func:`decide` reads for ``rule``: what a selection made by the rule
    depends on. The margin rule reads δ and the cap only (a softmax threshold changes nothing of
    it); another rule reads its own parameter, δ only when that is ``None`` (matched count), and
    the cap."""
    own = _OWN_PARAMETER[_resolve_rule(rule)]
    out: Dict[str, Any] = {}
    if own is not None:
        out[own] = params.get(own)
    if own is None or params.get(own) is None:
        out["delta"] = params.get("delta")
    out["per_class_cap"] = params.get("per_class_cap")
    return out


def _resolve_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"unknown selection rule {rule!r}; expected one of {', '.join(RULES)}")
    return rule


def _margin_count(cols: Dict[str, np.ndarray], delta: Optional[float], rule: str, what: str) -> int:
    if delta is None:
        raise ValueError(f"rule {rule!r} needs {what} or, to match the paper's rule's count, delta")
    return int((margin_rule(cols["nearest"], cols["margin"], delta) >= 0).sum())


def decide(cols: Dict[str, np.ndarray], rule: str, num_classes: int, *, delta: Optional[float] = None,
           softmax_threshold: Optional[float] = None, per_class_k: Optional[int] = None,
           class_quantile: Optional[float] = None, per_class_cap: Optional[int] = None
           ) -> Tuple[np.ndarray, np.ndarray, Dict[str, Any]]:
    """Apply ``rule`` to per-sample columns (as in a manifest) of N samples.

    Returns ``(pseudo_labels (N,) int64, score (N,) float64, params)`` where ``params`` records
    the parameters as used. A parameter left ``None`` for a non-paper rule is *matched*: the
    rule is set to select as many samples as the margin rule at ``delta`` (softmax: the top
    that many by confidence; ``balanced_topk``: ``k = ceil(count / K)``;
    ``balanced_quantile``: the share of candidates the margin rule keeps overall). Then
    ``per_class_cap`` (if any) keeps the best-scoring samples of each class.
    """
    rule = _resolve_rule(rule)
    params: Dict[str, Any] = {}
    if delta is not None:
        params["delta"] = _check_delta(delta)
    if rule == "softmax":
        score = cols["softmax_confidence"].astype(np.float64)
        if softmax_threshold is not None:
            labels = confidence_rule(cols["softmax_label"], score, cols["softmax_margin"], softmax_threshold)
            params["softmax_threshold"] = float(softmax_threshold)
        else:
            target = _margin_count(cols, delta, rule, "softmax_threshold")
            cand = np.flatnonzero(cols["softmax_label"] >= 0)
            chosen = _ranked(cand, score)[:target]
            labels = np.full(score.shape[0], -1, dtype=np.int64)
            labels[chosen] = cols["softmax_label"][chosen]
            params["matched_count"] = target
            params["softmax_threshold"] = float(score[chosen].min()) if chosen.size else math.inf
    else:
        score = cols["margin"].astype(np.float64)
        if rule == "margin":
            if delta is None:
                raise ValueError("rule 'margin' needs delta (the margin δ of Eq. 5)")
            labels = margin_rule(cols["nearest"], score, delta)
        elif rule == "balanced_topk":
            if per_class_k is None:
                target = _margin_count(cols, delta, rule, "per_class_k")
                per_class_k = math.ceil(target / num_classes)
                params["matched_count"] = target
            labels = balanced_topk(cols["nearest"], score, int(per_class_k), num_classes)
            params["per_class_k"] = int(per_class_k)
        else:  # balanced_quantile
            if class_quantile is None:
                target = _margin_count(cols, delta, rule, "class_quantile")
                valid = int(((cols["nearest"] >= 0) & (score > 0)).sum())
                class_quantile = 1.0 - target / valid if valid else 1.0
                params["matched_count"] = target
            labels = balanced_quantile(cols["nearest"], score, float(class_quantile), num_classes)
            params["class_quantile"] = float(class_quantile)
    if per_class_cap is not None:
        labels = cap_per_class(labels, score, per_class_cap, num_classes)
        params["per_class_cap"] = int(per_class_cap)
    return labels, score, params


def decision_columns(source: Source, rule: str) -> Dict[str, np.ndarray]:
    """The per-sample columns ``rule`` needs, loaded over the whole pool (a few scalars each)."""
    table = open_manifest(source)
    names = list(_CENTROID_COLUMNS)
    if _resolve_rule(rule) == "softmax":
        names += [c for c in _SOFTMAX_COLUMNS if c not in names]
    return table.columns(names)


def _similarity_at(table: Union[Manifest, ScoreTable], pool_index: np.ndarray,
                   labels: np.ndarray) -> np.ndarray:
    """Cosine similarity of the samples ``pool_index`` (sorted) to the centroid of their
    ``labels``, gathered chunk by chunk."""
    out = np.zeros(pool_index.shape[0], dtype=np.float32)
    found = np.zeros(pool_index.shape[0], dtype=bool)
    if pool_index.size == 0:
        return out
    for chunk in table.iter_chunks(["pool_index", "cosine"]):
        idx = chunk["pool_index"]
        where = np.minimum(np.searchsorted(pool_index, idx), pool_index.size - 1)
        hit = pool_index[where] == idx
        rows, dest = np.flatnonzero(hit), where[hit]
        out[dest] = chunk["cosine"][rows, labels[dest]]
        found[dest] = True
    if not found.all():
        raise RuntimeError("selected samples were not all found in the manifest; it changed while reading")
    return out


def reselect(source: Source, *, rule: str = "margin", delta: Optional[float] = None,
             softmax_threshold: Optional[float] = None, per_class_k: Optional[int] = None,
             class_quantile: Optional[float] = None, per_class_cap: Optional[int] = None,
             columns: Optional[Dict[str, np.ndarray]] = None) -> PoolSelection:
    """Select auxiliary samples from a manifest (folder, :class:`Manifest` or
    :class:`ScoreTable`) with ``rule`` — no images are read and no feature is recomputed.

    Rules: ``margin`` (paper, Eq. 5, needs ``delta``), ``softmax`` (Eq. 2 with
    ``softmax_threshold``), ``balanced_topk`` (``per_class_k``), ``balanced_quantile``
    (``class_quantile``); a ``None`` parameter of the last three matches the count of the
    margin rule at ``delta`` (see :func:`decide`). ``per_class_cap`` limits every class.
    ``columns`` may pass preloaded :func:`decision_columns` (for sweeps).
    Memory: about 20 bytes per pool sample plus the selection.
    """
    table = open_manifest(source)
    cols = columns if columns is not None else decision_columns(table, rule)
    labels, score, params = decide(cols, rule, table.num_classes, delta=delta,
                                   softmax_threshold=softmax_threshold, per_class_k=per_class_k,
                                   class_quantile=class_quantile, per_class_cap=per_class_cap)
    chosen = np.flatnonzero(labels >= 0)
    order = np.argsort(cols["pool_index"][chosen], kind="stable")
    chosen = chosen[order]
    pool_index = cols["pool_index"][chosen].astype(np.int64)
    pseudo = labels[chosen]
    return PoolSelection(
        pool_index=pool_index, pseudo_labels=pseudo,
        similarity=_similarity_at(table, pool_index, pseudo), score=score[chosen],
        n_pool=table.n_pool, num_classes=table.num_classes, label_names=list(table.label_names),
        rule=rule, params=params, source_tag=getattr(table, "tag", None))


def save_selection(selection: PoolSelection, path: Union[str, os.PathLike]) -> Path:
    """Write a selection as ``<path>`` (.npz arrays) and ``<path>.json`` (rule, params, counts),
    both atomically. Returns the .npz path."""
    path = Path(path)
    buf = io.BytesIO()
    np.savez(buf, pool_index=selection.pool_index, pseudo_labels=selection.pseudo_labels,
             similarity=selection.similarity, score=selection.score)
    atomic_write_bytes(path, buf.getvalue())
    write_json(path.with_suffix(".json"), {
        "rule": selection.rule, "params": selection.params, "n_pool": selection.n_pool,
        "num_classes": selection.num_classes, "label_names": selection.label_names,
        "source_tag": selection.source_tag, "selected": len(selection),
        "counts": dict(zip(selection.label_names, selection.counts().tolist())),
    })
    return path


def load_selection(path: Union[str, os.PathLike]) -> PoolSelection:
    """Read a selection written by :func:`save_selection`."""
    path = Path(path)
    if not path.is_file() or not path.with_suffix(".json").is_file():
        raise FileNotFoundError(f"no selection at {path} (expected {path.name} and "
                                f"{path.with_suffix('.json').name} written by save_selection)")
    meta = json.loads(path.with_suffix(".json").read_text())
    with np.load(path) as data:
        arrays = {k: data[k] for k in ("pool_index", "pseudo_labels", "similarity", "score")}
    return PoolSelection(n_pool=meta["n_pool"], num_classes=meta["num_classes"],
                         label_names=meta["label_names"], rule=meta["rule"], params=meta["params"],
                         source_tag=meta["source_tag"], **arrays)


def selection_path(manifest_dir: Union[str, os.PathLike], selection: PoolSelection) -> Path:
    """Where :func:`select_auxiliary` stores a selection: ``selections/<rule>-<key>.npz``."""
    return Path(manifest_dir) / "selections" / f"{selection.rule}-{selection.key}.npz"
