"""Tables for the book: this run's numbers (mean ± std over seeds) beside the paper's."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np
import pandas as pd

from omnifer_lib.publish import paper
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
    :func:`omnifer_lib.engine.pipeline.epoch_cost_table` (where ``seed`` is the timing round) or of
    :func:`omnifer_lib.engine.pipeline.results_table` (any targets; one value per learner is used).
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
    per-seed ratio: seeds, or the timing rounds of :func:`omnifer_lib.engine.pipeline.epoch_cost_table`)."""
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


def show(df: pd.DataFrame, digits: int = 2, exact: Sequence[str] = ()):
    """A table for the book: no row index, floats with ``digits`` decimals but those of the columns
    ``exact`` (parameters such as δ or a learning rate, shown as given: 0.05, not 0.1), booleans as
    ✓ / —, empty cells blank."""
    floats = [c for c in df.columns if pd.api.types.is_float_dtype(df[c]) and c not in exact]
    flags = [c for c in df.columns if pd.api.types.is_bool_dtype(df[c])
             or (df[c].dtype == object and len(df[c].dropna()) and df[c].dropna().map(type).eq(bool).all())]
    return (df.style.hide(axis="index")
            .format({**{c: f"{{:.{digits}f}}" for c in floats}, **{c: "{:g}" for c in exact if c in df.columns},
                     **{c: _check_mark for c in flags}}, na_rep=""))


def _check_mark(value: Any) -> str:
    return "✓" if value is True or value is np.True_ else "—" if value is False or value is np.False_ else ""


def variant_summary(results: pd.DataFrame, target: str, by: str = "variant",
                    digits: int = 2) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of ``results`` on test set ``target``, and their mean ± std over seeds per ``by``
    (:func:`~omnifer_lib.evaluate.summarize_seeds`, one row per variant in first-seen order) with a
    column ``"this run (mean ± std)"`` for the book's tables."""
    rows = results[results["target"] == target].reset_index(drop=True)
    stats = summarize_seeds(rows, [by], digits=digits)
    return rows, stats.assign(**{"this run (mean ± std)": stats["text"]})


def with_display_names(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with its ``mode`` and ``backbone`` columns in the book's words (``"VAS"``,
    ``"VGG-small (VGG-F's role)"``), for figures and tables a reader reads."""
    out = results.copy()
    if "mode" in out.columns:
        out["mode"] = out["mode"].map(lambda m: MODE_NAMES.get(m, m))
    if "backbone" in out.columns:
        out["backbone"] = out["backbone"].map(display_backbone)
    return out


def glue_values(values: Mapping[str, Any]) -> None:
    """Glue each value under its name for the chapter's text (``{glue:text}`name```), not displayed."""
    from myst_nb import glue

    for name, value in values.items():
        glue(name, value, display=False)


def percent_text(percent: float, missing: str = "n/a") -> str:
    """A percentage for the text: ``"61.3 %"`` (one decimal), or ``missing`` when it is nan
    (e.g. a precision without hidden labels)."""
    return f"{percent:.1f} %" if percent == percent else missing


def show_figure(fig: Any, withheld: str) -> None:
    """Show ``fig``, the pyplot figure just drawn, or print ``withheld`` in its place when ``fig``
    is None (a figure of images this run may not publish, see
    :func:`omnifer_lib.engine.pipeline.images_may_be_shown`)."""
    import matplotlib.pyplot as plt

    if fig is None:
        print(withheld)
    else:
        plt.show()


def selection_variants(params: Mapping[str, Any], backbone: str,
                       variants: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per selection variant (label -> parameter overrides, e.g. ``{"selection_rule": "softmax"}``)
    of the master seed's auxiliary samples of ``backbone``: their number, the count of the class with
    fewest, and their pseudo-label precision (%) against the pool's hidden labels (nan for a pool without
    them, e.g. MS1M, or an empty selection)."""
    from omnifer_lib.engine import pipeline
    from omnifer_lib.data import LABELS

    rows = []
    for label, over in variants.items():
        vas = pipeline.auxiliary_samples({**params, **over}, backbone)
        counts = np.bincount(vas.labels, minlength=len(LABELS)) if len(vas) else np.zeros(len(LABELS), int)
        known = len(vas) > 0 and vas.true_labels is not None
        rows.append({"variant": label, "auxiliary samples": len(vas), "smallest class count": int(counts.min()),
                     "pseudo-label precision (%)": 100 * float(np.mean(vas.labels == vas.true_labels))
                     if known else float("nan")})
    return pd.DataFrame(rows)


def accuracy_grid(results: pd.DataFrame, targets: Sequence[str]) -> pd.DataFrame:
    """Mean accuracy over seeds (%) of each learner (rows: ``"VGG-small VAS"``, in first-seen order)
    on each test set of ``targets`` that ``results`` holds (columns: the datasets' display names, in
    the order given)."""
    from omnifer_lib.data.registry import DATASET_NAMES

    stats = summarize_seeds(results, ["backbone", "mode", "target"])
    grid = stats.pivot_table(index=["backbone", "mode"], columns="target", values="mean", sort=False)
    grid = grid[[t for t in targets if t in grid.columns]]
    grid.index = [f"{display_backbone(b).split(' (')[0]} {MODE_NAMES.get(m, m)}" for b, m in grid.index]
    grid.columns = [DATASET_NAMES.get(t, t) for t in grid.columns]
    return grid


def face_pretraining_table(params: Mapping[str, Any]) -> pd.DataFrame:
    """One row per backbone of the profile that is face-pretrained here (the master seed's face
    pretraining): identities and images it classified, its epochs and its final identity accuracy (%).
    Empty where no backbone is (e.g. with VGG-Face's own weights)."""
    from omnifer_lib.engine import pipeline

    rows = []
    for backbone in params["backbones"]:
        pre = pipeline.face_pretraining(params, backbone)
        if pre is not None:
            s = pre.meta["summary"]
            rows.append({"backbone": backbone, "identities": s["identities"], "images": s["images"],
                         "epochs": params["pretrain_epochs"],
                         "final identity accuracy (%)": round(s["identity_accuracy"], 1)})
    return pd.DataFrame(rows)


def baseline_table(params: Mapping[str, Any], tables: Sequence[Tuple[int, str]] = ((1, "rafdb"), (2, "fer2013"))
                   ) -> pd.DataFrame:
    """The baseline rows of the paper's Tables 1 and 2 (``tables``: pairs of the table's number and the
    dataset role trained and tested on): each backbone trained on the labeled set alone, mean ± std over
    the profile's seeds, beside the paper's number."""
    from omnifer_lib.engine import pipeline

    rows = []
    for table, train_on in tables:
        res = pipeline.results_table(params, params["backbones"], modes=("anchor",), train_on=train_on)
        stats = summarize_seeds(res[res["target"] == train_on], ["backbone", "family"])
        for r in stats.itertuples():
            rows.append({"table": f"Table {table}", "dataset": pipeline.role_description(params, train_on),
                         "learner": display_backbone(r.backbone),
                         "paper (%)": paper.reproduced_value(table, r.family, "anchor"),
                         "this run (%)": format_mean_std(r.mean, r.std, 2), "seeds": r.n})
    return pd.DataFrame(rows)


def roles_table(params: Mapping[str, Any], roles: Mapping[str, str]) -> pd.DataFrame:
    """Which dataset plays each of ``roles`` (``{what it is for: dataset name}``) in this run."""
    from omnifer_lib.engine import pipeline

    return pd.DataFrame({"role": list(roles),
                         "dataset": [pipeline.role_description(params, name) for name in roles.values()]})


def primitive_learner_values(prims: Mapping[str, Any], anchor: str) -> Dict[str, float]:
    """``{"prim_<family>": accuracy (%) on the anchor's test split}`` of the primitive learners
    ``{backbone: artifact}``, and ``paper_prim_<family>``: the paper's baseline of that family on RAF-DB
    (Table 1), for a chapter's text."""
    from omnifer_lib.engine import pipeline

    return {**{f"prim_{pipeline.family(b)}": pipeline.evaluation(art)[anchor]["accuracy"] for b, art in prims.items()},
            **{f"paper_prim_{fam}": paper.reproduced_value(1, fam, "anchor") for fam in FAMILY_NAMES}}


# ----------------------------------------------------------------------------- variants beyond the paper
def distiller_variants() -> Dict[str, Dict[str, Any]]:
    """The anchor alone, and the anchor with each distiller's set of the same size
    (:data:`omnifer_lib.distill.registry.DISTILLERS`, by their labels), as variants of
    :func:`~omnifer_lib.engine.pipeline.results_tables`."""
    from omnifer_lib.distill.registry import DISTILLERS

    return {"no auxiliary samples": {"modes": ("anchor",)},
            **{d.label: {"modes": ("anchor+DAS",), "das_method": name} for name, d in DISTILLERS.items()}}


def strategy_variants(das_weight: float) -> Dict[str, Dict[str, Any]]:
    """The anchor with the DAS joined each way of :data:`omnifer_lib.train.DAS_STRATEGIES` (weight λ)."""
    from omnifer_lib.train import DAS_STRATEGIES

    return {f"{strategy} (λ = {das_weight:g})": {"modes": ("anchor+DAS",), "das_strategy": strategy}
            for strategy in DAS_STRATEGIES}


def rule_overrides(rules: Sequence[str] = ("margin", "softmax", "balanced_quantile")) -> Dict[str, Dict[str, Any]]:
    """``{rule label: selection overrides}``: each rule of ``rules`` with its own parameter matched to
    the margin rule's count at δ (labels from :data:`omnifer_lib.select.rules.SELECTION_RULES`)."""
    from omnifer_lib.select.rules import RULE_PARAMETERS, SELECTION_RULES

    return {SELECTION_RULES[r].label: {"selection_rule": r, **dict.fromkeys(RULE_PARAMETERS)} for r in rules}


def rule_variants(overrides: Mapping[str, Mapping[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """The anchor with the auxiliary samples of each selection of ``overrides`` (:func:`rule_overrides`),
    as variants of :func:`~omnifer_lib.engine.pipeline.results_tables`."""
    return {label: {"modes": ("anchor+VAS",), "selection_over": dict(over)} for label, over in overrides.items()}


def variant_question(params: Mapping[str, Any], backbone: str,
                     variants: Mapping[str, Mapping[str, Any]]) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """The learners of ``variants`` (:func:`~omnifer_lib.engine.pipeline.results_tables`) on the anchor's
    test split, per seed, and their mean ± std (:func:`variant_summary`)."""
    from omnifer_lib.engine import pipeline

    return variant_summary(pipeline.results_tables(params, [backbone], variants), pipeline.anchor_of(params))


def variant_table(stats: pd.DataFrame) -> pd.DataFrame:
    """:func:`variant_question`'s summary as the chapter shows it: variant, mean ± std, seeds."""
    return stats[["variant", "this run (mean ± std)", "n"]].rename(columns={"n": "seeds"})


def best_variant(stats: pd.DataFrame) -> str:
    """The variant with the highest mean, its first word (``"minibatch (λ = 1)"`` → ``"minibatch"``)."""
    return stats.sort_values("mean", ascending=False).iloc[0]["variant"].split(" ")[0]
