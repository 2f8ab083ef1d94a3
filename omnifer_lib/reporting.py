"""Tables for the book: this run's numbers (mean ± std over seeds) beside the paper's."""
from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from . import paper
from .evaluate import format_mean_std

MODE_NAMES = {"anchor": "baseline", "anchor+VAS": "VAS", "anchor+DAS": "DAS"}


def seed_stats(results: pd.DataFrame, by: Sequence[str], value: str = "accuracy") -> pd.DataFrame:
    """Mean, standard deviation (ddof=1; NaN for one seed) and count of ``value`` per group."""
    g = results.groupby(list(by), sort=False)[value]
    out = g.agg(mean="mean", std=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"), n="count")
    return out.reset_index()


def fmt(mean: float, std: float, digits: int = 2) -> str:
    """``"85.20 ± 0.40"``, or ``"85.20"`` with one seed."""
    return format_mean_std(mean, std, digits=digits)


def _row_label(method: str) -> str:
    return method


def paper_comparison(number: int, results: pd.DataFrame, target: str, *, backbone_names: Mapping[str, str],
                     extra_modes: Sequence[str] = (), digits: int = 2, value: str = "accuracy") -> pd.DataFrame:
    """Table ``number`` of the paper with a "this run" column beside the paper's.

    ``results``: tidy rows with ``family`` (vgg/resnet), ``mode``, ``seed``, ``target`` and ``value``.
    Each paper row reproduced here (``reproduced_as`` in paper_results.yaml) gets this run's mean
    ± std over seeds; rows the paper cites from other work get "cited only". Rows this run has but
    the paper's table lacks (e.g. a baseline the paper does not list for a cross-dataset target,
    or ``extra_modes``) are appended, marked "not in the paper".
    ``backbone_names``: family -> the backbone that played it in this run (e.g. ``{"vgg": "vgg_small"}``)."""
    res = results[results["target"] == target]
    stats = seed_stats(res, ["family", "mode"], value) if len(res) else pd.DataFrame(columns=["family", "mode"])
    lookup = {(r.family, r.mode): r for r in stats.itertuples()}
    rows: List[Dict] = []
    seen = set()
    for prow in paper.rows(number):
        rep = prow.get("reproduced_as")
        entry = {"method (paper's name)": prow["method"], "paper": prow["value"]}
        if "source" in prow:
            entry["training data"] = prow["source"]
        if rep is None:
            entry["this run"] = "cited only"
            entry["backbone here"] = ""
        else:
            key = (rep.get("backbone"), rep["mode"])
            seen.add(key)
            r = lookup.get(key)
            entry["this run"] = fmt(r.mean, r.std, digits) if r is not None else "not run"
            entry["backbone here"] = backbone_names.get(rep.get("backbone"), "")
        rows.append(entry)
    fam_label = {"vgg": "VGG-F", "resnet": "ResNet-34"}
    for (fam, mode), r in lookup.items():
        if (fam, mode) in seen:
            continue
        if mode not in extra_modes and not (mode == "anchor" and number in (4, 5, 6, 7)):
            continue
        entry = {"method (paper's name)": f"{fam_label.get(fam, fam)} ({MODE_NAMES.get(mode, mode)}) — not in the paper",
                 "paper": np.nan, "this run": fmt(r.mean, r.std, digits), "backbone here": backbone_names.get(fam, "")}
        if any("source" in p for p in paper.rows(number)):
            entry["training data"] = "RAF-DB" + {"anchor": "", "anchor+VAS": "+VAS", "anchor+DAS": "+DAS"}[mode]
        rows.append(entry)
    df = pd.DataFrame(rows)
    cols = [c for c in ("method (paper's name)", "training data", "backbone here", "paper", "this run") if c in df]
    return df[cols]


def mode_table(results: pd.DataFrame, target: str, digits: int = 2, value: str = "accuracy") -> pd.DataFrame:
    """Backbones as rows, modes (baseline / VAS / DAS) as columns, mean ± std over seeds."""
    res = results[results["target"] == target]
    stats = seed_stats(res, ["backbone", "mode"], value)
    stats["cell"] = [fmt(m, s, digits) for m, s in zip(stats["mean"], stats["std"])]
    table = stats.pivot(index="backbone", columns="mode", values="cell")
    order = [m for m in ("anchor", "anchor+VAS", "anchor+DAS") if m in table.columns]
    return table[order].rename(columns=MODE_NAMES)


def show(df: pd.DataFrame, digits: int = 2):
    """A table for the book: no row index, floats with ``digits`` decimals, empty cells blank."""
    floats = [c for c in df.columns if pd.api.types.is_float_dtype(df[c])]
    return (df.style.hide(axis="index")
            .format({c: f"{{:.{digits}f}}" for c in floats}, na_rep=""))
