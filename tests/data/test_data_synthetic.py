"""Embedded synthetic FER data: determinism, laziness, attributes, domains."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from omnifer_lib.data import DOMAINS, LABELS, describe, load, to_tensors
from omnifer_lib.data.synthetic import PROTOTYPES, SyntheticFER, domain_style, prototype_matrix


def test_same_seed_identical_tensors_other_seed_differs():
    a = load("synthetic", domain="rafdb", size=40, image_size=32, seed=3)
    b = load("synthetic", domain="rafdb", size=40, image_size=32, seed=3, cache=False)
    c = load("synthetic", domain="rafdb", size=40, image_size=32, seed=4)
    xa, ya = to_tensors(a, batch_size=16, progress=False)
    xb, yb = to_tensors(b, batch_size=7, progress=False)  # other batching, no cache
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    xc, _ = to_tensors(c, progress=False)
    assert not torch.equal(xa, xc)
    assert np.array_equal(a.subjects, b.subjects) and np.array_equal(a.true_labels, b.true_labels)


def test_item_access_matches_batched_render_and_dataloader():
    ds = load("synthetic", domain="ms1m", size=30, image_size=32, seed=1, cache=False)
    img, lab = ds[7]
    assert img.shape == (3, 32, 32) and img.dtype == torch.float32 and 0 <= img.min() <= img.max() <= 1
    items = ds.__getitems__([3, 7, 7])
    assert torch.equal(items[1][0], img) and torch.equal(items[1][0], items[2][0])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8, shuffle=False)))
    assert torch.equal(batch[0][7], img) and batch[1].tolist() == [-1] * 8
    u8, labels = ds.render([7])
    assert u8.dtype == torch.uint8 and torch.equal(u8[0].float() / 255, img) and labels.tolist() == [-1]


def test_attributes_and_hidden_labels():
    pool = load("synthetic", domain="ms1m", size=200, image_size=32)
    assert pool.name == "synthetic:ms1m" and pool.domain == "ms1m" and pool.classes == LABELS
    assert (pool.labels == -1).all() and pool.labels.dtype == np.int64
    assert set(np.unique(pool.true_labels)) <= set(range(7))
    counts = np.bincount(pool.true_labels, minlength=7) / 200
    assert counts[LABELS.index("neutral")] + counts[LABELS.index("happy")] > 0.6  # skewed prior
    assert pool.n_subjects == 10 and len(np.unique(pool.subjects)) == 10
    raf = load("synthetic", domain="rafdb", size=500, image_size=32)
    noisy = (raf.labels != raf.true_labels).mean()
    assert 0.01 < noisy < 0.12  # the anchor domain's label noise
    ck = load("synthetic", domain="ckplus", size=100, image_size=32)
    assert (ck.labels == ck.true_labels).all()
    assert "synthetic 'rafdb' domain" in describe(raf) and "500 images" in describe(raf)


def test_train_and_test_subjects_are_disjoint():
    tr = load("synthetic", split="train", domain="jaffe", image_size=32)
    te = load("synthetic", split="test", domain="jaffe", image_size=32)
    assert len(tr) == 213 and len(np.unique(tr.subjects)) == 10
    assert not set(tr.subjects.tolist()) & set(te.subjects.tolist())


def test_lazy_large_pool_renders_on_demand():
    pool = load("synthetic", domain="ms1m", size=1_000_000, image_size=32)
    assert pool._cache_enabled is False and pool._cache is None
    img, _ = pool[999_999]
    assert img.shape == (3, 32, 32) and pool._cache is None
    assert pool.labels.nbytes == 8_000_000  # only per-sample label arrays scale with size


def test_small_dataset_caches_and_pickles():
    ds = load("synthetic", domain="mmi", size=20, image_size=32)
    first = ds[5][0]
    assert ds._cache is not None and ds._cache.shape == (20, 3, 32, 32)
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[5][0], first)


def test_domains_look_different():
    means = {}
    for name in DOMAINS:
        x, _ = to_tensors(load("synthetic", domain=name, size=24, image_size=32, seed=0), progress=False)
        means[name] = x
    gray = lambda x: (x[:, 0] - x[:, 1]).abs().max().item()  # noqa: E731
    assert gray(means["fer2013"]) == 0 and gray(means["ckplus"]) == 0 and gray(means["jaffe"]) == 0
    assert gray(means["rafdb"]) > 0.1 and gray(means["mmi"]) > 0.1
    # lab domains have plainer backgrounds than in-the-wild ones (corner patch variance)
    corner = lambda x: x[:, :, :4, :4].std(dim=0).mean().item()  # noqa: E731
    assert corner(means["ckplus"]) < corner(means["rafdb"])


def test_transform_receives_tensor():
    seen = []
    ds = load("synthetic", domain="rafdb", size=5, image_size=32,
              transform=lambda t: seen.append(tuple(t.shape)) or t.flip(-1))
    img, _ = ds[0]
    assert seen == [(3, 32, 32)]
    plain = load("synthetic", domain="rafdb", size=5, image_size=32)[0][0]
    assert torch.equal(img, plain.flip(-1))


def test_prototypes_follow_emfacs():
    assert set(PROTOTYPES["happy"]) == {6, 12}
    assert set(PROTOTYPES["sad"]) == {1, 4, 15}
    assert set(PROTOTYPES["surprise"]) == {1, 2, 5, 26}
    assert set(PROTOTYPES["fear"]) == {1, 2, 4, 5, 7, 20, 26}
    assert set(PROTOTYPES["anger"]) == {4, 5, 7, 23}
    assert set(PROTOTYPES["disgust"]) == {9, 15, 16}
    assert PROTOTYPES["neutral"] == {}
    assert np.array_equal(domain_style(DOMAINS["rafdb"]), prototype_matrix())  # anchor = canonical
    assert not np.allclose(domain_style(DOMAINS["ckplus"]), prototype_matrix())


def test_expression_changes_the_face_identity_stays():
    ds = SyntheticFER(domain="ckplus", size=4, image_size=48, seed=0, cache=False)
    ds.true_labels[:] = LABELS.index("neutral")
    neutral = ds.render([0])[0].float()
    ds.true_labels[0] = LABELS.index("surprise")
    surprise = ds.render([0])[0].float()
    ds.true_labels[0] = LABELS.index("neutral")
    again = ds.render([0])[0].float()
    assert torch.equal(neutral, again)
    diff = (surprise - neutral).abs()
    assert diff[..., 24:, :].max() > 25  # the lower face changes visibly (open mouth)
    assert diff[..., :8, :].max() <= 2  # the top rows (hair, background) do not


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown domain 'affectnet'"):
        load("synthetic", domain="affectnet")
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load("synthetic", split="val")
    with pytest.raises(ValueError, match="takes no root"):
        load("synthetic", root="/data")
    with pytest.raises(IndexError):
        load("synthetic", size=3, image_size=32)[3]


def test_rendered_images_can_be_adopted_by_an_identical_dataset():
    from omnifer_lib.data import load

    a = load("synthetic", split="test", domain="jaffe", size=12, image_size=16, seed=3)
    images = a.rendered().clone()
    b = load("synthetic", split="test", domain="jaffe", size=12, image_size=16, seed=3)
    b.use_rendered(images)
    assert torch.equal(b[5][0], a[5][0])
    with pytest.raises(ValueError, match="shape"):
        b.use_rendered(images[:3])
