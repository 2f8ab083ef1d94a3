"""Tests of omnifer_lib.select (§3.3): Eq. 3–5 against direct numpy, the δ rule's edge cases,
streaming = in-memory, interrupted + resumed = uninterrupted, reselect = fresh selection,
class-balanced variants, sharding and merge, reports and the auxiliary dataset."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from omnifer_lib import select as S
from omnifer_lib.select import manifest as mf

K = 7


# ----------------------------------------------------------------------------- fixtures
class ElementwiseNet(nn.Module):
    """A primitive learner whose output rows depend only on their own input row, computed
    without matrix products — so its features are bit-identical whatever the batch
    composition (lets tests demand exact equality across chunkings and shardings)."""

    num_classes = K

    def __init__(self, dim: int = 16, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.scale = nn.Parameter(torch.randn(dim, generator=g))
        self.shift = nn.Parameter(0.1 * torch.randn(dim, generator=g))
        self.out = nn.Parameter(torch.randn(K, 2, generator=g))
        self.dim = dim
        self.feature_dim = dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x.flatten(1)[:, : self.dim] * self.scale - 0.5 * self.scale + self.shift)

    def classify(self, f: torch.Tensor) -> torch.Tensor:
        return (f[:, : 2 * K].reshape(-1, K, 2) * self.out).sum(-1)


class LinearNet(nn.Module):
    """An ordinary conv/linear learner (batch composition may change its last bits)."""

    num_classes = K

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                                  nn.Flatten(), nn.Linear(16, 10), nn.ReLU())
        self.head = nn.Linear(10, K)

    def features(self, x):
        return self.body(x)

    def classify(self, f):
        return self.head(f)


class Pool(Dataset):
    """A deterministic pool of random images with hidden true labels (like the synthetic pool)."""

    def __init__(self, n: int, seed: int = 1, size: int = 4):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, size, size, generator=g)
        self.true_labels = torch.randint(0, K, (n,), generator=g).numpy().astype(np.int64)
        self.labels = np.full(n, -1, dtype=np.int64)
        self.getitems_calls = 0

    def __len__(self):
        return self.images.shape[0]

    def __getitem__(self, i):
        return self.images[i], -1

    def __getitems__(self, indices):
        self.getitems_calls += 1
        return [(self.images[i], -1) for i in indices]


def make_anchor(n: int = 70, seed: int = 2, size: int = 4) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.rand(n, 3, size, size, generator=g), torch.arange(n) % K)


def all_features(model, dataset, batch_size=None):
    """Features and logits of a whole dataset in one forward (or fixed batches)."""
    x = torch.stack([dataset[i][0] for i in range(len(dataset))])
    with torch.no_grad():
        if batch_size is None:
            f = model.features(x)
            return f.numpy(), model.classify(f).numpy()
        fs, zs = [], []
        for a in range(0, len(x), batch_size):
            f = model.features(x[a:a + batch_size])
            fs.append(f.numpy())
            zs.append(model.classify(f).numpy())
        return np.concatenate(fs), np.concatenate(zs)


def numpy_cosine(f, c):
    f = np.asarray(f, np.float64)
    c = np.asarray(c, np.float64)
    fn = np.linalg.norm(f, axis=1, keepdims=True)
    cn = np.linalg.norm(c, axis=1, keepdims=True)
    return (f / fn) @ (c / cn).T


# ----------------------------------------------------------------------------- Eq. 3-5 on arrays
def test_centroids_equal_numpy_class_means():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(300, 16)).astype(np.float32)
    y = rng.integers(0, K, 300)
    y[:5] = -1  # unknown labels are ignored
    c = S.class_centroids(f, y, K)
    expected = np.stack([f[y == k].astype(np.float64).mean(axis=0) for k in range(K)])
    assert c.shape == (K, 16) and c.dtype == np.float64
    np.testing.assert_allclose(c, expected, rtol=1e-12, atol=1e-12)
    # Streaming accumulation in batches gives the same centroids bit for bit.
    acc = S.CentroidAccumulator(K)
    for a in range(0, 300, 37):
        acc.update(f[a:a + 37], y[a:a + 37])
    np.testing.assert_array_equal(acc.centroids(), c)


def test_centroids_missing_class_and_bad_labels_raise():
    f = np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"classes \[2\].*no labelled anchor"):
        S.class_centroids(f, [0, 1, 0, 1], 3)
    with pytest.raises(ValueError, match="labels must be in"):
        S.class_centroids(f, [0, 1, 5, 1], 3)


def test_cosine_and_margin_equal_numpy():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(500, 32)).astype(np.float32)
    c = rng.normal(size=(K, 32))
    sel = S.margin_select(f, c, delta=0.1)
    cos = numpy_cosine(f, c)
    np.testing.assert_allclose(sel.scores, cos, atol=1e-6)
    top = np.sort(cos, axis=1)
    np.testing.assert_allclose(sel.margin, top[:, -1] - top[:, -2], atol=1e-6)
    expected = np.where(top[:, -1] - top[:, -2] >= 0.1, cos.argmax(axis=1), -1)
    clear = np.abs((top[:, -1] - top[:, -2]) - 0.1) > 1e-5  # away from the float boundary
    np.testing.assert_array_equal(sel.pseudo_labels[clear], expected[clear])
    assert 0 < sel.selected.sum() < 500
    np.testing.assert_array_equal(sel.counts(), np.bincount(sel.pseudo_labels[sel.selected], minlength=K))


def test_cosine_is_row_independent_bitwise():
    rng = np.random.default_rng(2)
    f = rng.normal(size=(257, 40)).astype(np.float32)
    c = rng.normal(size=(K, 40))
    whole = S.cosine_similarity(f, c)
    pieces = np.concatenate([S.cosine_similarity(f[a:a + 10], c) for a in range(0, 257, 10)])
    np.testing.assert_array_equal(whole, pieces)


def test_margin_rule_edge_cases():
    c = np.eye(3)
    features = np.array([
        [1.0, 1.0, 0.0],  # exact tie between classes 0 and 1
        [1.0, 0.5, 0.0],  # class 0 by a positive margin
        [0.0, 0.0, 0.0],  # zero norm: cosine undefined
        [0.0, 0.0, 2.0],  # class 2 with margin exactly 1.0
    ], dtype=np.float32)
    at0 = S.margin_select(features, c, delta=0.0)
    # Ties are rejected even at δ = 0 (the label would be ambiguous).
    assert at0.pseudo_labels.tolist() == [-1, 0, -1, 2]
    assert at0.margin[0] == 0 and at0.nearest[0] == -1
    # Zero-norm features: similarity 0 to every centroid, margin 0, rejected.
    np.testing.assert_array_equal(at0.scores[2], np.zeros(3, np.float32))
    assert at0.margin[2] == 0 and at0.nearest[2] == -1
    # The boundary is inclusive: margin == δ is accepted (Eq. 5 uses ≤ / ≥).
    assert at0.margin[3] == 1.0
    assert S.margin_select(features, c, delta=1.0).pseudo_labels.tolist() == [-1, -1, -1, 2]
    # δ above every margin selects nothing.
    none = S.margin_select(features, c, delta=1.0 + 1e-9)
    assert (none.pseudo_labels == -1).all() and none.counts().sum() == 0
    with pytest.raises(ValueError, match="δ must be a number >= 0"):
        S.margin_select(features, c, delta=-0.1)
    with pytest.raises(ValueError, match="δ must be a number >= 0"):
        S.margin_select(features, c, delta=float("nan"))
    with pytest.raises(ValueError, match="non-finite"):
        S.margin_select(np.array([[np.nan, 0, 1]]), c, delta=0.0)
    with pytest.raises(ValueError, match="zero vectors"):
        S.margin_select(features, np.array([[1.0, 0, 0], [0, 0, 0]]), delta=0.0)


def test_softmax_select_matches_numpy_and_rejects_ties():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(400, K)) * 2
    z[0] = 0.0  # all classes tied
    sel = S.softmax_select(z, threshold=0.5)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(sel.scores, p, atol=1e-7)
    expected = np.where(p.max(1) >= 0.5, p.argmax(1), -1)
    expected[0] = -1
    np.testing.assert_array_equal(sel.pseudo_labels, expected)
    assert sel.pseudo_labels[0] == -1
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        S.softmax_select(z, threshold=1.5)


# ----------------------------------------------------------------------------- class balance
def _balanced_fixture():
    """Candidates per class: 50, 30, 5, 0, 0, 0, 0, plus 10 tied samples; distinct margins."""
    rng = np.random.default_rng(4)
    nearest = np.concatenate([np.full(50, 0), np.full(30, 1), np.full(5, 2), np.full(10, -1)])
    margin = rng.uniform(0.01, 0.5, nearest.size)
    margin[nearest == -1] = 0.0
    perm = rng.permutation(nearest.size)
    return nearest[perm], margin[perm]


def test_balanced_topk_counts_and_order():
    nearest, margin = _balanced_fixture()
    labels = S.balanced_topk(nearest, margin, 10, K)
    assert np.bincount(labels[labels >= 0], minlength=K).tolist() == [10, 10, 5, 0, 0, 0, 0]
    for c in (0, 1):  # the chosen ones are the class's largest margins
        chosen = margin[labels == c]
        rest = margin[(nearest == c) & (labels != c)]
        assert chosen.min() > rest.max()
    assert (labels[nearest == -1] == -1).all()


def test_balanced_quantile_counts():
    nearest, margin = _balanced_fixture()
    q = 0.5
    labels = S.balanced_quantile(nearest, margin, q, K)
    counts = np.bincount(labels[labels >= 0], minlength=K)
    # inverted-CDF threshold = the ceil(q n)-th smallest margin; >= keeps n - ceil(q n) + 1.
    assert counts[:3].tolist() == [n - math.ceil(q * n) + 1 for n in (50, 30, 5)]
    assert counts[3:].sum() == 0
    assert S.balanced_quantile(nearest, margin, 0.0, K)[nearest >= 0].min() >= 0  # q=0 keeps all


def test_cap_and_matched_parameters():
    nearest, margin = _balanced_fixture()
    labels = S.margin_rule(nearest, margin, 0.0)
    capped = S.cap_per_class(labels, margin, 8, K)
    assert np.bincount(capped[capped >= 0], minlength=K).tolist() == [8, 8, 5, 0, 0, 0, 0]
    assert margin[capped == 0].min() >= margin[(labels == 0) & (capped != 0)].max()
    cols = {"pool_index": np.arange(nearest.size), "nearest": nearest, "margin": margin}
    delta = float(np.quantile(margin[nearest >= 0], 0.6))
    target = int((S.margin_rule(nearest, margin, delta) >= 0).sum())
    lab, _, params = S.decide(cols, "balanced_topk", K, delta=delta)
    assert params["per_class_k"] == math.ceil(target / K) and params["matched_count"] == target
    assert np.bincount(lab[lab >= 0], minlength=K).max() <= params["per_class_k"]
    lab, _, params = S.decide(cols, "balanced_quantile", K, delta=delta)
    assert abs(int((lab >= 0).sum()) - target) <= 3  # same share per class -> about the same total
    with pytest.raises(ValueError, match="needs per_class_k"):
        S.decide(cols, "balanced_topk", K)


# ----------------------------------------------------------------------------- streaming
def test_streaming_equals_in_memory_exactly(tmp_path):
    model, anchor, pool = ElementwiseNet(), make_anchor(), Pool(203)
    summary = S.select_auxiliary(model, anchor, pool, 0.05, manifest_dir=tmp_path, batch_size=16,
                                 chunk_size=50, progress=False)
    assert summary.n_chunks == 5 and summary.computed_chunks == 5
    # In memory: one forward over everything, Eq. 3 on the anchor, Eq. 4-5 on the pool.
    fa, _ = all_features(model, anchor)
    centroids = S.class_centroids(fa, anchor.tensors[1].numpy(), K)
    fp, zp = all_features(model, pool)
    ref = S.margin_select(fp, centroids, 0.05)
    man = S.open_manifest(tmp_path)
    np.testing.assert_array_equal(man.centroids, centroids)
    cols = man.columns(list(S.CHUNK_COLUMNS))
    np.testing.assert_array_equal(cols["pool_index"], np.arange(203))
    np.testing.assert_array_equal(cols["cosine"], ref.scores)
    np.testing.assert_array_equal(cols["margin"], ref.margin)
    np.testing.assert_array_equal(cols["nearest"], ref.nearest)
    np.testing.assert_array_equal(cols["softmax"], S.softmax_select(zp, 0.5).scores)
    sel = summary.selection
    np.testing.assert_array_equal(sel.pool_index, np.flatnonzero(ref.selected))
    np.testing.assert_array_equal(sel.pseudo_labels, ref.pseudo_labels[ref.selected])
    np.testing.assert_array_equal(sel.similarity, ref.scores[ref.selected, ref.pseudo_labels[ref.selected]])
    assert sel.counts().tolist() == ref.counts().tolist()
    assert pool.getitems_calls > 0  # batched access goes through __getitems__
    assert summary.selection_file.is_file()
    loaded = S.load_selection(summary.selection_file)
    np.testing.assert_array_equal(loaded.pool_index, sel.pool_index)
    assert loaded.params == {"delta": 0.05}


def test_streaming_with_a_conv_model_equals_same_batches(tmp_path):
    """An ordinary conv net: identical to an in-memory pass over the same batches."""
    model, anchor, pool = LinearNet(), make_anchor(size=6), Pool(90, size=6)
    summary = S.select_auxiliary(model, anchor, pool, 0.0, manifest_dir=tmp_path, batch_size=10,
                                 chunk_size=30, progress=False)
    fa, _ = all_features(model, anchor, batch_size=10)
    fp, _ = all_features(model, pool, batch_size=10)
    ref = S.margin_select(fp, S.class_centroids(fa, anchor.tensors[1].numpy(), K), 0.0)
    np.testing.assert_array_equal(S.open_manifest(tmp_path).columns(["cosine"])["cosine"], ref.scores)
    np.testing.assert_array_equal(summary.selection.pool_index, np.flatnonzero(ref.selected))
    assert model.training  # the model's mode is restored


def test_iter_features_leaves_no_mode_behind():
    """Between yielded batches the caller sees its own train mode and no inference mode."""
    model, anchor = LinearNet(), make_anchor(n=40, size=6)
    model.train()
    batches = 0
    for idx, f, z, y in S.iter_features(model, anchor, batch_size=16, progress=False):
        assert not torch.is_inference_mode_enabled() and model.training
        assert f.shape == (len(idx), 10) and z.shape == (len(idx), K)
        np.testing.assert_array_equal(y, anchor.tensors[1].numpy()[idx])
        batches += 1
    assert batches == 3


class Interrupt(Exception):
    pass


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    model, anchor, pool = ElementwiseNet(), make_anchor(), Pool(230)
    kwargs = dict(batch_size=16, chunk_size=40, progress=False)
    whole = S.select_auxiliary(model, anchor, pool, 0.05, manifest_dir=tmp_path / "a", **kwargs)

    def stop_after_two(chunk_id, completed, total):
        if completed == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        S.select_auxiliary(model, anchor, pool, 0.05, manifest_dir=tmp_path / "b",
                           on_chunk=stop_after_two, **kwargs)
    assert sorted(p.name for p in (tmp_path / "b" / "shard-00000-of-00001").glob("chunk-*.npz")) == \
        ["chunk-000000.npz", "chunk-000001.npz"]
    assert not (tmp_path / "b" / mf.MANIFEST_FILE).exists()  # nothing half-merged
    # A kill can also leave a half-written temporary file, and a chunk the state lists can be
    # gone (e.g. a disk cleaned by hand): the resume ignores the first and recomputes the second.
    shard = tmp_path / "b" / "shard-00000-of-00001"
    (shard / ".chunk-000002.npz.999.tmp").write_bytes(b"half")
    (shard / "chunk-000001.npz").unlink()
    seen = []
    resumed = S.select_auxiliary(model, anchor, pool, 0.05, manifest_dir=tmp_path / "b",
                                 on_chunk=lambda c, d, t: seen.append(c), **kwargs)
    assert resumed.resumed_chunks == 1 and resumed.computed_chunks == whole.n_chunks - 1
    assert seen == list(range(1, whole.n_chunks))  # only the missing chunks were computed
    assert not list(shard.glob(".*.tmp"))
    a, b = S.open_manifest(tmp_path / "a"), S.open_manifest(tmp_path / "b")
    assert a.tag == b.tag
    for name in S.CHUNK_COLUMNS:
        np.testing.assert_array_equal(a.columns([name])[name], b.columns([name])[name])
    np.testing.assert_array_equal(whole.selection.pool_index, resumed.selection.pool_index)
    np.testing.assert_array_equal(whole.selection.pseudo_labels, resumed.selection.pseudo_labels)


def test_rerun_with_other_delta_reuses_scores_and_other_model_is_refused(tmp_path):
    model, anchor, pool = ElementwiseNet(), make_anchor(), Pool(120)
    kwargs = dict(batch_size=16, chunk_size=40, progress=False)
    S.select_auxiliary(model, anchor, pool, 0.05, manifest_dir=tmp_path, **kwargs)
    again = S.select_auxiliary(model, anchor, pool, 0.2, manifest_dir=tmp_path, **kwargs)
    assert again.computed_chunks == 0 and again.selection.params == {"delta": 0.2}
    assert len(list((tmp_path / "selections").glob("*.npz"))) == 2  # one file per (rule, δ)
    with pytest.raises(S.ManifestError, match="another model, anchor, pool"):
        S.select_auxiliary(ElementwiseNet(seed=5), anchor, pool, 0.05, manifest_dir=tmp_path, **kwargs)
    with pytest.raises(S.ManifestError, match="pool"):
        S.select_auxiliary(model, anchor, Pool(120, seed=9), 0.05, manifest_dir=tmp_path, **kwargs)
    fresh = S.select_auxiliary(ElementwiseNet(seed=5), anchor, pool, 0.05, manifest_dir=tmp_path,
                               overwrite=True, **kwargs)
    assert fresh.computed_chunks == fresh.n_chunks
    assert len(list((tmp_path / "selections").glob("*.npz"))) == 1


def test_rule_arguments_are_checked_before_the_pass(tmp_path):
    model, anchor, pool = ElementwiseNet(), make_anchor(), Pool(20)
    with pytest.raises(ValueError, match="rule 'margin' needs delta"):
        S.select_auxiliary(model, anchor, pool, manifest_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="unknown selection rule"):
        S.select_auxiliary(model, anchor, pool, 0.1, rule="entropy", manifest_dir=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("delta", [0.0, 0.03, 0.1, 10.0])
def test_reselect_equals_fresh_selection(tmp_path, delta):
    model, anchor, pool = ElementwiseNet(), make_anchor(), Pool(150)
    kwargs = dict(batch_size=32, chunk_size=64, progress=False)
    S.select_auxiliary(model, anchor, pool, 0.05, manifest_dir=tmp_path / "m", **kwargs)
    re = S.reselect(tmp_path / "m", rule="margin", delta=delta)
    fresh = S.select_auxiliary(model, anchor, pool, delta, manifest_dir=tmp_path / "f", **kwargs).selection
    for field in ("pool_index", "pseudo_labels", "similarity", "score"):
        np.testing.assert_array_equal(getattr(re, field), getattr(fresh, field))
    fa, _ = all_features(model, anchor)
    fp, zp = all_features(model, pool)
    ref = S.margin_select(fp, S.class_centroids(fa, anchor.tensors[1].numpy(), K), delta)
    np.testing.assert_array_equal(re.pool_index, np.flatnonzero(ref.selected))
    if delta == 10.0:
        assert len(re) == 0 and re.counts().sum() == 0
    # The softmax rule from the same manifest equals softmax_select on the logits.
    soft = S.reselect(tmp_path / "m", rule="softmax", softmax_threshold=0.3)
    ref_soft = S.softmax_select(zp, 0.3)
    np.testing.assert_array_equal(soft.pool_index, np.flatnonzero(ref_soft.selected))
    np.testing.assert_array_equal(soft.pseudo_labels, ref_soft.pseudo_labels[ref_soft.selected])


def test_softmax_matched_count_and_compare_rules(tmp_path):
    model, anchor, pool = ElementwiseNet(), make_anchor(), Pool(300)
    S.select_auxiliary(model, anchor, pool, 0.02, manifest_dir=tmp_path, batch_size=64, progress=False)
    margin = S.reselect(tmp_path, rule="margin", delta=0.02)
    soft = S.reselect(tmp_path, rule="softmax", delta=0.02)  # threshold matched to the count
    assert len(soft) == len(margin) and soft.params["matched_count"] == len(margin)
    table = S.compare_rules(tmp_path, 0.02, pool)
    totals = table[table["name"] == "all"].set_index("rule")["selected"]
    assert totals["margin"] == totals["softmax"] == len(margin)
    assert totals["balanced_topk"] <= K * math.ceil(len(margin) / K)
    assert set(table["rule"]) == set(S.report.COMPARED_RULES)
    assert table["precision"].dropna().between(0, 1).all() and table["precision"].notna().any()


def test_delta_sweep_counts_and_precision(tmp_path):
    model, anchor, pool = ElementwiseNet(), make_anchor(), Pool(250)
    S.select_auxiliary(model, anchor, pool, 0.0, manifest_dir=tmp_path, batch_size=64, progress=False)
    deltas = [0.0, 0.01, 0.05, 0.2, 5.0]
    sweep = S.delta_sweep(tmp_path, deltas, pool.true_labels)
    totals = sweep[sweep["name"] == "all"].set_index("delta")
    for d in deltas:
        sel = S.reselect(tmp_path, delta=d)
        assert totals.loc[d, "selected"] == len(sel)
        correct = int((pool.true_labels[sel.pool_index] == sel.pseudo_labels).sum())
        assert totals.loc[d, "correct"] == correct
        per_class = sweep[(sweep["delta"] == d) & (sweep["class"] >= 0)]["selected"].tolist()
        assert per_class == sel.counts().tolist()
    assert list(totals["selected"]) == sorted(totals["selected"], reverse=True)
    assert totals.loc[5.0, "selected"] == 0 and np.isnan(totals.loc[5.0, "precision"])


# ----------------------------------------------------------------------------- sharding
def test_sharded_run_merges_to_the_single_run(tmp_path):
    model, anchor, pool = ElementwiseNet(), make_anchor(), Pool(211)
    centroids = S.compute_centroids(model, anchor, batch_size=32, progress=False)
    kwargs = dict(batch_size=16, chunk_size=30, progress=False, centroids=centroids)
    single = S.select_auxiliary(model, None, pool, 0.05, manifest_dir=tmp_path / "one", **kwargs)
    for rank in (1, 0):  # order does not matter
        part = S.select_auxiliary(model, None, pool, 0.05, manifest_dir=tmp_path / "two",
                                  shard=(rank, 2), **kwargs)
        assert part.selection is None and part.shard == (rank, 2)
    assert part.shard_range == (0, 105)
    merged = S.merge_manifests(tmp_path / "two")
    one = S.open_manifest(tmp_path / "one")
    for name in ("pool_index", "cosine", "softmax", "margin"):
        np.testing.assert_array_equal(merged.columns([name])[name], one.columns([name])[name])
    sel = S.reselect(merged, delta=0.05)
    np.testing.assert_array_equal(sel.pool_index, single.selection.pool_index)


def test_merge_refuses_incomplete_or_inconsistent_shards(tmp_path):
    model, anchor, pool = ElementwiseNet(), make_anchor(), Pool(100)
    c = S.compute_centroids(model, anchor, progress=False)
    S.select_auxiliary(model, None, pool, 0.05, manifest_dir=tmp_path, centroids=c, shard=(0, 2),
                       batch_size=25, progress=False)
    with pytest.raises(S.ManifestError, match=r"shards \[1\] of 2 are missing"):
        S.merge_manifests(tmp_path)
    with pytest.raises(S.ManifestError, match="call merge_manifests"):
        S.open_manifest(tmp_path)
    # A rank that used other centroids writes its shard, but the merge refuses to mix them.
    S.select_auxiliary(model, None, pool, 0.05, manifest_dir=tmp_path, centroids=c + 1.0,
                       shard=(1, 2), batch_size=25, progress=False)
    with pytest.raises(S.ManifestError, match="different models, anchors or pools"):
        S.merge_manifests(tmp_path)


# ----------------------------------------------------------------------------- reports, dataset
def test_selection_report_numbers():
    true = np.array([0, 0, 1, 1, 2, 2, 2, 3])
    sel = S.PoolSelection(pool_index=np.array([0, 1, 2, 4, 5]), pseudo_labels=np.array([0, 1, 1, 2, 0]),
                          similarity=np.ones(5, np.float32), score=np.ones(5), n_pool=8, num_classes=4,
                          label_names=["a", "b", "c", "d"], rule="margin", params={"delta": 0.1})
    rep = S.selection_report(sel, true).set_index("name")
    assert rep["selected"].tolist() == [2, 2, 1, 0, 5]
    assert rep.loc["a", "precision"] == 0.5 and rep.loc["b", "precision"] == 0.5
    assert rep.loc["c", "precision"] == 1.0 and np.isnan(rep.loc["d", "precision"])
    assert rep.loc["all", "precision"] == pytest.approx(3 / 5)
    assert rep.loc["c", "recall"] == pytest.approx(1 / 3) and rep.loc["all", "recall"] == pytest.approx(3 / 8)
    no_truth = S.selection_report(sel)
    assert no_truth["precision"].isna().all() and no_truth["selected"].sum() == 10


def test_auxiliary_dataset_yields_pool_images_with_pseudo_labels(tmp_path):
    model, anchor, pool = ElementwiseNet(), make_anchor(), Pool(120)
    summary = S.select_auxiliary(model, anchor, pool, 0.02, manifest_dir=tmp_path, batch_size=32,
                                 progress=False)
    sel = summary.selection
    ds = S.AuxiliaryDataset(pool, sel)
    assert len(ds) == len(sel) > 0
    image, label = ds[0]
    assert torch.equal(image, pool.images[sel.pool_index[0]]) and label == sel.pseudo_labels[0]
    np.testing.assert_array_equal(ds.labels, sel.pseudo_labels)
    np.testing.assert_array_equal(ds.true_labels, pool.true_labels[sel.pool_index])
    batch = ds.__getitems__([1, 0])
    assert batch[0][1] == ds.labels[1] and torch.equal(batch[1][0], image)
    from_file = S.AuxiliaryDataset(pool, summary.selection_file)
    from_dir = S.AuxiliaryDataset(pool, tmp_path, rule="margin", delta=0.02)
    np.testing.assert_array_equal(from_file.labels, ds.labels)
    np.testing.assert_array_equal(from_dir.pool_index, ds.pool_index)
    assert S.AuxiliaryDataset(TensorDataset(pool.images, torch.zeros(120)), sel).true_labels is None
    with pytest.raises(ValueError, match="pool of 120 samples"):
        S.AuxiliaryDataset(Pool(50), sel)


def test_read_manifest_frame_and_ranked(tmp_path):
    model, anchor, pool = ElementwiseNet(), make_anchor(), Pool(64)
    summary = S.select_auxiliary(model, anchor, pool, 0.0, manifest_dir=tmp_path, batch_size=16,
                                 progress=False, label_names=[f"e{k}" for k in range(K)])
    df = S.read_manifest(tmp_path, selection=summary.selection)
    assert len(df) == 64 and "cos_e3" in df and "prob_e6" in df
    assert (df["pseudo_label"] >= 0).sum() == len(summary.selection)
    c = int(np.argmax(summary.selection.counts()))
    ranked = summary.selection.ranked(c)
    sims = df.set_index("pool_index").loc[ranked, f"cos_e{c}"].to_numpy()
    assert (np.diff(sims) <= 0).all() and len(ranked) == summary.selection.counts()[c]


def test_in_memory_score_table_matches_manifest(tmp_path):
    model, anchor, pool = ElementwiseNet(), make_anchor(), Pool(80)
    S.select_auxiliary(model, anchor, pool, 0.05, manifest_dir=tmp_path, batch_size=16, progress=False)
    man = S.open_manifest(tmp_path)
    fp, zp = all_features(model, pool)
    table = S.ScoreTable.from_arrays(fp, zp, man.centroids)
    a = S.reselect(table, rule="balanced_quantile", delta=0.05, per_class_cap=3)
    b = S.reselect(man, rule="balanced_quantile", delta=0.05, per_class_cap=3)
    np.testing.assert_array_equal(a.pool_index, b.pool_index)
    assert a.counts().max() <= 3


def test_rule_tally_counts_where_one_rule_is_more_precise():
    import pandas as pd

    from omnifer_lib.select import rule_tally

    rows = []
    for delta, m, s in ((0.0, 0.8, 0.7), (0.1, 0.6, 0.9), (0.2, 0.5, 0.5), (0.3, float("nan"), float("nan"))):
        rows += [{"delta": delta, "rule": "margin", "class": -1, "precision": m},
                 {"delta": delta, "rule": "softmax", "class": -1, "precision": s},
                 {"delta": delta, "rule": "margin", "class": 0, "precision": 0.0}]  # per-class rows are ignored
    assert rule_tally(pd.DataFrame(rows)) == {"wins": 1, "losses": 1, "ties": 1, "deltas": 3}
    assert rule_tally(pd.DataFrame(rows), "softmax", "margin")["wins"] == 1
    assert rule_tally(pd.DataFrame(rows[:1]), "margin", "softmax")["deltas"] == 0


def test_rule_parameters_are_what_each_rule_reads():
    from omnifer_lib.select import rule_parameters

    given = dict(delta=0.1, softmax_threshold=0.9, per_class_k=None, class_quantile=None, per_class_cap=400)
    assert rule_parameters("margin", **given) == {"delta": 0.1, "per_class_cap": 400}
    assert rule_parameters("softmax", **given) == {"softmax_threshold": 0.9, "per_class_cap": 400}
    # left None, a rule's own parameter is matched to the margin rule's count at delta: delta matters
    assert rule_parameters("softmax", **{**given, "softmax_threshold": None}) == {
        "softmax_threshold": None, "delta": 0.1, "per_class_cap": 400}
    assert rule_parameters("balanced_quantile", **given) == {"class_quantile": None, "delta": 0.1,
                                                             "per_class_cap": 400}
    with pytest.raises(ValueError, match="unknown selection rule"):
        rule_parameters("top1", **given)
