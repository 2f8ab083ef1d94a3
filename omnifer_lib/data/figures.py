"""Dataset overview for the book: Fig. 2 (one example per expression per dataset) and a
table of images per class per split.

:func:`paper_datasets` opens the datasets of the paper — real ones from their roots, or
the synthetic domains that play their roles — in the paper's order; :func:`example_grid`
draws Fig. 2 from them and :func:`class_table` counts their classes.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from ._base import LABELS

#: Fig. 2's column order (§4.1: "From left to right: RAF-DB 2.0, FER-2013, MMI, CK+, and JAFFE")
FIG2_ORDER = ("rafdb", "fer2013", "mmi", "ckplus", "jaffe")
DISPLAY = {"rafdb": "RAF-DB", "fer2013": "FER-2013", "mmi": "MMI", "ckplus": "CK+", "jaffe": "JAFFE",
           "ms1m": "MS1M"}
#: splits of each dataset: the real datasets' published ones; synthetic domains have train/test
REAL_SPLITS = {"rafdb": ("train", "test"), "fer2013": ("train", "val", "test"), "mmi": ("all",),
               "ckplus": ("all",), "jaffe": ("all",), "ms1m": ("train",)}
ROOT_HINT = {
    "rafdb": "the folder holding basic/EmoLabel/list_patition_label.txt",
    "fer2013": "the folder holding fer2013.csv or train/ test/ class folders",
    "mmi": "the folder holding Sessions/<id>/session.xml with extracted frames",
    "ckplus": "the folder holding cohn-kanade-images/ and Emotion/ (or CK+48/)",
    "jaffe": "the folder holding the JAFFE .tiff images",
    "ms1m": "the folder holding train.rec, train.idx and property",
}


def paper_datasets(data_source: str, image_size: int = 48, seed: int = 0, n_anchor_train: int = 3000,
                   n_anchor_test: int = 1000, n_cross_test: int = 300, n_pool: Optional[int] = None,
                   roots: Optional[Mapping[str, Optional[str]]] = None,
                   names: Sequence[str] = FIG2_ORDER) -> Dict[str, Dict[str, object]]:
    """``{dataset name: {split: dataset}}`` in the order of ``names``.

    ``data_source="synthetic"``: the synthetic domain of each name (anchor sizes for
    rafdb, ``n_cross_test`` for both splits of the others, ``n_pool`` for ms1m's train).
    ``"real"``: ``roots[name]`` for each; a missing root raises ``ValueError`` saying which
    parameter to set and what folder it must point at. ``ms1m`` is included only when it
    is in ``names`` (and, for synthetic data, ``n_pool`` is given)."""
    from . import load

    out: Dict[str, Dict[str, object]] = {}
    if data_source == "synthetic":
        for name in names:
            if name == "ms1m":
                if n_pool is not None:
                    out[name] = {"train": load("synthetic", split="train", domain=name, size=n_pool,
                                               image_size=image_size, seed=seed)}
                continue
            sizes = (n_anchor_train, n_anchor_test) if name == "rafdb" else (n_cross_test, n_cross_test)
            out[name] = {split: load("synthetic", split=split, domain=name, size=n, image_size=image_size,
                                     seed=seed) for split, n in zip(("train", "test"), sizes)}
        return out
    if data_source != "real":
        raise ValueError(f"data_source must be 'synthetic' or 'real', got {data_source!r}")
    roots = dict(roots or {})
    missing = [n for n in names if not roots.get(n)]
    if missing:
        lines = "\n".join(f"  {n}_root: {ROOT_HINT.get(n, 'its folder')}" for n in missing)
        raise ValueError("data_source='real' needs the dataset roots; set these parameters "
                         f"(-p NAME PATH):\n{lines}")
    for name in names:
        splits = {}
        for split in REAL_SPLITS[name]:
            try:
                splits[split] = load(name, root=roots[name], split=split)
            except FileNotFoundError:
                if name == "fer2013" and split == "val":
                    continue  # the image-folder release has no val/
                raise
        out[name] = splits
    return out


def _pick(dataset, cls: int, rng: np.random.Generator, use_true: bool) -> Optional[int]:
    labels = np.asarray(getattr(dataset, "true_labels", dataset.labels) if use_true else dataset.labels)
    idx = np.flatnonzero(labels == cls)
    return int(rng.choice(idx)) if len(idx) else None


def _to_hwc(img) -> np.ndarray:
    import torch

    if isinstance(img, torch.Tensor):
        return img.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


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
    rng = np.random.default_rng(seed)
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
                ax.imshow(_to_hwc(ds[k][0]), interpolation="nearest")
            if i == 0:
                ax.set_title((titles or {}).get(name, DISPLAY.get(name, name)), fontsize=8)
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
            index.append((DISPLAY.get(name, name), split))
            if include_hidden and (labels < 0).any() and hasattr(ds, "true_labels"):
                true = np.asarray(ds.true_labels)
                hidden = {c: int(((true == k) & (labels < 0)).sum()) for k, c in enumerate(classes)}
                rows.append({**hidden, "unlabeled": 0, "total": int((labels < 0).sum())})
                index.append((DISPLAY.get(name, name), f"{split} (hidden labels)"))
    cols = list(LABELS) + sorted({c for r in rows for c in r} - set(LABELS) - {"unlabeled", "total"}) \
        + ["unlabeled", "total"]
    df = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["dataset", "split"]))
    return df.reindex(columns=cols).fillna(0).astype(int)
