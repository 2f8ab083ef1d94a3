"""Book tables computed from results (Table 8's cost ratios, paired gains beside the paper's tables)."""
import math

import pandas as pd
import pytest

from omnifer_lib.publish.reporting import GAIN_COLUMN, cost_table, epoch_cost_ratios, paired_gains, paper_comparison


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


def test_variant_summary_keeps_the_target_and_gives_mean_and_std_per_variant_in_order():
    from omnifer_lib.publish.reporting import variant_summary

    rows = pd.DataFrame({"variant": ["b", "b", "a", "a", "a"], "seed": [0, 1, 0, 1, 0],
                         "target": ["rafdb", "rafdb", "rafdb", "rafdb", "ckplus"],
                         "accuracy": [50., 54., 40., 40., 99.]})
    kept, stats = variant_summary(rows, "rafdb")
    assert set(kept["target"]) == {"rafdb"} and len(kept) == 4
    assert stats["variant"].tolist() == ["b", "a"]
    assert stats["mean"].tolist() == [52.0, 40.0] and stats["n"].tolist() == [2, 2]
    assert stats["this run (mean ± std)"].tolist() == ["52.00 ± 2.83", "40.00 ± 0.00"]


def test_display_names_and_glue_values(monkeypatch):
    import myst_nb

    from omnifer_lib.publish.reporting import glue_values, with_display_names

    named = with_display_names(pd.DataFrame({"mode": ["anchor", "anchor+VAS"], "backbone": ["vgg_small"] * 2}))
    assert named["mode"].tolist() == ["baseline", "VAS"]
    assert named["backbone"].tolist() == ["VGG-small (VGG-F's role)"] * 2
    glued = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.append((name, value, display)))
    glue_values({"n_claims": 19, "best": "minibatch"})
    assert glued == [("n_claims", 19, False), ("best", "minibatch", False)]


def test_selection_variants_counts_and_scores_each_rules_selection(tmp_path, monkeypatch):
    import numpy as np

    from omnifer_lib.engine import pipeline
    from omnifer_lib.publish import config
    from omnifer_lib.publish.reporting import selection_variants

    monkeypatch.setenv("OMNIFER_CACHE", str(tmp_path / "cache"))
    pipeline.clear_memory_caches()
    params = config.load_profile("smoke")
    overs = {"margin": {"selection_rule": "margin"},
             "softmax": {"selection_rule": "softmax", "softmax_threshold": None}}
    table = selection_variants(params, "vgg_small", overs)
    assert table["variant"].tolist() == ["margin", "softmax"]
    for label, over in overs.items():
        vas = pipeline.auxiliary_samples({**params, **over}, "vgg_small")
        row = table.set_index("variant").loc[label]
        assert row["auxiliary samples"] == len(vas) > 0
        assert row["smallest class count"] == np.bincount(vas.labels, minlength=7).min()
        assert row["pseudo-label precision (%)"] == pytest.approx(100 * np.mean(vas.labels == vas.true_labels))
    pipeline.clear_memory_caches()


def test_accuracy_grid_is_the_mean_over_seeds_per_learner_and_test_set_in_the_given_order():
    from omnifer_lib.publish.reporting import accuracy_grid

    rows = pd.DataFrame({"backbone": ["vgg_small"] * 4 + ["resnet_small"] * 2,
                         "mode": ["anchor"] * 4 + ["anchor+VAS"] * 2, "seed": [0, 1, 0, 1, 0, 1],
                         "target": ["ckplus", "ckplus", "rafdb", "rafdb", "rafdb", "rafdb"],
                         "accuracy": [30., 40., 50., 60., 70., 72.]})
    grid = accuracy_grid(rows, ["rafdb", "ckplus", "jaffe"])
    assert grid.columns.tolist() == ["RAF-DB", "CK+"]
    assert grid.index.tolist() == ["VGG-small baseline", "ResNet-small VAS"]
    assert grid.loc["VGG-small baseline"].tolist() == [55.0, 35.0]
    assert grid.loc["ResNet-small VAS", "RAF-DB"] == 71.0 and pd.isna(grid.loc["ResNet-small VAS", "CK+"])


def test_face_pretraining_and_baseline_tables_read_the_cached_stages(tmp_path, monkeypatch):
    from omnifer_lib.engine import pipeline
    from omnifer_lib.publish import config
    from omnifer_lib.publish.reporting import baseline_table, face_pretraining_table

    monkeypatch.setenv("OMNIFER_CACHE", str(tmp_path / "cache"))
    pipeline.clear_memory_caches()
    params = config.load_profile("smoke", {"seeds": [0, 1], "backbones": ["vgg_small", "resnet_small"]})
    pre = face_pretraining_table(params)
    assert pre["backbone"].tolist() == ["vgg_small"]  # ResNet-small is not face-pretrained on the demo
    summary = pipeline.face_pretraining(params, "vgg_small").meta["summary"]
    assert pre["identities"].iloc[0] == summary["identities"] and pre["epochs"].iloc[0] == params["pretrain_epochs"]
    table = baseline_table(params, ((1, "rafdb"),))
    assert table["learner"].tolist() == [pipeline.display_backbone(b) for b in params["backbones"]]
    assert (table["seeds"] == 2).all() and table["paper (%)"].notna().all()
    res = pipeline.results_table(params, ["vgg_small"], modes=("anchor",), train_on="rafdb")
    accuracies = res[res["target"] == "rafdb"]["accuracy"]
    assert table["this run (%)"].iloc[0].startswith(f"{accuracies.mean():.2f} ± ")
    pipeline.clear_memory_caches()


def test_percent_text_and_show_figure(capsys, monkeypatch):
    import matplotlib.pyplot as plt

    from omnifer_lib.publish.reporting import percent_text, show_figure

    assert percent_text(61.25) == "61.2 %" and percent_text(100.0) == "100.0 %"
    assert percent_text(float("nan")) == "n/a" and percent_text(float("nan"), "unknown") == "unknown"
    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(True))
    show_figure(None, "left out")
    assert capsys.readouterr().out == "left out\n" and shown == []
    show_figure(object(), "left out")
    assert capsys.readouterr().out == "" and shown == [True]


def _learner_files(tmp_path, accuracy):
    import json
    from types import SimpleNamespace

    folder = tmp_path / f"learner{accuracy}"
    folder.mkdir()
    evaluation = {"rafdb": {"accuracy": accuracy, "confusion": [[1, 0], [0, 1]]}}
    (folder / "evaluation.json").write_text(json.dumps(evaluation))
    (folder / "history.json").write_text(json.dumps([{"epoch": 1, "loss": 1.0, "train_accuracy": 50.0}]))
    return SimpleNamespace(file=lambda name: folder / name)


def test_primitive_learner_values_roles_and_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from omnifer_lib.publish import config, plots, reporting

    prims = {"vgg_small": _learner_files(tmp_path, 61.5), "resnet_small": _learner_files(tmp_path, 58.0)}
    assert reporting.primitive_learner_values(prims, "rafdb") == {"prim_vgg": 61.5, "prim_resnet": 58.0,
                                                                  "paper_prim_vgg": 85.15, "paper_prim_resnet": 84.63}
    roles = reporting.roles_table(config.load_profile("smoke"), {"anchor": "rafdb", "pool": "ms1m"})
    assert roles["role"].tolist() == ["anchor", "pool"] and "RAF-DB" in roles["dataset"][0]
    labels = {line.get_label() for ax in plots.primitive_learner_curves(prims).axes for line in ax.get_lines()}
    assert any("VGG-small" in label for label in labels) and any("ResNet-small" in label for label in labels)
    fig = plots.primitive_learner_confusions(prims, "rafdb")
    assert any("61.5 % on the anchor's test split" in ax.get_title() for ax in fig.axes)


def test_show_writes_booleans_as_marks_and_blanks_missing_cells():
    import numpy as np
    import pandas as pd

    from omnifer_lib.publish.reporting import show

    table = pd.DataFrame({"condition": ["a", "b", "c"], "beyond noise": [True, False, None],
                          "> 2 std": np.array([True, False, True]), "gain": [1.234, np.nan, -0.5]})
    html = show(table, digits=1).to_html()
    cells = [c.strip() for c in __import__("re").findall(r"<td[^>]*>(.*?)</td>", html)]
    assert cells == ["a", "✓", "✓", "1.2", "b", "—", "—", "", "c", "", "✓", "-0.5"]


def test_show_writes_parameter_columns_as_given():
    import pandas as pd

    from omnifer_lib.publish.reporting import show

    table = pd.DataFrame({"delta": [0.02, 0.15], "precision (%)": [93.24, 67.6]})
    html = show(table, digits=1, exact=["delta", "not a column"]).to_html()
    cells = [c.strip() for c in __import__("re").findall(r"<td[^>]*>(.*?)</td>", html)]
    assert cells == ["0.02", "93.2", "0.15", "67.6"]  # not 0.0 and 0.1
