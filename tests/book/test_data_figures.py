"""Fig. 2 grid and the class-count table."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from omnifer_lib.data import LABELS, load  # noqa: E402
from omnifer_lib.publish.dataset_figures import FIG2_ORDER, class_table, example_grid  # noqa: E402


@pytest.fixture(scope="module")
def synthetic():
    def domain(name, split, n):
        return load("synthetic", split=split, domain=name, size=n, image_size=32, seed=0)

    out = {name: {"train": domain(name, "train", 70 if name == "rafdb" else 35),
                  "test": domain(name, "test", 35)} for name in FIG2_ORDER}
    out["ms1m"] = {"train": domain("ms1m", "train", 50)}
    return out


def test_example_grid_rows_are_classes_columns_datasets(synthetic):
    fig = example_grid({k: v["train"] for k, v in synthetic.items() if k != "ms1m"}, seed=1)
    axes = np.array(fig.axes).reshape(7, 5)
    assert [ax.get_title() for ax in axes[0]] == ["RAF-DB", "FER-2013", "MMI", "CK+", "JAFFE"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == list(LABELS)
    shown = sum(len(ax.images) for ax in fig.axes)
    empty = sum(any(t.get_text() == "none" for t in ax.texts) for ax in fig.axes)
    assert shown + empty == 35 and shown >= 30


def test_example_grid_marks_missing_class(tmp_path):
    for cls in ("anger", "happy"):
        p = tmp_path / "CK+48" / cls / "S010_001_00000001.png"
        p.parent.mkdir(parents=True)
        Image.new("L", (8, 8), 90).save(p)
    fig = example_grid({"ckplus": load("ckplus", root=tmp_path)})
    texts = [[t.get_text() for t in ax.texts] for ax in fig.axes]
    assert texts[LABELS.index("neutral")] == ["none"] and texts[LABELS.index("happy")] == []


def test_class_table_counts(synthetic):
    df = class_table(synthetic, include_hidden=True)
    raf = synthetic["rafdb"]["train"]
    row = df.loc[("RAF-DB", "train")]
    assert [row[c] for c in LABELS] == np.bincount(raf.labels, minlength=7).tolist()
    assert row["total"] == 70 and row["unlabeled"] == 0
    pool = df.loc[("MS-Celeb-1M", "train")]
    assert pool["unlabeled"] == 50 and sum(pool[c] for c in LABELS) == 0
    hidden = df.loc[("MS-Celeb-1M", "train (hidden labels)")]
    assert sum(hidden[c] for c in LABELS) == 50


def test_chapter_datasets_table_and_fig2_follow_the_profile():
    from omnifer_lib.publish import config, dataset_figures

    params = config.load_profile("smoke")
    assert dataset_figures.chapter_splits(params)["jaffe"] == ("test",)
    assert dataset_figures.chapter_splits({**params, "data_source": "real"})["jaffe"] == ("all",)
    datasets = dataset_figures.book_datasets(params)
    table = dataset_figures.datasets_table(params, datasets)
    assert list(table.columns) == ["dataset", "split", "role", "what it is"]
    assert len(table) == sum(len(s) for s in dataset_figures.chapter_splits(params).values())
    assert table.iloc[0]["dataset"] == "RAF-DB" and "synthetic" in table.iloc[0]["role"]
    fig = dataset_figures.fig2(params, datasets)
    assert [ax.get_title() for ax in fig.axes[:len(dataset_figures.FIG2_ORDER)]][0].startswith("RAF-DB")
    # real faces are not shown unless the data's terms allow it
    assert dataset_figures.fig2({**params, "data_source": "real", "show_real_images": False}, {}) is None
