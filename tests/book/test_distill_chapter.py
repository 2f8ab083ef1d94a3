"""The distillation chapter (04) on the cached stages of the smoke profile: every section's table and values."""
import math

import pandas as pd
import pytest
import torch

from omnifer_lib.engine import pipeline
from omnifer_lib.publish import config, distill_chapter
from omnifer_lib.data import LABELS
from omnifer_lib.distill import evaluate_learned


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMNIFER_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("OMNIFER_PROGRESS", "0")
        pipeline.clear_memory_caches()
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        params = config.load_profile("smoke", {"backbones": ["vgg_small"], "seeds": [0], "distill_eval_inits": 1,
                                               "distill_sgd_epochs": 1})
        yield distill_chapter.load(params)
        torch.set_num_threads(before)
        pipeline.clear_memory_caches()


def test_the_settings_and_the_data_the_das_are_distilled_from(run):
    values = distill_chapter.settings(run)
    assert values["scope"] == run.params["distill_init_scope"] and values["iterations"] == 3
    assert values["inner_steps"] == run.das.inner_steps and values["bn_mode"] == run.config.bn_mode
    data = distill_chapter.data_section(run)
    assert data.roles.startswith("anchor: ") and "\nunlabeled pool: " in data.roles
    assert data.sizes.set_index("").loc["distilled auxiliary samples (DAS)", "this run"] == str(len(LABELS))
    counts = data.per_class.iloc[0][list(LABELS)]
    assert counts.sum() == len(run.vas)
    assert data.values["largest_class"] == counts.astype(int).idxmax()
    assert data.values["largest_share"] == pytest.approx(100 * counts.max() / counts.sum())
    assert ("Every class" in data.values["empty_note"]) == bool((counts > 0).all())


def test_one_step_by_hand_and_its_gradient_check(run):
    hand = distill_chapter.by_hand(run)
    again = distill_chapter.by_hand(run)
    assert hand.values == again.values  # fixed seeds: θ0 (INIT_SEED) and the batch (master seed)
    assert hand.real_images.shape[0] == min(run.config.real_batch, len(run.vas))
    assert hand.values == {"L0": hand.step.loss_before, "L1": hand.step.loss}
    assert hand.step.grad_images.shape == run.das.images.shape
    assert hand.report.count("\n") == 1 and f"L = {hand.step.loss:.3f}" in hand.report
    table, values = distill_chapter.gradient_check(run, hand)
    assert list(table.columns) == ["inner step s", "η_s", "∂L/∂η_s (autograd)", "central difference, ε = 1e-7",
                                   "relative error", "central difference, ε = 1e-4"]
    assert table["inner step s"].tolist() == list(range(1, run.das.inner_steps + 1))
    assert table["∂L/∂η_s (autograd)"].tolist() == pytest.approx(hand.step.grad_step_sizes.tolist(), rel=1e-3,
                                                                 abs=1e-6)
    assert max(float(e) for e in table["relative error"]) == pytest.approx(values["fd_max_err"], rel=0.1)
    assert values["fd_max_err"] < 1e-3


def test_training_values_and_fig4(run):
    values = distill_chapter.training_values(run.das)
    assert values["loss_first"] == pytest.approx(run.das.loss_history[0])  # 3 iterations: w = 1
    assert values["loss_last"] == pytest.approx(run.das.loss_history[-1])
    assert values["eta_final"].count(",") == run.das.inner_steps - 1
    rows, fig_values = distill_chapter.fig4(run)
    assert len(rows) == 3 and list(rows.values())[1] is run.das
    start = list(rows.values())[2]  # the random real samples Algorithm 1 started from
    present = torch.isin(run.das.labels, start.labels)
    assert fig_values["pixel_change"] == pytest.approx(float((run.das.images[present] - start.images).abs().mean()))
    names = distill_chapter.exported_images(run)
    assert names == sorted(p.name for p in (run.das_artifact.path / "images").glob("*.png"))
    assert len(names) == len(run.das.labels)


def test_evaluations_compare_every_set_by_one_protocol(run):
    table, values = distill_chapter.evaluations(run)
    assert list(dict.fromkeys(table["set"])) == ["Algorithm 1 (DAS)", "random real", "mean image",
                                                "distribution matching", "random real, DAS's η",
                                                "DAS from the anchor"]
    assert len(table) == 11 and (table["inits"] == 1).all()
    das = table[(table["set"] == "Algorithm 1 (DAS)") & (table["trained with"] == "learned η and steps")]
    assert values["das_learned"] == float(das["accuracy (%)"].iloc[0])
    test_x, test_y = run.test_set()
    direct = evaluate_learned(run.das, run.model, test_x, test_y, inits=1, seed=run.params["seed"],
                              init_scope=run.config.init_scope, fixed_init=run.config.fixed_init)
    assert values["das_learned"] == pytest.approx(100 * direct.mean)
    assert values["chance"] == pytest.approx(100 / 7)
    assert values["fixed_step"] == f"{float(run.distilled('random_real').step_sizes[0]):g}"
    assert all(isinstance(v, (str, float)) for v in values.values())


def test_the_scope_sweep_has_a_row_per_scope(run):
    table, values = distill_chapter.scope_sweep(run)
    assert table["distill_init_scope"].tolist() == ["all", "head"]  # smoke distils with "all"
    assert table["DAS, learned η and steps (%)"].between(0, 100).all()
    assert values["all_das"] == float(table.iloc[0]["DAS, learned η and steps (%)"])
    assert not math.isnan(values["all_rr"])


def test_show_images_withholds_real_faces(run, capsys):
    shown = []
    distill_chapter.show_images({**run.params, "data_source": "real", "show_real_images": False},
                                shown.append, "figure")
    assert shown == [] and pipeline.IMAGES_WITHHELD in capsys.readouterr().out
    distill_chapter.show_images(run.params, shown.append, "figure")
    assert shown == ["figure"]
    assert isinstance(distill_chapter.data_section(run).per_class, pd.DataFrame)
