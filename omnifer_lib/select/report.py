"""Reports on selections: per-class counts, pseudo-label precision against hidden true labels,
the δ sweep, and rules compared at matched counts. All return tidy pandas DataFrames.

Precision of class k = share of the samples selected as k whose true label is k; recall of
class k = share of the pool's true-k samples that were selected as k. Both need true labels
(the synthetic pool and semi-supervised splits have them, ``pool.true_labels``); samples whose
true label is ``-1`` are left out of both. The ``all`` row has ``class = -1``.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .manifest import CHUNK_COLUMNS, Source, open_manifest
from .reselect import PoolSelection, decide, decision_columns, manifest_anchor_counts, reselect
from .rules import RULES

#: The rules :func:`compare_rules` compares by default: the paper's and those it matches to the
#: paper's count. ``adaptive_threshold`` (no parameter to match: its count is its own) and
#: ``distribution_alignment`` (needs a manifest that stores the anchor's class counts) are
#: compared when named in ``rules=``.
COMPARED_RULES = ("margin", "softmax", "balanced_topk", "balanced_quantile")

_STAT_COLUMNS = ["class", "name", "selected", "correct", "precision", "recall"]


def _true_labels(true_labels: Any, n_pool: int) -> Optional[np.ndarray]:
    """An (N,) int64 array from an array or a dataset with ``true_labels``; None if unavailable."""
    if true_labels is None:
        return None
    if hasattr(true_labels, "true_labels"):
        true_labels = true_labels.true_labels
        if true_labels is None:
            return None
    arr = np.asarray(true_labels, dtype=np.int64).reshape(-1)
    if arr.shape[0] != n_pool:
        raise ValueError(f"true labels cover {arr.shape[0]} samples but the pool has {n_pool}; "
                         "pass the pool's true labels indexed by pool index")
    return arr


def _class_stats(labels: np.ndarray, true: Optional[np.ndarray], names: Sequence[str]) -> List[Dict[str, Any]]:
    """Rows of per-class and overall counts/precision/recall. ``labels`` and ``true`` are
    aligned per sample (pseudo-label -1 = not selected)."""
    k = len(names)
    sel = labels >= 0
    selected = np.bincount(labels[sel], minlength=k)
    rows: List[Dict[str, Any]] = []
    if true is not None:
        known = true >= 0
        evaluated = np.bincount(labels[sel & known], minlength=k)
        correct = np.bincount(labels[sel & known & (labels == true)], minlength=k)
        in_pool = np.bincount(true[known], minlength=k)[:k]
    for c in range(k):
        row = {"class": c, "name": names[c], "selected": int(selected[c]),
               "correct": None, "precision": np.nan, "recall": np.nan}
        if true is not None:
            row["correct"] = int(correct[c])
            row["precision"] = correct[c] / evaluated[c] if evaluated[c] else np.nan
            row["recall"] = correct[c] / in_pool[c] if in_pool[c] else np.nan
        rows.append(row)
    total = {"class": -1, "name": "all", "selected": int(selected.sum()), "correct": None,
             "precision": np.nan, "recall": np.nan}
    if true is not None:
        total["correct"] = int(correct.sum())
        total["precision"] = correct.sum() / evaluated.sum() if evaluated.sum() else np.nan
        total["recall"] = correct.sum() / in_pool.sum() if in_pool.sum() else np.nan
    rows.append(total)
    return rows


def selection_report(selection: PoolSelection, true_labels: Any = None):
    """Selected samples per class (and ``all``) with precision and recall when true labels are
    given (an (N,) array over the pool, or the pool dataset itself with ``true_labels``).

    Columns: class, name, selected, share, correct, precision, recall, in_pool (the pool's
    samples whose hidden true label is that class; None without true labels).
    """
    import pandas as pd

    true = _true_labels(true_labels, selection.n_pool)
    labels = selection.pseudo_labels
    aligned_true = true[selection.pool_index] if true is not None else None
    rows = _class_stats(labels, aligned_true, selection.label_names)
    if true is not None:  # recall needs the whole pool's class sizes, not just the selected ones
        in_pool = np.bincount(true[true >= 0], minlength=selection.num_classes)
        for row in rows:
            size = in_pool.sum() if row["class"] < 0 else in_pool[row["class"]]
            row["recall"] = row["correct"] / size if size else np.nan
    for row in rows:
        row["in_pool"] = (None if true is None else
                          int(in_pool.sum() if row["class"] < 0 else in_pool[row["class"]]))
    df = pd.DataFrame(rows)
    total = max(1, len(selection))
    df.insert(3, "share", df["selected"] / total)
    return df


def delta_sweep(source: Source, deltas: Sequence[float], true_labels: Any = None, *,
                rules: Sequence[str] = ("margin",), per_class_cap: Optional[int] = None):
    """Count, precision and recall per class as δ varies, from a manifest (no recomputation).

    For each δ and each rule in ``rules``: ``margin`` is the paper's rule at δ; the other rules
    are matched to its count at that δ (softmax and distribution alignment: top by confidence;
    balanced variants: see :func:`omnifer_lib.select.reselect.decide`), except
    ``adaptive_threshold``, which has no parameter and selects the same samples at every δ.
    Tidy DataFrame with columns delta, rule, params, class, name, selected, correct, precision,
    recall.
    """
    import pandas as pd

    table = open_manifest(source)
    for r in rules:
        if r not in RULES:
            raise ValueError(f"unknown rule {r!r}; expected some of {', '.join(RULES)}")
    cols = decision_columns(table, rules)
    counts = manifest_anchor_counts(table)
    true = _true_labels(true_labels, table.n_pool)
    aligned_true = true[cols["pool_index"]] if true is not None else None
    rows = []
    for delta in deltas:
        for rule in rules:
            labels, _, params = decide(cols, rule, table.num_classes, delta=delta,
                                       per_class_cap=per_class_cap, anchor_counts=counts)
            for row in _class_stats(labels, aligned_true, table.label_names):
                rows.append({"delta": float(delta), "rule": rule,
                             "params": json.dumps(params, sort_keys=True), **row})
    return pd.DataFrame(rows, columns=["delta", "rule", "params"] + _STAT_COLUMNS)


def rule_tally(sweep, rule: str = "margin", other: str = "softmax") -> Dict[str, int]:
    """How often ``rule`` gives more precise pseudo-labels than ``other`` over a
    :func:`delta_sweep` (the whole-pool rows): ``{"wins", "losses", "ties", "deltas"}``, counted
    over the δ at which both rules select samples with known labels (``deltas`` of them)."""
    totals = sweep[sweep["class"] < 0].pivot_table(index="delta", columns="rule", values="precision")
    if rule not in totals.columns or other not in totals.columns:
        return {"wins": 0, "losses": 0, "ties": 0, "deltas": 0}
    valid = totals[[rule, other]].dropna()
    wins = int((valid[rule] > valid[other]).sum())
    losses = int((valid[rule] < valid[other]).sum())
    return {"wins": wins, "losses": losses, "ties": int(len(valid)) - wins - losses, "deltas": int(len(valid))}


def compare_rules(source: Source, delta: float, true_labels: Any = None, *,
                  rules: Sequence[str] = COMPARED_RULES, per_class_cap: Optional[int] = None):
    """Every rule at the count the paper's margin rule selects at ``delta`` — centroid margin
    vs softmax confidence vs the class-balanced variants, compared at equal size (by default
    :data:`COMPARED_RULES`; ``rules=RULES`` adds the two pseudo-labelling rules, see there).
    Same columns as :func:`delta_sweep`."""
    return delta_sweep(source, [delta], true_labels, rules=rules, per_class_cap=per_class_cap)


# ----------------------------------------------------------------------------- book tables
def _class_order(tidy) -> List[str]:
    """Class names in class-index order with ``all`` last (pandas pivots sort alphabetically)."""
    names = tidy.drop_duplicates("class").sort_values("class", key=lambda c: c.where(c >= 0, 10 ** 9))
    return names["name"].tolist()


def per_class_wide(tidy, value: str, by: str = "rule", order: Optional[Sequence[Any]] = None):
    """One row per class (class-index order, ``all`` last) and one column per value of ``by``
    (e.g. each rule of :func:`compare_rules`, or each δ of :func:`delta_sweep`), holding
    ``value`` (e.g. ``selected`` or ``precision``). ``order``: the columns' order (default:
    first appearance in ``tidy``)."""
    for col in ("class", "name", by, value):
        if col not in tidy.columns:
            raise ValueError(f"the table has no column {col!r}; expected a tidy table of delta_sweep / "
                             f"compare_rules with columns {list(tidy.columns)}")
    wide = tidy.pivot_table(index="name", columns=by, values=value, aggfunc="first", dropna=False)
    columns = list(order) if order is not None else list(dict.fromkeys(tidy[by]))
    wide = wide.reindex(index=_class_order(tidy), columns=columns)
    wide.index.name, wide.columns.name = "expression", by
    return wide


def rule_summary(tidy, by: str = "rule"):
    """Per value of ``by`` (each rule, or each δ): total selected, the smallest and largest
    class, their ratio (class imbalance; inf when a class gets nothing), overall precision
    (pooled over all selected samples) and mean class precision (unweighted over the classes
    that got any sample, so rare classes count as much as frequent ones).

    ``tidy``: a table of :func:`delta_sweep` / :func:`compare_rules` (one δ per rule)."""
    import pandas as pd

    rows = []
    for key, part in tidy.groupby(by, sort=False):
        classes = part[part["class"] >= 0]
        total = part[part["class"] < 0].iloc[0]
        counts = classes["selected"].to_numpy()
        smallest, largest = int(counts.min()), int(counts.max())
        rows.append({by: key, "selected": int(total["selected"]), "smallest class": smallest,
                     "largest class": largest,
                     "largest / smallest": (largest / smallest if smallest else np.inf),
                     "precision": float(total["precision"]),
                     "mean class precision": float(np.nanmean(classes["precision"]))
                     if classes["precision"].notna().any() else np.nan})
    return pd.DataFrame(rows)


def paper_counts_table(this_run: Dict[str, Sequence[int]], paper_counts: Dict[str, int]):
    """The paper's selected counts beside this run's, as numbers and as a share of the pool.

    ``this_run``: label -> (selected, pool size), e.g. ``{"this run: VGG-small": (7108, 12000)}``;
    ``paper_counts``: :func:`omnifer_lib.publish.paper.counts` (uses ``ms1m_images`` and the two
    selected counts of §3.3 and §4.4.3). Columns: source, selected, pool, share of pool (%)."""
    import pandas as pd

    pool = int(paper_counts["ms1m_images"])
    rows = [{"source": "paper, §3.3", "selected": int(paper_counts["selected_auxiliary_samples_sec_3_3"]),
             "pool": pool},
            {"source": "paper, §4.4.3", "selected": int(paper_counts["selected_auxiliary_samples_sec_4_4_3"]),
             "pool": pool}]
    for label, (selected, n_pool) in this_run.items():
        rows.append({"source": label, "selected": int(selected), "pool": int(n_pool)})
    df = pd.DataFrame(rows)
    df["share of pool (%)"] = 100.0 * df["selected"] / df["pool"].where(df["pool"] > 0)
    return df


def counts_table(selections: Dict[str, PoolSelection], true_labels: Any = None):
    """The chapter's counts table: one row per class (``all`` last); for each learner the
    selected samples, their share of the pool (%) and, with true labels, precision and recall
    (%); first, with true labels, the pool's own class sizes (``in pool (hidden labels)``).

    ``selections``: label (e.g. backbone) -> :class:`PoolSelection`, all from one pool.
    Columns are two-level: (label, quantity)."""
    import pandas as pd

    if not selections:
        raise ValueError("counts_table needs at least one selection (label -> PoolSelection)")
    sizes = {s.n_pool for s in selections.values()}
    if len(sizes) > 1:
        raise ValueError(f"the selections come from pools of different sizes {sorted(sizes)}; "
                         "compare selections of one pool")
    parts = {}
    first = True
    for label, sel in selections.items():
        rep = selection_report(sel, true_labels).set_index("name")
        if first and rep["in_pool"].notna().all():
            parts[("pool (hidden labels)", "images")] = rep["in_pool"].astype(int)
        first = False
        parts[(label, "selected")] = rep["selected"]
        parts[(label, "% of pool")] = 100.0 * rep["selected"] / max(1, sel.n_pool)
        if rep["precision"].notna().any() or rep["correct"].notna().any():
            parts[(label, "precision (%)")] = 100.0 * rep["precision"]
            parts[(label, "recall (%)")] = 100.0 * rep["recall"]
    df = pd.DataFrame(parts)
    df.index.name = "expression"
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    return df


# ----------------------------------------------------------------------------- the selection chapter's tables
#: The percentage columns of :func:`learner_summaries` (the fractions of :func:`rule_summary`, times 100).
PERCENT_COLUMNS = {"precision": "precision (%)", "mean class precision": "mean class precision (%)"}


def manifest_columns():
    """What a row of a selection manifest holds: one row per column of
    :data:`~omnifer_lib.select.manifest.CHUNK_COLUMNS`, with columns ``column`` and ``meaning``."""
    import pandas as pd

    return pd.DataFrame(list(CHUNK_COLUMNS.items()), columns=["column", "meaning"])


def learner_summaries(tables: Dict[str, Any], by: str = "rule"):
    """:func:`rule_summary` of every learner's tidy table, stacked.

    ``tables``: learner label -> table of :func:`delta_sweep` / :func:`compare_rules`. Returns one
    row per (``learner``, value of ``by``), the index, with columns selected, smallest class,
    largest class, largest / smallest, precision (%) and mean class precision (%)
    (:data:`PERCENT_COLUMNS`: percentages, nan without true labels)."""
    import pandas as pd

    if not tables:
        raise ValueError("learner_summaries needs at least one learner's table (label -> tidy table)")
    summary = pd.concat([rule_summary(tidy, by=by).assign(learner=label) for label, tidy in tables.items()])
    summary = summary.set_index(["learner", by])
    summary[list(PERCENT_COLUMNS)] *= 100
    return summary.rename(columns=PERCENT_COLUMNS)


def delta_table(sweeps: Dict[str, Any], rule: str = "margin"):
    """The δ sweep in numbers: per learner and margin δ (the index ``learner, delta``), the
    samples ``rule`` selects (``selected``, ``smallest class``, ``largest class``) and their
    ``precision (%)`` and ``mean class precision (%)`` (see :func:`learner_summaries`).

    ``sweeps``: learner label -> :func:`delta_sweep` table holding rows of ``rule``."""
    for label, sweep in sweeps.items():
        if not (sweep["rule"] == rule).any():
            raise ValueError(f"the sweep of {label!r} has no rows of rule {rule!r}; "
                             f"it has {sorted(set(sweep['rule']))}")
    summary = learner_summaries({label: sweep[sweep["rule"] == rule] for label, sweep in sweeps.items()}, by="delta")
    return summary[["selected", "smallest class", "largest class", *PERCENT_COLUMNS.values()]]


def delta_range(table) -> Dict[str, float]:
    """The ends of one learner's δ sweep: the smallest swept margin ``d_lo`` and the largest that
    still selects anything ``d_hi`` (``d_lo`` when none does), the samples selected at each
    (``n_lo``, ``n_hi``) and their precision in % (``p_lo``, ``p_hi``; nan without true labels).

    ``table``: one learner's rows of :func:`delta_table` (index: delta)."""
    if len(table) == 0:
        raise ValueError("delta_range needs one learner's rows of delta_table (index: delta), got an empty table")
    d_lo = float(table.index.min())
    kept = table[table["selected"] > 0]
    d_hi = float(kept.index.max()) if len(kept) else d_lo
    return {"d_lo": d_lo, "d_hi": d_hi, "n_lo": int(table.loc[d_lo, "selected"]),
            "n_hi": int(table.loc[d_hi, "selected"]), "p_lo": float(table.loc[d_lo, "precision (%)"]),
            "p_hi": float(table.loc[d_hi, "precision (%)"])}


def ratio_text(ratio: float) -> str:
    """A largest / smallest class ratio of :func:`rule_summary` in words: ``"2.5"``, or
    ``"unbounded (a class got nothing)"`` when it is infinite (or nan)."""
    return f"{ratio:.1f}" if np.isfinite(ratio) else "unbounded (a class got nothing)"


def margin_vs_softmax_text(sweeps: Dict[str, Any], has_truth: bool) -> str:
    """One sentence (ending with a full stop) tallying, per learner, at how many margins δ of a
    :func:`delta_sweep` the centroid margin and the softmax confidence at the same count gives
    the more precise pseudo-labels (:func:`rule_tally`); ``has_truth`` False (a pool without
    hidden labels) says that precision cannot compare them.

    ``sweeps``: learner label -> :func:`delta_sweep` table with rows of ``margin`` and ``softmax``."""
    if not has_truth:
        return "the pool has no hidden labels, so the two rules cannot be compared by precision."
    parts = []
    for label, sweep in sweeps.items():
        tally = rule_tally(sweep, "margin", "softmax")
        parts.append(f"for {label} the centroid margin is more precise at {tally['wins']} and the softmax confidence "
                     f"at {tally['losses']} of the {tally['deltas']} margins δ that select anything"
                     if tally["deltas"] else f"for {label} no swept δ selects any sample with a known label")
    return "; ".join(parts) + "."


def matched_rules_table(compare, source: Optional[Source] = None, true_labels: Any = None, *,
                        rules: Sequence[str] = ("margin", "softmax"), softmax_threshold: Optional[float] = None,
                        per_class_cap: Optional[int] = None):
    """Per class (``all`` last): the samples each of ``rules`` selects at the matched count of
    :func:`compare_rules` (columns ``("selected", rule)``) and their precision (``("precision (%)",
    rule)``). With ``softmax_threshold`` the softmax rule at that fixed threshold is added for
    reference, as rule ``"softmax ≥ 0.9"``: reselected from ``source`` (the manifest ``compare`` was
    made from) with ``per_class_cap``, scored against ``true_labels``."""
    import pandas as pd

    tidy = compare[compare["rule"].isin(list(rules))]
    if softmax_threshold is not None:
        if source is None:
            raise ValueError("a fixed softmax_threshold is reselected from the manifest: pass source=")
        fixed = reselect(source, rule="softmax", softmax_threshold=softmax_threshold, per_class_cap=per_class_cap)
        tidy = pd.concat([tidy, selection_report(fixed, true_labels).assign(rule=f"softmax ≥ {softmax_threshold:g}")])
    return pd.concat({"selected": per_class_wide(tidy, "selected"),
                      "precision (%)": 100 * per_class_wide(tidy, "precision")}, axis=1)


def side_by_side(tables: Dict[str, Any]):
    """Tables with the same rows (e.g. each learner's :func:`matched_rules_table`) side by side,
    each under its label as the top level of its columns."""
    import pandas as pd

    if not tables:
        raise ValueError("side_by_side needs at least one table (label -> DataFrame)")
    return pd.concat([pd.concat({label: table}, axis=1) for label, table in tables.items()], axis=1)
