"""Figures of the selection chapter (§3.3): the paper's Fig. 3 and the comparisons beyond it.

* :func:`selected_samples_grid` — Fig. 3: per expression, the selected auxiliary samples
  sorted by cosine similarity to their class centroid, highest first; with hidden true labels
  (synthetic pool) a red frame marks a pseudo-label that disagrees with the true expression.
* :func:`plot_delta_sweep` — count and pseudo-label precision per class as the margin δ varies
  (:func:`plot_delta_sweeps`: one row per learner).
* :func:`plot_precision_vs_count` — overall precision against the number selected, one curve
  per rule (the rules matched to the margin rule's count at each δ).
* :func:`plot_rule_comparison` — per-class counts and precision of several rules side by side.

The sweep and comparison figures take the tidy tables of :mod:`omnifer_lib.select.report`.
Every function returns the matplotlib Figure.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence

import numpy as np

from omnifer_lib.publish.plots import to_display
from omnifer_lib.select.reselect import PoolSelection
from omnifer_lib.select.rules import SELECTION_RULES

#: Colour of the frame around a sample whose pseudo-label disagrees with its true label.
WRONG_COLOR = "#d62728"
#: Colour of the overall ("all" classes) curve in the sweep figures.
ALL_COLOR = "black"
#: How figures name the selection rules (their records' labels).
RULE_NAMES = {name: rule.label for name, rule in SELECTION_RULES.items()}


def class_colors(num_classes: int) -> List[Any]:
    """One fixed colour per class (tab10), the same in every figure of the chapter."""
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10")
    return [cmap(k % 10) for k in range(num_classes)]


# ----------------------------------------------------------------------------- Fig. 3
@dataclass(frozen=True)
class Fig3Cell:
    """One image of Fig. 3: its pool index, cosine similarity to the centroid of its
    pseudo-label, and whether that pseudo-label disagrees with the hidden true label
    (``None`` when the true label is unknown)."""

    pool_index: int
    similarity: float
    wrong: Optional[bool]


def fig3_cells(selection: PoolSelection, n_per_class: int = 8,
               true_labels: Optional[Sequence[int]] = None) -> List[List[Fig3Cell]]:
    """The content of Fig. 3 without images: for each class in index order, up to
    ``n_per_class`` selected samples, most similar to the class centroid first.

    ``true_labels``: (N,) hidden labels indexed by pool index (-1 = unknown) or None."""
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be a positive number of images per row, got {n_per_class}")
    true = None if true_labels is None else np.asarray(true_labels, dtype=np.int64).reshape(-1)
    if true is not None and true.shape[0] != selection.n_pool:
        raise ValueError(f"true labels cover {true.shape[0]} samples but the selection's pool has "
                         f"{selection.n_pool}; pass the pool's true labels indexed by pool index")
    sim_of = dict(zip(selection.pool_index.tolist(), selection.similarity.astype(float).tolist()))
    rows = []
    for k in range(selection.num_classes):
        cells = []
        for i in selection.ranked(k, n_per_class).tolist():
            wrong = None if true is None or true[i] < 0 else bool(true[i] != k)
            cells.append(Fig3Cell(int(i), sim_of[i], wrong))
        rows.append(cells)
    return rows


def fig3_sentence(selection: PoolSelection, n_per_class: int = 8,
                  true_labels: Optional[Sequence[int]] = None) -> str:
    """What Fig. 3 shows, in words: how many of its samples (:func:`fig3_cells`) carry a
    pseudo-label that differs from their hidden expression (or, without ``true_labels``, that no
    frame can be drawn), and which expressions got no sample at all."""
    cells = fig3_cells(selection, n_per_class, true_labels)
    shown = sum(len(row) for row in cells)
    wrong = sum(bool(c.wrong) for row in cells for c in row)
    empty = [name for name, row in zip(selection.label_names, cells) if not row]
    sentence = (f"Of the {shown} samples shown, {wrong} ({100 * wrong / max(1, shown):.0f} %) carry a pseudo-label "
                "that differs from their hidden expression." if true_labels is not None else
                "This pool has no hidden labels, so no frame can be drawn.")
    if empty:
        listed = ", ".join(empty[:-1]) + (" and " if len(empty) > 1 else "") + empty[-1]
        sentence += f" No sample was selected for {listed} at this setting."
    return sentence


def few_images_source(pool: Any) -> Any:
    """A dataset yielding the same images as ``pool``, suited to reading a few of them.

    The synthetic pool renders lazily but, when it fits in 64 MB, renders and caches *all* its
    images on the first access (minutes for the demo's pool on a laptop CPU) — right for
    training, wasteful for a figure of a few dozen faces. For it this returns an uncached twin
    built from its public parameters (same images, bit for bit); any other pool is returned as is."""
    from omnifer_lib.data.synthetic import SyntheticFER

    if not isinstance(pool, SyntheticFER):
        return pool
    return SyntheticFER(split=pool.split, domain=pool.domain, size=len(pool), image_size=pool.image_size,
                        seed=pool.seed, transform=pool.transform, n_subjects=pool.n_subjects, cache=False)


def selected_samples_grid(pool: Any, selection: PoolSelection, n_per_class: int = 8, *,
                          true_labels: Optional[Sequence[int]] = None, cell_inches: float = 0.95,
                          title: Optional[str] = None):
    """Fig. 3: one row per expression (``selection.label_names`` order), the ``n_per_class``
    selected auxiliary samples most similar to that class's centroid, highest first, each
    captioned with its cosine similarity. With ``true_labels`` (the pool's hidden labels) a
    red frame marks a pseudo-label that disagrees with the true expression. A class with
    fewer selected samples leaves empty cells; one with none says so.

    ``pool``: the pool dataset the selection indexes (``pool[i][0]`` is the image)."""
    import matplotlib.pyplot as plt

    rows = fig3_cells(selection, n_per_class, true_labels)
    images = few_images_source(pool)
    k = len(rows)
    fig, axes = plt.subplots(k, n_per_class, squeeze=False,
                             figsize=(cell_inches * n_per_class + 1.0, cell_inches * 1.12 * k + 0.5))
    for r, (name, cells) in enumerate(zip(selection.label_names, rows)):
        for c in range(n_per_class):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c < len(cells):
                cell = cells[c]
                ax.imshow(to_display(images[cell.pool_index][0]), interpolation="nearest")
                ax.set_title(f"{cell.similarity:.3f}", fontsize=7, pad=2)
                if cell.wrong:
                    for side in ax.spines.values():
                        side.set_visible(True)
                        side.set_color(WRONG_COLOR)
                        side.set_linewidth(3)
            elif c == 0:
                ax.text(0.5, 0.5, "none\nselected", ha="center", va="center", fontsize=8, color="0.45",
                        transform=ax.transAxes)
            if c == 0:
                ax.set_ylabel(f"{name}\n({int(selection.counts()[r])})", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- sweeps and comparisons
def _check_columns(tidy, needed: Sequence[str], what: str) -> None:
    missing = [c for c in needed if c not in tidy.columns]
    if missing:
        raise ValueError(f"{what} needs a tidy table of omnifer_lib.select.report (delta_sweep / "
                         f"compare_rules) with columns {list(needed)}; missing {missing}")


def plot_delta_sweep(sweep, rule: str = "margin", *, axes=None, title: Optional[str] = None):
    """Two panels against the margin δ: selected samples per class (log scale; the total in
    black) and pseudo-label precision per class (overall precision in black, dashed, with a band
    of ± 2 binomial standard errors, which widens as fewer samples are kept).

    ``sweep``: :func:`omnifer_lib.select.report.delta_sweep`'s table; rows of ``rule`` are
    drawn. ``axes``: two Axes to draw into (default: a new 1 x 2 figure)."""
    import matplotlib.pyplot as plt

    _check_columns(sweep, ("delta", "rule", "class", "name", "selected", "precision"), "plot_delta_sweep")
    part = sweep[sweep["rule"] == rule]
    if part.empty:
        raise ValueError(f"the sweep has no rows of rule {rule!r}; it has {sorted(set(sweep['rule']))}")
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.6))
    fig = axes[0].figure
    classes = part[part["class"] >= 0].drop_duplicates("class").sort_values("class")
    colors = class_colors(int(classes["class"].max()) + 1)
    for k, name in zip(classes["class"], classes["name"]):
        rows = part[part["class"] == k].sort_values("delta")
        # Zero counts have no place on a log axis; they show as the curve's end.
        counts = rows["selected"].where(rows["selected"] > 0)
        axes[0].plot(rows["delta"], counts, marker="o", ms=3, color=colors[k], label=name)
        axes[1].plot(rows["delta"], 100 * rows["precision"], marker="o", ms=3, color=colors[k], label=name)
    total = part[part["class"] < 0].sort_values("delta")
    axes[0].plot(total["delta"], total["selected"].where(total["selected"] > 0), color=ALL_COLOR, lw=2,
                 label="all")
    axes[1].plot(total["delta"], 100 * total["precision"], color=ALL_COLOR, lw=2, ls="--", label="all")
    # the overall precision is a proportion over the selected samples: ± 2 binomial standard errors
    p, n = total["precision"].to_numpy(dtype=float), total["selected"].to_numpy(dtype=float)
    se = np.sqrt(np.clip(p * (1 - p), 0, None) / np.where(n > 0, n, np.nan))
    axes[1].fill_between(total["delta"], 100 * (p - 2 * se), 100 * (p + 2 * se), color=ALL_COLOR, alpha=0.15,
                         lw=0, label="all ± 2 s.e.")
    if (part["selected"] > 0).any():  # a log axis needs one positive count
        axes[0].set_yscale("log")
    axes[0].set_ylabel("selected auxiliary samples")
    axes[1].set_ylabel("pseudo-label precision (%)")
    axes[1].set_ylim(0, 100)
    for ax in axes:
        ax.set_xlabel("margin δ")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    if title:
        axes[0].set_title(title, fontsize=10, loc="left")
    fig.tight_layout()
    return fig


def plot_delta_sweeps(sweeps: Mapping[str, Any], rule: str = "margin"):
    """:func:`plot_delta_sweep` for several learners: one row of its two panels per learner,
    titled with its label. ``sweeps``: label -> :func:`~omnifer_lib.select.report.delta_sweep` table."""
    import matplotlib.pyplot as plt

    if not sweeps:
        raise ValueError("plot_delta_sweeps needs at least one learner's sweep (label -> delta_sweep table)")
    fig, axes = plt.subplots(len(sweeps), 2, figsize=(10.5, 3.5 * len(sweeps)), squeeze=False)
    for row, (label, sweep) in zip(axes, sweeps.items()):
        plot_delta_sweep(sweep, rule, axes=row, title=label)
    return fig


def plot_precision_vs_count(sweeps: Mapping[str, Any], rules: Sequence[str] = ("margin", "softmax"), *,
                            ax=None, n_pool: Optional[Mapping[str, int]] = None):
    """Overall pseudo-label precision against the number of selected samples, one curve per
    (learner, rule); each point is one δ of the sweep (the non-margin rules matched to the
    margin rule's count at that δ, so their points sit at the same counts). The count axis is
    logarithmic; a δ that selects nothing has no point.

    ``sweeps``: label (e.g. backbone) -> :func:`delta_sweep` table containing ``rules``.
    ``n_pool``: label -> pool size, to draw the share of the pool (%) instead of counts."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
    fig = ax.figure
    styles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "D"]
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, sweep) in enumerate(sweeps.items()):
        _check_columns(sweep, ("delta", "rule", "class", "selected", "precision"), "plot_precision_vs_count")
        for j, rule in enumerate(rules):
            total = sweep[(sweep["rule"] == rule) & (sweep["class"] < 0)].sort_values("delta")
            if total.empty:
                raise ValueError(f"the sweep of {label!r} has no rows of rule {rule!r}")
            total = total[total["selected"] > 0]
            x = total["selected"].astype(float)
            if n_pool is not None:
                x = 100.0 * x / n_pool[label]
            ax.plot(x, 100 * total["precision"], ls=styles[j % 4], marker=markers[j % 4], ms=4,
                    color=palette[i % len(palette)], label=f"{label}: {RULE_NAMES.get(rule, rule)}")
    # Counts span orders of magnitude (a large δ keeps a handful); empty selections have no
    # precision and so no point, leaving only positive x values for a log axis.
    if any(len(line.get_xdata()) for line in ax.lines):
        ax.set_xscale("log")
    ax.set_xlabel("selected (% of the pool)" if n_pool is not None else "selected auxiliary samples")
    ax.set_ylabel("pseudo-label precision (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_rule_comparison(compare, rules: Optional[Sequence[str]] = None, *, axes=None,
                         title: Optional[str] = None):
    """Grouped bars per expression, one bar per rule: selected samples (top panel) and
    pseudo-label precision (bottom panel; the overall precision of each rule as a bar at
    "all"). ``compare``: :func:`omnifer_lib.select.report.compare_rules`'s table."""
    import matplotlib.pyplot as plt

    _check_columns(compare, ("rule", "class", "name", "selected", "precision"), "plot_rule_comparison")
    rules = list(rules) if rules is not None else list(dict.fromkeys(compare["rule"]))
    classes = compare[compare["class"] >= 0].drop_duplicates("class").sort_values("class")
    names = classes["name"].tolist()
    if axes is None:
        fig, axes = plt.subplots(2, 1, figsize=(10, 5.6), sharex=True)
    fig = axes[0].figure
    width = 0.8 / max(1, len(rules))
    x = np.arange(len(names) + 1)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, rule in enumerate(rules):
        part = compare[compare["rule"] == rule]
        if part.empty:
            raise ValueError(f"the comparison has no rows of rule {rule!r}")
        by_class = part.set_index("class")
        counts = [by_class.loc[k, "selected"] for k in classes["class"]]
        precision = [by_class.loc[k, "precision"] for k in classes["class"]] + [by_class.loc[-1, "precision"]]
        pos = x - 0.4 + width * (j + 0.5)
        axes[0].bar(pos[:-1], counts, width, color=palette[j % len(palette)], label=RULE_NAMES.get(rule, rule))
        axes[1].bar(pos, 100 * np.asarray(precision, dtype=float), width, color=palette[j % len(palette)])
    axes[0].set_ylabel("selected")
    axes[1].set_ylabel("precision (%)")
    axes[1].set_ylim(0, 100)
    axes[1].set_xticks(x)
    axes[1].set_xticklabels(names + ["all"])
    axes[1].axvline(len(names) - 0.5, color="0.6", lw=0.8)
    for ax in axes:
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, ncol=min(4, len(rules)))
    if title:
        axes[0].set_title(title, fontsize=10, loc="left")
    fig.tight_layout()
    return fig
