"""Book tables computed from results (Table 8's cost ratios, paired gains beside the paper's tables)."""
import math

import pandas as pd
import pytest

from omnifer_lib.book.reporting import GAIN_COLUMN, cost_table, epoch_cost_ratios, paired_gains, paper_comparison


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


def _accuracies():
    rows = []
    for seed, (base, vas, das) in enumerate(((50.0, 53.0, 51.0), (60.0, 62.0, 62.5), (55.0, 58.0, 55.5))):
        for mode, acc in (("anchor", base), ("anchor+VAS", vas), ("anchor+DAS", das)):
            rows.append({"backbone": "vgg_small", "family": "vgg", "mode": mode, "seed": seed, "target": "rafdb",
                         "accuracy": acc})
    return pd.DataFrame(rows)


def test_paired_gains_are_seed_by_seed_against_the_same_baseline():
    gains = paired_gains(_accuracies(), "rafdb").set_index("mode")
    assert list(gains.index) == ["anchor+VAS", "anchor+DAS"]
    assert gains.loc["anchor+VAS", "gain"] == pytest.approx(8 / 3)  # +3, +2, +3
    assert gains.loc["anchor+VAS", "se"] == pytest.approx(math.sqrt(1 / 3) / math.sqrt(3))
    assert gains.loc["anchor+DAS", "n"] == 3
    # the seeds' spread (5 points between seeds) is not in the gain's standard error
    assert gains.loc["anchor+DAS", "se"] < 1


def test_paper_tables_show_each_conditions_paired_gain_beside_this_runs_mean():
    table = paper_comparison(1, _accuracies(), "rafdb", backbone_names={"vgg": "VGG-small"})
    by_method = table.set_index("method (paper's name)")
    gains = by_method[GAIN_COLUMN]
    assert gains.str.startswith("+2.67 ± 0.33").sum() == 1  # VAS + VGG-F
    assert (gains == "").sum() >= 1  # the baseline has no gain over itself
    assert list(table.columns).index(GAIN_COLUMN) == list(table.columns).index("this run") + 1
