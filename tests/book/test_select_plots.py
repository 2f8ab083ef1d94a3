"""Tests of the selection chapter's figures (omnifer_lib.publish.selection_plots) and book tables
(omnifer_lib.select.report: counts_table, per_class_wide, rule_summary, paper_counts_table)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from omnifer_lib.publish import paper  # noqa: E402
from omnifer_lib.select import PoolSelection, ScoreTable, compare_rules, delta_sweep, reselect  # noqa: E402
from omnifer_lib.publish import selection_plots as P  # noqa: E402
from omnifer_lib.select.report import (counts_table, paper_counts_table, per_class_wide,  # noqa: E402
                                       rule_summary, selection_report)

NAMES = ["a", "b", "c"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def small_selection():
    """Pool of 8; class a: samples 0 (sim 0.5), 3 (0.9), 5 (0.7); class b: 6 (0.8); class c: none."""
    return PoolSelection(pool_index=np.array([0, 3, 5, 6]), pseudo_labels=np.array([0, 0, 0, 1]),
                         similarity=np.array([0.5, 0.9, 0.7, 0.8], np.float32), score=np.ones(4),
                         n_pool=8, num_classes=3, label_names=NAMES, rule="margin", params={"delta": 0.1})


TRUE = np.array([0, 2, 2, 0, 1, 1, 1, -1])  # sample 5 is wrong (true b, chosen as a); 6 right


class ImagePool:
    def __init__(self, n: int):
        self.images = torch.rand(n, 3, 5, 5, generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], -1


def score_table(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(7, 12))
    true = rng.integers(0, 7, n)
    features = centroids[true] + 1.3 * rng.normal(size=(n, 12))
    logits = features @ centroids.T + rng.normal(size=(n, 7))
    return ScoreTable.from_arrays(features, logits, centroids), true


# ----------------------------------------------------------------------------- Fig. 3
def test_fig3_cells_sorted_by_similarity_with_wrong_flags():
    rows = P.fig3_cells(small_selection(), n_per_class=2, true_labels=TRUE)
    assert [[c.pool_index for c in row] for row in rows] == [[3, 5], [6], []]
    assert [[c.wrong for c in row] for row in rows] == [[False, True], [False], []]
    assert rows[0][0].similarity == pytest.approx(0.9)
    no_truth = P.fig3_cells(small_selection(), n_per_class=5)
    assert [c.pool_index for c in no_truth[0]] == [3, 5, 0]
    assert all(c.wrong is None for row in no_truth for c in row)
    unknown = TRUE.copy()
    unknown[3] = -1  # an unknown true label is neither right nor wrong
    assert P.fig3_cells(small_selection(), 1, unknown)[0][0].wrong is None


def test_fig3_cells_rejects_bad_arguments():
    with pytest.raises(ValueError, match="positive number"):
        P.fig3_cells(small_selection(), n_per_class=0)
    with pytest.raises(ValueError, match="pool has 8"):
        P.fig3_cells(small_selection(), 2, true_labels=np.zeros(5))


def test_fig3_sentence_counts_the_wrong_frames_and_names_the_empty_classes():
    sentence = P.fig3_sentence(small_selection(), 2, TRUE)  # shown: 3, 5 (wrong) of a; 6 of b; c is empty
    assert sentence == ("Of the 3 samples shown, 1 (33 %) carry a pseudo-label that differs from their hidden "
                        "expression. No sample was selected for c at this setting.")
    assert P.fig3_sentence(small_selection(), 8) == ("This pool has no hidden labels, so no frame can be drawn. "
                                                     "No sample was selected for c at this setting.")
    two_empty = PoolSelection(pool_index=np.array([0]), pseudo_labels=np.array([1]), similarity=np.ones(1, np.float32),
                              score=np.ones(1), n_pool=8, num_classes=3, label_names=NAMES, rule="margin")
    assert P.fig3_sentence(two_empty, 8, TRUE).endswith("differs from their hidden expression. No sample was "
                                                        "selected for a and c at this setting.")


def test_selected_samples_grid_frames_the_wrong_pseudo_labels():
    fig = P.selected_samples_grid(ImagePool(8), small_selection(), 3, true_labels=TRUE, title="t")
    axes = np.array(fig.axes).reshape(3, 3)
    assert sum(len(ax.images) for ax in fig.axes) == 4
    framed = [(r, c) for r in range(3) for c in range(3)
              if axes[r, c].spines["top"].get_visible() and axes[r, c].spines["top"].get_linewidth() == 3]
    assert framed == [(0, 1)]  # sample 5, second most similar of class a
    assert [t.get_text() for t in axes[2, 0].texts] == ["none\nselected"]
    assert axes[0, 0].get_ylabel() == "a\n(3)" and axes[0, 0].get_title() == "0.900"


# ----------------------------------------------------------------------------- sweeps and comparisons
def test_plot_delta_sweep_draws_counts_and_precision_per_class():
    table, true = score_table()
    deltas = [0.0, 0.05, 0.2, 5.0]
    sweep = delta_sweep(table, deltas, true)
    fig = P.plot_delta_sweep(sweep, title="x")
    count_ax, prec_ax = fig.axes[:2]
    assert count_ax.get_yscale() == "log"
    line_a = count_ax.lines[0]
    expected = sweep[(sweep["class"] == 0)].sort_values("delta")["selected"].to_numpy(float)
    expected[expected == 0] = np.nan
    np.testing.assert_array_equal(line_a.get_ydata(), expected)
    total = prec_ax.lines[-1]
    np.testing.assert_allclose(total.get_ydata(), 100 * sweep[sweep["class"] < 0]["precision"].to_numpy())
    assert len(count_ax.lines) == 8  # seven classes and "all"
    with pytest.raises(ValueError, match="no rows of rule 'softmax'"):
        P.plot_delta_sweep(sweep, "softmax")
    empty = delta_sweep(table, [5.0], true)  # nothing selected: no log axis to draw on
    assert P.plot_delta_sweep(empty).axes[0].get_yscale() == "linear"


def test_plot_delta_sweeps_draws_one_row_per_learner():
    table, true = score_table()
    first, second = delta_sweep(table, [0.0, 0.1], true), delta_sweep(table, [0.0, 0.2, 0.4], true)
    fig = P.plot_delta_sweeps({"one": first, "two": second})
    assert len(fig.axes) == 4 and tuple(fig.get_size_inches()) == pytest.approx((10.5, 7.0))
    assert [ax.get_title(loc="left") for ax in fig.axes[::2]] == ["one", "two"]
    np.testing.assert_array_equal(fig.axes[2].lines[0].get_xdata(), [0.0, 0.2, 0.4])  # the second learner's δ
    with pytest.raises(ValueError, match="at least one"):
        P.plot_delta_sweeps({})


def test_plot_precision_vs_count_uses_matched_counts_and_skips_empty_selections():
    table, true = score_table()
    sweep = delta_sweep(table, [0.0, 0.1, 5.0], true, rules=("margin", "softmax"))
    fig = P.plot_precision_vs_count({"net": sweep}, n_pool={"net": 400})
    ax = fig.axes[0]
    margin, softmax = ax.lines
    totals = sweep[(sweep["class"] < 0) & (sweep["selected"] > 0)]
    m = totals[totals["rule"] == "margin"]
    np.testing.assert_allclose(margin.get_xdata(), 100 * m["selected"] / 400)
    np.testing.assert_allclose(margin.get_ydata(), 100 * m["precision"])
    np.testing.assert_allclose(softmax.get_xdata(), margin.get_xdata())  # same counts (matched)
    assert ax.get_xscale() == "log" and len(margin.get_xdata()) == 2


def test_plot_rule_comparison_bar_heights():
    table, true = score_table()
    cmp = compare_rules(table, 0.05, true)
    fig = P.plot_rule_comparison(cmp, rules=["margin", "balanced_topk"])
    count_ax, prec_ax = fig.axes[:2]
    heights = [p.get_height() for p in count_ax.patches]
    margin = cmp[(cmp["rule"] == "margin") & (cmp["class"] >= 0)]["selected"].tolist()
    topk = cmp[(cmp["rule"] == "balanced_topk") & (cmp["class"] >= 0)]["selected"].tolist()
    assert heights == margin + topk
    precisions = [p.get_height() for p in prec_ax.patches][:8]
    np.testing.assert_allclose(precisions, 100 * cmp[cmp["rule"] == "margin"]["precision"].to_numpy())
    assert [t.get_text() for t in prec_ax.get_xticklabels()][-1] == "all"
    with pytest.raises(ValueError, match="missing"):
        P.plot_rule_comparison(cmp.drop(columns="precision"))


# ----------------------------------------------------------------------------- report tables
def test_selection_report_counts_the_pool_per_class():
    rep = selection_report(small_selection(), TRUE).set_index("name")
    assert rep["in_pool"].tolist() == [2, 3, 2, 7]  # the -1 sample is not counted
    assert selection_report(small_selection())["in_pool"].isna().all()


def test_counts_table_per_learner():
    sel = small_selection()
    table = counts_table({"one": sel, "two": sel}, TRUE)
    assert table.index.tolist() == ["a", "b", "c", "all"]
    assert table[("pool (hidden labels)", "images")].tolist() == [2, 3, 2, 7]
    assert table[("one", "selected")].tolist() == [3, 1, 0, 4]
    assert table[("two", "% of pool")].tolist() == [37.5, 12.5, 0.0, 50.0]
    assert table[("one", "precision (%)")].iloc[0] == pytest.approx(100 * 2 / 3)  # samples 0, 3 right, 5 wrong
    assert np.isnan(table[("one", "precision (%)")].loc["c"])
    bare = counts_table({"one": sel})
    assert list(bare.columns) == [("one", "selected"), ("one", "% of pool")]
    other = PoolSelection(pool_index=np.array([0]), pseudo_labels=np.array([0]), similarity=np.ones(1, np.float32),
                          score=np.ones(1), n_pool=9, num_classes=3, label_names=NAMES, rule="margin")
    with pytest.raises(ValueError, match="different sizes"):
        counts_table({"one": sel, "other": other})


def test_per_class_wide_keeps_class_order_and_column_order():
    table, true = score_table()
    cmp = compare_rules(table, 0.05, true)
    wide = per_class_wide(cmp, "selected")
    assert wide.index.tolist() == list(table.label_names) + ["all"]
    assert list(wide.columns) == list(dict.fromkeys(cmp["rule"]))
    row = cmp[(cmp["rule"] == "softmax") & (cmp["class"] == 3)]
    assert wide.loc[table.label_names[3], "softmax"] == row["selected"].item()
    sweep = delta_sweep(table, [0.1, 0.0], true)
    assert list(per_class_wide(sweep, "precision", by="delta").columns) == [0.1, 0.0]
    with pytest.raises(ValueError, match="no column 'recal'"):
        per_class_wide(cmp, "recal")


def test_rule_summary_numbers():
    rows = []
    for rule, counts, correct in (("margin", [6, 2, 0], [3, 2, 0]), ("balanced_topk", [2, 2, 2], [2, 1, 0])):
        for k, (n, c) in enumerate(zip(counts, correct)):
            rows.append({"rule": rule, "class": k, "name": NAMES[k], "selected": n,
                         "precision": c / n if n else np.nan})
        rows.append({"rule": rule, "class": -1, "name": "all", "selected": sum(counts),
                     "precision": sum(correct) / sum(counts)})
    summary = rule_summary(pd.DataFrame(rows)).set_index("rule")
    assert summary.loc["margin", "smallest class"] == 0 and summary.loc["margin", "largest class"] == 6
    assert np.isinf(summary.loc["margin", "largest / smallest"])
    assert summary.loc["balanced_topk", "largest / smallest"] == 1.0
    assert summary.loc["margin", "precision"] == pytest.approx(5 / 8)
    assert summary.loc["margin", "mean class precision"] == pytest.approx(0.75)  # (0.5 + 1) / 2 classes
    assert summary.loc["balanced_topk", "mean class precision"] == pytest.approx(0.5)  # (1 + 0.5 + 0) / 3


def test_paper_counts_table_shares():
    df = paper_counts_table({"this run": (30, 120)}, paper.counts()).set_index("source")
    counts = paper.counts()
    assert df.loc["paper, §3.3", "selected"] == counts["selected_auxiliary_samples_sec_3_3"]
    assert df.loc["paper, §3.3", "share of pool (%)"] == pytest.approx(
        100 * counts["selected_auxiliary_samples_sec_3_3"] / counts["ms1m_images"])
    assert df.loc["this run", "share of pool (%)"] == 25.0 and df.loc["this run", "pool"] == 120


def test_reselected_counts_agree_with_the_counts_table():
    table, true = score_table()
    sel = reselect(table, delta=0.05)
    counts = counts_table({"net": sel}, true)
    assert counts[("net", "selected")].iloc[:-1].tolist() == sel.counts().tolist()
    correct = (true[sel.pool_index] == sel.pseudo_labels).sum()
    assert counts[("net", "precision (%)")].loc["all"] == pytest.approx(100 * correct / len(sel))


def test_few_images_source_renders_the_same_synthetic_images():
    from omnifer_lib.data.synthetic import SyntheticFER

    pool = SyntheticFER(split="train", domain="ms1m", size=60, image_size=16, seed=3)
    twin = P.few_images_source(pool)
    assert twin is not pool and len(twin) == len(pool)
    for i in (0, 17, 59):
        assert torch.equal(twin[i][0], pool[i][0])
    np.testing.assert_array_equal(twin.true_labels, pool.true_labels)
    other = ImagePool(3)
    assert P.few_images_source(other) is other
