"""The §4.5 discussion on the cached stages (chapter 08): snapshots, the split, the curves, the summary."""
import math

import pytest

from omnifer_lib.book import config, discussion, pipeline


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


def test_without_an_experiment_every_number_is_nan_and_the_verdict_says_so():
    table, values, verdict = discussion.summary(None, None)
    assert table is None and all(math.isnan(v) for v in values.values()) and "not measured" in verdict
