"""The paper's claims, each checked against this run's results — verdicts computed, never written.

A claim compares two measured quantities (e.g. "DAS + VGG-F" vs "VGG-F baseline" on RAF-DB) or one
quantity with a threshold. Each side is a set of per-seed values; the verdict is

* ``reproduced`` when the difference has the claimed sign and exceeds the seed noise
  (|mean difference| > ``noise_factor`` × its standard error; with one seed, any difference);
* ``inconclusive`` when it has the claimed sign but is within the noise;
* ``not reproduced`` otherwise;
* ``not measured`` when this run has no values for a side (e.g. a table not run).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

REPRODUCED, INCONCLUSIVE, NOT_REPRODUCED, NOT_MEASURED = "reproduced", "inconclusive", "not reproduced", "not measured"


@dataclass(frozen=True)
class Side:
    """Selects per-seed values from a results table: rows where every ``where`` column equals its value."""

    label: str
    where: Dict[str, object]
    paper: Optional[float] = None  # the paper's number for this side, shown beside ours

    def values(self, results: pd.DataFrame, value: str) -> np.ndarray:
        mask = np.ones(len(results), dtype=bool)
        for col, want in self.where.items():
            if col not in results.columns:
                return np.array([])
            mask &= (results[col] == want).to_numpy()
        return results.loc[mask, value].astype(float).to_numpy()


@dataclass(frozen=True)
class Claim:
    """``left`` is claimed to be greater than ``right`` (``relation=">"``), or ``left`` below
    ``threshold`` (``relation="<="``, used for cost ratios), or |left - right| <= ``threshold``
    (``relation="~"``, "comparable")."""

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


def _fmt(vals: np.ndarray, digits: int = 2) -> str:
    if len(vals) == 0:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{vals.mean():.{digits}f} ± {vals.std(ddof=1):.{digits}f} (n={len(vals)})"


def _stderr(a: np.ndarray, b: np.ndarray) -> float:
    var = 0.0
    for v in (a, b):
        if len(v) > 1:
            var += v.var(ddof=1) / len(v)
    return math.sqrt(var)


def check(claim: Claim, results: pd.DataFrame, noise_factor: float = 1.0) -> Verdict:
    """Evaluate one claim on ``results`` (a tidy table with one row per seed and setting)."""
    left = claim.left.values(results, claim.value)
    right = claim.right.values(results, claim.value) if claim.right else np.array([])
    paper = f"{claim.left.paper:g}" if claim.left.paper is not None else "–"
    if claim.right is not None and claim.right.paper is not None:
        paper += f" vs {claim.right.paper:g}"
    ours = _fmt(left) + (f" vs {_fmt(right)}" if claim.right else "")
    if len(left) == 0 or (claim.right is not None and len(right) == 0):
        return Verdict(claim, NOT_MEASURED, ours, paper, "this run has no values for this comparison")
    if claim.relation == "<=":
        ok = left.mean() <= claim.threshold
        return Verdict(claim, REPRODUCED if ok else NOT_REPRODUCED, ours, paper,
                       f"{left.mean():.2f} {'≤' if ok else '>'} {claim.threshold:g}")
    diff = left.mean() - right.mean()
    se = _stderr(left, right)
    if claim.relation == "~":
        ok = abs(diff) <= claim.threshold
        return Verdict(claim, REPRODUCED if ok else NOT_REPRODUCED, ours, paper,
                       f"difference {diff:+.2f} ({'within' if ok else 'beyond'} ±{claim.threshold:g})")
    if diff <= 0:
        return Verdict(claim, NOT_REPRODUCED, ours, paper, f"difference {diff:+.2f}")
    if se > 0 and diff <= noise_factor * se:
        return Verdict(claim, INCONCLUSIVE, ours, paper, f"difference {diff:+.2f} within seed noise (s.e. {se:.2f})")
    return Verdict(claim, REPRODUCED, ours, paper, f"difference {diff:+.2f}" + (f" (s.e. {se:.2f})" if se else ""))


def check_all(claims: Sequence[Claim], results: pd.DataFrame, noise_factor: float = 1.0) -> pd.DataFrame:
    """A table with one row per claim: the claim, where the paper makes it, the paper's numbers,
    this run's numbers, the verdict and why."""
    rows = []
    for c in claims:
        v = check(c, results, noise_factor)
        rows.append({"claim": c.text, "paper says": c.source, "paper": v.paper, "this run": v.ours,
                     "verdict": v.verdict, "why": v.detail})
    return pd.DataFrame(rows)
