"""Figures and tables of the distillation chapters (omnifer_lib.publish.distill_plots)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from omnifer_lib.distill import DistillResult  # noqa: E402
from omnifer_lib.distill.evaluate import DistilledEvaluation  # noqa: E402
from omnifer_lib.publish.distill_plots import (evaluations_table, per_class, plot_distill_history,  # noqa: E402
                                       plot_evaluations, plot_image_gradients, plot_prediction_curves,
                                       show_image_rows)
from omnifer_lib.publish.plots import to_display


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def result(labels=(0, 1, 2), iterations=5, steps=2):
    labels = torch.tensor(labels)
    return DistillResult(images=torch.rand(len(labels), 3, 6, 6, generator=torch.Generator().manual_seed(0)),
                         labels=labels, step_sizes=torch.full((steps,), 0.1), method="algorithm1",
                         config={"num_classes": 3}, loss_history=[2.0 - 0.1 * i for i in range(iterations)],
                         step_size_history=[[0.1 + 0.01 * i] * steps for i in range(iterations)])


def test_per_class_takes_the_first_image_of_each_class_and_marks_missing_ones():
    images = torch.arange(4).float().view(4, 1, 1, 1).expand(4, 3, 2, 2)
    cols = per_class(images, torch.tensor([2, 0, 2, 0]), num_classes=3)
    assert cols[1] is None
    assert float(cols[0][0, 0, 0]) == 1.0 and float(cols[2][0, 0, 0]) == 0.0
    with pytest.raises(ValueError, match="labels"):
        per_class(images, torch.tensor([0, 1]), 3)


def test_to_display_clips_to_the_unit_range_and_moves_channels_last():
    img = torch.tensor([-0.5, 0.5, 1.5]).view(3, 1, 1).expand(3, 2, 2)
    arr = to_display(img)
    assert arr.shape == (2, 2, 3) and arr[0, 0].tolist() == [0.0, 0.5, 1.0]


def test_show_image_rows_aligns_results_by_class_and_marks_empty_classes():
    full = result(labels=(0, 1, 2))
    partial = result(labels=(0, 2))
    fig = show_image_rows({"full": full, "partial": partial, "tensor": torch.rand(2, 3, 6, 6)},
                          column_names=["a", "b", "c"], missing="empty")
    axes = np.array(fig.axes).reshape(3, 3)
    assert [len(ax.images) for ax in axes[0]] == [1, 1, 1]
    assert [len(ax.images) for ax in axes[1]] == [1, 0, 1]
    assert axes[1, 1].texts[0].get_text() == "empty"
    assert [len(ax.images) for ax in axes[2]] == [1, 1, 0]
    assert axes[0, 0].get_title() == "a" and axes[1, 0].get_ylabel() == "partial"
    with pytest.raises(ValueError, match="column names"):
        show_image_rows({"full": full}, column_names=["a"])
    with pytest.raises(ValueError, match="at least one row"):
        show_image_rows({})


def test_plot_distill_history_draws_the_loss_and_one_curve_per_step_size():
    fig = plot_distill_history(result(iterations=20, steps=3), smooth=5)
    loss_ax, eta_ax = fig.axes
    assert len(loss_ax.lines) == 2  # raw + moving average
    assert len(loss_ax.lines[1].get_xdata()) == 16
    assert len(eta_ax.lines) == 3
    with pytest.raises(ValueError, match="no loss history"):
        plot_distill_history(result(iterations=0))


def test_plot_image_gradients_shows_one_magnitude_map_per_image():
    grad = torch.zeros(3, 3, 4, 4)
    grad[1, :, 0, 0] = torch.tensor([1.0, -2.0, 0.5])
    fig = plot_image_gradients(grad, column_names=["a", "b", "c"])
    maps = [ax.images[0].get_array() for ax in fig.axes[:3]]
    assert maps[1][0, 0] == pytest.approx(3.5) and float(np.asarray(maps[0]).max()) == 0.0
    with pytest.raises(ValueError, match="shape"):
        plot_image_gradients(torch.zeros(3, 4, 4))


def test_evaluations_table_and_bars():
    evs = {"Algorithm 1": DistilledEvaluation("learned", "algorithm1", [0.3, 0.5], 1 / 7),
           "random real": DistilledEvaluation("sgd", "random_real", [0.2], 1 / 7)}
    table = evaluations_table(evs)
    assert table["accuracy (%)"].tolist() == pytest.approx([40.0, 20.0])
    assert table["± std"].iloc[0] == pytest.approx(100 * np.std([0.3, 0.5], ddof=1))
    assert np.isnan(table["± std"].iloc[1])  # one initialisation: its spread is unknown, not 0
    assert str(evs["random real"]).startswith("random_real [sgd]: 20.0 % over 1 inits")
    assert "40.0 ± 14.1 %" in str(evs["Algorithm 1"])
    assert table["trained with"].tolist() == ["learned η and steps", "plain SGD"]
    assert table["chance (%)"].iloc[0] == pytest.approx(100 / 7)
    pairs = evaluations_table([("A", evs["Algorithm 1"]), ("A", evs["random real"])])
    assert pairs["set"].tolist() == ["A", "A"] and pairs["trained with"].tolist()[1] == "plain SGD"
    fig = plot_evaluations(table)
    ax = fig.axes[0]
    heights = sorted(round(p.get_height(), 6) for p in ax.patches if np.isfinite(p.get_height()) and p.get_height() > 0)
    assert heights == [20.0, 40.0]


def test_plot_prediction_curves_draws_mean_curves_and_chance():
    acc = np.array([[0.1, 0.5, 1.0], [0.3, 0.7, 1.0]])
    fig = plot_prediction_curves({"snapshots": acc, "real": acc * 0.5}, chance=1 / 7)
    ax = fig.axes[0]
    assert np.allclose(ax.lines[0].get_ydata(), [20.0, 60.0, 100.0])
    assert ax.lines[-1].get_ydata()[0] == pytest.approx(100 / 7)
    with pytest.raises(ValueError, match="at least one"):
        plot_prediction_curves({}, chance=0.1)
