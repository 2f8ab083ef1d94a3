"""Verdicts are computed from the numbers, with the seed noise taken into account."""
import pandas as pd
import pytest

from omnifer_lib.book import claims


def frame(left, right):
    rows = [{"table": "1", "family": "vgg", "mode": "anchor+DAS", "target": "rafdb", "seed": i, "accuracy": v}
            for i, v in enumerate(left)]
    rows += [{"table": "1", "family": "vgg", "mode": "anchor", "target": "rafdb", "seed": i, "accuracy": v}
             for i, v in enumerate(right)]
    return pd.DataFrame(rows)


CLAIM = next(c for c in claims.paper_claims() if c.id == "t1-das-vgg")


@pytest.mark.parametrize("left,right,verdict", [
    ([80, 81, 82], [70, 71, 72], claims.REPRODUCED),
    ([80.5, 70, 90], [79, 80, 81], claims.INCONCLUSIVE),  # right sign, inside the noise
    ([82, 80, 84], [79, 80, 81], claims.INCONCLUSIVE),  # +2 with s.e. 1.3: beyond one s.e., not two
    ([70, 71, 72], [80, 81, 82], claims.NOT_REPRODUCED),
    ([75.0], [74.0], claims.REPRODUCED),  # one seed: no noise estimate
])
def test_verdicts(left, right, verdict):
    v = claims.check(CLAIM, frame(left, right))
    assert v.verdict == verdict
    assert "86.55" in v.paper and "85.15" in v.paper


def test_missing_side_is_not_measured():
    v = claims.check(CLAIM, frame([80, 81], []))
    assert v.verdict == claims.NOT_MEASURED


def test_a_quantity_this_run_has_no_column_for_is_not_measured():
    # e.g. selection precision on a real pool, which has no hidden expression labels
    precision = next(c for c in claims.paper_claims() if c.value == "precision")
    rows = pd.DataFrame([{"table": "1", "family": "vgg", "mode": "anchor", "target": "rafdb", "accuracy": 80.0}])
    assert claims.check(precision, rows).verdict == claims.NOT_MEASURED


def test_comparable_and_bounds():
    comparable = next(c for c in claims.paper_claims() if c.id == "t1-das-vas-vgg")
    rows = pd.DataFrame([{"table": "1", "family": "vgg", "mode": m, "target": "rafdb", "accuracy": a}
                         for m, a in (("anchor+DAS", 80.0), ("anchor+VAS", 80.6))])
    assert claims.check(comparable, rows).verdict == claims.REPRODUCED
    rows.loc[1, "accuracy"] = 82.0
    assert claims.check(comparable, rows).verdict == claims.NOT_REPRODUCED
    cost = next(c for c in claims.paper_claims() if c.id == "t8-das-cost")
    costs = pd.DataFrame([{"table": "8", "mode": "anchor+DAS", "cost_ratio": r} for r in (1.02, 1.05)])
    assert claims.check(cost, costs).verdict == claims.REPRODUCED
    costs["cost_ratio"] = [1.5, 1.6]
    assert claims.check(cost, costs).verdict == claims.NOT_REPRODUCED


def test_every_claim_cites_the_paper():
    all_claims = claims.paper_claims()
    assert len({c.id for c in all_claims}) == len(all_claims)
    assert all(c.source for c in all_claims)
    table = claims.check_all(all_claims, pd.DataFrame(columns=["table"]))
    assert set(table["verdict"]) == {claims.NOT_MEASURED}


def _real_archive():
    def row(condition, seed, accuracy, seconds):
        return {"condition": condition, "backbone": "resnet_small", "seed": seed, "accuracy": accuracy,
                "seconds_per_epoch": seconds}
    conditions = ([row("baseline", s, 40 + s, 10.0) for s in range(3)]
                  + [row("VAS δ=0.05", s, 50 + s, 25.0) for s in range(3)]
                  + [row("DAS (Algorithm 1)", s, 40 + s - 0.5, 12.0) for s in range(3)])
    sel = [{"backbone": "resnet_small", "delta": 0.05, "rule": "margin", "class": -1, "precision": 0.6}]
    rules = [{"backbone": "resnet_small", "delta": 0.05, "rule": "softmax", "class": -1, "precision": 0.7}]
    return {"conditions": conditions, "selection": sel, "rules": rules,
            "provenance": {"parameters": {"delta": 0.05}}}


def test_real_face_verdicts_judge_the_anchor_claims_by_the_same_rule():
    all_claims = claims.paper_claims()
    verdicts = dict(zip([c.id for c in all_claims], claims.real_face_verdicts(all_claims, _real_archive())))
    assert verdicts["t1-vas-resnet"] == claims.REPRODUCED  # +10 over three seeds
    assert verdicts["t1-das-resnet"] == claims.NOT_REPRODUCED  # -0.5
    assert verdicts["t1-vas-vgg"] == claims.NOT_MEASURED  # the study trained no VGG-style learner
    assert verdicts["t8-vas-cost"] == claims.REPRODUCED  # 2.5 >= 2
    assert verdicts["t8-das-cost"] == claims.NOT_REPRODUCED  # 1.2 > 1.1
    assert verdicts["select-resnet"] == claims.NOT_REPRODUCED  # softmax more precise here
    assert verdicts["t3-das-vgg"] == "needs the paper's datasets"
    assert claims.real_face_verdicts(all_claims[:2], None) == ["no real-faces archive"] * 2


@pytest.mark.parametrize("left,right,expected", [
    ([80, 81, 82], [70, 71, 72], claims.STABLE),  # +10 with s.e. 0.8: far from every boundary
    ([81.5, 82.5, 83.5], [79, 80, 81], "could flip to inconclusive"),  # +2.5, s.e. 0.82: 3.1 s.e. (> 2, < 3.4)
    ([79.4, 80.4, 81.4], [79, 80, 81], "could flip to not reproduced"),  # inconclusive, +0.4 near zero
    ([70, 71, 72], [80, 81, 82], claims.STABLE),
    ([75.0], [74.0], "unknown (one seed: no spread to judge by)"),
])
def test_a_verdict_near_a_boundary_could_flip_on_another_machine(left, right, expected):
    v = claims.check(CLAIM, frame(left, right))
    assert v.on_another_machine == expected
    table = claims.check_all([CLAIM], frame(left, right))
    assert table["on another machine"].iloc[0] == expected


def test_machine_stability_moves_the_difference_by_sqrt2_standard_errors():
    # reproduced needs diff > 2 se; moved by sqrt(2) se it must stay above: 2 + 1.414 = 3.414 se
    assert claims.machine_stability(CLAIM, 3.45, 1.0) == claims.STABLE
    assert claims.machine_stability(CLAIM, 3.35, 1.0) == "could flip to inconclusive"
    # a band claim ("within 1 point"): 0.0 ± 0.5 stays inside, 0.0 ± 1.0 may leave it
    comparable = next(c for c in claims.paper_claims() if c.id == "t1-das-vas-vgg")
    assert claims.machine_stability(comparable, 0.0, 0.5) == claims.STABLE
    assert claims.machine_stability(comparable, 0.0, 1.0) == "could flip to not reproduced"
    assert claims.machine_stability(CLAIM, 3.0, float("nan")).startswith("unknown")


def test_machine_stability_sees_a_band_or_threshold_anywhere_in_the_window():
    comparable = next(c for c in claims.paper_claims() if c.id == "t1-das-vas-vgg")
    # outside the ±1 band, with a window so wide that it spans the whole band
    assert claims.machine_stability(comparable, -1.2, 8.0) == "could flip to reproduced"
    assert claims.machine_stability(comparable, -5.0, 1.0) == claims.STABLE
    assert claims.machine_stability(CLAIM, float("nan"), 1.0).startswith("unknown")
    assert "agree exactly" in claims.machine_stability(CLAIM, 3.0, 0.0)
    # epoch-cost ratios are timings: a machine changes them by its speed, not by seed noise
    cost = next(c for c in claims.paper_claims() if c.id == "t8-das-cost")
    costs = pd.DataFrame([{"table": "8", "mode": "anchor+DAS", "cost_ratio": r} for r in (1.02, 1.05)])
    assert claims.check(cost, costs).on_another_machine.startswith("depends on the machine's speed")
