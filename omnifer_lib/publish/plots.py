"""Figures shared by the notebooks (kept here so that they are tested and reusable)."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from omnifer_lib.seeds import numpy_global_seeded

# One colour per kind of thing in the pipeline, used consistently across the book.
COLORS = {"data": "#dbe9f6", "model": "#fde2c8", "step": "#e3f1dc", "result": "#f3dcef"}


def _box(ax, xy: Tuple[float, float], text: str, kind: str, w: float = 0.17, h: float = 0.16):
    x, y = xy
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.012,rounding_size=0.02",
                                facecolor=COLORS[kind], edgecolor="#444444", linewidth=1.0))
    ax.text(x, y, text, ha="center", va="center", fontsize=9, wrap=True)


def _arrow(ax, start, end, label: Optional[str] = None, offset: Tuple[float, float] = (0.0, 0.03),
           rad: float = 0.0):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=13, linewidth=1.2, color="#333333",
                                 shrinkA=2, shrinkB=2, connectionstyle=f"arc3,rad={rad}"))
    if label:
        mx, my = (start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1]
        ax.text(mx, my, label, ha="center", va="bottom", fontsize=8, style="italic", color="#333333")


def draw_pipeline(ax=None, stage_labels: Sequence[str] = ("(a)", "(b)", "(c)", "(d)")):
    """The paper's Fig. 1: labeled anchor data -> primitive learner -> selection of auxiliary
    samples from unlabeled data (centroids, margin δ) -> dataset distillation -> final learner.

    Returns the matplotlib Figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(11, 4.2))
    else:
        fig = ax.figure
    ax.set_xlim(0, 1)
    ax.set_ylim(0.12, 1.05)
    ax.axis("off")
    w = 0.15
    anchor, primitive = (0.09, 0.75), (0.30, 0.75)
    unlabeled, select = (0.09, 0.28), (0.30, 0.28)
    vas, distill, das = (0.51, 0.28), (0.70, 0.28), (0.90, 0.28)
    final = (0.90, 0.75)
    _box(ax, anchor, "Labeled anchor\n(e.g. RAF-DB train)\n$\\{x^l_i, y^l_i\\}$", "data", w=w)
    _box(ax, primitive, "Primitive learner\n$f(\\cdot;\\theta)$\n(Eq. 1)", "model", w=w)
    _box(ax, unlabeled, "Unlabeled pool\n(e.g. MS1M)\n$\\{x^{ul}_i\\}$", "data", w=w)
    _box(ax, select, "Cosine to class\ncentroids (Eq. 3–4),\nmargin $\\delta$ (Eq. 5)", "step", w=w)
    _box(ax, vas, "Auxiliary samples\n(VAS, pseudo-\nlabeled)", "data", w=w)
    _box(ax, distill, "Dataset distillation\n(Algorithm 1)", "step", w=w)
    _box(ax, das, "Distilled auxiliary\nsamples (DAS),\n1 image / class", "data", w=w)
    _box(ax, final, "Final FER learner\n(anchor + DAS)", "result", w=w)
    h = w / 2
    _arrow(ax, (anchor[0] + h, anchor[1] - 0.02), (primitive[0] - h, primitive[1] - 0.02), "train",
           offset=(0.0, -0.065))
    _arrow(ax, (primitive[0], primitive[1] - 0.08), (select[0], select[1] + 0.08), "features $f(x;\\theta)$",
           offset=(0.075, -0.02))
    _arrow(ax, (unlabeled[0] + h, unlabeled[1]), (select[0] - h, select[1]))
    _arrow(ax, (select[0] + h, select[1]), (vas[0] - h, vas[1]), "select", offset=(0.0, -0.07))
    _arrow(ax, (vas[0] + h, vas[1]), (distill[0] - h, distill[1]))
    _arrow(ax, (distill[0] + h, distill[1]), (das[0] - h, das[1]))
    _arrow(ax, (das[0], das[1] + 0.08), (final[0], final[1] - 0.08), "+ anchor", offset=(0.045, -0.02))
    _arrow(ax, (anchor[0], anchor[1] + 0.08), (final[0], final[1] + 0.08), None, rad=-0.12)
    ax.text(0.5, 1.0, "the labeled anchor data also trains the final learner", ha="center", fontsize=8,
            color="#333333", style="italic")
    for label, (x, y) in zip(stage_labels, (primitive, select, distill, final)):
        ax.text(x - w / 2, y + 0.1, label, fontsize=9, fontweight="bold")
    return fig


def learning_curves(histories, ax=None, title: str = ""):
    """Per-epoch training and test accuracy (%) of several learners.

    ``histories``: mapping label -> DataFrame with ``epoch``, ``train_accuracy`` and
    (optionally) ``test_accuracy`` columns, as written by :func:`omnifer_lib.train.fit`.
    Returns the Figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
    else:
        fig = ax.figure
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, hist) in enumerate(histories.items()):
        c = colors[i % len(colors)]
        epochs = hist["epoch"] + (1 if hist["epoch"].min() == 0 else 0)
        ax.plot(epochs, hist["train_accuracy"], color=c, linestyle="--", label=f"{label}: train")
        if "test_accuracy" in hist and hist["test_accuracy"].notna().any():
            ax.plot(epochs, hist["test_accuracy"], color=c, label=f"{label}: test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def confusion_heatmap(confusion, labels, ax=None, title: str = ""):
    """Row-normalised confusion matrix (rows: true class, columns: predicted) as a seaborn heatmap,
    each cell labelled with its percentage of the true class. Returns the Figure."""
    import numpy as np
    import seaborn as sns

    cm = np.asarray(confusion, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.6, 4.0))
    else:
        fig = ax.figure
    sns.heatmap(100 * norm, ax=ax, cmap="Blues", vmin=0, vmax=100, annot=True, fmt=".0f", cbar=False,
                annot_kws={"fontsize": 7}, xticklabels=list(labels), yticklabels=list(labels), square=True,
                linewidths=0.5, linecolor="white")
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    ax.tick_params(axis="y", labelrotation=0, labelsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def confusion_heatmaps(confusions, labels):
    """:func:`confusion_heatmap` side by side, one per ``title -> confusion matrix`` of ``confusions``.
    Returns the Figure."""
    fig, axes = plt.subplots(1, len(confusions), figsize=(4.8 * len(confusions), 4.2), squeeze=False)
    for ax, (title, confusion) in zip(axes[0], confusions.items()):
        confusion_heatmap(confusion, labels, ax=ax, title=title)
    fig.tight_layout()
    return fig


def seed_points(results, x: str, hue: Optional[str] = None, value: str = "accuracy", ax=None,
                ylabel: str = "accuracy (%)", reference=None, reference_label: str = ""):
    """Results over seeds as a reader wants to see them: every seed as a small point, and the mean
    with ± one standard deviation (the tables' mean ± std) as a diamond with whiskers; one colour per
    value of ``hue``. ``results``: tidy rows, one per seed, with columns ``x``, ``value`` (and
    ``hue``). An optional horizontal ``reference`` line (e.g. chance). Returns the Figure."""
    import seaborn as sns

    xs = list(dict.fromkeys(results[x]))
    hues = list(dict.fromkeys(results[hue])) if hue else [None]
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(xs) * max(1, len(hues)) / 2 + 2), 3.6))
    else:
        fig = ax.figure
    # stripplot spreads hue levels over 0.8 of a category; the means sit at the same offsets
    spread = 0.8 * (len(hues) - 1) / len(hues) if hue else False
    # seaborn jitters with numpy's global generator: seeded here (and restored) so a rerun draws the same figure
    with numpy_global_seeded(0):
        sns.stripplot(data=results, x=x, y=value, hue=hue, order=xs, hue_order=hues if hue else None,
                      dodge=bool(hue), jitter=0.12, size=4, alpha=0.5, ax=ax, legend=False,
                      palette="deep" if hue else None, color=None if hue else "0.35")
    sns.pointplot(data=results, x=x, y=value, hue=hue, order=xs, hue_order=hues if hue else None, dodge=spread,
                  errorbar="sd", capsize=0.08, markers="D", markersize=6, linestyle="none", ax=ax,
                  palette="deep" if hue else None, color=None if hue else "black")
    ax.set_xlabel("")
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelsize=8)
    if reference is not None:
        ax.axhline(reference, color="0.4", linestyle=":", linewidth=1)
        if reference_label:
            ax.text(len(xs) - 0.5, reference, reference_label, ha="right", va="bottom", fontsize=8, color="0.3")
    ax.grid(axis="y", alpha=0.3)
    if hue:
        ax.legend(fontsize=8, title=None)
    return fig


def condition_points(runs, baseline: str):
    """:func:`seed_points` of each backbone's conditions (tidy rows ``backbone, condition, seed,
    accuracy``), the ``baseline`` condition's mean as a dotted line, labels slanted. Returns the Figures."""
    figs = []
    for backbone, sub in runs.groupby("backbone", sort=False):
        base = float(sub.loc[sub["condition"] == baseline, "accuracy"].mean())
        fig = seed_points(sub, x="condition", reference=base, reference_label=baseline)
        fig.set_size_inches(max(6.0, 0.75 * sub["condition"].nunique() + 1.5), 4.2)
        ax = fig.axes[0]
        ax.set_title(backbone, fontsize=9)
        plt.setp(ax.get_xticklabels(), rotation=35, ha="right")
        fig.tight_layout()
        figs.append(fig)
    return figs


def labeled_curve(curve, ax=None):
    """Test accuracy against the share of labeled training images (rows ``backbone,
    labeled_fraction, labeled, accuracy``), a log-scaled axis of labeled images. Returns the Figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.4))
    else:
        fig = ax.figure
    for backbone, sub in curve.groupby("backbone", sort=False):
        sub = sub.sort_values("labeled")
        ax.plot(sub["labeled"], sub["accuracy"], marker="o", label=backbone)
        for _, r in sub.iterrows():
            ax.annotate(f"{r['labeled_fraction']:.0%}", (r["labeled"], r["accuracy"]), textcoords="offset points",
                        xytext=(0, 6), ha="center", fontsize=7)
    ax.set(xscale="log", xlabel="labeled training images", ylabel="test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def cost_ratios(table8, ax=None):
    """Table 8 as a figure: each learner's seconds per epoch relative to its run without auxiliary
    samples (``ratio (mean)`` per ``setting``), beside the paper's (``ratio to w/o AS (paper)``),
    on a log axis (rows of :func:`~omnifer_lib.publish.reporting.cost_table`). Returns the Figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.2))
    else:
        fig = ax.figure
    for label, sub in table8.groupby("learner", sort=False):
        ax.plot(sub["setting"], sub["ratio (mean)"], marker="o", label=f"this run: {label}")
    paper_rows = table8.drop_duplicates("setting")
    ax.plot(paper_rows["setting"], paper_rows["ratio to w/o AS (paper)"], marker="s", color="black", linestyle="--",
            label="paper (Table 8)")
    ax.set(yscale="log", ylabel="seconds per epoch / w/o AS")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def accuracy_heatmap(grid, ax=None, title: str = ""):
    """A table of accuracies (%) as a heat map, each cell written in (rows and columns as labelled
    in ``grid``, e.g. :func:`~omnifer_lib.publish.reporting.accuracy_grid`). Returns the Figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.3 * grid.shape[1] + 2.5, 0.5 * grid.shape[0] + 1.2))
    else:
        fig = ax.figure
    values = grid.to_numpy(dtype=float)
    im = ax.imshow(values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8, color="white" if v < 60 else "black")
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns], fontsize=8)
    ax.set_yticks(range(grid.shape[0]), [str(r) for r in grid.index], fontsize=8)
    fig.colorbar(im, ax=ax, label="accuracy (%)")
    ax.set_title(title, fontsize=9)
    return fig


def to_display(image) -> np.ndarray:
    """An image as ``imshow`` wants it: a ``(3, H, W)`` tensor or array in [0, 1] (clipped) or a PIL
    image -> an ``(H, W, 3)`` float array in [0, 1]."""
    if hasattr(image, "detach"):
        return image.detach().cpu().float().clamp(0, 1).permute(1, 2, 0).numpy()
    if hasattr(image, "convert"):
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    arr = np.asarray(image, dtype=np.float32)
    return np.transpose(arr, (1, 2, 0)) if arr.ndim == 3 and arr.shape[0] in (1, 3) else arr


def primitive_learner_curves(prims):
    """:func:`learning_curves` of the primitive learners ``{backbone: artifact}`` (§3.2), by display name."""
    from omnifer_lib.engine import pipeline

    return learning_curves({pipeline.display_backbone(b): pipeline.history(a) for b, a in prims.items()},
                           title="primitive learners on the anchor")


def primitive_learner_confusions(prims, anchor: str):
    """:func:`confusion_heatmaps` of the primitive learners ``{backbone: artifact}`` on the test split of
    ``anchor``, each titled with its accuracy (%)."""
    from omnifer_lib.engine import pipeline
    from omnifer_lib.names import LABELS

    evaluations = {b: pipeline.evaluation(art)[anchor] for b, art in prims.items()}
    return confusion_heatmaps({f"{pipeline.display_backbone(b)}: {ev['accuracy']:.1f} % on the anchor's test split":
                               ev["confusion"] for b, ev in evaluations.items()}, LABELS)
