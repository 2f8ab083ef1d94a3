"""The paper's claims, each checked against this run's results — verdicts computed, never written.

A claim compares two measured quantities (e.g. "DAS + VGG-F" vs "VGG-F baseline" on RAF-DB) or one
quantity with a threshold. Each side is a set of per-seed values; the verdict is

* ``reproduced`` when the difference has the claimed sign and exceeds the seed noise
  (|mean difference| > ``noise_factor`` × its standard error, 2 by default, roughly a 95 %
  two-sided bound; with one seed, any difference);
* ``inconclusive`` when it has the claimed sign but is within the noise;
* ``not reproduced`` otherwise;
* ``not measured`` when this run has no values for a side (e.g. a table not run).

A verdict also says whether it would survive a rerun on another machine (:data:`MACHINE_SHIFT`):
another processor, thread count or library version takes other floating-point paths through
training, and those diverge as a fresh draw of the seeds' noise would, so the same seeds on two
machines can give different numbers (the demo's VGG-small baseline of Table 1 moved from 56.6 to
53.5 between two machines of the same kind).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from omnifer_lib.book import paper as _paper
from omnifer_lib.book.reporting import epoch_cost_ratios
from omnifer_lib.evaluate import NOISE_FACTOR, beyond_noise, difference, seed_statistics
from omnifer_lib.names import DATASET_NAMES, FAMILY_NAMES

REPRODUCED, INCONCLUSIVE, NOT_REPRODUCED, NOT_MEASURED = "reproduced", "inconclusive", "not reproduced", "not measured"

#: How far, in standard errors, a rerun of the same seeds on another machine may move a compared
#: quantity: such a rerun is another draw of the training noise, and the difference of two
#: independent draws of a mean has √2 times the standard error of one. A verdict that a shift of
#: this size in either direction would change is flagged as one that could flip between machines.
MACHINE_SHIFT = math.sqrt(2)
STABLE = "stable"


@dataclass(frozen=True)
class Side:
    """Selects per-seed values from a results table: rows where every ``where`` column equals its value."""

    label: str
    where: Dict[str, object]
    paper: Optional[float] = None  # the paper's number for this side, shown beside ours

    def values(self, results: pd.DataFrame, value: str) -> np.ndarray:
        if value not in results.columns or any(col not in results.columns for col in self.where):
            return np.array([])  # not measured in this run
        mask = np.ones(len(results), dtype=bool)
        for col, want in self.where.items():
            mask &= (results[col] == want).to_numpy()
        return results.loc[mask, value].astype(float).to_numpy()


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
    #: :data:`STABLE`, or the verdict(s) a rerun on another machine could give instead ("could
    #: flip to inconclusive"), or why that is unknown (one seed).
    on_another_machine: str = ""


def _fmt(vals: np.ndarray, digits: int = 2) -> str:
    return seed_statistics(vals).text(digits, with_n=True)


def _decide(claim: Claim, value: float, se: float, noise_factor: float) -> Tuple[str, str]:
    """The verdict on a compared quantity ``value`` (the mean difference left − right, or the mean
    of ``left`` for a threshold claim) with standard error ``se``, and why."""
    if claim.relation in ("<=", ">="):
        ok = value <= claim.threshold if claim.relation == "<=" else value >= claim.threshold
        sign = {("<=", True): "≤", ("<=", False): ">", (">=", True): "≥", (">=", False): "<"}[(claim.relation, ok)]
        return (REPRODUCED if ok else NOT_REPRODUCED), f"{value:.2f} {sign} {claim.threshold:g}"
    if claim.relation == "~":
        ok = abs(value) <= claim.threshold
        return (REPRODUCED if ok else NOT_REPRODUCED), \
            f"difference {value:+.2f} ({'within' if ok else 'beyond'} ±{claim.threshold:g})"
    if value <= 0:
        return NOT_REPRODUCED, f"difference {value:+.2f}"
    if not beyond_noise(value, se, noise_factor):
        return INCONCLUSIVE, (f"difference {value:+.2f} within seed noise "
                              f"({noise_factor:g} × s.e. = {noise_factor * se:.2f})")
    return REPRODUCED, f"difference {value:+.2f}" + (f" (s.e. {se:.2f})" if se else "")


def _boundaries(claim: Claim, se: float, noise_factor: float) -> Tuple[float, ...]:
    """The values at which :func:`_decide` changes its verdict."""
    if claim.relation in ("<=", ">="):
        return (claim.threshold,)
    if claim.relation == "~":
        return (-claim.threshold, claim.threshold)
    return (0.0, noise_factor * se)


def machine_stability(claim: Claim, value: float, se: float, noise_factor: float = NOISE_FACTOR,
                      shift: float = MACHINE_SHIFT) -> str:
    """:data:`STABLE` when the verdict on ``value`` is the same everywhere in ``value`` ± ``shift``
    × ``se`` (the spread a rerun on another machine may bring: about one standard deviation of
    it, so a stable verdict can still flip, less often), else which verdicts it could become
    ("could flip to inconclusive"). Unknown without a spread (one seed, or identical seeds); for
    epoch-cost ratios it depends on the machine's speed, not on seed noise."""
    if claim.value == "cost_ratio":
        return "depends on the machine's speed (a timing, not seed noise)"
    if not math.isfinite(value):
        return "unknown (no value)"
    if not math.isfinite(se):
        return "unknown (one seed: no spread to judge by)"
    if se <= 0:
        return "unknown (the seeds agree exactly: no spread to judge by)"
    lo, hi = value - shift * se, value + shift * se
    # the verdict is constant between boundaries: the window's ends, the boundaries inside it and
    # one point between each two of these see every verdict it holds
    points = sorted({lo, hi, *(b for b in _boundaries(claim, se, noise_factor) if lo < b < hi)})
    probes = points + [(a + b) / 2 for a, b in zip(points, points[1:])]
    here = _decide(claim, value, se, noise_factor)[0]
    other = sorted({_decide(claim, float(v), se, noise_factor)[0] for v in probes} - {here})
    return STABLE if not other else "could flip to " + " or ".join(other)


def check(claim: Claim, results: pd.DataFrame, noise_factor: float = NOISE_FACTOR) -> Verdict:
    """Evaluate one claim on ``results`` (a tidy table with one row per seed and setting)."""
    left = claim.left.values(results, claim.value)
    right = claim.right.values(results, claim.value) if claim.right else np.array([])
    paper = f"{claim.left.paper:g}" if claim.left.paper is not None else "–"
    if claim.right is not None and claim.right.paper is not None:
        paper += f" vs {claim.right.paper:g}"
    ours = _fmt(left) + (f" vs {_fmt(right)}" if claim.right else "")
    if len(left) == 0 or (claim.right is not None and len(right) == 0):
        return Verdict(claim, NOT_MEASURED, ours, paper, "this run has no values for this comparison", "–")
    if claim.relation in ("<=", ">="):
        value, se = float(left.mean()), seed_statistics(left).se
    else:
        value, se = difference(left, right)
    verdict, detail = _decide(claim, value, se, noise_factor)
    # two single values have a standard error of 0 (difference()), which is no measured spread
    spread = se if max(len(left), len(right)) > 1 else float("nan")
    return Verdict(claim, verdict, ours, paper, detail, machine_stability(claim, value, spread, noise_factor))


def check_all(claims: Sequence[Claim], results: pd.DataFrame, noise_factor: float = NOISE_FACTOR) -> pd.DataFrame:
    """A table with one row per claim: the claim, where the paper makes it, the paper's numbers,
    this run's numbers, the verdict, why, and whether a rerun on another machine could flip it."""
    rows = []
    for c in claims:
        v = check(c, results, noise_factor)
        rows.append({"claim": c.text, "paper says": c.source, "paper": v.paper, "this run": v.ours,
                     "verdict": v.verdict, "why": v.detail, "on another machine": v.on_another_machine})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the paper's claims
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
    repeat (:func:`~omnifer_lib.book.pipeline.epoch_costs`),
    and pseudo-label precision of the margin and softmax rules at matched counts."""
    from omnifer_lib.book import pipeline
    from omnifer_lib.select import compare_rules

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
    # A real pool (MS1M) has no expression labels: the selection claims then stay "not measured".
    truth = getattr(pipeline.dataset(params, pipeline.POOL, "train"), "true_labels", None)
    for backbone in params["backbones"] if truth is not None else []:
        rules = compare_rules(pipeline.manifest_dir(params, backbone), params["delta"], truth)
        overall = rules[rules["name"] == "all"]
        for rule in ("margin", "softmax"):
            row = overall[overall["rule"] == rule]
            if len(row):
                frames.append(pd.DataFrame([{"table": "selection", "backbone": backbone,
                                             "family": pipeline.family(backbone), "mode": rule,
                                             "precision": float(row["precision"].iloc[0]) * 100,
                                             "selected": int(row["selected"].iloc[0])}]))
    return pd.concat(frames, ignore_index=True)


#: The claims a real-faces study can judge: the anchor's own comparisons (Table 1's, with the study's
#: anchor in RAF-DB's row), the epoch costs (Table 8) and the selection rule (§3.3).
REAL_FACE_CLAIMS = ("t1-vas-", "t1-das-", "t8-", "select-")


def real_face_results(archive: Mapping[str, Any]) -> pd.DataFrame:
    """The real-faces archive (:mod:`omnifer_lib.book.real_faces`) in the shape of
    :func:`collect_results`, so that the claims of :data:`REAL_FACE_CLAIMS` are judged by the same
    rule: baseline / VAS at the profile's δ / DAS per seed as Table 1's rows (target = the anchor's
    row), epoch cost ratios per seed as Table 8's, and the precision of the margin and softmax rules
    at matched counts at δ as the selection rows."""
    from omnifer_lib.book import real_faces
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
                                "precision": at["precision"].astype(float) * 100}))
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
