"""Book tables computed from results (Table 8's cost ratios)."""
import math

import pandas as pd
import pytest

from omnifer_lib.book.reporting import cost_table, epoch_cost_ratios


def _results():
    rows = []
    for seed, (base, vas, das) in enumerate(((10.0, 30.0, 11.0), (20.0, 50.0, 22.0))):
        for mode, sec, n in (("anchor", base, 100), ("anchor+VAS", vas, 300), ("anchor+DAS", das, 100)):
            for target in ("rafdb", "ckplus"):  # one learner, several test sets: counted once
                rows.append({"backbone": "vgg_small", "family": "vgg", "mode": mode, "seed": seed, "target": target,
                             "seconds_per_epoch": sec, "train_images": n})
    return pd.DataFrame(rows)


def test_cost_ratios_are_per_seed_against_the_same_seed_without_auxiliary_samples():
    ratios = epoch_cost_ratios(_results())
    assert len(ratios) == 6
    vas = ratios[ratios["mode"] == "anchor+VAS"].set_index("seed")["cost_ratio"]
    assert vas.to_dict() == {0: 3.0, 1: 2.5}
    assert (ratios[ratios["mode"] == "anchor"]["cost_ratio"] == 1.0).all()


def test_cost_table_shows_mean_and_std_of_the_ratios_beside_the_papers():
    table = cost_table(_results()).set_index("setting")
    assert table.loc["w/ VAS", "ratio (mean)"] == pytest.approx(2.75)
    assert table.loc["w/ VAS", "ratio to w/o AS (this run)"] == f"2.75 ± {math.sqrt(0.125):.2f}"
    assert table.loc["w/ DAS", "images per epoch"] == 100
    assert table.loc["w/o AS", "ratio to w/o AS (paper)"] == 1.0
    assert table.loc["w/ VAS", "ratio to w/o AS (paper)"] > 2
