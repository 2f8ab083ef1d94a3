"""Evaluation protocols: subject-independent folds, LOSO, semi-supervised split, views."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from omnifer_lib.data import LABELS, load, to_tensors
from omnifer_lib.data.protocols import (DatasetView, leave_one_subject_out, official_splits,
                                        semi_supervised_split, subject_kfold)


def make_ckplus(root, n_subjects=13):
    """A CK+ fixture: each subject has 1-3 labeled sequences of 5 frames."""
    rng = np.random.default_rng(0)
    for s in range(n_subjects):
        subj = f"S{100 + s:03d}"
        for q in range(1 + s % 3):
            seq = f"{q + 1:03d}"
            for k in range(1, 6):
                p = root / "cohn-kanade-images" / subj / seq / f"{subj}_{seq}_{k:08d}.png"
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.new("L", (8, 8), 10 * k).save(p)
            e = root / "Emotion" / subj / seq / f"{subj}_{seq}_00000005_emotion.txt"
            e.parent.mkdir(parents=True, exist_ok=True)
            e.write_text(f"{float(rng.choice([1, 3, 4, 5, 6, 7])):.7e}")


def test_ckplus_10fold_is_subject_disjoint_and_partitions(tmp_path):
    make_ckplus(tmp_path)
    ds = load("ckplus", root=tmp_path)
    folds = subject_kfold(ds, k=10, seed=0)
    assert len(folds) == 10
    seen = []
    for train, test in folds:
        assert not set(train.subjects.tolist()) & set(test.subjects.tolist())
        assert len(train) + len(test) == len(ds)
        seen.extend(test.indices.tolist())
        assert np.array_equal(test.labels, ds.labels[test.indices])
    assert sorted(seen) == list(range(len(ds)))  # every image tested exactly once
    sizes = [len(t) for _, t in folds]
    assert max(sizes) - min(sizes) <= 12  # balanced: at most one subject's worth apart
    with pytest.raises(ValueError, match="13 subjects cannot fill 20"):
        subject_kfold(ds, k=20)


def test_jaffe_leave_one_subject_out(tmp_path):
    names = ["KA.AN1.39", "KA.HA2.40", "KL.NE1.1", "KL.SA3.2", "YM.SU1.3", "YM.FE1.4", "YM.DI2.5"]
    for n in names:
        Image.new("L", (8, 8), 50).save(tmp_path / f"{n}.tiff")
    ds = load("jaffe", root=tmp_path)
    folds = leave_one_subject_out(ds)
    assert [set(t.subjects.tolist()) for _, t in folds] == [{"KA"}, {"KL"}, {"YM"}]
    for train, test in folds:
        assert test.subjects[0] not in set(train.subjects.tolist())
        assert len(train) + len(test) == len(ds)
    assert [len(t) for _, t in folds] == [2, 2, 3]


def test_semi_supervised_split_hides_pool_labels():
    ds = load("synthetic", domain="rafdb", size=300, image_size=32)
    anchor, pool = semi_supervised_split(ds, labeled=5, seed=1)
    assert np.array_equal(np.bincount(anchor.labels, minlength=7), [5] * 7)
    assert len(anchor) + len(pool) == 300
    assert not set(anchor.indices.tolist()) & set(pool.indices.tolist())
    assert (pool.labels == -1).all()
    assert np.array_equal(pool.true_labels, ds.true_labels[pool.indices])
    assert all(lab == -1 for _, lab in pool.__getitems__([0, 1, 2]))
    assert pool.domain == "rafdb" and pool.subjects is not None  # attributes pass through
    frac_anchor, _ = semi_supervised_split(ds, labeled=0.2, seed=1)
    counts = np.bincount(ds.labels, minlength=7)
    assert np.array_equal(np.bincount(frac_anchor.labels, minlength=7),
                          np.maximum(1, np.round(0.2 * counts)).astype(int))
    again, _ = semi_supervised_split(ds, labeled=5, seed=1)
    assert np.array_equal(again.indices, anchor.indices)
    with pytest.raises(ValueError, match="fewer than the 1000 labeled"):
        semi_supervised_split(ds, labeled=1000)
    with pytest.raises(ValueError, match="fraction must lie in"):
        semi_supervised_split(ds, labeled=1.5)


def test_semi_supervised_on_file_dataset_keeps_true_labels(tmp_path):
    for i, (cls, n) in enumerate([("happy", 3), ("sad", 2)]):
        for j in range(n):
            p = tmp_path / cls / f"{j}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (i * 50, 0, 0)).save(p)
    ds = load("folder", root=tmp_path)
    anchor, pool = semi_supervised_split(ds, labeled=1)
    assert len(anchor) == 2 and (pool.labels == -1).all()
    assert sorted(pool.true_labels.tolist()) == [LABELS.index("happy")] * 2 + [LABELS.index("sad")]
    x, y = to_tensors(pool, progress=False)
    assert x.shape == (3, 3, 8, 8) and y.tolist() == [-1, -1, -1]


def test_view_batches_through_dataloader_and_nests():
    ds = load("synthetic", domain="ckplus", size=40, image_size=32)
    view = DatasetView(ds, [5, 3, 9])
    inner = DatasetView(view, [2, 0])
    x, y = next(iter(torch.utils.data.DataLoader(inner, batch_size=2)))
    assert torch.equal(x[0], ds[9][0]) and torch.equal(x[1], ds[5][0])
    assert y.tolist() == [int(ds.labels[9]), int(ds.labels[5])]
    assert inner.subjects.tolist() == [ds.subjects[9], ds.subjects[5]]
    with pytest.raises(IndexError):
        DatasetView(ds, [40])


def test_official_splits_synthetic():
    splits = official_splits("synthetic", domain="jaffe", image_size=32)
    assert set(splits) == {"train", "test"} and len(splits["test"]) == 213
