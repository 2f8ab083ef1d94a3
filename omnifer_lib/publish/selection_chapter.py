"""The selection chapter (§3.3, chapter 03) on the cached stages: the pool, the anchor, each
primitive learner's manifest and auxiliary samples, and the tables, figures and numbers the
chapter shows. The tables themselves are :mod:`omnifer_lib.select.report`'s; this module reads the
pipeline's results into them and names the values the chapter's text states (glued under the
names of each function's ``values``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

import pandas as pd

from omnifer_lib.engine import pipeline
from omnifer_lib.publish import paper
from omnifer_lib.publish.reporting import percent_text
from omnifer_lib.publish.selection_plots import fig3_sentence, selected_samples_grid
from omnifer_lib.select import compare_rules, delta_sweep, selection_report
from omnifer_lib.select.report import (counts_table, delta_range, delta_table, learner_summaries,
                                       margin_vs_softmax_text, matched_rules_table, paper_counts_table, ratio_text,
                                       side_by_side)
from omnifer_lib.select.reselect import PoolSelection

#: How the text writes a precision that cannot be measured (a pool without hidden labels).
NO_PRECISION = "n/a (no hidden labels)"
#: What the chapter prints where a pool without hidden labels leaves precision unmeasured.
NO_TRUTH = "The pool has no hidden labels: precision cannot be measured, only counts are shown."
#: Samples per expression in Fig. 3.
FIG3_PER_CLASS = 8
#: The rules of the δ sweep: the paper's, and softmax confidence matched to its count at each δ.
SWEEP_RULES = ("margin", "softmax")


@dataclass
class SelectionRun:
    """What the chapter reads from the cached stages.

    ``params``: the profile's parameters; ``pool``: the unlabeled pool (train split of the pool
    role, N images; its ``true_labels`` (N,) are the hidden expressions where it has them);
    ``anchor``: the labeled anchor's train split; per backbone, in the profile's order (the first
    is the learner of Fig. 3 and of the per-class comparisons): ``manifests`` (the manifest folder
    of the pool's scores), ``selections`` (the auxiliary samples of the profile's rule and margin δ)
    and ``accuracy`` (the primitive learner's accuracy on the anchor's test split, %)."""

    params: Mapping[str, Any]
    pool: Any
    anchor: Any
    manifests: Dict[str, Any]
    selections: Dict[str, PoolSelection]
    accuracy: Dict[str, float]

    @property
    def backbones(self) -> List[str]:
        return list(self.selections)

    @property
    def default(self) -> str:
        """The learner of Fig. 3 and of the per-class comparisons: the profile's first backbone."""
        return self.backbones[0]

    @property
    def names(self) -> Dict[str, str]:
        """Backbone -> its name in the book's tables (e.g. ``"VGG-small (VGG-F's role)"``)."""
        return {b: pipeline.display_backbone(b) for b in self.backbones}

    @property
    def default_name(self) -> str:
        return self.names[self.default]

    @property
    def true_labels(self) -> Optional[Any]:
        """The pool's hidden expressions (N,), or None (e.g. MS-Celeb-1M)."""
        return getattr(self.pool, "true_labels", None)

    @property
    def has_truth(self) -> bool:
        return self.true_labels is not None

    @property
    def values(self) -> Dict[str, Any]:
        """The text's ``delta`` (the margin δ of Eq. 5) and ``default_name``."""
        return {"delta": float(self.params["delta"]), "default_name": self.default_name}


def load(params: Mapping[str, Any]) -> SelectionRun:
    """The pool, the anchor and, for every backbone of ``params``, its manifest, its auxiliary
    samples and its primitive learner's accuracy (computed by the cached stages if missing)."""
    if not params["backbones"]:
        raise ValueError("the selection chapter needs at least one backbone in the profile's 'backbones'")
    pool = pipeline.dataset(params, pipeline.pool_of(params), "train")
    anchor = pipeline.dataset(params, pipeline.anchor_of(params), "train")
    backbones = params["backbones"]
    manifests = {b: pipeline.manifest_dir(params, b) for b in backbones}
    selections = {b: pipeline.auxiliary_samples(params, b).selection for b in backbones}
    accuracy = {b: pipeline.evaluation(pipeline.primitive_learner(params, b))[pipeline.anchor_of(params)]["accuracy"]
                for b in backbones}
    return SelectionRun(params, pool, anchor, manifests, selections, accuracy)


def roles_table(run: SelectionRun) -> pd.DataFrame:
    """Which dataset plays the labeled anchor and which the unlabeled pool, and their images."""
    params = run.params
    roles = ["labeled anchor (primitive learner, centroids)", "unlabeled pool (auxiliary samples)"]
    return pd.DataFrame({"role": roles,
                         "dataset": [pipeline.role_description(params, pipeline.anchor_of(params)),
                                     pipeline.role_description(params, pipeline.pool_of(params))],
                         "images": [len(run.anchor), len(run.pool)]})


def learners_table(run: SelectionRun) -> pd.DataFrame:
    """Per learner: its primitive learner's accuracy (%), the pool scored, the rule with its
    parameters and the auxiliary samples it keeps."""
    return pd.DataFrame([{"learner": run.names[b],
                          "primitive learner's accuracy on the anchor test split (%)": run.accuracy[b],
                          "pool scored": len(run.pool), "rule": sel.rule, "rule parameters": str(sel.params),
                          "auxiliary samples": len(sel)} for b, sel in run.selections.items()])


def fig3(run: SelectionRun):
    """Fig. 3 for the default learner (:func:`~omnifer_lib.publish.selection_plots.selected_samples_grid`,
    :data:`FIG3_PER_CLASS` samples per expression, red frames from the hidden labels), or None
    where this run's images may not be shown (:func:`~omnifer_lib.engine.pipeline.images_may_be_shown`)."""
    if not pipeline.images_may_be_shown(run.params):
        return None
    sel = run.selections[run.default]
    return selected_samples_grid(run.pool, sel, FIG3_PER_CLASS, true_labels=run.true_labels,
                                 title=f"{run.default_name}: rule {sel.rule} {sel.params}")


def fig3_values(run: SelectionRun) -> Dict[str, str]:
    """``fig3_sentence``: the wrong pseudo-labels and the empty expressions of Fig. 3, in words."""
    return {"fig3_sentence": fig3_sentence(run.selections[run.default], FIG3_PER_CLASS, run.true_labels)}


def selection_counts(run: SelectionRun) -> pd.DataFrame:
    """:func:`~omnifer_lib.select.report.counts_table` of every learner (named for the book), its
    row labels as a column ``expression``."""
    return counts_table({run.names[b]: sel for b, sel in run.selections.items()}, run.true_labels).reset_index()


def paper_counts(run: SelectionRun) -> Tuple[pd.DataFrame, Dict[str, Any]]:
    """The paper's counts of auxiliary samples beside this run's
    (:func:`~omnifer_lib.select.report.paper_counts_table`), and the values the text states: the
    paper's counts (``paper_33``, ``paper_443``, ``paper_pool``) and share of the pool
    (``paper_share``, %), the default learner's ``this_selected`` of ``this_pool`` images
    (``this_share``, %) and their pseudo-label precision in words (``this_precision``)."""
    n_pool = len(run.pool)
    paper_n = paper.counts()
    table = paper_counts_table({f"this run, {run.names[b]}": (len(sel), n_pool) for b, sel in run.selections.items()},
                               paper_n)
    sel = run.selections[run.default]
    precision = selection_report(sel, run.true_labels).set_index("name").loc["all", "precision"]
    values = {"paper_share": float(table["share of pool (%)"].iloc[0]),
              "this_share": float(100 * len(sel) / max(1, n_pool)),
              "this_selected": int(len(sel)), "this_pool": int(n_pool),
              "this_precision": percent_text(100 * precision, NO_PRECISION),
              "paper_33": int(paper_n["selected_auxiliary_samples_sec_3_3"]),
              "paper_443": int(paper_n["selected_auxiliary_samples_sec_4_4_3"]),
              "paper_pool": int(paper_n["ms1m_images"])}
    return table, values


@dataclass
class DeltaSweep:
    """The δ sweep of every learner over the profile's ``deltas``: ``sweeps`` (learner's name ->
    :func:`~omnifer_lib.select.delta_sweep` table of :data:`SWEEP_RULES`, no per-class cap),
    ``n_pool`` (learner's name -> pool size), ``table`` (the margin rule's
    :func:`~omnifer_lib.select.report.delta_table`, as shown) and ``values``: the default learner's
    :func:`~omnifer_lib.select.report.delta_range` (its precisions in words) and
    ``margin_vs_softmax``, the sentence of :func:`~omnifer_lib.select.report.margin_vs_softmax_text`."""

    sweeps: Dict[str, pd.DataFrame]
    n_pool: Dict[str, int]
    table: pd.DataFrame
    values: Dict[str, Any]


def delta_sweeps(run: SelectionRun) -> DeltaSweep:
    """Every learner's manifest re-thresholded at each margin δ of ``params["deltas"]``: the rule
    alone, without the profile's per-class cap."""
    sweeps = {run.names[b]: delta_sweep(run.manifests[b], run.params["deltas"], run.true_labels, rules=SWEEP_RULES)
              for b in run.backbones}
    table = delta_table(sweeps, "margin")
    values = delta_range(table.loc[run.default_name])
    values.update(p_lo=percent_text(values["p_lo"], NO_PRECISION), p_hi=percent_text(values["p_hi"], NO_PRECISION),
                  margin_vs_softmax=margin_vs_softmax_text(sweeps, run.has_truth))
    shown = table.reset_index().astype({"delta": str}).rename(columns={"delta": "margin δ"})
    return DeltaSweep(sweeps, {name: len(run.pool) for name in sweeps}, shown, values)


@dataclass
class RuleComparison:
    """The rules at the margin rule's count at δ: ``compare`` (learner's name ->
    :func:`~omnifer_lib.select.compare_rules` table), ``table`` (per class, margin and softmax, and
    softmax at its fixed ``softmax_threshold``, for every learner), ``summary`` (every rule of every
    learner, :func:`~omnifer_lib.select.report.learner_summaries`) and ``values`` (what the text
    states: see :func:`rule_comparison`)."""

    compare: Dict[str, pd.DataFrame]
    table: pd.DataFrame
    summary: pd.DataFrame
    values: Dict[str, Any]


def rule_comparison(run: SelectionRun) -> RuleComparison:
    """Every rule of :data:`~omnifer_lib.select.report.COMPARED_RULES` matched to the margin rule's
    count at ``params["delta"]`` (with the profile's ``per_class_cap``). Its ``values``: the default
    learner's precision by margin and by softmax (``m_prec``, ``s_prec``), by balanced top-k and
    quantile (``p_topk``, ``p_quantile``), the mean class precisions (``mcp_margin``, ``mcp_topk``,
    ``mcp_quantile``) and the largest / smallest class ratios (``ratio_margin``, ``ratio_topk``,
    ``ratio_quantile``), all in words."""
    params, true, cap = run.params, run.true_labels, run.params["per_class_cap"]
    compare = {run.names[b]: compare_rules(run.manifests[b], params["delta"], true, per_class_cap=cap)
               for b in run.backbones}
    per_learner = {run.names[b]: matched_rules_table(compare[run.names[b]], run.manifests[b], true,
                                                     softmax_threshold=params["softmax_threshold"],
                                                     per_class_cap=cap) for b in run.backbones}
    summary = learner_summaries(compare)
    s = summary.loc[run.default_name]
    default = compare[run.default_name]
    at_delta = default[default["class"] < 0].set_index("rule")["precision"]
    values = {"m_prec": percent_text(100 * at_delta["margin"], NO_PRECISION),
              "s_prec": percent_text(100 * at_delta["softmax"], NO_PRECISION)}
    for rule, short in (("margin", "margin"), ("balanced_topk", "topk"), ("balanced_quantile", "quantile")):
        values[f"ratio_{short}"] = ratio_text(s.loc[rule, "largest / smallest"])
        values[f"mcp_{short}"] = percent_text(float(s.loc[rule, "mean class precision (%)"]), NO_PRECISION)
    values.update(p_topk=percent_text(float(s.loc["balanced_topk", "precision (%)"]), NO_PRECISION),
                  p_quantile=percent_text(float(s.loc["balanced_quantile", "precision (%)"]), NO_PRECISION))
    return RuleComparison(compare, side_by_side(per_learner).reset_index(), summary.reset_index(), values)
