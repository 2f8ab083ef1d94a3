"""The selection chapter's tables (omnifer_lib.select.report) on a pool small enough to count by hand."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from omnifer_lib.select import CHUNK_COLUMNS, ScoreTable, compare_rules, delta_sweep, reselect
from omnifer_lib.select.report import (delta_range, delta_table, learner_summaries, manifest_columns,
                                       margin_vs_softmax_text, matched_rules_table, ratio_text, side_by_side)

NAMES = ["a", "b", "c"]
#: Six pool samples against the centroids e_a, e_b, e_c. Margins (best - second cosine): s0 1,
#: s1 0.447 (a, truly b: wrong), s2 1, s3 0.447, s4 0 (a tie: never selected), s5 0.074.
FEATURES = np.array([[1, 0, 0], [1, .5, 0], [0, 1, 0], [.5, 1, 0], [1, 1, 0], [0, .9, 1]], float)
#: Softmax is sure of s0, s2 and s5 (equally), then s3 (0.9933), then s1 and s4 (about 0.5).
LOGITS = np.array([[10, 0, 0], [3, 2.9, 0], [0, 10, 0], [5, 10, 0], [10, 10, 0], [0, 0, 10]], float)
TRUE = np.array([0, 1, 1, 1, 2, 2])
DELTAS = [0.0, 0.1, 0.5, 2.0]


def pool_scores() -> ScoreTable:
    return ScoreTable.from_arrays(FEATURES, LOGITS, np.eye(3), label_names=NAMES)


def test_manifest_columns_lists_every_column_of_a_manifest_row():
    table = manifest_columns()
    assert list(table.columns) == ["column", "meaning"]
    assert table["column"].tolist() == list(CHUNK_COLUMNS)
    assert table.set_index("column").loc["margin", "meaning"] == CHUNK_COLUMNS["margin"]


def test_delta_table_counts_and_precision_per_margin():
    sweep = delta_sweep(pool_scores(), DELTAS, TRUE, rules=("margin", "softmax"))
    table = delta_table({"net": sweep})
    assert list(table.index.names) == ["learner", "delta"]
    assert list(table.columns) == ["selected", "smallest class", "largest class", "precision (%)",
                                   "mean class precision (%)"]
    one = table.loc["net"]
    assert one["selected"].tolist() == [5, 4, 2, 0]  # δ = 0: all but the tie; 0.1: s5 goes; 0.5: s1, s3 go
    assert one["smallest class"].tolist() == [1, 0, 0, 0] and one["largest class"].tolist() == [2, 2, 1, 0]
    assert one["precision (%)"].tolist()[:3] == pytest.approx([80.0, 75.0, 100.0])  # s1 is the wrong one
    assert one.loc[0.0, "mean class precision (%)"] == pytest.approx(100 * (0.5 + 1 + 1) / 3)
    assert one.loc[0.1, "mean class precision (%)"] == pytest.approx(75.0)  # c got nothing: not averaged
    assert math.isnan(one.loc[2.0, "precision (%)"])
    with pytest.raises(ValueError, match="no rows of rule 'balanced_topk'"):
        delta_table({"net": sweep}, "balanced_topk")


def test_delta_range_takes_the_largest_margin_that_still_selects():
    table = delta_table({"net": delta_sweep(pool_scores(), DELTAS, TRUE)}).loc["net"]
    assert delta_range(table) == {"d_lo": 0.0, "d_hi": 0.5, "n_lo": 5, "n_hi": 2, "p_lo": pytest.approx(80.0),
                                  "p_hi": pytest.approx(100.0)}
    nothing = delta_table({"net": delta_sweep(pool_scores(), [2.0, 3.0], TRUE)}).loc["net"]
    assert delta_range(nothing)["d_hi"] == 2.0 and delta_range(nothing)["n_hi"] == 0
    with pytest.raises(ValueError, match="empty"):
        delta_range(table.iloc[:0])


def test_learner_summaries_stack_the_rule_summaries_in_percent():
    cmp = compare_rules(pool_scores(), 0.1, TRUE)
    summary = learner_summaries({"one": cmp, "two": cmp})
    assert summary.index.get_level_values("learner").unique().tolist() == ["one", "two"]
    margin = summary.loc[("one", "margin")]
    assert margin["selected"] == 4 and margin["largest / smallest"] == np.inf
    assert margin["precision (%)"] == pytest.approx(75.0)
    softmax = summary.loc[("two", "softmax")]  # the four surest: s0, s2, s5, s3, all right
    assert softmax["selected"] == 4 and softmax["largest / smallest"] == 2.0
    assert softmax["precision (%)"] == pytest.approx(100.0)
    assert softmax["mean class precision (%)"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="at least one"):
        learner_summaries({})


def test_ratio_text():
    assert ratio_text(2.54) == "2.5"
    assert ratio_text(np.inf) == "unbounded (a class got nothing)"


def test_margin_vs_softmax_text_tallies_each_learner():
    sweep = delta_sweep(pool_scores(), DELTAS, TRUE, rules=("margin", "softmax"))
    # δ 0: 80 vs 80 % (a tie); 0.1: 75 vs 100 %; 0.5: 100 vs 100 %; 2: nothing selected
    empty = delta_sweep(pool_scores(), [2.0], TRUE, rules=("margin", "softmax"))
    text = margin_vs_softmax_text({"net": sweep, "other": empty}, True)
    assert text == ("for net the centroid margin is more precise at 0 and the softmax confidence at 1 of the 3 "
                    "margins δ that select anything; for other no swept δ selects any sample with a known label.")
    assert margin_vs_softmax_text({"net": sweep}, False) == (
        "the pool has no hidden labels, so the two rules cannot be compared by precision.")


def test_matched_rules_table_adds_the_softmax_rule_at_its_own_threshold():
    scores = pool_scores()
    cmp = compare_rules(scores, 0.1, TRUE)
    table = matched_rules_table(cmp, scores, TRUE, softmax_threshold=0.999)
    assert table.index.tolist() == ["a", "b", "c", "all"]
    assert list(table.columns) == [("selected", "margin"), ("selected", "softmax"), ("selected", "softmax ≥ 0.999"),
                                   ("precision (%)", "margin"), ("precision (%)", "softmax"),
                                   ("precision (%)", "softmax ≥ 0.999")]
    assert table["selected"]["margin"].tolist() == [2, 2, 0, 4]
    assert table["selected"]["softmax"].tolist() == [1, 2, 1, 4]
    assert table["selected"]["softmax ≥ 0.999"].tolist() == [1, 1, 1, 3]  # s3 (0.9933) falls below
    assert table[("precision (%)", "margin")].tolist()[:2] == pytest.approx([50.0, 100.0])
    assert table.loc["all", ("precision (%)", "softmax ≥ 0.999")] == pytest.approx(100.0)
    fixed = reselect(scores, rule="softmax", softmax_threshold=0.999)
    assert table.loc["all", ("selected", "softmax ≥ 0.999")] == len(fixed)
    bare = matched_rules_table(cmp)
    assert list(bare["selected"].columns) == ["margin", "softmax"]
    with pytest.raises(ValueError, match="pass source"):
        matched_rules_table(cmp, softmax_threshold=0.9)


def test_side_by_side_puts_each_table_under_its_label():
    one = pd.DataFrame({"x": [1, 2]}, index=["a", "b"])
    both = side_by_side({"first": one, "second": 10 * one})
    assert list(both.columns) == [("first", "x"), ("second", "x")]
    assert both[("second", "x")].tolist() == [10, 20] and both.index.tolist() == ["a", "b"]
    with pytest.raises(ValueError, match="at least one"):
        side_by_side({})
