"""The book's result plots draw what they say: every seed, and the mean ± std of the tables."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from omnifer_lib.publish.plots import confusion_heatmap, seed_points  # noqa: E402


def _offsets(ax):
    return np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())])


def test_seed_points_draws_every_seed_and_the_mean():
    rows = pd.DataFrame({"mode": ["a", "a", "a", "b", "b", "b"], "accuracy": [10.0, 20.0, 30.0, 40.0, 41.0, 45.0]})
    fig = seed_points(rows, x="mode")
    ax = fig.axes[0]
    ys = sorted(np.round(_offsets(ax)[:, 1], 6))
    for v in rows["accuracy"]:  # each seed is a point
        assert v in ys
    marks = [y for line in ax.lines if line.get_marker() not in (None, "None", "") for y in line.get_ydata()]
    for mean in (20.0, 42.0):  # and each mean is drawn as a marker
        assert any(abs(y - mean) < 1e-6 for y in marks), marks
    # the whiskers span ± one standard deviation (ddof=1, as in the tables)
    sd = rows[rows["mode"] == "a"]["accuracy"].std()
    tops = [np.nanmax(line.get_ydata()) for line in ax.lines if line.get_marker() in (None, "None", "")]
    assert any(abs(t - (20 + sd)) < 1e-6 for t in tops)
    plt.close(fig)


def test_seed_points_with_hue_keeps_groups_apart():
    rows = pd.DataFrame({"mode": ["a"] * 4, "backbone": ["x", "x", "y", "y"], "accuracy": [1.0, 2.0, 5.0, 6.0]})
    fig = seed_points(rows, x="mode", hue="backbone", reference=3.0, reference_label="chance")
    ax = fig.axes[0]
    pts = _offsets(ax)
    left = pts[pts[:, 1] < 3][:, 0]
    right = pts[pts[:, 1] > 3][:, 0]
    assert left.max() < right.min()  # the two backbones sit side by side, not on top of each other
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["x", "y"]
    plt.close(fig)


def test_confusion_heatmap_is_row_normalised():
    fig = confusion_heatmap([[3, 1], [0, 4]], ["neutral", "happy"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["75", "25", "0", "100"]
    plt.close(fig)


def test_cost_ratios_plots_each_learner_beside_the_paper():
    from omnifer_lib.publish.plots import cost_ratios

    table8 = pd.DataFrame({"learner": ["VGG-small"] * 3 + ["ResNet-small"] * 3, "setting": ["w/o AS", "VAS", "DAS"] * 2,
                           "ratio (mean)": [1.0, 1.4, 1.2, 1.0, 1.5, 1.1],
                           "ratio to w/o AS (paper)": [1.0, 10.48, 1.01] * 2})
    fig = cost_ratios(table8)
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["this run: VGG-small", "this run: ResNet-small",
                                                             "paper (Table 8)"]
    assert list(ax.get_lines()[2].get_ydata()) == [1.0, 10.48, 1.01] and ax.get_yscale() == "log"
    plt.close(fig)


def test_accuracy_heatmap_writes_every_cell():
    from omnifer_lib.publish.plots import accuracy_heatmap

    grid = pd.DataFrame([[55.0, 35.0], [71.0, 80.5]], index=["VGG-small baseline", "ResNet-small VAS"],
                        columns=["RAF-DB", "CK+"])
    fig = accuracy_heatmap(grid, title="t")
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == sorted(["55.0", "35.0", "71.0", "80.5"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["RAF-DB", "CK+"]
    plt.close(fig)


def test_confusion_heatmaps_draw_one_titled_panel_per_learner():
    from omnifer_lib.publish.plots import confusion_heatmaps

    fig = confusion_heatmaps({"A": np.eye(3) * 5, "B": np.ones((3, 3))}, ["x", "y", "z"])
    assert [ax.get_title() for ax in fig.axes] == ["A", "B"]
    plt.close(fig)


def test_seed_points_draw_the_same_figure_twice_and_leave_numpy_alone():
    rows = pd.DataFrame({"mode": ["a"] * 3 + ["b"] * 3, "accuracy": [10.0, 20.0, 30.0, 40.0, 41.0, 45.0]})
    np.random.seed(7)
    expected_next = np.random.rand()
    np.random.seed(7)
    first = _offsets(seed_points(rows, x="mode").axes[0])
    assert np.random.rand() == expected_next  # the caller's global random stream is untouched
    second = _offsets(seed_points(rows, x="mode").axes[0])
    assert np.array_equal(first, second)  # the jitter is drawn the same way each time
    plt.close("all")
