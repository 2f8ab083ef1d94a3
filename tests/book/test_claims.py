"""Verdicts are computed from the numbers, with the seed noise taken into account."""
import numpy as np
import pandas as pd
import pytest

from omnifer_lib.publish import claims


def frame(left, right, paired=False):
    """Rows of the claim's two sides; with ``paired`` their i-th values share seed i."""
    rows = [{"table": "1", "family": "vgg", "mode": "anchor+DAS", "target": "rafdb", "seed": i, "accuracy": v}
            for i, v in enumerate(left)]
    rows += [{"table": "1", "family": "vgg", "mode": "anchor", "target": "rafdb", "seed": i, "accuracy": v}
             for i, v in enumerate(right)]
    return pd.DataFrame(rows) if paired else pd.DataFrame(rows).drop(columns="seed")


CLAIM = next(c for c in claims.paper_claims() if c.id == "t1-das-vgg")


@pytest.mark.parametrize("left,right,verdict", [
    ([80, 81, 82], [70, 71, 72], claims.REPRODUCED),  # +10, s.e. 0.82
    ([80.5, 70, 90], [79, 80, 81], claims.INCONCLUSIVE),  # right sign, inside the noise
    ([82, 80, 84], [79, 80, 81], claims.INCONCLUSIVE),  # +2 with s.e. 1.3: beyond one s.e., not two
    ([81.5, 82.5, 83.5], [79, 80, 81], claims.INCONCLUSIVE),  # +2.5 = 3.1 s.e.: another machine could undo it
    ([70, 71, 72], [80, 81, 82], claims.NOT_REPRODUCED),
    ([79, 80, 81], [79.5, 80.5, 81.5], claims.INCONCLUSIVE),  # -0.5 = -0.6 s.e.: a sign, within a machine's shift
    ([75.0], [74.0], claims.INCONCLUSIVE),  # one seed: a sign alone decides nothing
])
def test_verdicts(left, right, verdict):
    v = claims.check(CLAIM, frame(left, right))
    assert v.verdict == verdict
    assert "86.55" in v.paper and "85.15" in v.paper


def test_seeds_both_sides_hold_are_compared_seed_by_seed():
    left, right = [80, 82, 84], [79, 81, 83.5]  # each seed +1, +1, +0.5: the seeds' spread cancels
    paired = claims.check(CLAIM, frame(left, right, paired=True))
    assert paired.verdict == claims.REPRODUCED and paired.se == pytest.approx(0.1667, abs=1e-3)
    assert "paired over 3 seeds" in paired.ours
    assert claims.check(CLAIM, frame(left, right)).verdict == claims.INCONCLUSIVE  # unpaired: s.e. 1.74
    # seeds only one side holds are not paired
    rows = frame(left, right, paired=True)
    rows.loc[rows.index[-1], "seed"] = 7
    assert "paired" not in claims.check(CLAIM, rows).ours


def test_the_verdict_keeps_two_standard_errors_plus_a_machine_shift_of_room():
    # reproduced needs a margin > (2 + sqrt 2) s.e. = 3.414; not reproduced one below -sqrt 2 = -1.414
    assert claims.decide(CLAIM, 3.45, 1.0)[0] == claims.REPRODUCED
    assert claims.decide(CLAIM, 3.35, 1.0)[0] == claims.INCONCLUSIVE
    assert claims.decide(CLAIM, -1.35, 1.0)[0] == claims.INCONCLUSIVE
    assert claims.decide(CLAIM, -1.45, 1.0)[0] == claims.NOT_REPRODUCED
    assert claims.decide(CLAIM, 3.0, float("nan"))[0] == claims.INCONCLUSIVE
    assert claims.decide(CLAIM, 0.1, 0.0)[0] == claims.REPRODUCED  # seeds agreeing exactly: no noise
    # a band claim ("within 1 point"): the room left inside the band is the margin
    comparable = next(c for c in claims.paper_claims() if c.id == "t1-das-vas-vgg")
    assert claims.decide(comparable, 0.0, 0.2)[0] == claims.REPRODUCED  # 1.0 > 0.68
    assert claims.decide(comparable, 0.0, 0.5)[0] == claims.INCONCLUSIVE  # 1.0 < 1.71
    assert claims.decide(comparable, -1.2, 0.1)[0] == claims.NOT_REPRODUCED  # -0.2 < -0.14
    assert claims.decide(comparable, -1.2, 8.0)[0] == claims.INCONCLUSIVE


def test_every_decided_verdict_survives_a_machine_shift_of_sqrt2_standard_errors():
    comparable = next(c for c in claims.paper_claims() if c.id == "t1-das-vas-vgg")
    for claim in (CLAIM, comparable):
        for value in np.linspace(-6, 6, 241):
            here = claims.decide(claim, value, 1.0)[0]
            if here == claims.INCONCLUSIVE:
                continue
            other = {claims.decide(claim, v, 1.0)[0] for v in (value - 1.414, value + 1.414)}
            opposite = claims.NOT_REPRODUCED if here == claims.REPRODUCED else claims.REPRODUCED
            assert opposite not in other, (claim.id, value)


def test_one_precision_each_side_is_judged_by_its_binomial_standard_error():
    precision = next(c for c in claims.paper_claims() if c.id == "select-vgg")

    def rows(n):
        return pd.DataFrame([{"table": "selection", "family": "vgg", "mode": m, "precision": p, "selected": n}
                             for m, p in (("margin", 90.0), ("softmax", 85.0))])
    decided = claims.check(precision, rows(2000))  # s.e. of +5 points: 1.04
    assert decided.verdict == claims.REPRODUCED and decided.se == pytest.approx(1.043, abs=1e-3)
    assert claims.check(precision, rows(100)).verdict == claims.INCONCLUSIVE  # s.e. 4.7
    no_counts = rows(100).drop(columns="selected")
    assert claims.check(precision, no_counts).verdict == claims.INCONCLUSIVE  # a sign alone


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
    rows = pd.DataFrame([{"table": "1", "family": "vgg", "mode": m, "target": "rafdb", "accuracy": a + d}
                         for m, a in (("anchor+DAS", 80.0), ("anchor+VAS", 80.1)) for d in (-0.1, 0, 0.1)])
    assert claims.check(comparable, rows).verdict == claims.REPRODUCED
    rows.loc[rows["mode"] == "anchor+VAS", "accuracy"] += 2.0
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
                  + [row("DAS (Algorithm 1)", s, 40 + s - 3, 12.0) for s in range(3)])
    sel = [{"backbone": "resnet_small", "delta": 0.05, "rule": "margin", "class": -1, "precision": 0.6,
            "selected": 100}]
    rules = [{"backbone": "resnet_small", "delta": 0.05, "rule": "softmax", "class": -1, "precision": 0.7,
              "selected": 100}]
    return {"conditions": conditions, "selection": sel, "rules": rules,
            "provenance": {"parameters": {"delta": 0.05}}}


def test_real_face_verdicts_judge_the_anchor_claims_by_the_same_rule():
    all_claims = claims.paper_claims()
    verdicts = dict(zip([c.id for c in all_claims], claims.real_face_verdicts(all_claims, _real_archive())))
    assert verdicts["t1-vas-resnet"] == claims.REPRODUCED  # +10 over three seeds
    assert verdicts["t1-das-resnet"] == claims.NOT_REPRODUCED  # -3 with s.e. 0.8
    assert verdicts["t1-vas-vgg"] == claims.NOT_MEASURED  # the study trained no VGG-style learner
    assert verdicts["t8-vas-cost"] == claims.REPRODUCED  # 2.5 >= 2
    assert verdicts["t8-das-cost"] == claims.NOT_REPRODUCED  # 1.2 > 1.1
    assert verdicts["select-resnet"] == claims.NOT_REPRODUCED  # -10 points, binomial s.e. 6.7 of 100 each
    assert verdicts["t3-das-vgg"] == "needs the paper's datasets"
    assert claims.real_face_verdicts(all_claims[:2], None) == ["no real-faces archive"] * 2


def test_verdict_counts_name_every_verdict_and_the_page_colours_them():
    verdicts = pd.DataFrame({"claim": ["a", "b", "c"], "verdict": [claims.REPRODUCED, claims.REPRODUCED,
                                                                   claims.NOT_REPRODUCED],
                             "on real faces": [claims.INCONCLUSIVE, "not measured", claims.REPRODUCED]})
    assert claims.verdict_counts(verdicts) == {"reproduced": 2, "inconclusive": 0, "not_reproduced": 1,
                                               "not_measured": 0}
    assert claims.verdict_counts(verdicts, "on real faces")["inconclusive"] == 1
    html = claims.styled(verdicts).to_html()
    assert html.count(claims.VERDICT_COLOURS[claims.REPRODUCED].split(": ")[1]) >= 1
    assert claims.VERDICT_COLOURS[claims.NOT_REPRODUCED].split(": ")[1] in html
    assert claims.VERDICT_COLOURS[claims.INCONCLUSIVE].split(": ")[1] in html


def test_the_claims_page_table_counts_and_run_description():
    from omnifer_lib.publish import config

    modes = (("anchor", 50.0), ("anchor+VAS", 60.0))
    rows = pd.DataFrame([{"table": "1", "family": "vgg", "mode": m, "target": "rafdb", "accuracy": a + s, "seed": s,
                          "machine": "cpu A"} for s in range(3) for m, a in modes])
    verdicts = claims.book_verdicts(rows, None)
    assert len(verdicts) == len(claims.paper_claims())
    assert set(verdicts["on real faces"]) == {"no real-faces archive"}
    glued = claims.verdict_glue(verdicts)
    assert glued["n_claims"] == len(verdicts)
    assert sum(v for k, v in glued.items() if k != "n_claims") == len(verdicts) and glued["n_reproduced"] >= 1
    text = claims.run_description(config.load_profile("smoke"), rows).splitlines()
    assert len(text) == 4 and text[0].startswith("Data: ") and text[2] == "Learners trained on: cpu A"
