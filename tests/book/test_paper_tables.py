"""The paper's Tables 1–8 as chapters 05–07 show them, on hand-made results in place of the cached learners."""
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from omnifer_lib.engine import pipeline  # noqa: E402
from omnifer_lib.publish import paper_tables  # noqa: E402
from omnifer_lib.publish.reporting import GAIN_COLUMN  # noqa: E402

PARAMS = {"backbones": ["vgg_small", "resnet_small"], "seeds": [0, 1], "das_strategy": "minibatch",
          "das_weight": 1.0, "ckplus_folds": 2, "images_per_class": 1, "batch_size": 32}
#: accuracy (%) per (backbone, mode) over seeds 0 and 1
ACCURACY = {("vgg_small", "anchor"): (50.0, 52.0), ("vgg_small", "anchor+VAS"): (51.0, 55.0),
            ("vgg_small", "anchor+DAS"): (53.0, 54.0), ("resnet_small", "anchor"): (60.0, 60.0),
            ("resnet_small", "anchor+VAS"): (59.0, 61.0), ("resnet_small", "anchor+DAS"): (62.0, 64.0)}


def _results(targets=("rafdb",)):
    return pd.DataFrame([{"backbone": b, "family": b.split("_")[0], "mode": m, "seed": s, "target": t,
                          "accuracy": acc + (10 if t != targets[0] else 0)}
                         for (b, m), accs in ACCURACY.items() for s, acc in enumerate(accs) for t in targets])


@pytest.fixture
def fake_pipeline(monkeypatch):
    """The pipeline's stages replaced by hand-made results: every learner tested on RAF-DB and CK+."""
    calls = []

    def results_table(params, backbones, train_on=None):
        calls.append(("results_table", tuple(backbones), train_on))
        return _results(("rafdb", "ckplus"))

    monkeypatch.setattr(pipeline, "results_table", results_table)
    monkeypatch.setattr(pipeline, "role_description", lambda params, name: f"{name} here")
    monkeypatch.setattr(pipeline, "kfold_table", lambda params, backbone: pd.DataFrame(
        {"backbone": backbone, "family": "vgg", "mode": ["anchor", "anchor", "anchor+DAS", "anchor+DAS"],
         "fold": [0, 1, 0, 1], "accuracy": [50.0, 70.0, 60.0, 80.0], "correct": [5, 14, 6, 16], "n": [10, 20, 10, 20]}))
    return calls


def test_inner_dataset_tables_print_what_they_train_on_and_show_the_paper_beside_this_run(fake_pipeline, capsys):
    t1 = paper_tables.inner_dataset_table(PARAMS, 1)
    assert fake_pipeline == [("results_table", ("vgg_small", "resnet_small"), "rafdb")]
    table = t1.show().data
    assert capsys.readouterr().out == ("Trained on and tested on: rafdb here\nBackbones: VGG-small (VGG-F's role) for "
                                       "the paper's VGG-F; ResNet-small (ResNet-34's role) for the paper's ResNet-34\n")
    row = table[table["method (paper's name)"] == "DAS + VGG-F"].iloc[0]
    assert row["this run"] == "53.50 ± 0.71" and row[GAIN_COLUMN] == "+2.50 ± 0.50"
    assert row["backbone here"] == "VGG-small (VGG-F's role)" and row["paper"] == 86.55
    assert t1.values == {} and len(t1.results) == 24

    t2 = paper_tables.inner_dataset_table(PARAMS, 2)
    assert t2.roles == ("Trained on and tested on: fer2013 here\nAuxiliary samples: selected from ms1m here with the "
                        "RAF-DB anchor's primitive learners")
    assert fake_pipeline[-1][-1] == "fer2013"
    with pytest.raises(ValueError, match=r"the inner-dataset tables are \(1, 2, 3\); got 4"):
        paper_tables.inner_dataset_table(PARAMS, 4)


def test_table3_pools_the_folds_and_is_skipped_without_a_vgg_backbone(fake_pipeline, capsys):
    t3 = paper_tables.inner_dataset_table(PARAMS, 3)
    assert t3.roles == "Data: ckplus here — 2 subject-independent folds"
    assert set(t3.results["target"]) == {"ckplus"} and t3.results["seed"].tolist() == [0, 1, 0, 1]
    assert t3.table.data.set_index("method (paper's name)").loc["DAS + VGG-F", "this run"] == "70.00 ± 14.14"
    pooled = paper_tables.pooled_fold_accuracy(t3.results)
    assert pooled.index.tolist() == ["baseline", "DAS"]
    assert pooled["accuracy over all folds (%)"].tolist() == pytest.approx([100 * 19 / 30, 100 * 22 / 30])

    skipped = paper_tables.inner_dataset_table({**PARAMS, "backbones": ["resnet_small"]}, 3)
    assert skipped.show() is None and capsys.readouterr().out == paper_tables.NO_VGG + "\n"
    assert paper_tables.pooled_fold_accuracy(skipped.results) is None


def test_gain_values_name_each_conditions_paired_gain_for_the_text():
    assert paper_tables.gain_values(_results(), "rafdb", prefix="t1") == pytest.approx(
        {"t1_vgg_VAS": 2.0, "t1_vgg_DAS": 2.5, "t1_resnet_VAS": 0.0, "t1_resnet_DAS": 3.0})
    assert paper_tables.inner_dataset_settings(PARAMS) == {"das_strategy": "minibatch", "das_weight": 1.0,
                                                           "n_seeds": 2}


def test_modes_by_backbone_has_display_names_and_mean_and_std_per_mode():
    table = paper_tables.modes_by_backbone(_results(), "rafdb")
    assert table.index.tolist() == ["ResNet-small (ResNet-34's role)", "VGG-small (VGG-F's role)"]
    assert table.columns.tolist() == ["baseline", "VAS", "DAS"]
    assert table.loc["VGG-small (VGG-F's role)", "VAS"] == "53.00 ± 2.83"


def test_vas_per_expression_counts_each_learners_pseudo_labels(monkeypatch):
    counts = paper_tables.vas_counts({"A": np.array([0, 0, 4]), "B": np.array([6] * 1200)})
    assert counts.index.name == "expression" and counts.index[4] == "happy"
    assert counts["A"].tolist() == [2, 0, 0, 0, 1, 0, 0] and counts["B"].sum() == 1200
    assert paper_tables.vas_coverage(counts) == "A: 2 of 7 expressions, 3 images; B: 1 of 7 expressions, 1,200 images"
    monkeypatch.setattr(pipeline, "auxiliary_samples",
                        lambda params, backbone: SimpleNamespace(labels=np.array([1, 1] if "vgg" in backbone else [2])))
    vas = paper_tables.vas_per_expression(PARAMS)
    assert vas.show().data.columns.tolist() == ["expression", "VGG-small (VGG-F's role)",
                                                "ResNet-small (ResNet-34's role)"]
    assert vas.values == {"vas_coverage": "VGG-small (VGG-F's role): 1 of 7 expressions, 2 images; "
                                          "ResNet-small (ResNet-34's role): 1 of 7 expressions, 1 images"}


def test_cross_dataset_tables_show_the_vgg_learners_on_each_target(fake_pipeline, capsys):
    learners = paper_tables.cross_dataset_results(PARAMS)
    assert learners.show() is None and capsys.readouterr().out == "Source (training data): rafdb here\n"
    t4 = paper_tables.cross_dataset_table(PARAMS, learners.results, 4)
    assert set(t4.results["family"]) == {"vgg"}
    table = t4.show().data.set_index("method (paper's name)")
    assert capsys.readouterr().out == "Target: ckplus here\n"
    assert table.loc["VGG-F", "this run"] == "63.50 ± 0.71"  # the DAS learner, 10 points higher on CK+ here
    assert table.loc["VGG-F (VAS) — not in the paper", "this run"] == "63.00 ± 2.83"
    assert table.loc["VGG-F (baseline) — not in the paper", "training data"] == "RAF-DB"
    with pytest.raises(ValueError, match="the cross-dataset tables are"):
        paper_tables.cross_dataset_table(PARAMS, learners.results, 1)
    fig = paper_tables.cross_dataset_grid(learners.results)
    ax = fig.axes[0]
    assert ax.get_title() == "accuracy (%) by learner and test set, mean over seeds"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["RAF-DB", "CK+"]
    assert "53.5" in {t.get_text() for t in ax.texts}  # VGG-small DAS on RAF-DB
    plt.close(fig)


def test_inner_dataset_points_draw_the_seeds_of_table_1():
    fig = paper_tables.inner_dataset_points(_results(("rafdb", "ckplus")), "rafdb")
    ax = fig.axes[0]
    assert ax.get_title().startswith("Table 1 setting: accuracy on the anchor's test split")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["baseline", "VAS", "DAS"]
    points = np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())])
    assert sorted(points[:, 1].round(6)) == sorted(a for accs in ACCURACY.values() for a in accs)  # RAF-DB only
    plt.close(fig)


def test_table8_states_the_timing_and_hides_the_plotted_ratio(monkeypatch):
    rows = [{"backbone": "vgg_small", "family": "vgg", "mode": mode, "seed": r, "seconds_per_epoch": sec * (r + 1),
             "train_images": n, "machine": "cpu, 2 threads"}
            for mode, sec, n in (("anchor", 10.0, 100), ("anchor+VAS", 30.0, 300), ("anchor+DAS", 11.0, 100))
            for r in range(2)]
    timing = {"repeats": 2, "anchor": {"timed_minibatches": 3, "minibatches": 40}}
    monkeypatch.setattr(pipeline, "epoch_cost_table", lambda params, backbones: pd.DataFrame(rows))
    monkeypatch.setattr(pipeline, "epoch_costs", lambda params, backbone: SimpleNamespace(meta={"summary": timing}))
    t8 = paper_tables.table8({**PARAMS, "backbones": ["vgg_small"]})
    assert t8.values == {"hardware": "cpu, 2 threads", "rounds": 2, "timed_steps": 3, "full_steps": 40, "n_das": 7,
                         "batch_size": 32, "das_strategy": "minibatch", "das_expected": 39 / 32}
    assert "ratio (mean)" in t8.results and "ratio (mean)" not in t8.show().data
    assert t8.results["ratio (mean)"].tolist() == pytest.approx([1.0, 3.0, 1.1])
