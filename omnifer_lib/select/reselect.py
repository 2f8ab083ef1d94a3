"""Selections made from a manifest: the selected auxiliary samples (VAS) with pseudo-labels.

:func:`reselect` applies a rule — the paper's margin rule or a baseline / class-balanced
variant — to the stored similarities, without touching the images or the model. It holds
a few scalars per pool sample (about 20 bytes; plus the K probabilities for the rules that
need them), never the features.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..files import atomic_write_bytes
from .manifest import Manifest, ScoreTable, Source, open_manifest, write_json
from .rules import RULES, _check_delta, _ranked, cap_per_class, rule_record  # noqa: F401  (RULES re-exported)

#: The manifest columns every rule reads: they give every rule's matched count at δ (a rule's
#: record names the columns it reads besides).
_CENTROID_COLUMNS = ("pool_index", "nearest", "margin")


@dataclass(frozen=True)
class PoolSelection:
    """The selected auxiliary samples of a pool (only the accepted ones), in pool order.

    Attributes:
        pool_index: (M,) int64 indices into the pool dataset, increasing.
        pseudo_labels: (M,) int64 assigned class of each.
        similarity: (M,) float32 cosine similarity to the centroid of its pseudo-label.
        score: (M,) float64 what the rule ranked by: the margin (centroid rules), the
            softmax confidence (``softmax``, ``adaptive_threshold``) or the aligned confidence
            (``distribution_alignment``).
        n_pool: size of the pool the selection was made from.
        num_classes, label_names: the classes.
        rule: one of :data:`~omnifer_lib.select.rules.RULES`.
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


def rule_parameters(rule: str, **params: Any) -> Dict[str, Any]:
    """Of ``params`` (``delta``, ``softmax_threshold``, ``per_class_k``, ``class_quantile``,
    ``curriculum_share``, ``per_class_cap``), those :func:`decide` reads for ``rule``: what a selection made by the rule
    depends on. The margin rule reads δ and the cap only (a softmax threshold changes nothing of
    it); another rule reads its own parameter, δ only when that is ``None`` (matched count), and
    the cap; ``adaptive_threshold`` reads the cap only (its thresholds come from the pool)."""
    record = rule_record(rule)
    own = record.parameter
    out: Dict[str, Any] = {}
    if own is not None:
        out[own] = params.get(own)
    if record.reads_delta or (own is not None and params.get(own) is None):
        out["delta"] = params.get("delta")
    out["per_class_cap"] = params.get("per_class_cap")
    return out


def decide(cols: Dict[str, np.ndarray], rule: str, num_classes: int, *, delta: Optional[float] = None,
           softmax_threshold: Optional[float] = None, per_class_k: Optional[int] = None,
           class_quantile: Optional[float] = None, per_class_cap: Optional[int] = None,
           anchor_counts: Optional[Sequence[int]] = None, curriculum_share: Optional[float] = None
           ) -> Tuple[np.ndarray, np.ndarray, Dict[str, Any]]:
    """Apply ``rule`` to per-sample columns (as in a manifest) of N samples.

    Returns ``(pseudo_labels (N,) int64, score (N,) float64, params)`` where ``params`` records
    the parameters as used. A parameter left ``None`` for a non-paper rule is *matched*: the
    rule is set to select as many samples as the margin rule at ``delta`` (softmax and
    distribution alignment: the top that many by confidence; ``balanced_topk``: ``k = ceil(count
    / K)``; ``balanced_quantile``: the share of candidates the margin rule keeps overall).
    ``curriculum``: the share of the whole pool with the most confident softmax that keeps its
    arg-max class (``curriculum_share``; matched: the margin rule's count over the pool size).
    ``adaptive_threshold`` has no parameter (its per-class thresholds, recorded as
    ``class_thresholds``, come from the pool), so its count is its own. ``distribution_alignment``
    needs ``anchor_counts`` (K,), the labelled anchor's samples per class (recorded). Then
    ``per_class_cap`` (if any) keeps the best-scoring samples of each class; a matched rule is then
    matched to the count the margin rule keeps *after* the cap, and set so that its capped selection
    reaches it: exactly that many for softmax, distribution alignment and curriculum (the most
    confident samples the cap admits; the shortest share), at least that many and the fewest the rule
    can give for ``balanced_topk`` and ``balanced_quantile`` (the smallest ``k``, the largest
    quantile), fewer where the rule's candidates fall short — so matched rules compare what they
    select, not how much. Without a cap the uncapped formulas above stand (``k = ceil(count / K)``
    can keep fewer when a class lacks candidates). Each rule's decision
    is its record's (:data:`~omnifer_lib.select.rules.SELECTION_RULES`).
    """
    record = rule_record(rule)
    params: Dict[str, Any] = {}
    if delta is not None:
        params["delta"] = _check_delta(delta)
    labels, score = record.decide(cols, num_classes, params, delta=delta, softmax_threshold=softmax_threshold,
                                  per_class_k=per_class_k, class_quantile=class_quantile,
                                  curriculum_share=curriculum_share, anchor_counts=anchor_counts,
                                  per_class_cap=per_class_cap)
    if per_class_cap is not None:
        labels = cap_per_class(labels, score, per_class_cap, num_classes)
        params["per_class_cap"] = int(per_class_cap)
    return labels, score, params


def decision_columns(source: Source, rule: Union[str, Sequence[str]]) -> Dict[str, np.ndarray]:
    """The per-sample columns ``rule`` (a rule or several) needs, loaded over the whole pool (a
    few scalars each; the K probabilities too for ``adaptive_threshold`` and
    ``distribution_alignment``)."""
    table = open_manifest(source)
    names = list(_CENTROID_COLUMNS)
    for r in ([rule] if isinstance(rule, str) else rule):
        names += [c for c in rule_record(r).columns if c not in names]
    return table.columns(names)


def manifest_anchor_counts(source: Source) -> Optional[np.ndarray]:
    """The labelled anchor's samples per class (K,) int64 stored with a manifest, or ``None``
    for a manifest that holds none (written before they were stored, or from given centroids)."""
    counts = getattr(open_manifest(source), "anchor_counts", None)
    return None if counts is None else np.asarray(counts, dtype=np.int64)


def _rows_at(table: Union[Manifest, ScoreTable], pool_index: np.ndarray, column: str) -> np.ndarray:
    """Rows (M, K) float32 of the per-class ``column`` (``cosine`` or ``softmax``) for the samples
    ``pool_index`` (sorted), gathered chunk by chunk."""
    out = np.zeros((pool_index.shape[0], table.num_classes), dtype=np.float32)
    found = np.zeros(pool_index.shape[0], dtype=bool)
    if pool_index.size == 0:
        return out
    for chunk in table.iter_chunks(["pool_index", column]):
        idx = chunk["pool_index"]
        where = np.minimum(np.searchsorted(pool_index, idx), pool_index.size - 1)
        hit = pool_index[where] == idx
        rows, dest = np.flatnonzero(hit), where[hit]
        out[dest] = chunk[column][rows]
        found[dest] = True
    if not found.all():
        raise RuntimeError("selected samples were not all found in the manifest; it changed while reading")
    return out


def _similarity_at(table: Union[Manifest, ScoreTable], pool_index: np.ndarray,
                   labels: np.ndarray) -> np.ndarray:
    """Cosine similarity of the samples ``pool_index`` (sorted) to the centroid of their ``labels``."""
    return _rows_at(table, pool_index, "cosine")[np.arange(len(labels)), labels]


def soft_pseudo_labels(source: Source, selection: PoolSelection) -> np.ndarray:
    """The primitive learner's softmax probabilities (M, K) float32 of the selected samples, in
    the order of ``selection`` (rows sum to 1): soft pseudo-labels, the teacher's whole belief
    rather than its decision (as in Noisy Student). Their argmax can differ from a pseudo-label
    that a centroid rule (``margin``) gave. ``source``: the manifest ``selection`` was made from."""
    table = open_manifest(source)
    if selection.n_pool != table.n_pool:
        raise ValueError(f"the selection was made from a pool of {selection.n_pool} samples, the manifest "
                         f"holds {table.n_pool}; pass the manifest the selection was made from")
    index = np.asarray(selection.pool_index, dtype=np.int64)
    if index.size and np.any(np.diff(index) < 0):
        raise ValueError("selection.pool_index must be sorted (as reselect returns it)")
    return _rows_at(table, index, "softmax")


def reselect(source: Source, *, rule: str = "margin", delta: Optional[float] = None,
             softmax_threshold: Optional[float] = None, per_class_k: Optional[int] = None,
             class_quantile: Optional[float] = None, per_class_cap: Optional[int] = None,
             columns: Optional[Dict[str, np.ndarray]] = None,
             anchor_counts: Optional[Sequence[int]] = None,
             curriculum_share: Optional[float] = None) -> PoolSelection:
    """Select auxiliary samples from a manifest (folder, :class:`Manifest` or
    :class:`ScoreTable`) with ``rule`` — no images are read and no feature is recomputed.

    Rules: ``margin`` (paper, Eq. 5, needs ``delta``), ``softmax`` (Eq. 2 with
    ``softmax_threshold``), ``balanced_topk`` (``per_class_k``), ``balanced_quantile``
    (``class_quantile``), ``adaptive_threshold`` (FreeMatch's per-class thresholds, no
    parameter), ``distribution_alignment`` (ReMixMatch's alignment to the anchor's class prior,
    then ``softmax_threshold``), ``curriculum`` (curriculum labelling: the ``curriculum_share`` of
    the pool with the most confident softmax); a ``None`` parameter matches the count of the margin rule at
    ``delta`` (see :func:`decide`). ``per_class_cap`` limits every class.
    ``columns`` may pass preloaded :func:`decision_columns` (for sweeps); ``anchor_counts``
    (K,) overrides the anchor's samples per class stored with the manifest (needed by
    ``distribution_alignment`` on a manifest that stores none).
    Memory: about 20 bytes per pool sample (plus 4 K for the two rules that read the
    probabilities) plus the selection.
    """
    table = open_manifest(source)
    cols = columns if columns is not None else decision_columns(table, rule)
    if anchor_counts is None:
        anchor_counts = manifest_anchor_counts(table)
    labels, score, params = decide(cols, rule, table.num_classes, delta=delta,
                                   softmax_threshold=softmax_threshold, per_class_k=per_class_k,
                                   class_quantile=class_quantile, per_class_cap=per_class_cap,
                                   anchor_counts=anchor_counts, curriculum_share=curriculum_share)
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
