"""Figures and tables of the distillation chapters (§3.4 / Fig. 4 and §4.5 / Fig. 5).

Every function takes plain tensors / results and returns a matplotlib Figure or a pandas
DataFrame, so the notebooks stay thin and the figures are tested.
"""
from __future__ import annotations

from typing import List, Mapping, Optional, Sequence, Tuple, Union

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from omnifer_lib.publish.plots import to_display
from omnifer_lib.distill.evaluate import DistilledEvaluation
from omnifer_lib.distill.result import DistillResult

#: How :func:`evaluations_table` names the two ways of training on a set.
TRAINING_NAMES = {"learned": "learned η and steps", "sgd": "plain SGD"}

ImageRow = Union[DistillResult, Tensor, Sequence[Optional[Tensor]]]


def per_class(images: Tensor, labels: Tensor, num_classes: int) -> List[Optional[Tensor]]:
    """The first image of each class 0..C-1 (``None`` for a class without images), from
    ``images`` ``(K, 3, H, W)`` with ``labels`` ``(K,)``: one column per class in a figure."""
    labels = torch.as_tensor(labels).reshape(-1)
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    out: List[Optional[Tensor]] = []
    for k in range(num_classes):
        idx = torch.nonzero(labels == k).reshape(-1)
        out.append(images[idx[0]] if idx.numel() else None)
    return out


def _row_images(item: ImageRow) -> List[Optional[Tensor]]:
    if isinstance(item, DistillResult):
        return per_class(item.images, item.labels, item.num_classes)
    if torch.is_tensor(item):
        if item.dim() != 4 or item.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(item.shape)}")
        return list(item)
    images = list(item)
    for x in images:
        if x is not None and (x.dim() != 3 or x.shape[0] != 3):
            raise ValueError(f"expected (3, H, W) images (or None), got shape {tuple(x.shape)}")
    return images


def show_image_rows(rows: Mapping[str, ImageRow], column_names: Optional[Sequence[str]] = None,
                    cell: float = 1.8, title: Optional[str] = None, missing: str = "none"):
    """A grid of images, one row per entry of ``rows``. A row is a :class:`DistillResult`
    (one column per class: its first image of that class, see :func:`per_class`), a
    ``(K, 3, H, W)`` tensor (its images in order) or a list of ``(3, H, W)`` images or
    ``None`` (an empty cell marked ``missing``, e.g. a class the selection left empty).
    Images are in [0, 1]. Used for Fig. 4 (rows: sources, columns: classes) and for the
    snapshots of §4.5 (rows: iterations). ``cell``: inches per image, so that 40-px images
    stay large enough to see.

    Returns the Figure."""
    if not rows:
        raise ValueError("show_image_rows needs at least one row of images")
    sets = {name: _row_images(item) for name, item in rows.items()}
    ncols = max(len(x) for x in sets.values())
    if ncols == 0:
        raise ValueError("show_image_rows: every row is empty")
    if column_names is not None and len(column_names) < ncols:
        raise ValueError(f"{len(column_names)} column names for {ncols} columns")
    label_w = 1.6  # inches for the row names
    fig, axes = plt.subplots(len(sets), ncols, figsize=(label_w + cell * ncols, cell * len(sets) + 0.5),
                             squeeze=False)
    for r, (name, images) in enumerate(sets.items()):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images) and images[c] is not None:
                ax.imshow(to_display(images[c]), interpolation="nearest")
            else:
                for side in ax.spines.values():
                    side.set_visible(False)
                if c < len(images):
                    ax.text(0.5, 0.5, missing, ha="center", va="center", fontsize=9, color="#888888",
                            transform=ax.transAxes)
            if r == 0 and column_names is not None:
                ax.set_title(column_names[c], fontsize=10)
        axes[r, 0].set_ylabel(name, fontsize=9, rotation=0, ha="right", va="center", labelpad=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=label_w / (label_w + cell * ncols), right=0.99, wspace=0.05, hspace=0.08)
    return fig


def plot_distill_history(result: DistillResult, smooth: int = 10):
    """Algorithm 1's training curves: the outer loss mean_j L^j per outer iteration (raw and a
    moving average over ``smooth`` iterations), and each step size η_t per iteration.

    Returns the Figure (two panels)."""
    loss = np.asarray(result.loss_history, dtype=float)
    if loss.size == 0:
        raise ValueError(f"the {result.method} set has no loss history to plot")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
    it = np.arange(1, loss.size + 1)
    ax1.plot(it, loss, color="#9db7d5", linewidth=0.9, label="per iteration")
    w = max(1, min(int(smooth), loss.size))
    if w > 1:
        avg = np.convolve(loss, np.ones(w) / w, mode="valid")
        ax1.plot(it[w - 1:], avg, color="#1f4e8c", linewidth=2, label=f"moving average ({w})")
    ax1.set_xlabel("outer iteration")
    ax1.set_ylabel(r"outer loss $\frac{1}{K}\sum_j L^j$")
    ax1.set_title("Outer loss on the real batches")
    ax1.legend(fontsize=8)
    eta = np.asarray(result.step_size_history, dtype=float)
    if eta.size:
        for t in range(eta.shape[1]):
            ax2.plot(np.arange(1, eta.shape[0] + 1), eta[:, t], linewidth=1.8, label=fr"$\eta_{t + 1}$")
        ax2.legend(fontsize=8)
    ax2.set_xlabel("outer iteration")
    ax2.set_ylabel("step size η")
    ax2.set_title("Learned step sizes (one per inner step)")
    fig.tight_layout()
    return fig


def plot_image_gradients(grad: Tensor, column_names: Optional[Sequence[str]] = None, cell: float = 1.8):
    """Magnitude of ∂L/∂x̃ per pixel (the absolute values summed over the colour channels) for each distilled
    image, ``grad`` ``(K, 3, H, W)``, on one shared colour scale.

    Returns the Figure."""
    g = torch.as_tensor(grad).detach().cpu().float()
    if g.dim() != 4:
        raise ValueError(f"expected a gradient of shape (K, 3, H, W), got {tuple(g.shape)}")
    mag = g.abs().sum(dim=1).numpy()
    vmax = float(mag.max()) or 1.0
    fig, axes = plt.subplots(1, mag.shape[0], figsize=(cell * mag.shape[0] + 0.8, cell + 0.5), squeeze=False)
    im = None
    for c in range(mag.shape[0]):
        ax = axes[0, c]
        im = ax.imshow(mag[c], cmap="magma", vmin=0.0, vmax=vmax, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if column_names is not None:
            ax.set_title(column_names[c], fontsize=10)
    fig.colorbar(im, ax=axes[0, :].tolist(), fraction=0.015, pad=0.01, label=r"$|\partial L/\partial \tilde x|$")
    return fig


def evaluations_table(evaluations: Union[Mapping[str, DistilledEvaluation],
                                         Sequence[Tuple[str, DistilledEvaluation]]]) -> pd.DataFrame:
    """One row per evaluation, given as name -> :class:`DistilledEvaluation` or as a sequence of
    ``(name, evaluation)`` pairs (a set evaluated both ways appears under one name twice):
    set, how it was trained, accuracy mean and std in %, number of initialisations, chance in %."""
    pairs = list(evaluations.items()) if isinstance(evaluations, Mapping) else list(evaluations)
    rows = []
    for name, ev in pairs:
        rows.append({"set": name, "trained with": TRAINING_NAMES.get(ev.mode, ev.mode), "accuracy (%)": 100 * ev.mean,
                     "± std": 100 * ev.std, "inits": len(ev.accuracies), "chance (%)": 100 * ev.chance})
    return pd.DataFrame(rows)


def plot_evaluations(table: pd.DataFrame, title: str = "Learners trained on the set alone"):
    """Grouped bars of :func:`evaluations_table`: one group per set, one bar per way of
    training, error bars = std over initialisations, dashed line = chance.

    Returns the Figure."""
    sets = list(dict.fromkeys(table["set"]))
    modes = list(dict.fromkeys(table["trained with"]))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(sets) + 2), 3.8))
    width = 0.8 / max(1, len(modes))
    colors = ["#1f4e8c", "#e08a2c", "#5a9e4b", "#8c3b8c"]
    for m, mode in enumerate(modes):
        sub = table[table["trained with"] == mode].set_index("set").reindex(sets)
        x = np.arange(len(sets)) + (m - (len(modes) - 1) / 2) * width
        ax.bar(x, sub["accuracy (%)"], width, yerr=sub["± std"], capsize=3, label=mode,
               color=colors[m % len(colors)])
    chance = float(table["chance (%)"].iloc[0])
    ax.axhline(chance, color="black", linestyle="--", linewidth=1, label=f"chance ({chance:.1f} %)")
    ax.set_xticks(np.arange(len(sets)))
    ax.set_xticklabels(sets, fontsize=9)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, max(100.0, float((table["accuracy (%)"] + table["± std"]).max()) + 5))
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_prediction_curves(curves: Mapping[str, np.ndarray], chance: float, title: str = "",
                           ylabel: str = "test accuracy (%)"):
    """Accuracy per epoch (Fig. 5): ``curves`` maps a label to ``(repeats, epochs + 1)``
    accuracies in [0, 1] (column 0 = before training); each is drawn as its mean with a band of
    ± one std over repeats. ``chance`` in [0, 1] is drawn dashed.

    Returns the Figure."""
    if not curves:
        raise ValueError("plot_prediction_curves needs at least one curve")
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    for label, acc in curves.items():
        acc = 100 * np.atleast_2d(np.asarray(acc, dtype=float))
        epochs = np.arange(acc.shape[1])
        mean = acc.mean(axis=0)
        std = acc.std(axis=0, ddof=1) if acc.shape[0] > 1 else np.zeros_like(mean)
        line, = ax.plot(epochs, mean, linewidth=2, label=label)
        ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    ax.axhline(100 * chance, color="black", linestyle="--", linewidth=1, label="chance")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 102)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig
