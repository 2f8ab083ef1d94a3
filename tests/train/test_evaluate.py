"""evaluate: metrics with known values, prediction over datasets, targets, folds, seeds."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from omnifer_lib import evaluate as ev


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 2, -1])
Y_PRED = np.array([0, 0, 0, 1, 1, 0, 2, 2])


def test_accuracy_is_overall_and_ignores_unknown_labels():
    # 5 of the 7 labeled samples are right; the -1 sample is not scored
    assert ev.accuracy(Y_TRUE, Y_PRED) == pytest.approx(100 * 5 / 7)
    assert ev.accuracy(torch.tensor(Y_TRUE), torch.tensor(Y_PRED)) == pytest.approx(100 * 5 / 7)
    assert math.isnan(ev.accuracy([-1], [0]))
    with pytest.raises(ValueError, match="differ in length"):
        ev.accuracy([0, 1], [0])


def test_per_class_and_mean_class_accuracy():
    per = ev.per_class_accuracy(Y_TRUE, Y_PRED, num_classes=4)
    assert per[:3] == pytest.approx([75.0, 50.0, 100.0]) and math.isnan(per[3])
    assert ev.mean_class_accuracy(Y_TRUE, Y_PRED, num_classes=4) == pytest.approx(75.0)


def test_confusion_matrix_rows_true_columns_predicted():
    cm = ev.confusion_matrix(Y_TRUE, Y_PRED, num_classes=3)
    assert cm.tolist() == [[3, 1, 0], [1, 1, 0], [0, 0, 1]]
    norm = ev.confusion_matrix(Y_TRUE, Y_PRED, num_classes=3, normalize="true")
    assert norm[0].tolist() == [0.75, 0.25, 0.0] and norm.sum(1) == pytest.approx([1, 1, 1])
    with pytest.raises(ValueError, match="0..1"):
        ev.confusion_matrix([0, 2], [0, 1], num_classes=2)


class Fixed(nn.Module):
    """Predicts the class stored in pixel (0, 0, 0) of the image; records train/eval mode."""

    num_classes = 3
    feature_dim = 2

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.modes = []

    def features(self, x):
        self.modes.append(self.training)
        return torch.stack([x[:, 0, 0, 0], x[:, 1, 0, 0]], 1)

    def forward(self, x):
        k = self.features(x)[:, 0].round().long()
        return nn.functional.one_hot(k, 3).float() + 0 * self.dummy


class Items(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def _data(n=10):
    x = torch.zeros(n, 3, 4, 4)
    pred = torch.arange(n) % 3
    x[:, 0, 0, 0] = pred.float()
    y = pred.clone()
    y[:3] = (y[:3] + 1) % 3  # 3 wrong
    return x, y


def test_predict_features_and_evaluate_on_every_data_form():
    x, y = _data()
    model = Fixed().train()
    outs = [ev.predict(model, d, batch_size=4, device="cpu", progress=False)
            for d in [(x, y), TensorDataset(x, y), Items(x, y)]]
    assert all(torch.equal(o, torch.arange(10) % 3) for o in outs)
    assert model.training and model.modes and not any(model.modes)  # eval inside, restored after
    assert ev.extract_features(model, (x, y), progress=False).shape == (10, 2)
    res = ev.evaluate(model, Items(x, y), device="cpu", progress=False)
    assert res["n"] == 10 and res["accuracy"] == pytest.approx(70.0)
    assert res["confusion"].sum() == 10 and res["confusion"].shape == (3, 3)


def test_as_tensors_materialises_or_declines():
    x, y = _data()
    xi, yi = ev.as_tensors(Items(x, y), progress=False)
    assert torch.equal(xi, x) and torch.equal(yi, y) and yi.dtype == torch.int64
    assert ev.as_tensors(Items(x, y), max_bytes=10) is None  # too big: stream instead


def test_evaluate_targets_is_a_tidy_table():
    x, y = _data()
    table = ev.evaluate_targets(Fixed(), {"rafdb": (x, y), "jaffe": (x[3:], y[3:])}, device="cpu", progress=False)
    assert list(table.columns) == ["target", "n", "accuracy", "mean_class_accuracy"]
    assert table["target"].tolist() == ["rafdb", "jaffe"]
    assert table["accuracy"].tolist() == pytest.approx([70.0, 100.0])


def test_cross_validate_k_fold_and_pooled():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
    folds = [(np.setdiff1d(np.arange(10), te), te) for te in (np.arange(0, 5), np.arange(5, 10))]

    def majority(train_idx, test_idx):  # a "learner" predicting the training majority class
        k = np.bincount(labels[train_idx]).argmax()
        return labels[test_idx], np.full(len(test_idx), k)

    res = ev.cross_validate(folds, majority, num_classes=3)
    # fold 0: train majority of [1,1,2,2,2] = 2 -> 0 right of 5; fold 1: train [0,0,0,1,1] -> 0 -> 0 right
    assert res["folds"]["accuracy"].tolist() == [0.0, 0.0]
    assert res["folds"]["n_test"].tolist() == [5, 5] and res["pooled"] == 0.0
    assert res["confusion"].sum() == 10

    def perfect(train_idx, test_idx):
        return labels[test_idx], labels[test_idx]

    loso = [(np.setdiff1d(np.arange(10), [i]), np.array([i])) for i in range(10)]
    res = ev.cross_validate(loso, perfect)
    assert res["mean"] == 100.0 and res["std"] == 0.0 and len(res["folds"]) == 10
    with pytest.raises(ValueError, match="overlap"):
        ev.cross_validate([(np.arange(3), np.arange(2, 4))], perfect)


def test_seed_statistics_and_formatting():
    st = ev.seed_statistics([85.0, 85.5, 84.5, float("nan")])  # non-finite values are left out
    assert st.mean == pytest.approx(85.0) and st.std == pytest.approx(0.5) and st.n == 3
    assert st.se == pytest.approx(0.5 / math.sqrt(3))
    assert st.text() == "85.0 ± 0.5" and st.text(2, with_n=True) == "85.00 ± 0.50 (n=3)"
    assert ev.format_mean_std(85.24, float("nan"), digits=2) == "85.24"
    assert ev.format_mean_std(float("nan")) == "–"
    single = ev.seed_statistics([70.0])
    assert single.mean == 70.0 and math.isnan(single.std) and math.isnan(single.se) and single.text() == "70.0"
    assert ev.seed_statistics([]).n == 0 and ev.seed_statistics([]).text() == "–"


def test_the_two_standard_error_rule():
    diff, se = ev.difference([80.0, 82.0, 84.0], [70.0, 71.0, 72.0])
    assert diff == pytest.approx(11.0) and se == pytest.approx(math.sqrt(4 / 3 + 1 / 3))
    assert ev.beyond_noise(diff, se) and not ev.beyond_noise(2 * se, se) and ev.beyond_noise(2.01 * se, se)
    assert ev.beyond_noise(*ev.difference([81.0], [80.0]))  # one seed each: any difference counts
    assert not ev.beyond_noise(*ev.difference([80.0], [80.0]))
    assert ev.NOISE_FACTOR == 2.0


def test_summarize_seeds_groups_settings():
    table = pd.DataFrame({"backbone": ["vgg"] * 3 + ["resnet"] * 3, "seed": [0, 1, 2] * 2,
                          "accuracy": [80.0, 82.0, 84.0, 70.0, 70.0, 70.0]})
    out = ev.summarize_seeds(table, by="backbone")
    assert out["backbone"].tolist() == ["vgg", "resnet"]
    assert out["text"].tolist() == ["82.0 ± 2.0", "70.0 ± 0.0"] and out["n"].tolist() == [3, 3]
    assert out["se"].iloc[0] == pytest.approx(2 / math.sqrt(3))
    with pytest.raises(ValueError, match="not in the table"):
        ev.summarize_seeds(table, by="mode")
