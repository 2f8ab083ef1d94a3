"""The paper's Tables 1–8 as chapters 05–07 show them (§4.4: inner-dataset, cross-dataset and
computation cost), read from the cached learners of :mod:`omnifer_lib.engine.pipeline`.

Each table is a :class:`TableSection`: the lines printed above it (which datasets played the roles),
the table itself, the tidy rows it was made from (for the figures beside it) and the values the
chapter's text states (glued under their names by :func:`~omnifer_lib.publish.reporting.glue_values`).
The numbers are :mod:`omnifer_lib.publish.reporting`'s (:func:`~omnifer_lib.publish.reporting.paper_comparison`,
:func:`~omnifer_lib.publish.reporting.cost_table`); this module names what each table is trained and
tested on and puts the results in the chapters' words."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from omnifer_lib.engine import pipeline
from omnifer_lib.publish import paper
from omnifer_lib.publish.reporting import accuracy_grid, cost_table, mode_table, paired_gains, paper_comparison, show
from omnifer_lib.data import LABELS
from omnifer_lib.names import FAMILY_NAMES, MODE_NAMES

#: The paper's inner-dataset tables (§4.4.1), each on the ``dataset`` of its entry in paper_results.yaml.
INNER_DATASET_TABLES = (1, 2, 3)
#: The paper's cross-dataset tables (§4.4.2), each tested on the ``dataset`` of its entry (trained on RAF-DB).
CROSS_DATASET_TABLES = (4, 5, 6, 7)
#: The dataset the paper's cross-dataset learners (and Table 1's) train on.
SOURCE = "rafdb"
#: What Table 3's section prints when the profile has no VGG-family backbone (the paper runs CK+ with VGG-F only).
NO_VGG = "no VGG-family backbone in this profile; Table 3 is skipped"


@dataclass
class TableSection:
    """One table of a chapter: ``roles`` (the lines printed above it, e.g. what it was trained and
    tested on, or why it is skipped; empty: nothing printed), ``table`` (what the cell displays: a
    styled table, or None when the table is skipped), ``results`` (the tidy rows it was made from,
    one per learner and test set or fold; empty when skipped) and ``values`` (name -> value the text
    states)."""

    roles: str
    table: Any
    results: pd.DataFrame
    values: Dict[str, Any] = field(default_factory=dict)

    def show(self) -> Any:
        """Print :attr:`roles` (when there are any) and return :attr:`table` for the cell to display."""
        if self.roles:
            print(self.roles)
        return self.table


def backbone_names(backbones: Sequence[str]) -> Dict[str, str]:
    """The paper's family (``"vgg"``, ``"resnet"``) -> the display name of the backbone that plays it
    here (the last of ``backbones`` of that family), for ``backbone_names`` of
    :func:`~omnifer_lib.publish.reporting.paper_comparison`."""
    return {pipeline.family(b): pipeline.display_backbone(b) for b in backbones}


def backbones_line(backbones: Sequence[str]) -> str:
    """E.g. ``"Backbones: VGG-small (VGG-F's role) for the paper's VGG-F; …"``: which backbone plays
    each of the paper's families."""
    names = backbone_names(backbones)
    return "Backbones: " + "; ".join(f"{name} for the paper's {FAMILY_NAMES[fam]}" for fam, name in names.items())


def inner_dataset_settings(params: Mapping[str, Any]) -> Dict[str, Any]:
    """The settings chapter 05's text names: ``das_strategy`` and ``das_weight`` (how the DAS join
    training) and ``n_seeds`` (learners per condition)."""
    return {"das_strategy": params["das_strategy"], "das_weight": params["das_weight"],
            "n_seeds": len(params["seeds"])}


def inner_dataset_table(params: Mapping[str, Any], number: int) -> TableSection:
    """The paper's Table ``number`` (1: RAF-DB, 2: FER-2013, 3: CK+ in subject-independent folds)
    beside this run's learners: every backbone of the profile in baseline / VAS / DAS mode (Table 3:
    the VGG-family backbone's baseline and DAS, one row per fold in ``results``; skipped, with
    :data:`NO_VGG` as its ``roles``, when the profile has none). Trains what is not cached yet."""
    if number not in INNER_DATASET_TABLES:
        raise ValueError(f"the inner-dataset tables are {INNER_DATASET_TABLES}; got {number!r}")
    target = paper.table(number)["dataset"]
    names = backbone_names(params["backbones"])
    trained = f"Trained on and tested on: {pipeline.role_description(params, target)}"
    if number == 1:
        results, roles = (pipeline.results_table(params, params["backbones"], train_on=target),
                          f"{trained}\n{backbones_line(params['backbones'])}")
    elif number == 2:
        results = pipeline.results_table(params, params["backbones"], train_on=target)
        roles = (f"{trained}\nAuxiliary samples: selected from {pipeline.role_description(params, 'ms1m')} "
                 "with the RAF-DB anchor's primitive learners")
    else:
        vgg = {pipeline.family(b): b for b in params["backbones"]}.get("vgg")
        if vgg is None:
            return TableSection(NO_VGG, None, pd.DataFrame())
        folds = pipeline.kfold_table(params, vgg)
        results = folds.assign(target=target, seed=folds["fold"])
        roles = (f"Data: {pipeline.role_description(params, target)} — {params['ckplus_folds']} "
                 "subject-independent folds")
    return TableSection(roles, show(paper_comparison(number, results, target, backbone_names=names)), results)


def gain_values(results: pd.DataFrame, target: str, prefix: str) -> Dict[str, float]:
    """Each condition's mean paired gain over its baseline on ``target``
    (:func:`~omnifer_lib.publish.reporting.paired_gains`, accuracy points) named
    ``"{prefix}_{family}_{VAS or DAS}"``, e.g. ``{"t1_vgg_VAS": 0.7}``."""
    gains = paired_gains(results, target)
    return {f"{prefix}_{fam}_{MODE_NAMES[mode]}": float(v)
            for fam, mode, v in zip(gains["family"], gains["mode"], gains["gain"])}


def modes_by_backbone(results: pd.DataFrame, target: str) -> pd.DataFrame:
    """:func:`~omnifer_lib.publish.reporting.mode_table` of ``results`` on ``target`` with the backbones
    under their display names: rows backbones, columns baseline / VAS / DAS, mean ± std over seeds."""
    return mode_table(results, target).rename(index=pipeline.display_backbone)


def inner_dataset_points(results: pd.DataFrame, target: str = SOURCE):
    """Table 1's setting as a figure: every seed's accuracy (%) on ``target`` per mode and backbone
    (:func:`~omnifer_lib.publish.plots.seed_points`, chance as a dotted line). Returns the Figure."""
    from omnifer_lib.publish.plots import seed_points
    from omnifer_lib.publish.reporting import with_display_names

    per_seed = with_display_names(results[results["target"] == target])
    fig = seed_points(per_seed, x="mode", hue="backbone", reference=100 / len(LABELS), reference_label="chance")
    fig.axes[0].set_title("Table 1 setting: accuracy on the anchor's test split (points: seeds; diamonds: mean ± std)",
                          fontsize=9)
    return fig


def vas_counts(labels_by_learner: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Auxiliary samples per expression: one column per learner (its name -> the pseudo-labels (N,) of its
    VAS, integers indexing :data:`~omnifer_lib.names.LABELS`), one row per expression (index ``expression``)."""
    counts = pd.DataFrame({name: np.bincount(np.asarray(labels, dtype=int), minlength=len(LABELS))
                           for name, labels in labels_by_learner.items()}, index=list(LABELS))
    counts.index.name = "expression"
    return counts


def vas_coverage(counts: pd.DataFrame) -> str:
    """E.g. ``"VGG-small: 3 of 7 expressions, 1,204 images; …"``: per learner (a column of
    :func:`vas_counts`), the expressions its VAS hold at least one image of, and their number."""
    return "; ".join(f"{name}: {int((c > 0).sum())} of {len(LABELS)} expressions, {int(c.sum()):,d} images"
                     for name, c in counts.items())


def vas_per_expression(params: Mapping[str, Any]) -> TableSection:
    """The VAS of each backbone's primitive learner (profile's rule and margin δ) per expression:
    the table of :func:`vas_counts` (``results``: the counts, expressions as the index) and the text's
    ``vas_coverage`` (:func:`vas_coverage`)."""
    counts = vas_counts({pipeline.display_backbone(b): pipeline.auxiliary_samples(params, b).labels
                         for b in params["backbones"]})
    return TableSection("", show(counts.reset_index()), counts, {"vas_coverage": vas_coverage(counts)})


def pooled_fold_accuracy(folds: pd.DataFrame) -> Optional[pd.DataFrame]:
    """Table 3's folds pooled: per mode (index in the book's words), the test images answered right
    (``correct``) and tested (``n``) over all folds and ``accuracy over all folds (%)``, so every test
    image counts once. ``folds``: one row per (mode, fold) with ``correct`` and ``n`` (the ``results`` of
    :func:`inner_dataset_table`'s Table 3). None when there is none (Table 3 skipped)."""
    if folds.empty:
        return None
    pooled = folds.groupby("mode")[["correct", "n"]].sum()
    pooled["accuracy over all folds (%)"] = 100 * pooled["correct"] / pooled["n"]
    return pooled.rename(index=MODE_NAMES)


def cross_dataset_results(params: Mapping[str, Any]) -> TableSection:
    """The learners of Table 1 (every backbone and mode, trained on RAF-DB's role) on every test set:
    ``results`` one row per learner and test set; ``roles`` the source line."""
    results = pipeline.results_table(params, params["backbones"], train_on=SOURCE)
    return TableSection(f"Source (training data): {pipeline.role_description(params, SOURCE)}", None, results)


def cross_dataset_table(params: Mapping[str, Any], results: pd.DataFrame, number: int) -> TableSection:
    """The paper's Table ``number`` (4: CK+, 5: JAFFE, 6: MMI, 7: FER-2013) beside this run's VGG-family
    learners tested on its target (``results``: rows of :func:`cross_dataset_results`), the VAS learner
    and the baseline added as rows "not in the paper"; ``roles`` names the target."""
    if number not in CROSS_DATASET_TABLES:
        raise ValueError(f"the cross-dataset tables are {CROSS_DATASET_TABLES}; got {number!r}")
    target = paper.table(number)["dataset"]
    vgg = results[results["family"] == "vgg"]
    table = paper_comparison(number, vgg, target, backbone_names=backbone_names(params["backbones"]),
                             extra_modes=("anchor+VAS",))
    return TableSection(f"Target: {pipeline.role_description(params, target)}", show(table), vgg)


def cross_dataset_grid(results: pd.DataFrame):
    """Every learner on every test set as a heat map (the anchor's own test split first, then the paper's
    cross targets; cells: mean accuracy (%) over seeds). Returns the Figure."""
    from omnifer_lib.publish.plots import accuracy_heatmap

    grid = accuracy_grid(results, [SOURCE, *pipeline.CROSS_TARGETS])
    return accuracy_heatmap(grid, title="accuracy (%) by learner and test set, mean over seeds")


def table8_values(params: Mapping[str, Any], costs: pd.DataFrame, timing: Mapping[str, Any]) -> Dict[str, Any]:
    """What chapter 07's text states about the timing: ``hardware`` (the machines of ``costs``, rows of
    :func:`~omnifer_lib.engine.pipeline.epoch_cost_table`), ``rounds``, ``timed_steps`` and ``full_steps``
    (minibatches timed and in the full epoch, from ``timing``: an ``epoch_costs`` summary), ``n_das`` (the
    distilled images), ``batch_size``, ``das_strategy`` and ``das_expected`` (the cost of a minibatch
    carrying the DAS relative to one without: (batch_size + n_das) / batch_size)."""
    n_das = params["images_per_class"] * len(LABELS)
    return {"hardware": "; ".join(costs["machine"].unique()), "rounds": timing["repeats"],
            "timed_steps": timing["anchor"]["timed_minibatches"], "full_steps": timing["anchor"]["minibatches"],
            "n_das": n_das, "batch_size": params["batch_size"], "das_strategy": params["das_strategy"],
            "das_expected": (params["batch_size"] + n_das) / params["batch_size"]}


def table8(params: Mapping[str, Any]) -> TableSection:
    """The paper's Table 8 beside this machine's timed epochs (every backbone, timed afresh unless
    cached): ``results`` the rows of :func:`~omnifer_lib.publish.reporting.cost_table` (for
    :func:`~omnifer_lib.publish.plots.cost_ratios`), ``table`` them without the plotted column
    ``ratio (mean)``, ``values`` :func:`table8_values` (the first backbone's timing)."""
    costs = pipeline.epoch_cost_table(params, params["backbones"])
    timing = pipeline.epoch_costs(params, params["backbones"][0]).meta["summary"]
    rows = cost_table(costs)
    return TableSection("", show(rows.drop(columns="ratio (mean)")), rows, table8_values(params, costs, timing))
