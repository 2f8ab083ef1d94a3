"""Tests of the offline pseudo-labelling rules beside the paper's margin rule:
``adaptive_threshold`` (FreeMatch's self-adaptive per-class thresholds),
``distribution_alignment`` (ReMixMatch's alignment to the anchor's class prior) and ``curriculum``
(curriculum labelling's percentile threshold), each against a plain loop reference written here,
with ties, the matched count, cache parameters, reselect from in-memory tables and manifests, and
manifests that store no anchor class counts."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from omnifer_lib import select as S
from omnifer_lib.select import manifest as mf

K = 7


# ----------------------------------------------------------------------------- references (loops)
def ref_adaptive_thresholds(p):
    """tau = mean of each row's max; class weight = mean of the class column; tau_k = w_k / max w * tau."""
    n, k = p.shape
    tau = 0.0
    means = [0.0] * k
    for i in range(n):
        tau += float(max(p[i])) / n
        for c in range(k):
            means[c] += float(p[i, c]) / n
    return np.array([means[c] / max(means) * tau for c in range(k)])


def ref_top(row):
    """(arg-max class or -1 on a tie at the top, the top value)."""
    order = sorted(range(len(row)), key=lambda c: -row[c])
    if row[order[0]] == row[order[1]]:
        return -1, row[order[0]]
    return order[0], row[order[0]]


def ref_class_threshold_labels(p, thresholds):
    out = []
    for row in p:
        label, best = ref_top(row)
        out.append(label if label >= 0 and float(best) >= thresholds[label] else -1)
    return np.array(out)


def ref_aligned(p, counts):
    """p_ik * pi_k / pbar_k, each row divided by its sum, rounded to float32."""
    n, k = p.shape
    prior = [counts[c] / sum(counts) for c in range(k)]
    pbar = [sum(float(p[i, c]) for i in range(n)) / n for c in range(k)]
    out = np.zeros((n, k), np.float32)
    for i in range(n):
        q = [float(p[i, c]) * prior[c] / pbar[c] for c in range(k)]
        out[i] = [v / sum(q) for v in q]
    return out


def softmax_rows(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def pool_arrays(n=400, seed=0, d=12):
    """Random features, logits (skewed towards class 0) and centroids."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, d)).astype(np.float32)
    logits = (2.0 * rng.normal(size=(n, K)) + np.linspace(1.5, 0, K)).astype(np.float32)
    centroids = rng.normal(size=(K, d))
    return features, logits, centroids


COUNTS = [30, 10, 5, 20, 40, 15, 25]


# ----------------------------------------------------------------------------- adaptive_threshold
def test_adaptive_thresholds_and_labels_equal_the_loop_reference():
    _, logits, _ = pool_arrays()
    p = softmax_rows(logits)
    thresholds = S.adaptive_class_thresholds(p)
    ref = ref_adaptive_thresholds(p)
    np.testing.assert_allclose(thresholds, ref, rtol=1e-12)
    # the most predicted class keeps the global threshold; the others get a lower bar
    tau = float(np.mean(p.max(axis=1), dtype=np.float64))
    assert thresholds.max() == pytest.approx(tau, rel=1e-12) and (thresholds <= tau * (1 + 1e-12)).all()
    label, best, margin = S.top_two(p)
    labels = S.class_threshold_rule(label, best, margin, thresholds)
    np.testing.assert_array_equal(labels, ref_class_threshold_labels(p, ref))
    assert 0 < (labels >= 0).sum() < len(p)
    # through decide, from manifest-like columns
    cols = {"softmax": p, "softmax_label": label, "softmax_confidence": best, "softmax_margin": margin}
    lab, score, params = S.decide(cols, "adaptive_threshold", K, per_class_cap=None)
    np.testing.assert_array_equal(lab, labels)
    np.testing.assert_array_equal(score, best.astype(np.float64))
    np.testing.assert_allclose(params["class_thresholds"], ref, rtol=1e-12)


def test_adaptive_threshold_accepts_equality_and_rejects_ties():
    # identical rows: tau = 0.625 = the class-0 mean, so thresholds are the row itself; 0.625 >= 0.625
    p = np.tile(np.array([[0.625, 0.25, 0.125]], np.float32), (4, 1))
    assert S.adaptive_class_thresholds(p)[0] == 0.625
    np.testing.assert_allclose(S.adaptive_class_thresholds(p), [0.625, 0.25, 0.125], rtol=1e-15)
    label, best, margin = S.top_two(p)
    assert S.class_threshold_rule(label, best, margin, S.adaptive_class_thresholds(p)).tolist() == [0] * 4
    # a tie at the top is rejected whatever the threshold (even 0)
    tied = np.array([[0.45, 0.45, 0.1], [0.8, 0.1, 0.1]], np.float32)
    label, best, margin = S.top_two(tied)
    assert S.class_threshold_rule(label, best, margin, np.zeros(3)).tolist() == [-1, 0]
    # an empty pool has no statistics: nothing is accepted
    assert np.isinf(S.adaptive_class_thresholds(np.zeros((0, 3), np.float32))).all()
    with pytest.raises(ValueError, match="non-finite"):
        S.adaptive_class_thresholds(np.array([[np.nan, 0.5]]))


# ----------------------------------------------------------------------------- distribution_alignment
def test_distribution_alignment_equals_the_loop_reference():
    _, logits, _ = pool_arrays(seed=1)
    p = softmax_rows(logits)
    aligned = S.distribution_alignment(p, COUNTS)
    assert aligned.dtype == np.float32 and aligned.shape == p.shape
    np.testing.assert_allclose(aligned, ref_aligned(p, COUNTS), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(aligned.sum(axis=1), 1.0, rtol=1e-6)
    # the aligned pool's mean moves from the learner's skew towards the anchor's prior
    prior = np.array(COUNTS) / sum(COUNTS)
    assert np.abs(aligned.mean(axis=0) - prior).sum() < np.abs(p.mean(axis=0) - prior).sum()
    # a prior equal to the pool's mean probabilities changes nothing (up to rounding)
    np.testing.assert_allclose(S.distribution_alignment(p, p.mean(axis=0, dtype=np.float64)), p, atol=1e-6)
    with pytest.raises(ValueError, match="prior"):
        S.distribution_alignment(p, [1, 2])
    with pytest.raises(ValueError, match="not all 0"):
        S.distribution_alignment(p, [0] * K)


def test_distribution_alignment_at_a_threshold_equals_the_reference():
    _, logits, _ = pool_arrays(seed=2)
    p = softmax_rows(logits)
    cols = {"pool_index": np.arange(len(p)), "softmax": p, "nearest": np.zeros(len(p), np.int64),
            "margin": np.zeros(len(p))}
    lab, score, params = S.decide(cols, "distribution_alignment", K, softmax_threshold=0.6, anchor_counts=COUNTS)
    expected = []
    for row in ref_aligned(p, COUNTS):
        label, best = ref_top(row)
        expected.append(label if label >= 0 and best >= 0.6 else -1)
    np.testing.assert_array_equal(lab, expected)
    assert params == {"softmax_threshold": 0.6, "anchor_counts": COUNTS}
    np.testing.assert_allclose(score, ref_aligned(p, COUNTS).max(axis=1), atol=1e-7)


def test_distribution_alignment_rejects_ties_and_rows_without_mass():
    # classes 0 and 1 are symmetric in the pool and the prior: row 0 stays tied after alignment
    # (binary fractions, so the class sums are exact whatever the order of addition)
    p = np.array([[0.375, 0.375, 0.25], [0.75, 0.125, 0.125], [0.125, 0.75, 0.125], [0.0, 0.0, 1.0]], np.float32)
    cols = {"pool_index": np.arange(4), "softmax": p, "nearest": np.array([0, 0, 1, 2]),
            "margin": np.full(4, 0.5)}
    lab, _, _ = S.decide(cols, "distribution_alignment", 3, softmax_threshold=0.0, anchor_counts=[1, 1, 1])
    assert lab.tolist() == [-1, 0, 1, 2]
    lab, _, params = S.decide(cols, "distribution_alignment", 3, delta=0.1, anchor_counts=[1, 1, 1])
    assert lab[0] == -1 and params["matched_count"] == 4 and (lab >= 0).sum() == 3  # only 3 candidates
    # a class absent from the anchor is never chosen; a row with all its mass there is rejected
    aligned = S.distribution_alignment(p, [1, 1, 0])
    assert (aligned[:, 2] == 0).all() and (aligned[3] == 0).all()
    lab, _, _ = S.decide(cols, "distribution_alignment", 3, softmax_threshold=0.0, anchor_counts=[1, 1, 0])
    assert lab.tolist() == [-1, 0, 1, -1]


def test_distribution_alignment_matched_count():
    features, logits, centroids = pool_arrays(seed=3)
    table = S.ScoreTable.from_arrays(features, logits, centroids, anchor_counts=COUNTS)
    cols = table.columns(["pool_index", "nearest", "margin", "softmax"])
    delta = float(np.quantile(cols["margin"], 0.5))
    target = int((S.margin_rule(cols["nearest"], cols["margin"], delta) >= 0).sum())
    lab, score, params = S.decide(cols, "distribution_alignment", K, delta=delta, anchor_counts=COUNTS)
    assert (lab >= 0).sum() == target == params["matched_count"]
    # reference: the target most confident aligned samples (ties by pool order), unique arg-max only
    aligned = ref_aligned(cols["softmax"], COUNTS)
    tops = [ref_top(row) for row in aligned]
    ranked = sorted((i for i in range(len(tops)) if tops[i][0] >= 0), key=lambda i: (-tops[i][1], i))[:target]
    expected = np.full(len(tops), -1)
    for i in ranked:
        expected[i] = tops[i][0]
    np.testing.assert_array_equal(lab, expected)
    assert params["softmax_threshold"] == pytest.approx(min(tops[i][1] for i in ranked))
    with pytest.raises(ValueError, match="needs softmax_threshold or"):
        S.decide(cols, "distribution_alignment", K, anchor_counts=COUNTS)


# ----------------------------------------------------------------------------- curriculum
def ref_top_share(p, share):
    """Rank the samples with a unique arg-max by top probability (ties by pool order), keep the first
    round(share x N) of them with their arg-max."""
    tops = [ref_top(row) for row in p]
    ranked = sorted((i for i in range(len(tops)) if tops[i][0] >= 0), key=lambda i: (-tops[i][1], i))
    out = np.full(len(tops), -1)
    for i in ranked[:int(round(share * len(tops)))]:
        out[i] = tops[i][0]
    return out


@pytest.mark.parametrize("share", [0.0, 0.2, 0.45, 1.0])
def test_curriculum_keeps_the_most_confident_share_of_the_pool(share):
    features, logits, centroids = pool_arrays(seed=7)
    table = S.ScoreTable.from_arrays(features, logits, centroids, anchor_counts=COUNTS)
    cols = table.columns(["pool_index", "nearest", "margin", "softmax_label", "softmax_confidence",
                          "softmax_margin", "softmax"])
    lab, score, params = S.decide(cols, "curriculum", K, curriculum_share=share)
    np.testing.assert_array_equal(lab, ref_top_share(cols["softmax"], share))
    assert params == {"curriculum_share": share} and (lab >= 0).sum() == round(share * len(lab))
    picked = S.reselect(table, rule="curriculum", curriculum_share=share)
    np.testing.assert_array_equal(picked.pool_index, np.flatnonzero(lab >= 0))


def test_curriculum_rejects_ties_matches_the_margin_count_and_checks_the_share():
    label = np.array([2, -1, 0, 1, 1, -1])
    confidence = np.array([0.5, 0.9, 0.5, 0.7, 0.4, 0.95])
    # four of six asked for; two are tied at the top: the four others, equal confidences by pool order
    assert S.top_share(label, confidence, 4 / 6).tolist() == [2, -1, 0, 1, 1, -1]
    assert S.top_share(label, confidence, 0.5).tolist() == [2, -1, 0, 1, -1, -1]
    assert S.top_share(label, confidence, 1 / 3).tolist() == [2, -1, -1, 1, -1, -1]  # 0.5 twice: pool order
    assert S.top_share(label, confidence, 1.0).tolist() == label.tolist()  # never a tied one
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"share of the pool must be in \[0, 1\]"):
            S.top_share(label, confidence, bad)
    features, logits, centroids = pool_arrays(seed=8)
    cols = S.ScoreTable.from_arrays(features, logits, centroids).columns(
        ["pool_index", "nearest", "margin", "softmax_label", "softmax_confidence", "softmax_margin"])
    delta = float(np.quantile(cols["margin"], 0.7))
    target = int((S.margin_rule(cols["nearest"], cols["margin"], delta) >= 0).sum())
    lab, _, params = S.decide(cols, "curriculum", K, delta=delta)
    assert (lab >= 0).sum() == target == params["matched_count"]
    with pytest.raises(ValueError, match="needs curriculum_share or"):
        S.decide(cols, "curriculum", K)


# ----------------------------------------------------------------------------- parameters, reselect
def test_rule_parameters_of_the_new_rules():
    given = dict(delta=0.1, softmax_threshold=0.9, per_class_k=None, class_quantile=None, per_class_cap=400)
    assert S.rule_parameters("adaptive_threshold", **given) == {"per_class_cap": 400}
    assert S.rule_parameters("adaptive_threshold", **{**given, "softmax_threshold": None}) == {"per_class_cap": 400}
    assert S.rule_parameters("distribution_alignment", **given) == {"softmax_threshold": 0.9, "per_class_cap": 400}
    assert S.rule_parameters("distribution_alignment", **{**given, "softmax_threshold": None}) == {
        "softmax_threshold": None, "delta": 0.1, "per_class_cap": 400}
    assert S.rule_parameters("curriculum", **given, curriculum_share=0.2) == {"curriculum_share": 0.2,
                                                                              "per_class_cap": 400}
    assert S.rule_parameters("curriculum", **given) == {"curriculum_share": None, "delta": 0.1, "per_class_cap": 400}
    assert S.RULES[0] == "margin" and {"adaptive_threshold", "distribution_alignment", "curriculum"} <= set(S.RULES)


def test_reselect_from_a_score_table():
    features, logits, centroids = pool_arrays(seed=4)
    p = softmax_rows(logits)
    table = S.ScoreTable.from_arrays(features, logits, centroids, anchor_counts=COUNTS)
    cos = table.columns(["cosine"])["cosine"]

    ada = S.reselect(table, rule="adaptive_threshold")
    expected = ref_class_threshold_labels(table.columns(["softmax"])["softmax"],
                                          ref_adaptive_thresholds(table.columns(["softmax"])["softmax"]))
    np.testing.assert_array_equal(ada.pool_index, np.flatnonzero(expected >= 0))
    np.testing.assert_array_equal(ada.pseudo_labels, expected[expected >= 0])
    np.testing.assert_array_equal(ada.similarity, cos[ada.pool_index, ada.pseudo_labels])
    np.testing.assert_allclose(ada.score, p[ada.pool_index].max(axis=1), atol=1e-7)
    capped = S.reselect(table, rule="adaptive_threshold", per_class_cap=5)
    assert capped.counts().max() <= 5 and capped.params["per_class_cap"] == 5
    for c in range(K):  # the cap keeps each class's most confident samples
        kept, before = capped.score[capped.pseudo_labels == c], ada.score[ada.pseudo_labels == c]
        np.testing.assert_array_equal(np.sort(kept)[::-1], np.sort(before)[::-1][:5])

    da = S.reselect(table, rule="distribution_alignment", softmax_threshold=0.5)
    aligned = ref_aligned(table.columns(["softmax"])["softmax"], COUNTS)
    expected = np.array([t[0] if t[0] >= 0 and t[1] >= 0.5 else -1 for t in map(ref_top, aligned)])
    np.testing.assert_array_equal(da.pool_index, np.flatnonzero(expected >= 0))
    np.testing.assert_array_equal(da.pseudo_labels, expected[expected >= 0])
    assert da.params["anchor_counts"] == COUNTS and da.rule == "distribution_alignment"

    # a table without the anchor's counts: a clear error, or counts given to reselect
    bare = S.ScoreTable.from_arrays(features, logits, centroids)
    with pytest.raises(ValueError, match="anchor's samples per class.*anchor_counts="):
        S.reselect(bare, rule="distribution_alignment", softmax_threshold=0.5)
    again = S.reselect(bare, rule="distribution_alignment", softmax_threshold=0.5, anchor_counts=COUNTS)
    np.testing.assert_array_equal(again.pool_index, da.pool_index)
    assert len(S.reselect(bare, rule="adaptive_threshold")) == len(ada)


# ----------------------------------------------------------------------------- manifests
class TinyNet(nn.Module):
    """A small learner whose logits favour some classes over others (so alignment matters)."""

    num_classes = K

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.proj = nn.Parameter(torch.randn(48, 10, generator=g))
        self.head = nn.Parameter(torch.randn(10, K, generator=g))
        self.bias = nn.Parameter(torch.linspace(1.0, -1.0, K))

    def features(self, x):
        return torch.tanh(x.flatten(1) @ self.proj)

    def classify(self, f):
        return 3 * f @ self.head + self.bias


def _anchor_and_pool():
    g = torch.Generator().manual_seed(6)
    labels = torch.tensor(sum(([c] * n for c, n in enumerate(COUNTS)), []))
    anchor = TensorDataset(torch.rand(len(labels), 3, 4, 4, generator=g), labels)
    pool = TensorDataset(torch.rand(240, 3, 4, 4, generator=g), torch.full((240,), -1))
    return anchor, pool


def test_manifest_stores_anchor_counts_and_reselects(tmp_path):
    anchor, pool = _anchor_and_pool()
    summary = S.select_auxiliary(TinyNet(), anchor, pool, 0.05, manifest_dir=tmp_path, batch_size=32,
                                 chunk_size=100, progress=False, rule="distribution_alignment")
    man = S.open_manifest(tmp_path)
    assert man.anchor_counts.tolist() == COUNTS
    assert summary.selection.params["matched_count"] == len(S.reselect(man, rule="margin", delta=0.05))
    p = man.columns(["softmax"])["softmax"]
    da = S.reselect(man, rule="distribution_alignment", softmax_threshold=0.4)
    expected = np.array([t[0] if t[0] >= 0 and t[1] >= 0.4 else -1 for t in map(ref_top, ref_aligned(p, COUNTS))])
    np.testing.assert_array_equal(da.pool_index, np.flatnonzero(expected >= 0))
    ada = S.reselect(man, rule="adaptive_threshold")
    expected = ref_class_threshold_labels(p, ref_adaptive_thresholds(p))
    np.testing.assert_array_equal(ada.pseudo_labels, expected[expected >= 0])

    # both rules in the sweep and the comparison; distribution alignment at the matched count
    table = S.compare_rules(tmp_path, 0.05, rules=S.RULES)
    totals = table[table["name"] == "all"].set_index("rule")["selected"]
    assert set(totals.index) == set(S.RULES)
    assert totals["distribution_alignment"] == totals["margin"] == totals["softmax"]
    assert totals["adaptive_threshold"] == len(ada)
    sweep = S.delta_sweep(tmp_path, [0.0, 0.05, 0.2], rules=("margin", "adaptive_threshold", "distribution_alignment"))
    all_rows = sweep[sweep["class"] < 0].pivot_table(index="delta", columns="rule", values="selected")
    assert (all_rows["distribution_alignment"] == all_rows["margin"]).all()
    assert (all_rows["adaptive_threshold"] == len(ada)).all()  # no parameter: the same at every δ


def test_old_manifest_without_anchor_counts(tmp_path):
    anchor, pool = _anchor_and_pool()
    S.select_auxiliary(TinyNet(), anchor, pool, 0.05, manifest_dir=tmp_path, batch_size=64, progress=False)
    meta_file = tmp_path / mf.MANIFEST_FILE
    meta = json.loads(meta_file.read_text())
    del meta["anchor_counts"]  # as written before the counts were stored
    meta_file.write_text(json.dumps(meta))
    old = S.open_manifest(tmp_path)
    assert old.anchor_counts is None
    assert len(S.reselect(old, rule="margin", delta=0.05)) > 0
    S.reselect(old, rule="adaptive_threshold")
    with pytest.raises(ValueError, match="stores none.*overwrite=True"):
        S.reselect(old, rule="distribution_alignment", delta=0.05)
    with pytest.raises(ValueError, match="stores none"):
        S.compare_rules(old, 0.05, rules=["margin", "distribution_alignment"])
    S.compare_rules(old, 0.05)  # the default comparison still works on an old manifest
    assert len(S.reselect(old, rule="distribution_alignment", delta=0.05, anchor_counts=COUNTS)) > 0


def test_given_centroids_need_anchor_counts_for_alignment(tmp_path):
    anchor, pool = _anchor_and_pool()
    centroids, counts = S.compute_anchor_statistics(TinyNet(), anchor, batch_size=32, progress=False)
    assert counts.tolist() == COUNTS
    np.testing.assert_array_equal(centroids, S.compute_centroids(TinyNet(), anchor, batch_size=32, progress=False))
    with pytest.raises(ValueError, match="pass anchor_counts="):
        S.select_auxiliary(TinyNet(), None, pool, 0.05, manifest_dir=tmp_path / "a", centroids=centroids,
                           rule="distribution_alignment", progress=False)
    S.select_auxiliary(TinyNet(), None, pool, 0.05, manifest_dir=tmp_path / "b", centroids=centroids,
                       anchor_counts=counts, rule="distribution_alignment", progress=False)
    assert S.open_manifest(tmp_path / "b").anchor_counts.tolist() == COUNTS
    S.select_auxiliary(TinyNet(), None, pool, 0.05, manifest_dir=tmp_path / "c", centroids=centroids, progress=False)
    assert S.open_manifest(tmp_path / "c").anchor_counts is None


# ----------------------------------------------------------------------------- soft pseudo-labels
def test_soft_pseudo_labels_are_the_teachers_probabilities_of_the_selected(tmp_path):
    features, logits, centroids = pool_arrays(seed=7)
    table = S.ScoreTable.from_arrays(features, logits, centroids)
    sel = S.reselect(table, rule="margin", delta=0.02)
    soft = S.soft_pseudo_labels(table, sel)
    assert soft.shape == (len(sel), K) and soft.dtype == np.float32
    np.testing.assert_allclose(soft, softmax_rows(logits)[sel.pool_index], atol=1e-6)
    np.testing.assert_allclose(soft.sum(1), 1.0, atol=1e-5)
    # from a manifest on disk, read chunk by chunk: the same rows
    anchor, pool = _anchor_and_pool()
    S.select_auxiliary(TinyNet(), anchor, pool, 0.05, manifest_dir=tmp_path, batch_size=32, chunk_size=50,
                       progress=False)
    man = S.open_manifest(tmp_path)
    on_disk = S.reselect(man, rule="softmax", softmax_threshold=0.3)
    np.testing.assert_array_equal(S.soft_pseudo_labels(tmp_path, on_disk),
                                  man.columns(["softmax"])["softmax"][on_disk.pool_index])
    assert S.soft_pseudo_labels(table, S.reselect(table, rule="margin", delta=5.0)).shape == (0, K)
    with pytest.raises(ValueError, match="pool of"):
        S.soft_pseudo_labels(man, sel)  # a selection from another pool


# ----------------------------------------------------------------------------- matched under a per-class cap
def ref_capped_count(nearest, margin, delta, cap):
    """How many the margin rule keeps at delta after the cap (loop: unique nearest, margin >= delta)."""
    kept = {}
    for c, m in zip(nearest, margin):
        if c >= 0 and m >= delta:
            kept[c] = kept.get(c, 0) + 1
    return sum(min(n, cap) for n in kept.values())


def ref_greedy_under_cap(label, score, target, cap):
    """Best first (ties by pool order), skipping a sample whose class already holds cap, until target."""
    out, held = np.full(len(label), -1), {}
    for i in sorted((i for i in range(len(label)) if label[i] >= 0), key=lambda i: (-score[i], i)):
        if sum(held.values()) == target:
            break
        if held.get(label[i], 0) < cap:
            held[label[i]] = held.get(label[i], 0) + 1
            out[i] = label[i]
    return out


def ref_capped_quantile_count(nearest, margin, q, cap, k=K):
    """Loop reference of the class-balanced quantile under a cap: per class, the candidates (unique nearest,
    margin > 0) at or above the inverted-CDF q-quantile of their margins, at most cap of them."""
    total = 0
    for c in range(k):
        m = sorted(float(x) for x, n in zip(margin, nearest) if n == c and x > 0)
        if not m:
            continue
        threshold = m[max(0, int(np.ceil(q * len(m))) - 1)]  # the smallest margin whose CDF reaches q
        total += min(cap, sum(x >= threshold for x in m))
    return total


def _pool_cols(seed=11):
    features, logits, centroids = pool_arrays(seed=seed)
    table = S.ScoreTable.from_arrays(features, logits, centroids, anchor_counts=COUNTS)
    return table.columns(["pool_index", "nearest", "margin", "softmax_label", "softmax_confidence",
                          "softmax_margin", "softmax"])


@pytest.mark.parametrize("cap", [30, 40])
def test_matched_rules_under_a_cap_keep_the_count_the_margin_rule_keeps_after_it(cap):
    """With a per-class cap the matched count is the margin rule's after the cap, and each matched rule's capped
    selection reaches it (the cap binds in some classes of the margin rule and not in others here), each
    against a loop reference: the comparison is then of what the rules select, not of how much."""
    cols = _pool_cols()
    delta = float(np.quantile(cols["margin"], 0.3))
    kept = np.bincount(cols["nearest"][(cols["nearest"] >= 0) & (cols["margin"] >= delta)], minlength=K)
    assert (kept > cap).any() and (kept < cap).any()  # the cap trims some classes only
    target = ref_capped_count(cols["nearest"], cols["margin"], delta, cap)
    assert target == int(np.minimum(kept, cap).sum()) < kept.sum()
    decided = {rule: S.decide(cols, rule, K, delta=delta, per_class_cap=cap, anchor_counts=COUNTS)
               for rule in ("softmax", "distribution_alignment", "balanced_topk", "balanced_quantile", "curriculum")}
    for rule, (_, _, params) in decided.items():
        assert params["matched_count"] == target, rule
    # softmax confidence and curriculum labelling: exactly the most confident samples the cap admits
    expected = ref_greedy_under_cap(cols["softmax_label"], cols["softmax_confidence"], target, cap)
    np.testing.assert_array_equal(decided["softmax"][0], expected)
    np.testing.assert_array_equal(decided["curriculum"][0], expected)
    assert (expected >= 0).sum() == target
    # distribution alignment: the same on the aligned probabilities (fewer where its candidates fall short)
    tops = [ref_top(row) for row in ref_aligned(cols["softmax"], COUNTS)]
    aligned = ref_greedy_under_cap(np.array([t[0] for t in tops]), np.array([t[1] for t in tops]), target, cap)
    np.testing.assert_array_equal(decided["distribution_alignment"][0], aligned)
    # balanced top-k: the smallest k whose capped selection reaches the count, loop reference
    avail = [sum(1 for n, m in zip(cols["nearest"], cols["margin"]) if n == c and m > 0) for c in range(K)]
    k = next(k for k in range(max(avail) + 1) if sum(min(k, a, cap) for a in avail) >= target)
    lab, _, params = decided["balanced_topk"]
    assert params["per_class_k"] == k and (lab >= 0).sum() == sum(min(k, a, cap) for a in avail) >= target
    # balanced quantile: its capped count reaches the target, and a hair above its quantile it would not
    lab, _, params = decided["balanced_quantile"]
    q = params["class_quantile"]
    got = ref_capped_quantile_count(cols["nearest"], cols["margin"], q, cap)
    assert (lab >= 0).sum() == got >= target > ref_capped_quantile_count(cols["nearest"], cols["margin"],
                                                                       q + 1e-9, cap)
    assert np.bincount(lab[lab >= 0], minlength=K).max() <= cap
    # without a cap nothing changes: matched to the uncapped count
    lab, _, params = S.decide(cols, "softmax", K, delta=delta)
    assert params["matched_count"] == int(kept.sum()) == (lab >= 0).sum()


@pytest.mark.parametrize("cap", [None, 20])
def test_a_matched_rule_asked_for_nothing_selects_nothing(cap):
    cols = _pool_cols()
    delta = float(cols["margin"].max()) + 0.1  # the margin rule keeps none
    for rule in ("softmax", "distribution_alignment", "balanced_topk", "balanced_quantile", "curriculum"):
        lab, _, params = S.decide(cols, rule, K, delta=delta, per_class_cap=cap, anchor_counts=COUNTS)
        assert params["matched_count"] == 0 and (lab >= 0).sum() == 0, rule


def test_a_matched_rule_under_a_cap_keeps_what_it_can_when_its_candidates_fall_short():
    # the margin rule keeps 2 of class 0 and 2 of class 1 (cap 2); softmax has candidates of class 0 only
    cols = {"pool_index": np.arange(6), "nearest": np.array([0, 0, 0, 1, 1, 1]),
            "margin": np.array([0.9, 0.8, 0.7, 0.9, 0.8, 0.7]),
            "softmax_label": np.zeros(6, dtype=np.int64), "softmax_confidence": np.linspace(0.9, 0.4, 6),
            "softmax_margin": np.full(6, 0.1)}
    lab, _, params = S.decide(cols, "softmax", 2, delta=0.5, per_class_cap=2)
    assert params["matched_count"] == 4 and lab.tolist() == [0, 0, -1, -1, -1, -1]
