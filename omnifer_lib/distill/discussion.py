"""§4.5 of the paper: do the distilled auxiliary samples carry class patterns? (Fig. 5)

The paper keeps the distilled images x̃ at regular points of Algorithm 1 (6 snapshots of the
7 images = 42 images), splits them 5:1 into a training and a test part, trains a simple CNN
on the first part and plots its test accuracy per epoch on the second (Fig. 5). High accuracy
is read as evidence that the distilled images hold class-related patterns.

A caution this module makes measurable: the snapshots of one run are successive states of
the *same* n·C images, so a held-out snapshot of class k is a near-copy of the training
snapshots of class k. High test accuracy may then only show that a CNN can match
near-duplicates. Three controls:

* :func:`nearest_neighbour_accuracy` -- a 1-nearest-neighbour classifier on raw pixels on the
  same split: if it is already perfect, the test is easy for any classifier;
* :func:`pixel_distances` -- mean pixel distance between images of the same class and of
  different classes;
* the same protocol on independent real images (e.g. ``random_real(anchor,
  images_per_class=S)``), where every image is a different face.

Everything here is deterministic given ``seed``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..seeds import derive_seed, generator
from ..evaluate import seed_statistics
from ..files import torch_load
from ..models.simple_cnn import simple_cnn

from .result import DistillResult

#: The paper's split: 5 parts training, 1 part test.
PAPER_TEST_FRACTION = 1.0 / 6.0
#: How close (in accuracy, a fraction) a pixel lookup must come to the CNN to explain its test result.
LOOKUP_TOLERANCE = 0.05
#: Name of the checkpoint that :func:`omnifer_lib.distill.distill` writes beside ``das.pt``
#: in the pipeline's artifact folder; it holds the snapshots, which ``das.pt`` does not.
CHECKPOINT_FILE = "checkpoint.pt"


# --------------------------------------------------------------------------- the snapshot set
def load_snapshots(result: DistillResult, folder: Optional[Union[str, Path]] = None) -> List[Dict[str, Any]]:
    """The snapshots of an Algorithm 1 run: ``result.snapshots`` if it has them, else those in
    the distillation checkpoint ``folder/checkpoint.pt`` (``export_das`` does not write
    snapshots; the checkpoint beside it does). Each is ``{"iteration", "images", "step_sizes"}``.

    Returns an empty list when neither holds any (e.g. ``snapshot_every = 0``)."""
    if result.snapshots:
        return list(result.snapshots)
    if folder is None:
        return []
    path = Path(folder) / CHECKPOINT_FILE
    if not path.is_file():
        return []
    state = torch_load(path)
    return list(state.get("snapshots", []))


def snapshot_set(snapshots: Sequence[Mapping[str, Any]], labels: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """All snapshot images as one labeled set.

    Args:
        snapshots: ``S`` snapshots, each with ``"images"`` ``(n·C, 3, H, W)`` in the class-major
            order of ``labels`` and ``"iteration"`` (int).
        labels: ``(n·C,)`` int64 labels of the distilled images (``DistillResult.labels``).

    Returns:
        ``(images (S·n·C, 3, H, W) float32, labels (S·n·C,) int64, iteration (S·n·C,) int64)``.
    """
    if not snapshots:
        raise ValueError("no snapshots: distil with snapshot_every > 0 (e.g. -p snapshot_every 20) to keep "
                         "intermediate distilled images")
    labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    images, its = [], []
    for snap in snapshots:
        x = torch.as_tensor(snap["images"]).float()
        if x.shape[0] != labels.shape[0]:
            raise ValueError(f"a snapshot holds {x.shape[0]} images but there are {labels.shape[0]} labels; "
                             "expected one label per distilled image (class-major order)")
        images.append(x)
        its.append(torch.full((x.shape[0],), int(snap["iteration"]), dtype=torch.long))
    return torch.cat(images), labels.repeat(len(snapshots)), torch.cat(its)


def split_per_class(labels: Tensor, test_fraction: float = PAPER_TEST_FRACTION, seed: int = 0) -> Tuple[Tensor, Tensor]:
    """A seeded split stratified by class: of each class's ``m`` images,
    ``max(1, round(m · test_fraction))`` go to the test part (the paper's 5:1 is
    ``test_fraction = 1/6``), the rest to the training part.

    Returns ``(train_index, test_index)``, sorted int64 tensors. Every class needs at least two
    images (one to learn from, one to test on)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
    labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    gen = generator(seed, "discussion_split")
    train, test = [], []
    for k in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == k).reshape(-1)
        if idx.numel() < 2:
            raise ValueError(f"class {k} has {idx.numel()} image(s); the split needs at least 2 per class")
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        n_test = min(idx.numel() - 1, max(1, int(round(idx.numel() * test_fraction))))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(test)).values


@torch.no_grad()
def _accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 512) -> float:
    if x.shape[0] == 0:
        return float("nan")
    correct = 0
    for s in range(0, x.shape[0], batch_size):
        correct += int((model(x[s:s + batch_size]).argmax(dim=1) == y[s:s + batch_size]).sum())
    return correct / x.shape[0]


def train_and_track(train_x: Tensor, train_y: Tensor, test_sets: Mapping[str, Tuple[Tensor, Tensor]], *,
                    final_sets: Optional[Mapping[str, Tuple[Tensor, Tensor]]] = None, epochs: int = 30,
                    lr: float = 1e-3, batch_size: int = 8, num_classes: int = 7, width: int = 16,
                    seed: int = 0) -> Tuple[Dict[str, np.ndarray], Dict[str, float]]:
    """Train a fresh :func:`omnifer_lib.models.simple_cnn` on ``(train_x (N, 3, H, W) in [0, 1], train_y (N,))`` with
    Adam (cross-entropy, minibatches of ``batch_size`` in a seeded order) and measure its
    accuracy on every set of ``test_sets`` before training and after each epoch, and on every
    set of ``final_sets`` after the last epoch only (large test sets, e.g. real faces, cost a
    forward pass per image each time they are measured).

    Returns ``(curves, final)``: ``curves`` maps each test set, and ``"train"`` (the training
    part itself), to ``(epochs + 1,)`` accuracies in [0, 1] (index 0 = before training);
    ``final`` maps each final set to its accuracy."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    train_x = torch.as_tensor(train_x).float()
    train_y = torch.as_tensor(train_y, dtype=torch.long)
    model = simple_cnn(num_classes, width, seed=derive_seed(seed, "simple_cnn"))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    order_gen = generator(seed, "discussion_order")
    sets = {"train": (train_x, train_y), **_as_sets(test_sets)}
    curves = {k: np.empty(epochs + 1) for k in sets}

    def record(epoch: int) -> None:
        model.eval()
        for k, (x, y) in sets.items():
            curves[k][epoch] = _accuracy(model, x, y)

    record(0)
    bs = max(1, min(batch_size, train_x.shape[0]))
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(train_x.shape[0], generator=order_gen)
        for s in range(0, train_x.shape[0], bs):
            idx = order[s:s + bs]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(train_x[idx]), train_y[idx]).backward()
            opt.step()
        record(epoch)
    model.eval()
    final = {k: _accuracy(model, x, y) for k, (x, y) in _as_sets(final_sets or {}).items()}
    return curves, final


def _as_sets(sets: Mapping[str, Tuple[Tensor, Tensor]]) -> Dict[str, Tuple[Tensor, Tensor]]:
    return {k: (torch.as_tensor(x).float(), torch.as_tensor(y, dtype=torch.long).reshape(-1))
            for k, (x, y) in sets.items()}


# --------------------------------------------------------------------------- controls
def nearest_neighbour_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor) -> float:
    """Accuracy of a 1-nearest-neighbour classifier on raw pixels (Euclidean distance): how
    easy the split is for a classifier that learns nothing but lookup."""
    a = torch.as_tensor(train_x).float().reshape(train_x.shape[0], -1)
    b = torch.as_tensor(test_x).float().reshape(test_x.shape[0], -1)
    nearest = torch.cdist(b, a).argmin(dim=1)
    return float((torch.as_tensor(train_y)[nearest] == torch.as_tensor(test_y)).float().mean())


def pixel_distances(images: Tensor, labels: Tensor) -> Dict[str, float]:
    """Mean root-mean-square pixel difference between pairs of images of the same class
    (``"within"``) and of different classes (``"between"``), images in [0, 1]; and their
    ratio ``"within / between"`` (near 0: the images of a class are near-copies of each other)."""
    x = torch.as_tensor(images).float().reshape(images.shape[0], -1)
    y = torch.as_tensor(labels).reshape(-1)
    d = torch.cdist(x, x) / np.sqrt(x.shape[1])
    same = y[:, None] == y[None, :]
    off_diag = ~torch.eye(len(y), dtype=torch.bool)
    within, between = d[same & off_diag], d[~same]
    if within.numel() == 0 or between.numel() == 0:
        raise ValueError("pixel_distances needs at least two images of some class and two classes")
    w, b = float(within.mean()), float(between.mean())
    return {"within": w, "between": b, "within / between": w / b}


# --------------------------------------------------------------------------- the experiment
@dataclass
class PredictionCurves:
    """Result of :func:`prediction_curves` (the paper's Fig. 5, over ``repeats`` splits).

    Attributes:
        accuracy: ``{set: (repeats, epochs + 1)}`` accuracies in [0, 1] per epoch; ``"test"`` is
            the held-out part, ``"train"`` the training part, others the ``extra_tests``.
        final_accuracy: ``{set: (repeats,)}`` accuracy after the last epoch on each of the
            ``final_tests``.
        nearest_neighbour: ``(repeats,)`` 1-NN pixel accuracy on the same held-out parts.
        n_train, n_test: sizes of the two parts (the same in every repeat).
        chance: ``1 / num_classes``.
        config: the settings.
    """

    accuracy: Dict[str, np.ndarray]
    final_accuracy: Dict[str, np.ndarray]
    nearest_neighbour: np.ndarray
    n_train: int
    n_test: int
    chance: float
    config: Dict[str, Any] = field(default_factory=dict)

    def final(self, name: str = "test") -> Tuple[float, float]:
        """Mean and sample std over repeats of the accuracy on set ``name`` after the last
        epoch (a per-epoch set or a final-only set); the std is ``nan`` for a single repeat
        (:func:`omnifer_lib.evaluate.seed_statistics`)."""
        last = self.accuracy[name][:, -1] if name in self.accuracy else self.final_accuracy[name]
        st = seed_statistics(last)
        return st.mean, st.std

    def lookup_explains(self, tolerance: float = LOOKUP_TOLERANCE) -> bool:
        """The §4.5 verdict: whether a 1-nearest-neighbour lookup on pixels does as well on the
        held-out part as the trained CNN (within ``tolerance``, a fraction: 0.05 = 5 points). Then
        the held-out images are passed by matching near-copies, and the paper's test cannot tell
        class patterns from repetition."""
        return float(self.nearest_neighbour.mean()) >= self.final("test")[0] - tolerance


def prediction_curves(images: Tensor, labels: Tensor, *, repeats: int = 5, epochs: int = 30,
                      test_fraction: float = PAPER_TEST_FRACTION,
                      extra_tests: Optional[Mapping[str, Tuple[Tensor, Tensor]]] = None,
                      final_tests: Optional[Mapping[str, Tuple[Tensor, Tensor]]] = None, lr: float = 1e-3,
                      batch_size: int = 8, num_classes: int = 7, width: int = 16, seed: int = 0) -> PredictionCurves:
    """The §4.5 experiment: ``repeats`` times, split ``(images (N, 3, H, W), labels (N,))`` per
    class (:func:`split_per_class`, a new split each time), train a fresh simple CNN on the
    training part and record its accuracy per epoch on the held-out part and on
    ``extra_tests`` (small sets, e.g. the distilled images of another run), and after the last
    epoch on ``final_tests`` (e.g. real test faces); also the 1-NN pixel accuracy of each
    split. Repeat ``r`` uses seeds derived from ``(seed, r)``."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    images = torch.as_tensor(images).float()
    labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    curves: List[Dict[str, np.ndarray]] = []
    finals: List[Dict[str, float]] = []
    nn_acc = []
    n_train = n_test = 0
    for r in range(repeats):
        tr, te = split_per_class(labels, test_fraction, seed=derive_seed(seed, "split", r))
        n_train, n_test = int(tr.numel()), int(te.numel())
        tests = {"test": (images[te], labels[te]), **dict(extra_tests or {})}
        c, f = train_and_track(images[tr], labels[tr], tests, final_sets=final_tests, epochs=epochs, lr=lr,
                               batch_size=batch_size, num_classes=num_classes, width=width,
                               seed=derive_seed(seed, "cnn", r))
        curves.append(c)
        finals.append(f)
        nn_acc.append(nearest_neighbour_accuracy(images[tr], labels[tr], images[te], labels[te]))
    accuracy = {k: np.stack([c[k] for c in curves]) for k in curves[0]}
    final_accuracy = {k: np.asarray([f[k] for f in finals]) for k in finals[0]}
    return PredictionCurves(accuracy, final_accuracy, np.asarray(nn_acc), n_train, n_test, 1.0 / num_classes,
                            {"repeats": repeats, "epochs": epochs, "test_fraction": test_fraction, "lr": lr,
                             "batch_size": batch_size, "width": width, "seed": seed, "n_images": int(len(labels))})
