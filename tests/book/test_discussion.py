"""The §4.5 discussion on the cached stages (chapter 08): snapshots, the split, the curves, the summary."""
import math

import pytest

from omnifer_lib.engine import pipeline
from omnifer_lib.publish import config, discussion


@pytest.fixture
def smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("OMNIFER_CACHE", str(tmp_path / "cache"))
    pipeline.clear_memory_caches()
    yield config.load_profile("smoke", {"backbones": ["vgg_small"], "seeds": [0]})
    pipeline.clear_memory_caches()


def test_the_experiment_on_the_snapshots_of_one_run_and_its_summary(smoke):
    snaps = discussion.snapshots(smoke, "vgg_small")
    assert snaps.enough and len(snaps.labels) == len(snaps.snapshots) * len(snaps.labels_per_snapshot)
    split = discussion.split_table(snaps, smoke["images_per_class"]).set_index("")
    assert split.loc["images", "this run"] == str(len(snaps.labels))
    exp = discussion.run(smoke, "vgg_small", snaps)
    assert exp.snap.accuracy["test"].shape == (smoke["discussion_repeats"], smoke["discussion_epochs"] + 1)
    assert len(exp.real_labels) == len(snaps.labels)  # the control: as many real images per class
    table, values, verdict = discussion.summary(snaps, exp)
    assert table["trained on"].tolist() == ["snapshots of the distilled images", "real anchor images (control)"]
    assert set(values) == set(discussion.VALUE_NAMES)
    assert values["snap_acc"] == pytest.approx(100 * exp.snap.final("test")[0])
    assert values["n_train"] == exp.snap.n_train
    assert ("lookup does as well" in verdict) == exp.snap.lookup_explains()
    rows, instead = discussion.snapshot_rows(smoke, snaps)
    assert instead == "" and list(rows) == [f"iteration {s['iteration']}" for s in snaps.snapshots]
    curves = discussion.fig5_curves(exp)
    assert curves["held-out snapshots (the paper's test)"] is exp.snap.accuracy["test"]
    assert curves["control: held-out real images"] is exp.control.accuracy["test"]
    fig = discussion.plot_fig5(exp, snaps)
    assert f"{exp.snap.n_train} of {len(snaps.labels)} images" in fig.axes[0].get_title()
    assert discussion.plot_fig5(None, snaps) is None
    real = {**smoke, "data_source": "real", "show_real_images": False}
    assert discussion.snapshot_rows(real, snaps) == (None, pipeline.IMAGES_WITHHELD)
    assert discussion.chapter_values(smoke, "vgg_small") == {
        "backbone": pipeline.display_backbone("vgg_small"), "chance": 100 * (1 / 7),
        "epochs": smoke["discussion_epochs"], "repeats": smoke["discussion_repeats"]}


def test_without_an_experiment_every_number_is_nan_and_the_verdict_says_so():
    table, values, verdict = discussion.summary(None, None)
    assert table is None and all(math.isnan(v) for v in values.values()) and "not measured" in verdict


def test_too_few_snapshots_say_how_to_keep_more():
    one = discussion.Snapshots([{"iteration": 8, "images": None}], None, None, None)
    rows, instead = discussion.snapshot_rows(config.load_profile("smoke"), one)
    assert rows is None and "kept 1 snapshot(s)" in instead and "snapshot_every" in instead
