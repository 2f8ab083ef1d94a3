"""Selection rules on arrays: class centroids (Eq. 3), cosine similarity (Eq. 4), the margin
rule (Eq. 5), softmax confidence (Eq. 2) and class-balanced variants.

Everything here works on in-memory numpy arrays of one batch, chunk or pool; the streaming
driver (:mod:`omnifer_lib.select.stream`) applies the same functions chunk by chunk.

Numerical contract (why the code looks the way it does): every per-sample number is a
function of that sample's row alone, computed with an elementwise product and a reduction
along the feature axis, never with a matrix product whose blocking depends on how many rows
are processed together. So a pool scored in chunks of any size gives bit-identical
similarities to the same pool scored at once, and a re-selection from stored similarities
equals a fresh selection exactly.

Decisions (documented in the book's note on Eq. 5):

* **Eq. 5 in similarity terms.** Accept class k̂ iff ``cos(k̂) ≥ cos(k) + δ`` for every
  ``k ≠ k̂``, i.e. ``margin = best − second best ≥ δ``.
* **δ must be ≥ 0.** A negative δ would make several classes satisfy Eq. 5 at once.
* **Ties are rejected.** When the two highest similarities are equal (margin exactly 0) the
  pseudo-label is ambiguous, so the sample is rejected for every δ, δ = 0 included. δ = 0 thus
  accepts every sample with a unique nearest centroid (plain nearest-centroid labelling).
* **Zero-norm features** (e.g. an all-zero ReLU output) have no direction: their similarity
  to every centroid is defined as 0, which is a tie, so they are rejected. Non-finite
  features or logits are an error (a broken model should not silently lose samples).
* **Classes without anchor samples** make :func:`class_centroids` raise: a centroid that
  does not exist cannot take part in Eq. 5.

Two offline pseudo-labelling rules of the semi-supervised literature work on the stored softmax
probabilities beside them (pool-level statistics, so a sample's decision depends on the whole
pool, but not on how the pool was chunked or sharded):

* **adaptive_threshold** — the self-adaptive per-class thresholds of FreeMatch (in the spirit
  of Ada-CM's per-class confidence margins): :func:`adaptive_class_thresholds`,
  :func:`class_threshold_rule`.
* **distribution_alignment** — ReMixMatch's distribution alignment, offline: the pool's
  probabilities are reweighted towards the labelled anchor's class prior
  (:func:`distribution_alignment`), then the softmax-confidence rule applies.
* **curriculum** — curriculum labelling's percentile rule: the most confident share of the whole
  pool, whatever the confidence is (:func:`top_share`); the pipeline grows the share with each round
  of select-then-retrain.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

# Rows per block in the similarity computation: bounds the (rows, K, D) float64 temporary
# to about 32 MB whatever the feature dimension.
_BLOCK_ELEMENTS = 4_000_000


def _as_2d(name: str, array: Any, dtype=np.float64) -> np.ndarray:
    if hasattr(array, "detach"):  # torch tensor
        array = array.detach().cpu().numpy()
    out = np.asarray(array, dtype=dtype)
    if out.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N, D), got shape {out.shape}")
    return out


def _check_finite(name: str, array: np.ndarray) -> None:
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(f"{name} has non-finite values (NaN or inf) in {rows.size} rows, "
                         f"first rows {rows[:5].tolist()}; the model's output is broken there")


class CentroidAccumulator:
    """Running per-class sums of features, so that centroids (Eq. 3) can be computed from a
    stream of batches in memory ``O(K x D)``.

    Sums are float64 and added row by row in order (``np.add.at``), so one ``update`` with all
    rows gives bit-identically the same centroids as many updates with consecutive batches.
    """

    def __init__(self, num_classes: int, feature_dim: Optional[int] = None):
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 for a selection, got {num_classes}")
        self.num_classes = int(num_classes)
        self.sums: Optional[np.ndarray] = None
        self.counts = np.zeros(self.num_classes, dtype=np.int64)
        if feature_dim is not None:
            self.sums = np.zeros((self.num_classes, int(feature_dim)), dtype=np.float64)

    def update(self, features: Any, labels: Any) -> None:
        """Add a batch: ``features`` (B, D), ``labels`` (B,) ints; label -1 (unknown) is skipped."""
        f = _as_2d("features", features)
        y = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels)
        y = y.astype(np.int64).reshape(-1)
        if y.shape[0] != f.shape[0]:
            raise ValueError(f"features have {f.shape[0]} rows but labels have {y.shape[0]}")
        if ((y < -1) | (y >= self.num_classes)).any():
            bad = np.unique(y[(y < -1) | (y >= self.num_classes)])
            raise ValueError(f"labels must be in [0, {self.num_classes}) or -1 (unknown), got {bad.tolist()}")
        _check_finite("anchor features", f)
        if self.sums is None:
            self.sums = np.zeros((self.num_classes, f.shape[1]), dtype=np.float64)
        if f.shape[1] != self.sums.shape[1]:
            raise ValueError(f"feature dimension changed from {self.sums.shape[1]} to {f.shape[1]}")
        known = y >= 0
        np.add.at(self.sums, y[known], f[known])
        self.counts += np.bincount(y[known], minlength=self.num_classes)

    def centroids(self, label_names: Optional[Sequence[str]] = None) -> np.ndarray:
        """The ``(K, D)`` float64 class centroids. Raises ``ValueError`` naming the classes
        that had no labelled sample (their centroid is undefined)."""
        if self.sums is None:
            raise ValueError("no anchor features were added; the anchor set is empty")
        missing = np.flatnonzero(self.counts == 0)
        if missing.size:
            names = [label_names[k] if label_names is not None else str(k) for k in missing]
            raise ValueError(f"classes {missing.tolist()} ({', '.join(names)}) have no labelled anchor "
                             "sample, so their centroid (Eq. 3) is undefined; the anchor must contain "
                             "every class")
        return self.sums / self.counts[:, None]


def class_centroids(features: Any, labels: Any, num_classes: int,
                    label_names: Optional[Sequence[str]] = None) -> np.ndarray:
    """Eq. 3: the mean feature of each class.

    ``features`` (N, D) float, ``labels`` (N,) int in ``[0, num_classes)`` (``-1`` = unknown,
    ignored). Returns ``(num_classes, D)`` float64. A class with no sample raises
    ``ValueError`` (see module docstring).
    """
    acc = CentroidAccumulator(num_classes)
    acc.update(features, labels)
    return acc.centroids(label_names)


def _unit_centroids(centroids: Any) -> np.ndarray:
    c = _as_2d("centroids", centroids)
    if c.shape[0] < 2:
        raise ValueError(f"need at least 2 centroids for a margin, got {c.shape[0]}")
    if not np.isfinite(c).all():
        raise ValueError("centroids contain NaN or inf; compute them with class_centroids from an "
                         "anchor that has every class")
    norm = np.sqrt((c * c).sum(axis=1))
    if (norm == 0).any():
        raise ValueError(f"centroids of classes {np.flatnonzero(norm == 0).tolist()} are zero vectors; "
                         "cosine similarity to them is undefined (is the primitive learner trained?)")
    return c / norm[:, None]


def cosine_similarity(features: Any, centroids: Any) -> np.ndarray:
    """Eq. 4: cosine similarity of each feature to each centroid.

    ``features`` (N, D), ``centroids`` (K, D) -> ``(N, K)`` float32 in ``[-1, 1]``. Computed in
    float64 row by row (see the module's numerical contract) and rounded once to float32.
    A zero-norm feature row gets similarity 0 to every centroid.
    """
    f = _as_2d("features", features)
    c = _unit_centroids(centroids)
    if f.shape[1] != c.shape[1]:
        raise ValueError(f"features have dimension {f.shape[1]} but centroids have {c.shape[1]}")
    _check_finite("features", f)
    n, k = f.shape[0], c.shape[0]
    out = np.zeros((n, k), dtype=np.float32)
    rows = max(1, _BLOCK_ELEMENTS // max(1, k * c.shape[1]))
    for start in range(0, n, rows):
        block = f[start:start + rows]
        norm = np.sqrt((block * block).sum(axis=1))
        ok = norm > 0
        unit = block[ok] / norm[ok, None]
        sims = (unit[:, None, :] * c[None, :, :]).sum(axis=2)
        out[start:start + rows][ok] = np.clip(sims, -1.0, 1.0)
    return out


def softmax_probabilities(logits: Any) -> np.ndarray:
    """Eq. 2: class probabilities from logits ``(N, K)`` -> ``(N, K)`` float32 (row-wise, float64 inside)."""
    z = _as_2d("logits", logits)
    _check_finite("logits", z)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def top_two(scores: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best class, best score and margin (best − second best) of each row of ``scores`` (N, K).

    Returns ``nearest`` (N,) int64 — the best class, ``-1`` where the top two scores are equal
    (a tie has no unique label) —, ``best`` (N,) float32 and ``margin`` (N,) float64 (computed
    in float64 from the float32 scores, so thresholds compare without a float32 rounding of δ).
    """
    s = np.asarray(scores, dtype=np.float32)
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(f"scores must have shape (N, K) with K >= 2, got {s.shape}")
    ordered = np.sort(s, axis=1)
    best, second = ordered[:, -1], ordered[:, -2]
    margin = best.astype(np.float64) - second.astype(np.float64)
    nearest = np.argmax(s, axis=1).astype(np.int64)
    nearest[margin == 0] = -1
    return nearest, best, margin


def _check_delta(delta: float) -> float:
    d = float(delta)
    if np.isnan(d) or d < 0:
        raise ValueError(f"the margin δ must be a number >= 0 (Eq. 5), got {delta!r}")
    return d


def _check_threshold(threshold: float) -> float:
    t = float(threshold)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"the softmax confidence threshold must be in [0, 1], got {threshold!r}")
    return t


def margin_rule(nearest: np.ndarray, margin: np.ndarray, delta: float) -> np.ndarray:
    """Eq. 5 on precomputed nearest classes and margins: pseudo-labels (N,) int64, ``-1`` =
    rejected. Accepts iff ``margin >= delta`` and the nearest centroid is unique (margin > 0)."""
    d = _check_delta(delta)
    nearest = np.asarray(nearest, dtype=np.int64)
    margin = np.asarray(margin, dtype=np.float64)
    keep = (margin >= d) & (margin > 0) & (nearest >= 0)
    return np.where(keep, nearest, -1).astype(np.int64)


def confidence_rule(label: np.ndarray, confidence: np.ndarray, margin: np.ndarray,
                    threshold: float) -> np.ndarray:
    """Eq. 2 with a threshold: accept the arg-max class iff its probability ``>= threshold``
    and it is unique (probability margin > 0). Returns pseudo-labels (N,) int64, ``-1`` = rejected."""
    t = _check_threshold(threshold)
    label = np.asarray(label, dtype=np.int64)
    keep = (np.asarray(confidence, dtype=np.float64) >= t) & (np.asarray(margin) > 0) & (label >= 0)
    return np.where(keep, label, -1).astype(np.int64)


def _probabilities(probs: Any) -> np.ndarray:
    """``probs`` as a finite (N, K) float array, K >= 2, kept in its own float precision (the
    manifest stores float32; the pool statistics are accumulated in float64 without a copy)."""
    p = np.asarray(probs.detach().cpu().numpy() if hasattr(probs, "detach") else probs)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probabilities must have shape (N, K) with K >= 2, got {p.shape}")
    if not np.issubdtype(p.dtype, np.floating):
        p = p.astype(np.float64)
    _check_finite("probabilities", p)
    return p


def adaptive_class_thresholds(probs: Any) -> np.ndarray:
    """Self-adaptive per-class confidence thresholds (FreeMatch), computed offline over a pool.

    ``probs`` (N, K): the pool's softmax probabilities. The global threshold ``τ`` is the pool's
    mean highest probability, ``τ = mean_i max_k p_ik``; the class weights are the pool's mean
    probability of each class, ``p̃_k = mean_i p_ik``. Returns the (K,) float64 thresholds
    ``τ_k = p̃_k / max_j p̃_j · τ``: the class the learner predicts most keeps ``τ``, a class it
    predicts less gets a proportionally lower bar. Sums are float64. An empty pool (N = 0) has
    no statistics: every threshold is ``inf`` (nothing is accepted).
    """
    p = _probabilities(probs)
    if p.shape[0] == 0:
        return np.full(p.shape[1], np.inf)
    tau = float(p.max(axis=1).mean(dtype=np.float64))
    class_mean = p.mean(axis=0, dtype=np.float64)
    top = float(class_mean.max())
    if not top > 0:
        raise ValueError("the probabilities are zero for every sample and class; they are not a softmax output")
    return class_mean / top * tau


def class_threshold_rule(label: np.ndarray, confidence: np.ndarray, margin: np.ndarray,
                         thresholds: Any) -> np.ndarray:
    """Accept the arg-max class ``k̂`` of each sample iff its probability ``confidence >=
    thresholds[k̂]`` and it is unique (probability margin > 0; ``label`` -1 marks a tie).

    ``label`` (N,) int, ``confidence`` (N,) float, ``margin`` (N,) float, ``thresholds`` (K,)
    (e.g. :func:`adaptive_class_thresholds`). Returns pseudo-labels (N,) int64, ``-1`` = rejected.
    """
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    label = np.asarray(label, dtype=np.int64)
    if (label >= t.size).any():
        raise ValueError(f"labels go up to {int(label.max())} but there are {t.size} class thresholds")
    bar = t[np.maximum(label, 0)]
    keep = (np.asarray(confidence, dtype=np.float64) >= bar) & (np.asarray(margin) > 0) & (label >= 0)
    return np.where(keep, label, -1).astype(np.int64)


def distribution_alignment(probs: Any, prior: Any) -> np.ndarray:
    """ReMixMatch's distribution alignment, offline: ``p̃_i = normalise(p_i · π / p̄)`` row-wise.

    ``probs`` (N, K): the pool's softmax probabilities; ``prior`` (K,): the labelled anchor's
    class distribution ``π`` (class counts are fine: it is normalised); ``p̄`` (K,) is the
    pool's mean probability of each class. Classes the learner over-predicts on the pool (``p̄_k
    > π_k``) are scaled down, the others up. Returns the aligned (N, K) probabilities, float64
    inside and rounded once to float32 (like :func:`softmax_probabilities`).

    Edge cases: a class whose pool mean ``p̄_k`` is 0 (all its probabilities are 0) or whose
    prior is 0 gets aligned probability 0; a row left with no mass at all is all zeros, a tie
    that every rule rejects. An empty pool gives an empty (0, K) array.
    """
    p = _probabilities(probs)
    k = p.shape[1]
    pi = np.asarray(prior, dtype=np.float64).reshape(-1)
    if pi.shape[0] != k:
        raise ValueError(f"the class prior has {pi.shape[0]} entries but the probabilities have {k} classes")
    if not np.isfinite(pi).all() or (pi < 0).any() or not pi.sum() > 0:
        raise ValueError(f"the class prior must be finite, >= 0 and not all 0 (e.g. the anchor's samples "
                         f"per class), got {pi.tolist()}")
    out = np.zeros(p.shape, dtype=np.float32)
    if p.shape[0] == 0:
        return out
    pool_mean = p.mean(axis=0, dtype=np.float64)
    weight = np.zeros(k, dtype=np.float64)
    seen = pool_mean > 0
    weight[seen] = pi[seen] / pi.sum() / pool_mean[seen]
    rows = max(1, _BLOCK_ELEMENTS // k)
    for start in range(0, p.shape[0], rows):
        q = p[start:start + rows].astype(np.float64) * weight
        total = q.sum(axis=1, keepdims=True)
        mass = total[:, 0] > 0
        out[start:start + rows][mass] = q[mass] / total[mass]
    return out


def _ranked(candidates: np.ndarray, score: np.ndarray) -> np.ndarray:
    """``candidates`` (indices) ordered by score descending, ties by index ascending."""
    return candidates[np.lexsort((candidates, -score[candidates]))]


def top_share(label: np.ndarray, confidence: np.ndarray, share: float) -> np.ndarray:
    """Curriculum labelling's rule (Cascante-Bonilla et al., 2021): a threshold at a percentile of
    the pool's confidences rather than at a fixed confidence. Of the N samples, the ``round(share *
    N)`` with the highest ``confidence`` among those whose ``label`` is not tied (``-1``) keep their
    ``label`` (ties in confidence by pool order); fewer when fewer than that are untied.
    ``share`` in [0, 1]. Returns pseudo-labels (N,) int64, -1 = rejected."""
    s = float(share)
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"the share of the pool must be in [0, 1], got {share!r}")
    label = np.asarray(label, dtype=np.int64)
    confidence = np.asarray(confidence, dtype=np.float64)
    chosen = _ranked(np.flatnonzero(label >= 0), confidence)[:int(round(s * label.shape[0]))]
    out = np.full(label.shape[0], -1, dtype=np.int64)
    out[chosen] = label[chosen]
    return out


def balanced_topk(nearest: np.ndarray, margin: np.ndarray, k: int, num_classes: int) -> np.ndarray:
    """Class-balanced variant: for each class, the ``k`` samples whose nearest centroid is that
    class with the largest margins (ties by pool order). Samples with a tied nearest centroid
    are never selected. Returns pseudo-labels (N,) int64; a class with fewer than ``k``
    candidates keeps all of them."""
    if int(k) < 0:
        raise ValueError(f"per-class k must be >= 0, got {k}")
    nearest = np.asarray(nearest, dtype=np.int64)
    margin = np.asarray(margin, dtype=np.float64)
    out = np.full(nearest.shape[0], -1, dtype=np.int64)
    for c in range(num_classes):
        cand = np.flatnonzero((nearest == c) & (margin > 0))
        chosen = _ranked(cand, margin)[: int(k)]
        out[chosen] = c
    return out


def balanced_quantile(nearest: np.ndarray, margin: np.ndarray, quantile: float,
                      num_classes: int) -> np.ndarray:
    """Class-balanced variant: a margin threshold per class, at the ``quantile`` (in [0, 1]) of
    the margins of that class's candidates (samples whose unique nearest centroid is the
    class). Each class thus keeps about a ``1 - quantile`` share of its candidates, however
    easy or hard the class is. Thresholds use the ``inverted_cdf`` quantile, an actual
    margin of the class, so the rule is exact and deterministic. Returns pseudo-labels (N,)."""
    q = float(quantile)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"the class quantile must be in [0, 1], got {quantile!r}")
    nearest = np.asarray(nearest, dtype=np.int64)
    margin = np.asarray(margin, dtype=np.float64)
    out = np.full(nearest.shape[0], -1, dtype=np.int64)
    for c in range(num_classes):
        cand = np.flatnonzero((nearest == c) & (margin > 0))
        if cand.size == 0:
            continue
        threshold = np.quantile(margin[cand], q, method="inverted_cdf")
        out[cand[margin[cand] >= threshold]] = c
    return out


def cap_per_class(pseudo_labels: np.ndarray, score: np.ndarray, cap: Optional[int],
                  num_classes: int) -> np.ndarray:
    """Keep at most ``cap`` selected samples per class, those with the highest ``score``
    (ties by pool order); ``cap=None`` keeps all. Returns new pseudo-labels (N,)."""
    labels = np.asarray(pseudo_labels, dtype=np.int64).copy()
    if cap is None:
        return labels
    if int(cap) < 0:
        raise ValueError(f"per_class_cap must be >= 0 or None, got {cap}")
    score = np.asarray(score, dtype=np.float64)
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        labels[_ranked(members, score)[int(cap):]] = -1
    return labels


@dataclass(frozen=True)
class Selection:
    """Result of a selection rule over N samples (all of them, rejected ones included).

    Attributes:
        pseudo_labels: (N,) int64, the accepted class or ``-1`` (rejected).
        scores: (N, K) float32, what the rule compares: cosine similarity to each class
            centroid (centroid rules) or softmax probability of each class (softmax rule).
        margin: (N,) float64, best minus second-best score.
        nearest: (N,) int64, the best-scoring class, ``-1`` on a tie (before thresholding).
        rule: the rule's name (one of :data:`RULES`).
        params: the rule's parameters, e.g. ``{"delta": 0.1}``.
    """

    pseudo_labels: np.ndarray
    scores: np.ndarray
    margin: np.ndarray
    nearest: np.ndarray
    rule: str
    params: Dict[str, Any] = field(default_factory=dict)

    @property
    def selected(self) -> np.ndarray:
        """(N,) bool mask of accepted samples."""
        return self.pseudo_labels >= 0

    @property
    def confidence(self) -> np.ndarray:
        """(N,) float32, the best score of each sample."""
        return self.scores.max(axis=1)

    def counts(self) -> np.ndarray:
        """(K,) int64, accepted samples per class."""
        k = self.scores.shape[1]
        return np.bincount(self.pseudo_labels[self.selected], minlength=k).astype(np.int64)


def margin_select(features: Any, centroids: Any, delta: float) -> Selection:
    """Eq. 4–5: cosine similarity of each feature to each class centroid, then accept the
    nearest class iff it beats every other class by at least ``delta`` (see module docstring
    for ties and zero-norm features).

    ``features`` (N, D), ``centroids`` (K, D), ``delta >= 0``. Returns a :class:`Selection`
    whose ``scores`` are the (N, K) cosine similarities.
    """
    sims = cosine_similarity(features, centroids)
    nearest, _, margin = top_two(sims)
    labels = margin_rule(nearest, margin, delta)
    return Selection(labels, sims, margin, nearest, "margin", {"delta": float(delta)})


def softmax_select(logits: Any, threshold: float) -> Selection:
    """The baseline the paper argues against (Eq. 2 with a threshold): accept the arg-max class
    iff its softmax probability is ``>= threshold`` (ties rejected).

    ``logits`` (N, K). Returns a :class:`Selection` whose ``scores`` are the (N, K) probabilities
    and whose ``margin`` is the gap between the two highest probabilities.
    """
    probs = softmax_probabilities(logits)
    label, best, margin = top_two(probs)
    labels = confidence_rule(label, best, margin, threshold)
    return Selection(labels, probs, margin, label, "softmax", {"softmax_threshold": float(threshold)})


# --- The rules as records: each rule's decision over a manifest's columns, declared once. ---

_SOFTMAX_COLUMNS = ("pool_index", "softmax_label", "softmax_confidence", "softmax_margin")


def _margin_count(cols: Dict[str, np.ndarray], delta: Optional[float], rule: str, what: str,
                  cap: Optional[int] = None, num_classes: int = 0) -> int:
    """How many samples the margin rule at ``delta`` keeps, after the per-class ``cap`` when there is one: the
    count a matched rule is matched to."""
    if delta is None:
        raise ValueError(f"rule {rule!r} needs {what} or, to match the paper's rule's count, delta")
    labels = margin_rule(cols["nearest"], cols["margin"], delta)
    if cap is not None:
        labels = cap_per_class(labels, cols["margin"].astype(np.float64), cap, num_classes)
    return int((labels >= 0).sum())


def _admitted(ranked: np.ndarray, label: np.ndarray, cap: Optional[int]) -> np.ndarray:
    """Which of ``ranked`` sample indices (best first) a per-class ``cap`` lets in: a boolean mask in their order,
    true for each class's first ``cap`` (for all when ``cap`` is None)."""
    keep = np.zeros(ranked.size, dtype=bool)
    if cap is None:
        keep[:] = True
        return keep
    classes = label[ranked]
    for c in np.unique(classes):
        keep[np.flatnonzero(classes == c)[:int(cap)]] = True
    return keep


def _largest_reaching(count_at: Callable[[float], int], target: int, steps: int = 60) -> float:
    """The largest ``x`` in [0, 1] at which the non-increasing ``count_at(x)`` still reaches ``target`` (0 when
    none does: then the rule keeps what it can), by bisection."""
    if count_at(1.0) >= target:
        return 1.0
    lo, hi = 0.0, 1.0  # count_at(lo) >= target (or lo = 0), count_at(hi) < target
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if count_at(mid) >= target else (lo, mid)
    return lo


def _confidence_decision(cols: Dict[str, np.ndarray], rule: str, label: np.ndarray, score: np.ndarray,
                         margin: np.ndarray, delta: Optional[float], softmax_threshold: Optional[float],
                         params: Dict[str, Any], cap: Optional[int] = None, num_classes: int = 0) -> np.ndarray:
    """The confidence rule on (N,) ``label`` (-1 = tie), ``score`` and ``margin`` at
    ``softmax_threshold``, or, when that is ``None``, the top samples by ``score`` matched to the
    margin rule's count at ``delta`` (the threshold then recorded is the lowest accepted score); under a
    per-class ``cap`` the count the margin rule keeps after it, filled with the best samples the cap admits."""
    if softmax_threshold is not None:
        params["softmax_threshold"] = float(softmax_threshold)
        return confidence_rule(label, score, margin, softmax_threshold)
    target = _margin_count(cols, delta, rule, "softmax_threshold", cap, num_classes)
    ranked = _ranked(np.flatnonzero(label >= 0), score)
    chosen = ranked[_admitted(ranked, label, cap)][:target]
    labels = np.full(score.shape[0], -1, dtype=np.int64)
    labels[chosen] = label[chosen]
    params["matched_count"] = target
    params["softmax_threshold"] = float(score[chosen].min()) if chosen.size else math.inf
    return labels


def _class_counts(anchor_counts: Optional[Sequence[int]], num_classes: int) -> List[int]:
    if anchor_counts is None:
        raise ValueError(
            "rule 'distribution_alignment' needs the labelled anchor's samples per class (its class prior), "
            "and this manifest stores none (it was written by an omnifer older than the rule, or by "
            "select_auxiliary given centroids= without anchor_counts=). Recompute the manifest from the anchor "
            "(select_auxiliary(..., overwrite=True); in the book: omnifer cache clear --stage selection), "
            "or pass anchor_counts= (the anchor's samples per class) to reselect")
    counts = [int(c) for c in np.asarray(anchor_counts).reshape(-1)]
    if len(counts) != num_classes:
        raise ValueError(f"anchor_counts has {len(counts)} entries for {num_classes} classes")
    return counts


def _decide_margin(cols, num_classes, params, *, delta=None, **_):
    score = cols["margin"].astype(np.float64)
    if delta is None:
        raise ValueError("rule 'margin' needs delta (the margin δ of Eq. 5)")
    return margin_rule(cols["nearest"], score, delta), score


def _decide_softmax(cols, num_classes, params, *, delta=None, softmax_threshold=None, per_class_cap=None, **_):
    score = cols["softmax_confidence"].astype(np.float64)
    return _confidence_decision(cols, "softmax", cols["softmax_label"], score, cols["softmax_margin"], delta,
                                softmax_threshold, params, per_class_cap, num_classes), score


def _decide_balanced_topk(cols, num_classes, params, *, delta=None, per_class_k=None, per_class_cap=None, **_):
    score = cols["margin"].astype(np.float64)
    if per_class_k is None:
        target = _margin_count(cols, delta, "balanced_topk", "per_class_k", per_class_cap, num_classes)
        per_class_k = math.ceil(target / num_classes)
        if per_class_cap is not None:  # the smallest k whose capped selection reaches the margin rule's count
            held = np.bincount(cols["nearest"][(cols["nearest"] >= 0) & (score > 0)], minlength=num_classes)
            held = np.minimum(held, int(per_class_cap))
            per_class_k = next((k for k in range(int(held.max(initial=0)) + 1)
                                if np.minimum(held, k).sum() >= target), int(held.max(initial=0)))
        params["matched_count"] = target
    labels = balanced_topk(cols["nearest"], score, int(per_class_k), num_classes)
    params["per_class_k"] = int(per_class_k)
    return labels, score


def _decide_balanced_quantile(cols, num_classes, params, *, delta=None, class_quantile=None, per_class_cap=None,
                              **_):
    score = cols["margin"].astype(np.float64)
    if class_quantile is None:
        target = _margin_count(cols, delta, "balanced_quantile", "class_quantile", per_class_cap, num_classes)
        valid = int(((cols["nearest"] >= 0) & (score > 0)).sum())
        class_quantile = 1.0 - target / valid if valid else 1.0
        if target == 0:  # even the quantile 1 keeps each class's largest margin
            params["matched_count"] = 0
            params["class_quantile"] = 1.0
            return np.full(score.shape[0], -1, dtype=np.int64), score
        if per_class_cap is not None:  # the largest quantile whose capped selection reaches the margin rule's count
            class_quantile = _largest_reaching(lambda q: int((cap_per_class(balanced_quantile(
                cols["nearest"], score, q, num_classes), score, per_class_cap, num_classes) >= 0).sum()), target)
        params["matched_count"] = target
    labels = balanced_quantile(cols["nearest"], score, float(class_quantile), num_classes)
    params["class_quantile"] = float(class_quantile)
    return labels, score


def _decide_adaptive_threshold(cols, num_classes, params, **_):
    score = cols["softmax_confidence"].astype(np.float64)
    thresholds = adaptive_class_thresholds(cols["softmax"])
    labels = class_threshold_rule(cols["softmax_label"], score, cols["softmax_margin"], thresholds)
    params["class_thresholds"] = [float(t) for t in thresholds]
    return labels, score


def _decide_distribution_alignment(cols, num_classes, params, *, delta=None, softmax_threshold=None,
                                   anchor_counts=None, per_class_cap=None, **_):
    counts = _class_counts(anchor_counts, num_classes)
    label, best, margin = top_two(distribution_alignment(cols["softmax"], counts))
    score = best.astype(np.float64)
    labels = _confidence_decision(cols, "distribution_alignment", label, score, margin, delta, softmax_threshold,
                                  params, per_class_cap, num_classes)
    params["anchor_counts"] = counts
    return labels, score


def _decide_curriculum(cols, num_classes, params, *, delta=None, curriculum_share=None, per_class_cap=None, **_):
    score = cols["softmax_confidence"].astype(np.float64)
    if curriculum_share is None:
        target = _margin_count(cols, delta, "curriculum", "curriculum_share", per_class_cap, num_classes)
        n = target
        if per_class_cap is not None:  # the shortest top of the pool whose capped selection reaches the count
            label = cols["softmax_label"]
            ranked = _ranked(np.flatnonzero(label >= 0), score)
            reached = np.flatnonzero(np.cumsum(_admitted(ranked, label, per_class_cap)) >= target)
            n = 0 if not target else int(reached[0]) + 1 if reached.size else ranked.size
        curriculum_share = n / score.shape[0] if score.shape[0] else 0.0
        params["matched_count"] = target
    labels = top_share(cols["softmax_label"], score, curriculum_share)
    params["curriculum_share"] = float(curriculum_share)
    return labels, score


@dataclass(frozen=True)
class SelectionRule:
    """One rule that makes auxiliary samples from the per-sample columns of a manifest, declared
    once in :data:`SELECTION_RULES`; every list of rules (:data:`RULES`, the parameters a rule
    reads, the manifest columns it loads, its name in tables and figures) is derived from it.

    ``decide(cols, num_classes, params, *, delta, softmax_threshold, per_class_k, class_quantile, curriculum_share,
    anchor_counts, per_class_cap)`` returns ``(pseudo_labels (N,) int64 with -1 = rejected, score (N,) float64)``
    and records in the dict ``params`` what it used (``reselect.decide`` applies ``per_class_cap`` after it; a
    matched rule reads it to match after the cap); ``parameter`` is the profile parameter that sets it besides δ
    (``None``: none); left ``None``, the rule is matched to the margin rule's count at δ, after the per-class cap
    when there is one. ``reads_delta``: it reads δ always (the paper's rule). ``columns``: the manifest columns it
    reads besides the centroid columns (``pool_index``, ``nearest``, ``margin``)."""
    name: str
    label: str
    decide: Callable[..., Tuple[np.ndarray, np.ndarray]]
    parameter: Optional[str] = None
    reads_delta: bool = False
    columns: Tuple[str, ...] = ()


#: Every selection rule, in the order tables list them; the paper's first. Adding a rule is its
#: decision function and one record here (and a choice of ``selection_rule`` in the profile parameters).
SELECTION_RULES: Dict[str, SelectionRule] = {rule.name: rule for rule in (
    SelectionRule("margin", "centroid margin (paper)", _decide_margin, reads_delta=True),
    SelectionRule("softmax", "softmax confidence", _decide_softmax, "softmax_threshold", columns=_SOFTMAX_COLUMNS),
    SelectionRule("balanced_topk", "balanced top-k", _decide_balanced_topk, "per_class_k"),
    SelectionRule("balanced_quantile", "balanced quantile", _decide_balanced_quantile, "class_quantile"),
    SelectionRule("adaptive_threshold", "adaptive class thresholds", _decide_adaptive_threshold,
                  columns=_SOFTMAX_COLUMNS + ("softmax",)),
    # the (N, K) probabilities for the pool-level rules
    SelectionRule("distribution_alignment", "distribution alignment", _decide_distribution_alignment,
                  "softmax_threshold", columns=("softmax",)),
    SelectionRule("curriculum", "curriculum labelling", _decide_curriculum, "curriculum_share",
                  columns=_SOFTMAX_COLUMNS),
)}
#: Names of the selection rules (``selection_rule`` parameter).
RULES: Tuple[str, ...] = tuple(SELECTION_RULES)
#: The parameters that set a rule besides δ and the cap (``softmax_threshold``, ``per_class_k``, ``class_quantile``,
#: ``curriculum_share``).
RULE_PARAMETERS: Tuple[str, ...] = tuple(dict.fromkeys(r.parameter for r in SELECTION_RULES.values() if r.parameter))


def rule_record(rule: str) -> SelectionRule:
    """The :class:`SelectionRule` named ``rule``; ``ValueError`` naming the known ones otherwise."""
    if rule not in SELECTION_RULES:
        raise ValueError(f"unknown selection rule {rule!r}; expected one of {', '.join(RULES)}")
    return SELECTION_RULES[rule]
