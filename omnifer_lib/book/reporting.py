"""Tables for the book: this run's numbers (mean ± std over seeds) beside the paper's."""
from __future__ import annotations

from typing import Dict, List, Mapping, Sequence

import numpy as np
import pandas as pd

from omnifer_lib.book import paper
from omnifer_lib.evaluate import format_mean_std, paired_difference, seed_statistics, summarize_seeds
from omnifer_lib.names import FAMILY_NAMES, MODE_NAMES, MODES, display_backbone


def _row_label(method: str) -> str:
    return method


#: the column of :func:`paper_comparison` with each condition's paired gain over its baseline
GAIN_COLUMN = "gain over the baseline (paired, ± s.e.)"


def paired_gains(results: pd.DataFrame, target: str, value: str = "accuracy", by: str = "family",
                 baseline: str = "anchor") -> pd.DataFrame:
    """Each condition's gain over its own baseline, seed by seed.

    ``results``: tidy rows with ``by`` (the learner: ``family`` or ``backbone``), ``mode``, ``seed``,
    ``target`` and ``value``. For every (learner, mode) other than ``baseline`` on ``target``: the
    per-seed differences mode − baseline over the seeds both hold, as columns ``by, mode, gain``
    (their mean), ``std``, ``se`` and ``n`` (seeds paired). A seed's two learners share its data
    and upstream stages, so the pairs hold less noise than two unpaired means."""
    res = results[results["target"] == target]
    rows = []
    for (who, mode), grp in res.groupby([by, "mode"], sort=False):
        if mode == baseline:
            continue
        base = res[(res[by] == who) & (res["mode"] == baseline)]
        if base.empty:
            continue
        st = paired_difference(dict(zip(grp["seed"], grp[value])), dict(zip(base["seed"], base[value])))
        rows.append({by: who, "mode": mode, "gain": st.mean, "std": st.std, "se": st.se, "n": st.n})
    return pd.DataFrame(rows, columns=[by, "mode", "gain", "std", "se", "n"])


def _gain_text(gain: float, se: float, digits: int) -> str:
    if not np.isfinite(gain):
        return ""
    return f"{gain:+.{digits}f}" + (f" ± {se:.{digits}f}" if np.isfinite(se) else "")


def paper_comparison(number: int, results: pd.DataFrame, target: str, *, backbone_names: Mapping[str, str],
                     extra_modes: Sequence[str] = (), digits: int = 2, value: str = "accuracy") -> pd.DataFrame:
    """Table ``number`` of the paper with a "this run" column beside the paper's.

    ``results``: tidy rows with ``family`` (vgg/resnet), ``mode``, ``seed``, ``target`` and ``value``.
    Each paper row reproduced here (``reproduced_as`` in paper_results.yaml) gets this run's mean
    ± std over seeds and, for a condition with auxiliary samples, its :func:`paired_gains` over the
    baseline of its backbone (:data:`GAIN_COLUMN`); rows the paper cites from other work get "cited
    only". Rows this run has but the paper's table lacks (e.g. a baseline the paper does not list
    for a cross-dataset target, or ``extra_modes``) are appended, marked "not in the paper".
    ``backbone_names``: family -> the backbone that played it in this run (e.g. ``{"vgg": "vgg_small"}``)."""
    res = results[results["target"] == target]
    stats = summarize_seeds(res, ["family", "mode"], value) if len(res) else pd.DataFrame(columns=["family", "mode"])
    lookup = {(r.family, r.mode): r for r in stats.itertuples()}
    gains = {(r.family, r.mode): _gain_text(r.gain, r.se, digits)
             for r in paired_gains(res, target, value).itertuples()} if len(res) else {}
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
            entry["this run"] = format_mean_std(r.mean, r.std, digits) if r is not None else "not run"
            entry[GAIN_COLUMN] = gains.get(key, "")
            entry["backbone here"] = backbone_names.get(rep.get("backbone"), "")
        rows.append(entry)
    for (fam, mode), r in lookup.items():
        if (fam, mode) in seen:
            continue
        if mode not in extra_modes and not (mode == "anchor" and number in (4, 5, 6, 7)):
            continue
        method = f"{FAMILY_NAMES.get(fam, fam)} ({MODE_NAMES.get(mode, mode)}) — not in the paper"
        entry = {"method (paper's name)": method, "paper": np.nan, "this run": format_mean_std(r.mean, r.std, digits),
                 GAIN_COLUMN: gains.get((fam, mode), ""), "backbone here": backbone_names.get(fam, "")}
        if any("source" in p for p in paper.rows(number)):
            entry["training data"] = "RAF-DB" + {"anchor": "", "anchor+VAS": "+VAS", "anchor+DAS": "+DAS"}[mode]
        rows.append(entry)
    df = pd.DataFrame(rows)
    if GAIN_COLUMN in df and not (df[GAIN_COLUMN].fillna("") != "").any():
        df = df.drop(columns=GAIN_COLUMN)  # no condition beside a baseline (e.g. a cited-only table)
    cols = [c for c in ("method (paper's name)", "training data", "backbone here", "paper", "this run", GAIN_COLUMN)
            if c in df]
    return df[cols]


def mode_table(results: pd.DataFrame, target: str, digits: int = 2, value: str = "accuracy") -> pd.DataFrame:
    """Backbones as rows, modes (baseline / VAS / DAS) as columns, mean ± std over seeds."""
    res = results[results["target"] == target]
    stats = summarize_seeds(res, ["backbone", "mode"], value, digits)
    stats["cell"] = stats["text"]
    table = stats.pivot(index="backbone", columns="mode", values="cell")
    order = [m for m in MODES if m in table.columns]
    return table[order].rename(columns=MODE_NAMES)


#: Table 8's names of the modes
COST_SETTINGS = {"anchor": "w/o AS", "anchor+VAS": "w/ VAS", "anchor+DAS": "w/ DAS"}


def epoch_cost_ratios(results: pd.DataFrame) -> pd.DataFrame:
    """Table 8's question per learner and seed: seconds per epoch in each mode over those of the
    same backbone and seed without auxiliary samples. ``results``: rows of
    :func:`omnifer_lib.book.pipeline.epoch_cost_table` (where ``seed`` is the timing round) or of
    :func:`omnifer_lib.book.pipeline.results_table` (any targets; one value per learner is used).
    Returns columns backbone, family, mode, seed, seconds_per_epoch, train_images, cost_ratio."""
    rows = []
    per_learner = results.drop_duplicates(["backbone", "mode", "seed"])
    for (backbone, seed), g in per_learner.groupby(["backbone", "seed"], sort=False):
        base = g.loc[g["mode"] == "anchor", "seconds_per_epoch"]
        for r in g.itertuples():
            ratio = float(r.seconds_per_epoch / base.iloc[0]) if len(base) and base.iloc[0] > 0 else float("nan")
            rows.append({"backbone": backbone, "family": r.family, "mode": r.mode, "seed": seed,
                         "seconds_per_epoch": float(r.seconds_per_epoch), "train_images": r.train_images,
                         "cost_ratio": ratio})
    return pd.DataFrame(rows, columns=["backbone", "family", "mode", "seed", "seconds_per_epoch", "train_images",
                                       "cost_ratio"])


def cost_table(results: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Table 8 beside the paper's: per learner and mode, images per epoch, seconds per epoch and
    the ratio to training without auxiliary samples (mean ± std over the ``seed`` column of the
    per-seed ratio: seeds, or the timing rounds of :func:`omnifer_lib.book.pipeline.epoch_cost_table`)."""
    ratios = epoch_cost_ratios(results)
    paper_cost = {r["reproduced_as"]["mode"]: r["value"] for r in paper.rows(8)}
    rows = []
    for (backbone, mode), g in ratios.groupby(["backbone", "mode"], sort=False):
        sec, ratio = seed_statistics(g["seconds_per_epoch"]), seed_statistics(g["cost_ratio"])
        rows.append({"learner": display_backbone(backbone), "setting": COST_SETTINGS[mode],
                     "images per epoch": int(g["train_images"].mean()),
                     "seconds per epoch (this run)": sec.text(digits),
                     "ratio to w/o AS (this run)": ratio.text(digits), "ratio (mean)": ratio.mean,
                     "seconds per epoch (paper)": paper_cost[mode],
                     "ratio to w/o AS (paper)": round(paper_cost[mode] / paper_cost["anchor"], 2)})
    return pd.DataFrame(rows)


def show(df: pd.DataFrame, digits: int = 2):
    """A table for the book: no row index, floats with ``digits`` decimals, empty cells blank."""
    floats = [c for c in df.columns if pd.api.types.is_float_dtype(df[c])]
    return (df.style.hide(axis="index")
            .format({c: f"{{:.{digits}f}}" for c in floats}, na_rep=""))
