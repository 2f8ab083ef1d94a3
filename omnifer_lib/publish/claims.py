"""The paper's claims, each checked against this run's results — verdicts computed, never written.

A claim compares two measured quantities (e.g. "DAS + VGG-F" vs "VGG-F baseline" on RAF-DB) or one
quantity with a threshold. Each side is a set of per-seed values (or, for a pseudo-label precision
measured once, one proportion with its binomial standard error). The claim's *margin* is how far it
holds: the mean difference for "left beats right", the distance to the bound for a cost ratio, the
room left inside the band for "comparable". With ``se`` the margin's standard error, the verdict is

* ``reproduced`` when the margin exceeds ``noise_factor`` × se (2 by default, roughly a 95 %
  two-sided bound) plus :data:`MACHINE_SHIFT` × se;
* ``not reproduced`` when the margin is below −:data:`MACHINE_SHIFT` × se (the claim fails, and
  would still fail after the shift a rerun on another machine may bring);
* ``inconclusive`` in between, and whenever there is no noise estimate (one value a side): a sign
  alone decides nothing;
* ``not measured`` when this run has no values for a side (e.g. a table not run).

Why the machine shift: another processor, thread count or library version takes other floating-point
paths through training, and those diverge as a fresh draw of the seeds' noise would, so the same seeds on
two machines can give different numbers (the demo's VGG-small baseline of Table 1 moved from 56.6 to
53.5 between two machines of the same kind). A verdict is decided only where such a rerun would not
reverse it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from omnifer_lib.publish import paper as _paper
from omnifer_lib.publish.reporting import epoch_cost_ratios
from omnifer_lib.evaluate import NOISE_FACTOR, SeedStatistics, paired_difference, seed_statistics
from omnifer_lib.data.registry import DATASET_NAMES
from omnifer_lib.names import FAMILY_NAMES

REPRODUCED, INCONCLUSIVE, NOT_REPRODUCED, NOT_MEASURED = "reproduced", "inconclusive", "not reproduced", "not measured"

#: How far, in standard errors, a rerun of the same seeds on another machine may move a compared
#: quantity: such a rerun is another draw of the training noise, and the difference of two
#: independent draws of a mean has √2 times the standard error of one. Verdicts keep this much room.
MACHINE_SHIFT = math.sqrt(2)


@dataclass(frozen=True)
class Side:
    """Selects per-seed values from a results table: rows where every ``where`` column equals its value."""

    label: str
    where: Dict[str, object]
    paper: Optional[float] = None  # the paper's number for this side, shown beside ours

    def _rows(self, results: pd.DataFrame, value: str) -> Optional[pd.DataFrame]:
        if value not in results.columns or any(col not in results.columns for col in self.where):
            return None  # not measured in this run
        mask = np.ones(len(results), dtype=bool)
        for col, want in self.where.items():
            mask &= (results[col] == want).to_numpy()
        return results.loc[mask]

    def values(self, results: pd.DataFrame, value: str) -> np.ndarray:
        rows = self._rows(results, value)
        return np.array([]) if rows is None else rows[value].astype(float).to_numpy()

    def by_seed(self, results: pd.DataFrame, value: str) -> Dict[Any, float]:
        """This side's values keyed by their ``seed`` (fold, timing round), or ``{}`` where the table
        has no seed for a value or a seed holds several (then they cannot be paired)."""
        rows = self._rows(results, value)
        if rows is None or "seed" not in rows.columns or rows["seed"].isna().any() or rows["seed"].duplicated().any():
            return {}
        return dict(zip(rows["seed"].tolist(), rows[value].astype(float).tolist()))


@dataclass(frozen=True)
class Claim:
    """``left`` is claimed to be greater than ``right`` (``relation=">"``), or ``left`` at most /
    at least ``threshold`` (``relation="<="`` / ``">="``, used for cost ratios), or
    |left - right| <= ``threshold`` (``relation="~"``, "comparable")."""

    id: str
    text: str
    source: str  # where the paper makes it, e.g. "Table 1"
    left: Side
    right: Optional[Side] = None
    relation: str = ">"
    threshold: float = 0.0
    value: str = "accuracy"


@dataclass
class Verdict:
    claim: Claim
    verdict: str
    ours: str
    paper: str
    detail: str = ""
    #: how far the claim holds (see the module docstring) and its standard error
    margin: float = float("nan")
    se: float = float("nan")


def _fmt(vals: np.ndarray, digits: int = 2) -> str:
    return seed_statistics(vals).text(digits, with_n=True)


def margin_of(claim: Claim, value: float) -> float:
    """How far ``claim`` holds at ``value`` (the mean difference left − right, or the mean of
    ``left`` for a bound): positive where it holds, negative where it fails, in the value's units."""
    if claim.relation == "<=":
        return claim.threshold - value
    if claim.relation == ">=":
        return value - claim.threshold
    if claim.relation == "~":
        return claim.threshold - abs(value)
    return value


def decide(claim: Claim, value: float, se: float, noise_factor: float = NOISE_FACTOR,
           shift: float = MACHINE_SHIFT) -> Tuple[str, str]:
    """The verdict on a compared quantity ``value`` with standard error ``se``, and why in words.

    Reproduced when the claim's :func:`margin_of` exceeds (``noise_factor`` + ``shift``) × se, not
    reproduced when it is below −``shift`` × se, inconclusive otherwise and without a standard
    error (``nan``: one value a side). Seeds that agree exactly (se = 0) decide by the margin's sign."""
    margin = margin_of(claim, value)
    what = {"<=": f"{value:.2f} against the bound ≤ {claim.threshold:g}",
            ">=": f"{value:.2f} against the bound ≥ {claim.threshold:g}",
            "~": f"difference {value:+.2f} against the band ±{claim.threshold:g}"}.get(
                claim.relation, f"difference {value:+.2f}")
    if not math.isfinite(value):
        return INCONCLUSIVE, "no value"
    if not math.isfinite(se):
        return INCONCLUSIVE, f"{what}, one value a side: no noise estimate, and a sign alone decides nothing"
    need, room = (noise_factor + shift) * se, shift * se
    if margin > need:
        return REPRODUCED, f"{what}: holds by {margin:.2f} > {need:.2f} ({noise_factor:g} + {shift:.2f} s.e.)" + (
            "" if se > 0 else ", and the seeds agree exactly")
    if se == 0 and margin <= 0:
        return NOT_REPRODUCED, f"{what}: does not hold, and the seeds agree exactly"
    if margin < -room:
        return NOT_REPRODUCED, f"{what}: fails by {-margin:.2f} > {room:.2f} ({shift:.2f} s.e.)"
    return INCONCLUSIVE, (f"{what}: margin {margin:+.2f} between −{room:.2f} and {need:.2f} "
                          f"(s.e. {se:.2f}; decided beyond {noise_factor:g} s.e. plus {shift:.2f} for another machine)")


def _side_se(side: Side, results: pd.DataFrame, value: str, values: np.ndarray) -> float:
    """The standard error of one side's mean: over its seeds, or, for one pseudo-label precision
    (%), the binomial one over its ``selected`` samples (nan where neither is known)."""
    if len(values) > 1:
        return seed_statistics(values).se
    if value == "precision" and len(values) == 1 and "selected" in results.columns:
        selected = side.values(results, "selected")
        if len(selected) == 1 and selected[0] > 0:
            p = float(values[0]) / 100
            return 100 * math.sqrt(max(p * (1 - p), 0.0) / float(selected[0]))
    return float("nan")


def _pairs(claim: Claim, results: pd.DataFrame) -> Optional[SeedStatistics]:
    """The per-seed differences left − right where both sides hold one value for each of the same
    two or more seeds (:func:`~omnifer_lib.evaluate.paired_difference`), else ``None``."""
    if claim.right is None:
        return None
    left, right = claim.left.by_seed(results, claim.value), claim.right.by_seed(results, claim.value)
    if len(left) < 2 or set(left) != set(right):
        return None
    return paired_difference(left, right)


def check(claim: Claim, results: pd.DataFrame, noise_factor: float = NOISE_FACTOR) -> Verdict:
    """Evaluate one claim on ``results`` (a tidy table with one row per seed and setting).

    Where both sides hold one value for each of the same seeds (folds), the difference is taken seed
    by seed (paired); otherwise the two sides are taken as independent: for two selections of one
    pool (the precision claims) that overstates the standard error of their difference, which only
    makes a verdict harder to reach."""
    left = claim.left.values(results, claim.value)
    right = claim.right.values(results, claim.value) if claim.right else np.array([])
    paper = f"{claim.left.paper:g}" if claim.left.paper is not None else "–"
    if claim.right is not None and claim.right.paper is not None:
        paper += f" vs {claim.right.paper:g}"
    ours = _fmt(left) + (f" vs {_fmt(right)}" if claim.right else "")
    if len(left) == 0 or (claim.right is not None and len(right) == 0):
        return Verdict(claim, NOT_MEASURED, ours, paper, "this run has no values for this comparison")
    pairs = _pairs(claim, results)
    if pairs is not None:  # seed by seed: what a seed's two learners share is not noise
        value, se = pairs.mean, pairs.se
        ours += f"; paired over {pairs.n} seeds: {pairs.mean:+.2f} ± {pairs.std:.2f}"
    else:
        sides = [(claim.left, left)] + ([(claim.right, right)] if claim.right is not None else [])
        ses = [_side_se(side, results, claim.value, vals) for side, vals in sides]
        value = float(left.mean()) - (float(right.mean()) if claim.right is not None else 0.0)
        # a side with one value adds no known variance; with none known there is no noise estimate
        known = [e for e in ses if math.isfinite(e)]
        se = math.sqrt(sum(e ** 2 for e in known)) if known else float("nan")
    verdict, detail = decide(claim, value, se, noise_factor)
    return Verdict(claim, verdict, ours, paper, detail, margin_of(claim, value), se)


def check_all(claims: Sequence[Claim], results: pd.DataFrame, noise_factor: float = NOISE_FACTOR) -> pd.DataFrame:
    """A table with one row per claim: the claim, where the paper makes it, the paper's numbers,
    this run's numbers, the verdict and why."""
    rows = []
    for c in claims:
        v = check(c, results, noise_factor)
        rows.append({"claim": c.text, "paper says": c.source, "paper": v.paper, "this run": v.ours,
                     "verdict": v.verdict, "why": v.detail})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the paper's claims
#: The background of each verdict's cell on the claims page.
VERDICT_COLOURS = {REPRODUCED: "background-color: #d9f2d9", INCONCLUSIVE: "background-color: #fff2cc",
                   NOT_REPRODUCED: "background-color: #f8d7da"}


def verdict_counts(verdicts: pd.DataFrame, column: str = "verdict") -> Dict[str, int]:
    """How many claims got each verdict (every verdict named, 0 where none), from :func:`check_all`'s
    ``column``; the keys are the verdicts with ``_`` for spaces (``"not_reproduced"``)."""
    counts = verdicts[column].value_counts()
    every = (REPRODUCED, INCONCLUSIVE, NOT_REPRODUCED, NOT_MEASURED)
    return {v.replace(" ", "_"): int(counts.get(v, 0)) for v in every}


def styled(verdicts: pd.DataFrame, columns: Sequence[str] = ("verdict", "on real faces")):
    """:func:`check_all`'s table as the claims page shows it: no index, each verdict cell in
    ``columns`` coloured by :data:`VERDICT_COLOURS`."""
    present = [c for c in columns if c in verdicts.columns]
    return verdicts.style.map(lambda v: VERDICT_COLOURS.get(v, ""), subset=present).hide(axis="index")


def _acc(table: str, family: str, mode: str, target: str, paper_table: Optional[int] = None) -> Side:
    """Accuracies of (family, mode) on ``target`` from the results of ``table``, with the paper's
    number for that row of Table ``paper_table`` (default: ``table``) from paper_results.yaml."""
    reported = _paper.reproduced_value(paper_table or int(table), family, mode)
    return Side(f"{family} {mode} on {target}", {"table": table, "family": family, "mode": mode,
                                                 "target": target}, reported)


def _cost_ratio(mode: str) -> float:
    """The paper's seconds per epoch in ``mode`` over those without auxiliary samples (Table 8)."""
    return round(_paper.reproduced_value(8, None, mode) / _paper.reproduced_value(8, None, "anchor"), 2)


def paper_claims() -> List[Claim]:
    """Every claim of the paper that this project can check, with the paper's evidence.

    The values come from a results table built by :func:`collect_results`."""
    c: List[Claim] = []
    for fam, name in FAMILY_NAMES.items():
        c.append(Claim(f"t1-vas-{fam}", f"VAS + {name} beats the {name} baseline on RAF-DB", "Table 1, §4.4.1",
                       _acc("1", fam, "anchor+VAS", "rafdb"), _acc("1", fam, "anchor", "rafdb")))
        c.append(Claim(f"t1-das-{fam}", f"DAS + {name} beats the {name} baseline on RAF-DB", "Table 1, §4.4.1",
                       _acc("1", fam, "anchor+DAS", "rafdb"), _acc("1", fam, "anchor", "rafdb")))
        c.append(Claim(f"t1-das-vas-{fam}", f"DAS + {name} is comparable to VAS + {name} on RAF-DB (within 1 point)",
                       "§4.4.1", _acc("1", fam, "anchor+DAS", "rafdb"), _acc("1", fam, "anchor+VAS", "rafdb"),
                       relation="~", threshold=1.0))
    c.append(Claim("vgg-resnet-rafdb", "VGG-F (face-pretrained) beats ResNet-34 (ImageNet) on RAF-DB", "§4.4.1",
                   _acc("1", "vgg", "anchor", "rafdb"), _acc("1", "resnet", "anchor", "rafdb")))
    c.append(Claim("vgg-resnet-fer", "VGG-F (face-pretrained) beats ResNet-34 (ImageNet) on FER-2013", "§4.4.1",
                   _acc("2", "vgg", "anchor", "fer2013"), _acc("2", "resnet", "anchor", "fer2013")))
    c.append(Claim("t2-vas-vgg", "VAS + VGG-F beats the VGG-F baseline on FER-2013", "Table 2, §4.4.1",
                   _acc("2", "vgg", "anchor+VAS", "fer2013"), _acc("2", "vgg", "anchor", "fer2013")))
    c.append(Claim("t2-das-vas-vgg", "DAS + VGG-F beats VAS + VGG-F on FER-2013", "Table 2, §4.4.1",
                   _acc("2", "vgg", "anchor+DAS", "fer2013"), _acc("2", "vgg", "anchor+VAS", "fer2013")))
    c.append(Claim("t3-das-vgg", "DAS + VGG-F beats the VGG-F baseline on CK+ (10-fold)", "Table 3",
                   _acc("3", "vgg", "anchor+DAS", "ckplus"), _acc("3", "vgg", "anchor", "ckplus")))
    c.append(Claim("t6-das-vgg", "RAF-DB + DAS beats RAF-DB alone on MMI (cross-dataset)", "Table 6, §4.4.2",
                   _acc("1", "vgg", "anchor+DAS", "mmi", 6), _acc("1", "vgg", "anchor", "mmi", 6)))
    for table, target in (("4", "ckplus"), ("5", "jaffe"), ("7", "fer2013")):
        c.append(Claim(f"t{table}-das-vgg", f"RAF-DB + DAS beats RAF-DB alone on {DATASET_NAMES[target]} "
                       "(cross-dataset; the paper "
                       "gives no plain baseline, only a domain-adaptation method)", f"Table {table}, §3.4",
                       _acc("1", "vgg", "anchor+DAS", target, int(table)),
                       _acc("1", "vgg", "anchor", target, int(table))))
    c.append(Claim("t8-das-cost", "An epoch with DAS costs about the same as one without auxiliary samples "
                   "(ratio ≤ 1.10)", "Table 8",
                   Side("DAS / w/o AS", {"table": "8", "mode": "anchor+DAS"}, _cost_ratio("anchor+DAS")),
                   relation="<=", threshold=1.10, value="cost_ratio"))
    c.append(Claim("t8-vas-cost", "An epoch with VAS costs much more than one without (ratio ≥ 2)", "Table 8",
                   Side("VAS / w/o AS", {"table": "8", "mode": "anchor+VAS"}, _cost_ratio("anchor+VAS")),
                   relation=">=", threshold=2.0, value="cost_ratio"))
    for fam, name in (("vgg", "VGG family"), ("resnet", "ResNet family")):
        c.append(Claim(f"select-{fam}", f"Centroid-margin selection gives more reliable pseudo-labels than softmax "
                       f"confidence at the same count ({name})", "§3.3",
                       Side("margin", {"table": "selection", "family": fam, "mode": "margin"}),
                       Side("softmax", {"table": "selection", "family": fam, "mode": "softmax"}),
                       value="precision"))
    return c


def collect_results(params: Mapping[str, Any]) -> pd.DataFrame:
    """One tidy table of everything the claims need, from the cached pipeline stages (trains
    whatever is missing): Tables 1-3 accuracies per seed (or fold), Table 8 cost ratios per timing
    repeat (:func:`~omnifer_lib.engine.pipeline.epoch_costs`),
    and pseudo-label precision of the margin and softmax rules at matched counts."""
    from omnifer_lib.engine import pipeline

    frames = []
    for table, train_on in (("1", "rafdb"), ("2", "fer2013")):
        frames.append(pipeline.results_table(params, params["backbones"], train_on=train_on).assign(table=table))
    vgg = [b for b in params["backbones"] if pipeline.family(b) == "vgg"]
    if vgg:
        folds = pipeline.kfold_table(params, vgg[0])
        frames.append(folds.assign(table="3", target="ckplus", seed=folds["fold"]))
    ratios = epoch_cost_ratios(pipeline.epoch_cost_table(params, params["backbones"]))
    frames.append(ratios[ratios["mode"] != "anchor"][["backbone", "family", "mode", "seed", "cost_ratio"]]
                  .assign(table="8"))
    frames += _selection_precision(params)
    return pd.concat(frames, ignore_index=True)


def _selection_precision(params: Mapping[str, Any]) -> List[pd.DataFrame]:
    """Pseudo-label precision (%) of the margin and softmax rules at matched counts at δ, one row per
    backbone and rule: of each seed's own selection with ``seeds_redraw_pipeline`` (the claims are then
    paired over the seeds), else of the master seed's one selection (``seed`` nan: its standard error
    is the binomial one over the selected samples). A real pool (MS1M) has no expression labels: none."""
    from omnifer_lib.engine import pipeline
    from omnifer_lib.select import compare_rules

    seeds = params["seeds"] if params.get("seeds_redraw_pipeline") else [None]
    frames = []
    for seed in seeds:
        run = pipeline.seed_params(params, seed) if seed is not None else params
        truth = getattr(pipeline.dataset(run, pipeline.POOL, "train"), "true_labels", None)
        for backbone in params["backbones"] if truth is not None else []:
            rules = compare_rules(pipeline.manifest_dir(run, backbone), run["delta"], truth)
            overall = rules[rules["name"] == "all"]
            for rule in ("margin", "softmax"):
                row = overall[overall["rule"] == rule]
                if len(row):
                    frames.append(pd.DataFrame([{"table": "selection", "backbone": backbone,
                                                 "family": pipeline.family(backbone), "mode": rule,
                                                 "seed": np.nan if seed is None else seed,
                                                 "precision": float(row["precision"].iloc[0]) * 100,
                                                 "selected": int(row["selected"].iloc[0])}]))
    return frames


#: The claims a real-faces study can judge: the anchor's own comparisons (Table 1's, with the study's
#: anchor in RAF-DB's row), the epoch costs (Table 8) and the selection rule (§3.3).
REAL_FACE_CLAIMS = ("t1-vas-", "t1-das-", "t8-", "select-")


def real_face_results(archive: Mapping[str, Any]) -> pd.DataFrame:
    """The real-faces archive (:mod:`omnifer_lib.publish.real_faces`) in the shape of
    :func:`collect_results`, so that the claims of :data:`REAL_FACE_CLAIMS` are judged by the same
    rule: baseline / VAS at the profile's δ / DAS per seed as Table 1's rows (target = the anchor's
    row), epoch cost ratios per seed as Table 8's, and the precision of the margin and softmax rules
    at matched counts at δ as the selection rows."""
    from omnifer_lib.publish import real_faces
    from omnifer_lib.names import family

    delta = float(archive["provenance"]["parameters"]["delta"])
    runs = pd.DataFrame(archive["conditions"])
    modes = {real_faces.BASELINE: "anchor", real_faces.vas_condition(delta): "anchor+VAS",
             real_faces.DAS: "anchor+DAS"}
    rows = runs[runs["condition"].isin(modes)].assign(mode=lambda d: d["condition"].map(modes))
    rows = rows.assign(table="1", target="rafdb", family=rows["backbone"].map(family))
    base = rows[rows["mode"] == "anchor"].set_index(["backbone", "seed"])["seconds_per_epoch"]
    cost = rows[rows["mode"] != "anchor"].copy()
    cost["cost_ratio"] = cost["seconds_per_epoch"].to_numpy() / base.reindex(
        list(zip(cost["backbone"], cost["seed"]))).to_numpy()
    frames = [rows, cost.assign(table="8")[["table", "backbone", "family", "mode", "seed", "cost_ratio"]]]
    sel = pd.concat([pd.DataFrame(archive["selection"]), pd.DataFrame(archive["rules"])])
    at = sel[(sel["class"] < 0) & np.isclose(sel["delta"], delta) & sel["rule"].isin(["margin", "softmax"])]
    frames.append(pd.DataFrame({"table": "selection", "backbone": at["backbone"],
                                "family": at["backbone"].map(family), "mode": at["rule"],
                                "precision": at["precision"].astype(float) * 100,
                                "selected": at["selected"].astype(float),
                                "seed": at["seed"] if "seed" in at.columns else np.nan}))
    return pd.concat(frames, ignore_index=True)


def real_face_verdicts(claims: Sequence[Claim], archive: Optional[Mapping[str, Any]],
                       noise_factor: float = NOISE_FACTOR) -> List[str]:
    """For each claim, its verdict on the real-faces archive, or why there is none (no archive; a
    claim about datasets the study does not have)."""
    if archive is None:
        return ["no real-faces archive"] * len(claims)
    results = real_face_results(archive)
    return [check(c, results, noise_factor).verdict if c.id.startswith(REAL_FACE_CLAIMS)
            else "needs the paper's datasets" for c in claims]


def book_verdicts(results: pd.DataFrame, archive: Optional[Mapping[str, Any]],
                  noise_factor: float = NOISE_FACTOR) -> pd.DataFrame:
    """The claims page's table: every claim of :func:`paper_claims` checked on this run's
    ``results`` (:func:`check_all`) with its verdict on the real-faces ``archive`` beside it
    (column ``"on real faces"``, :func:`real_face_verdicts`)."""
    claims = paper_claims()
    verdicts = check_all(claims, results, noise_factor)
    verdicts["on real faces"] = real_face_verdicts(claims, archive, noise_factor)
    return verdicts


def verdict_glue(verdicts: pd.DataFrame) -> Dict[str, int]:
    """The claims page's counts for its text: ``n_claims`` and ``n_<verdict>`` (:func:`verdict_counts`)."""
    return {"n_claims": len(verdicts), **{f"n_{v}": n for v, n in verdict_counts(verdicts).items()}}


def run_description(params: Mapping[str, Any], results: pd.DataFrame) -> str:
    """Four lines on what the verdicts were computed from: the data, the learners and seeds, the
    machines the learners trained on and the one computing the verdicts."""
    from omnifer_lib.engine import pipeline, provenance

    return "\n".join([
        f"Data: {pipeline.role_description(params, 'rafdb')} | pool: {pipeline.role_description(params, 'ms1m')}",
        f"Learners: {', '.join(pipeline.display_backbone(b) for b in params['backbones'])} | seeds: {params['seeds']}",
        f"Learners trained on: {'; '.join(results['machine'].dropna().unique())}",
        f"Verdicts computed on: {provenance.machine_text(provenance.machine())}"])
