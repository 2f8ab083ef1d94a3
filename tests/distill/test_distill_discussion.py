"""§4.5 experiment (omnifer_lib.distill.discussion): snapshot sets, the 5:1 split, the simple
CNN's prediction curves and the controls, on tiny hand-made image sets."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from omnifer_lib.distill import DistillResult
from omnifer_lib.distill.discussion import (PAPER_TEST_FRACTION, load_snapshots, nearest_neighbour_accuracy,
                                            pixel_distances, prediction_curves, snapshot_set, split_per_class,
                                            train_and_track)
from omnifer_lib.models import SimpleCNN, simple_cnn
from omnifer_lib.files import atomic_torch_save


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def templates(num_classes=3, size=8, seed=0):
    """One random image per class: the 'distilled images' the snapshots drift around."""
    return torch.rand(num_classes, 3, size, size, generator=torch.Generator().manual_seed(seed))


def drifting_snapshots(num_snapshots=6, num_classes=3, noise=0.03, seed=0):
    """Snapshots of one run: each is the class templates plus a small perturbation."""
    base = templates(num_classes, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    return [{"iteration": 10 * (s + 1), "images": (base + noise * torch.randn(base.shape, generator=g)).clamp(0, 1),
             "step_sizes": torch.tensor([0.1])} for s in range(num_snapshots)]


def colour_classes(num_classes=3, per_class=12, size=8, seed=0):
    """Independent images whose class is a colour offset in one channel (learnable, not copies)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 + 0.2 * torch.rand(num_classes * per_class, 3, size, size, generator=g)
    y = torch.arange(num_classes).repeat_interleave(per_class)
    for k in range(num_classes):
        x[y == k, k] += 0.4
    return x.clamp(0, 1), y


# --------------------------------------------------------------------------- snapshot sets
def test_snapshot_set_stacks_snapshots_with_repeated_labels_and_iterations():
    snaps = drifting_snapshots(num_snapshots=4, num_classes=3)
    x, y, it = snapshot_set(snaps, torch.arange(3))
    assert x.shape == (12, 3, 8, 8)
    assert y.tolist() == [0, 1, 2] * 4
    assert it.tolist() == [10] * 3 + [20] * 3 + [30] * 3 + [40] * 3
    assert torch.equal(x[3:6], snaps[1]["images"])


def test_snapshot_set_rejects_no_snapshots_and_label_mismatch():
    with pytest.raises(ValueError, match="snapshot_every"):
        snapshot_set([], torch.arange(3))
    with pytest.raises(ValueError, match="labels"):
        snapshot_set(drifting_snapshots(num_classes=3), torch.arange(4))


def test_load_snapshots_prefers_the_result_then_the_checkpoint(tmp_path):
    snaps = drifting_snapshots(num_snapshots=2)
    result = DistillResult(images=snaps[-1]["images"], labels=torch.arange(3), step_sizes=torch.tensor([0.1]),
                           method="algorithm1", snapshots=snaps)
    assert load_snapshots(result) is not snaps and len(load_snapshots(result)) == 2

    exported = DistillResult(images=snaps[-1]["images"], labels=torch.arange(3), step_sizes=torch.tensor([0.1]),
                             method="algorithm1")  # as load_das returns it: no snapshots
    assert load_snapshots(exported, tmp_path) == []  # no checkpoint there
    atomic_torch_save({"snapshots": snaps, "iteration": 20}, tmp_path / "checkpoint.pt")
    loaded = load_snapshots(exported, tmp_path)
    assert [s["iteration"] for s in loaded] == [10, 20]
    assert torch.equal(loaded[1]["images"], snaps[1]["images"])
    assert load_snapshots(exported) == []


# --------------------------------------------------------------------------- the split
def test_split_per_class_is_stratified_five_to_one_disjoint_and_seeded():
    labels = torch.arange(7).repeat(6)  # 6 snapshots of 7 classes, as in the paper: 42 images
    tr, te = split_per_class(labels, PAPER_TEST_FRACTION, seed=3)
    assert len(tr) == 35 and len(te) == 7
    assert sorted(labels[te].tolist()) == list(range(7))  # one test image per class
    assert set(tr.tolist()).isdisjoint(te.tolist()) and len(set(tr.tolist()) | set(te.tolist())) == 42
    tr2, te2 = split_per_class(labels, PAPER_TEST_FRACTION, seed=3)
    assert torch.equal(tr, tr2) and torch.equal(te, te2)
    others = {tuple(split_per_class(labels, PAPER_TEST_FRACTION, seed=s)[1].tolist()) for s in range(5)}
    assert len(others) > 1  # the seed changes which snapshot is held out


def test_split_per_class_keeps_one_training_image_and_checks_its_inputs():
    tr, te = split_per_class(torch.tensor([0, 0, 1, 1]), 0.9, seed=0)
    assert len(tr) == 2 and len(te) == 2  # at most m - 1 test images per class
    with pytest.raises(ValueError, match="at least 2"):
        split_per_class(torch.tensor([0, 0, 1]), 0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_per_class(torch.tensor([0, 0, 1, 1]), 1.0)


# --------------------------------------------------------------------------- the CNN
def test_simple_cnn_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = simple_cnn(num_classes=5, width=4, seed=7)
    after = torch.rand(1)
    b = simple_cnn(num_classes=5, width=4, seed=7)
    c = simple_cnn(num_classes=5, width=4, seed=8)
    assert torch.equal(before, after)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.conv1.weight, c.conv1.weight)
    assert a(torch.rand(2, 3, 16, 16)).shape == (2, 5)
    assert isinstance(a, SimpleCNN)


def test_train_and_track_learns_separable_classes_and_is_deterministic():
    x, y = colour_classes(per_class=12)
    xt, yt = colour_classes(per_class=10, seed=1)
    curves, final = train_and_track(x, y, {"held out": (xt, yt)}, final_sets={"at the end": (xt, yt)}, epochs=15,
                                    lr=1e-2, batch_size=6, num_classes=3, width=4, seed=0)
    assert set(curves) == {"train", "held out"} and set(final) == {"at the end"}
    assert curves["held out"].shape == (16,)
    assert curves["held out"][-1] >= 0.9
    assert final["at the end"] == curves["held out"][-1]  # the same trained net, measured once more
    again, _ = train_and_track(x, y, {"held out": (xt, yt)}, epochs=15, lr=1e-2, batch_size=6, num_classes=3,
                               width=4, seed=0)
    np.testing.assert_array_equal(curves["held out"], again["held out"])
    with pytest.raises(ValueError, match="epochs"):
        train_and_track(x, y, {}, epochs=0)


# --------------------------------------------------------------------------- controls
def test_nearest_neighbour_accuracy_counts_matching_labels():
    train = torch.stack([torch.zeros(3, 2, 2), torch.ones(3, 2, 2)])
    test = torch.stack([torch.full((3, 2, 2), 0.1), torch.full((3, 2, 2), 0.8), torch.full((3, 2, 2), 0.3)])
    acc = nearest_neighbour_accuracy(train, torch.tensor([0, 1]), test, torch.tensor([0, 1, 1]))
    assert acc == pytest.approx(2 / 3)


def test_pixel_distances_of_near_copies_and_of_a_hand_example():
    x, y, _ = snapshot_set(drifting_snapshots(noise=0.01), torch.arange(3))
    d = pixel_distances(x, y)
    assert d["within / between"] < 0.1  # the snapshots of a class are near-copies

    imgs = torch.stack([torch.zeros(3, 2, 2), torch.full((3, 2, 2), 0.2), torch.ones(3, 2, 2)])
    d = pixel_distances(imgs, torch.tensor([0, 0, 1]))
    assert d["within"] == pytest.approx(0.2, abs=1e-6)  # RMS difference of 0 and 0.2
    assert d["between"] == pytest.approx((1.0 + 0.8) / 2, abs=1e-6)
    with pytest.raises(ValueError, match="two images"):
        pixel_distances(imgs[:2], torch.tensor([0, 1]))


# --------------------------------------------------------------------------- the experiment
def test_prediction_curves_on_drifting_snapshots_is_an_easy_test():
    x, y, _ = snapshot_set(drifting_snapshots(num_snapshots=6, num_classes=3), torch.arange(3))
    xt, yt = colour_classes(per_class=4, seed=2)
    pc = prediction_curves(x, y, repeats=2, epochs=12, lr=1e-2, batch_size=5, num_classes=3, width=4, seed=0,
                           extra_tests={"other images": (xt, yt)}, final_tests={"at the end": (xt, yt)})
    assert (pc.n_train, pc.n_test) == (15, 3)  # 5:1 of 18 images
    assert pc.accuracy["test"].shape == (2, 13) and pc.accuracy["other images"].shape == (2, 13)
    np.testing.assert_array_equal(pc.final_accuracy["at the end"], pc.accuracy["other images"][:, -1])
    assert pc.final("at the end")[0] == pytest.approx(pc.accuracy["other images"][:, -1].mean())
    np.testing.assert_array_equal(pc.nearest_neighbour, [1.0, 1.0])  # held-out snapshots are near-copies
    mean, std = pc.final("test")
    assert mean == 1.0 and std == 0.0
    assert pc.chance == pytest.approx(1 / 3)
    again = prediction_curves(x, y, repeats=2, epochs=12, lr=1e-2, batch_size=5, num_classes=3, width=4, seed=0,
                              extra_tests={"other images": (xt, yt)})
    np.testing.assert_array_equal(pc.accuracy["test"], again.accuracy["test"])
    with pytest.raises(ValueError, match="repeats"):
        prediction_curves(x, y, repeats=0)


def test_to_tensors_reads_images_and_labels_in_order():
    from omnifer_lib.data import to_tensors

    items = [(torch.full((3, 2, 2), float(i)), i % 2) for i in range(5)]
    x, y = to_tensors(items, batch_size=2, indices=range(3), progress=False)
    assert x.shape == (3, 3, 2, 2) and y.tolist() == [0, 1, 0] and x[2, 0, 0, 0] == 2.0
    with pytest.raises(ValueError, match="expected \\(image tensor"):
        to_tensors([("not an image", 0)], progress=False)


def test_lookup_explains_compares_the_pixel_lookup_with_the_cnn():
    from omnifer_lib.distill.discussion import PredictionCurves

    def curves(cnn, nn):
        return PredictionCurves(accuracy={"test": np.array([[0.1, cnn], [0.1, cnn]])}, final_accuracy={},
                                nearest_neighbour=np.array([nn, nn]), n_train=10, n_test=2, chance=1 / 7)

    assert curves(0.80, 0.76).lookup_explains()      # within 5 points: the lookup explains it
    assert not curves(0.80, 0.70).lookup_explains()  # the CNN beats the lookup by 10 points
    assert curves(0.80, 0.70).lookup_explains(tolerance=0.15)
