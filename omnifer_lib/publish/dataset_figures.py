"""Dataset overview for the book: Fig. 2 (one example per expression per dataset) and a
table of images per class per split.

:func:`example_grid` draws Fig. 2 from the datasets playing the paper's (as
``omnifer_lib.engine.pipeline.dataset`` opens them) and :func:`class_table` counts their classes.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from omnifer_lib.publish.plots import to_display
from omnifer_lib.data.registry import DATASET_NAMES
from omnifer_lib.names import LABELS
from omnifer_lib.seeds import numpy_rng

#: Fig. 2's column order (§4.1: "From left to right: RAF-DB 2.0, FER-2013, MMI, CK+, and JAFFE")
FIG2_ORDER = ("rafdb", "fer2013", "mmi", "ckplus", "jaffe")
def _pick(dataset, cls: int, rng: np.random.Generator, use_true: bool) -> Optional[int]:
    labels = np.asarray(getattr(dataset, "true_labels", dataset.labels) if use_true else dataset.labels)
    idx = np.flatnonzero(labels == cls)
    return int(rng.choice(idx)) if len(idx) else None


def example_grid(datasets: Mapping[str, object], seed: int = 0, classes: Sequence[str] = LABELS,
                 titles: Optional[Mapping[str, str]] = None, use_true_labels: bool = True,
                 cell_inches: float = 1.3):
    """Fig. 2: a matplotlib Figure with one row per expression (``classes`` order) and one
    column per dataset (the mapping's order), one randomly chosen example per cell
    (reproducible by ``seed``). A class a dataset lacks gives an empty cell marked
    "none". Synthetic examples are chosen by their rendered (true) expression unless
    ``use_true_labels=False``."""
    import matplotlib.pyplot as plt

    names = list(datasets)
    fig, axes = plt.subplots(len(classes), len(names), squeeze=False,
                             figsize=(cell_inches * len(names) + 0.8, cell_inches * len(classes)))
    rng = numpy_rng(seed)
    for j, name in enumerate(names):
        ds = datasets[name]
        for i, cname in enumerate(classes):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            k = _pick(ds, list(ds.classes).index(cname), rng, use_true_labels) if cname in ds.classes else None
            if k is None:
                ax.text(0.5, 0.5, "none", ha="center", va="center", fontsize=8, color="0.5",
                        transform=ax.transAxes)
            else:
                ax.imshow(to_display(ds[k][0]), interpolation="nearest")
            if i == 0:
                ax.set_title((titles or {}).get(name, DATASET_NAMES.get(name, name)), fontsize=8)
            if j == 0:
                ax.set_ylabel(cname, fontsize=9)
    fig.tight_layout()
    return fig


def class_table(datasets: Mapping[str, Mapping[str, object]], include_hidden: bool = False):
    """pandas DataFrame of images per class, one row per (dataset, split), columns the
    canonical classes (+ ``contempt`` where a dataset keeps it), ``unlabeled`` and
    ``total``. With ``include_hidden``, unlabeled pools that keep hidden true labels
    (synthetic ms1m) get a second row ``(name, split + " (hidden labels)")``."""
    import pandas as pd

    rows, index = [], []
    for name, splits in datasets.items():
        for split, ds in splits.items():
            labels = np.asarray(ds.labels)
            classes = list(ds.classes)
            row = {c: int((labels == k).sum()) for k, c in enumerate(classes)}
            row["unlabeled"] = int((labels < 0).sum())
            row["total"] = len(labels)
            rows.append(row)
            index.append((DATASET_NAMES.get(name, name), split))
            if include_hidden and (labels < 0).any() and hasattr(ds, "true_labels"):
                true = np.asarray(ds.true_labels)
                hidden = {c: int(((true == k) & (labels < 0)).sum()) for k, c in enumerate(classes)}
                rows.append({**hidden, "unlabeled": 0, "total": int((labels < 0).sum())})
                index.append((DATASET_NAMES.get(name, name), f"{split} (hidden labels)"))
    cols = list(LABELS) + sorted({c for r in rows for c in r} - set(LABELS) - {"unlabeled", "total"}) \
        + ["unlabeled", "total"]
    df = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["dataset", "split"]))
    return df.reindex(columns=cols).fillna(0).astype(int)


def chapter_splits(params: Mapping[str, object]) -> Dict[str, Tuple[str, ...]]:
    """The splits of each of the paper's datasets that the book's chapters use: RAF-DB, FER-2013 and
    CK+ train and test, MMI and JAFFE test, MS-Celeb-1M train; real CK+, MMI and JAFFE have no
    published split and are read whole (``"all"``)."""
    splits = {"rafdb": ("train", "test"), "fer2013": ("train", "test"), "mmi": ("test",),
              "ckplus": ("train", "test"), "jaffe": ("test",), "ms1m": ("train",)}
    if params["data_source"] == "real":
        splits.update({"mmi": ("all",), "ckplus": ("all",), "jaffe": ("all",)})
    return splits


def book_datasets(params: Mapping[str, object]) -> Dict[str, Dict[str, object]]:
    """``{dataset: {split: dataset}}``: the datasets of :func:`chapter_splits` exactly as the later
    chapters open them (:func:`omnifer_lib.engine.pipeline.dataset`)."""
    from omnifer_lib.engine import pipeline

    return {name: {split: pipeline.dataset(params, name, split) for split in splits}
            for name, splits in chapter_splits(params).items()}


def datasets_table(params: Mapping[str, object], datasets: Mapping[str, Mapping[str, object]]):
    """pandas DataFrame, one row per (dataset, split): its display name, the role it plays in this
    run (:func:`~omnifer_lib.engine.pipeline.role_description`) and what it is (``data.describe``)."""
    import pandas as pd

    from omnifer_lib.engine import pipeline
    from omnifer_lib.data import describe

    return pd.DataFrame([{"dataset": DATASET_NAMES[name], "split": split,
                          "role": pipeline.role_description(params, name), "what it is": describe(ds)}
                         for name, parts in datasets.items() for split, ds in parts.items()])


def fig2(params: Mapping[str, object], datasets: Mapping[str, Mapping[str, object]]):
    """Fig. 2 (:func:`example_grid`) from the first split of each dataset of :data:`FIG2_ORDER`, its
    titles marking a synthetic stand-in; ``None`` when this run may not show its images
    (:func:`~omnifer_lib.engine.pipeline.images_may_be_shown`: real faces)."""
    from omnifer_lib.engine import pipeline

    if not pipeline.images_may_be_shown(params):
        return None
    suffix = "\n(synthetic role)" if params["data_source"] == "synthetic" else ""
    first_split = {name: next(iter(datasets[name].values())) for name in FIG2_ORDER}
    return example_grid(first_split, seed=params["seed"], titles={n: DATASET_NAMES[n] + suffix for n in first_split})
