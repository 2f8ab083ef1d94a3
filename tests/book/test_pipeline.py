"""Cached stages: each is computed once, keyed by exactly what it depends on."""
import numpy as np
import pytest
import torch

from omnifer_lib.engine import pipeline
from omnifer_lib.publish import config


@pytest.fixture
def smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("OMNIFER_CACHE", str(tmp_path / "cache"))
    pipeline.clear_memory_caches()
    return config.load_profile("smoke")


def test_primitive_learner_is_cached_and_seeds_differ(smoke):
    first = pipeline.primitive_learner(smoke, "resnet_small")
    pipeline.clear_memory_caches()
    again = pipeline.primitive_learner(smoke, "resnet_small")
    assert first.computed and not again.computed and first.key == again.key
    other = pipeline.learner(smoke, "resnet_small", "anchor", seed=smoke["seed"] + 1)
    assert other.key != first.key
    w0 = pipeline.load_model(first).state_dict()
    w1 = pipeline.load_model(other).state_dict()
    assert any(not np.array_equal(w0[k].numpy(), w1[k].numpy()) for k in w0)
    ev = pipeline.evaluation(first)
    assert set(ev) == {"rafdb", *pipeline.CROSS_TARGETS}
    assert all(0 <= v["accuracy"] <= 100 and v["n"] > 0 for v in ev.values())
    assert len(pipeline.history(first)) == smoke["epochs"]


def test_changing_delta_reuses_primitive_learner_and_selection(smoke):
    prim = pipeline.primitive_learner(smoke, "resnet_small")
    sel = pipeline.selection(smoke, "resnet_small")
    das = pipeline.distilled(smoke, "resnet_small", "mean_image")
    changed = dict(smoke, delta=smoke["delta"] + 0.01)
    assert pipeline.primitive_learner(changed, "resnet_small").key == prim.key
    assert pipeline.selection(changed, "resnet_small").key == sel.key
    assert not pipeline.selection(changed, "resnet_small").computed
    assert pipeline.distilled(changed, "resnet_small", "mean_image").key != das.key
    # a training parameter changes the primitive learner and everything after it
    longer = dict(smoke, epochs=smoke["epochs"] + 1)
    assert pipeline.primitive_learner(longer, "resnet_small").key != prim.key


def test_data_loader_workers_change_no_key_and_no_score(smoke, tmp_path, monkeypatch):
    from omnifer_lib import select as S

    sel = pipeline.selection(smoke, "resnet_small")
    workers = dict(smoke, num_workers=2)
    assert pipeline.selection(workers, "resnet_small").key == sel.key  # the same result: reused
    prim = pipeline.primitive_learner(smoke, "resnet_small")
    assert pipeline.primitive_learner(workers, "resnet_small").key == prim.key
    # computed afresh with two worker processes reading the pool: the very same scores
    monkeypatch.setenv("OMNIFER_CACHE", str(tmp_path / "other"))
    pipeline.clear_memory_caches()
    again = pipeline.selection(workers, "resnet_small")
    assert again.computed
    one, two = S.open_manifest(sel.path / "manifest"), S.open_manifest(again.path / "manifest")
    for col in ("pool_index", "cosine", "softmax"):
        np.testing.assert_array_equal(one.columns([col])[col], two.columns([col])[col])


def test_auxiliary_samples_follow_delta(smoke):
    loose = pipeline.auxiliary_samples(dict(smoke, delta=0.0), "resnet_small")
    strict = pipeline.auxiliary_samples(dict(smoke, delta=0.5), "resnet_small")
    assert len(strict) <= len(loose)
    assert set(strict.pool_index.tolist()) <= set(loose.pool_index.tolist())


def test_results_table_rows(smoke):
    df = pipeline.results_table(dict(smoke, seeds=[0, 1]), ["resnet_small"], modes=("anchor",))
    assert set(df["seed"]) == {0, 1}
    assert set(df["target"]) == {"rafdb", *pipeline.CROSS_TARGETS}
    assert (df["seconds_per_epoch"] > 0).all()


def test_seeds_that_redraw_the_pipeline_build_each_seed_on_its_own_selection(smoke):
    shared = dict(smoke, seeds=[0, 1], seeds_redraw_pipeline=False)
    redrawn = dict(shared, seeds_redraw_pipeline=True)
    one = pipeline.results_table(shared, ["resnet_small"], modes=("anchor+VAS",))
    own = pipeline.results_table(redrawn, ["resnet_small"], modes=("anchor+VAS",))
    # seed 0 is the master seed: its pipeline is the profile's, so its learner is the very same one
    assert one[one["seed"] == 0]["accuracy"].tolist() == own[own["seed"] == 0]["accuracy"].tolist()
    # seed 1 draws its own data, primitive learner and selection, and trains on them
    assert pipeline.selection(pipeline.seed_params(redrawn, 1), "resnet_small").key != \
        pipeline.selection(shared, "resnet_small").key
    assert pipeline.learner(pipeline.seed_params(redrawn, 1), "resnet_small", "anchor+VAS", seed=1).key != \
        pipeline.learner(shared, "resnet_small", "anchor+VAS", seed=1).key
    assert one[one["seed"] == 1]["accuracy"].tolist() != own[own["seed"] == 1]["accuracy"].tolist()


def test_preflight_names_missing_pretrained_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("OMNIFER_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    params = config.load_profile("paper", {"data_source": "synthetic"})  # the roots are not what is tested
    with pytest.raises(ValueError) as err:
        pipeline.preflight(params)
    msg = str(err.value)
    assert "vgg_face_weights" in msg and "vgg_face_dag.pth" in msg and "never downloads" in msg
    weights = tmp_path / "vgg.pth"
    weights.write_bytes(b"")  # there, but no torch file: stopped at the door, not in a chapter
    with pytest.raises(ValueError, match=r"vgg_face_weights.*vgg\.pth.*weights-only"):
        pipeline.preflight(dict(params, vgg_face_weights=str(weights)))


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


def test_preflight_opens_weights_files_weights_only(tmp_path):
    import torchvision

    params = config.load_profile("paper", {"data_source": "synthetic", "backbones": ["resnet34"]})
    good = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34().state_dict(), good)
    pipeline.preflight(dict(params, resnet34_weights=str(good)))  # maps onto the backbone: passes

    hostile, marker = tmp_path / "resnet34-evil.pth", tmp_path / "ran"
    torch.save({"fc.weight": _RunsCode(marker)}, hostile)
    with pytest.raises(ValueError, match="resnet34_weights.*weights-only"):
        pipeline.preflight(dict(params, resnet34_weights=str(hostile)))
    assert not marker.exists()  # refused, never unpickled

    foreign = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, foreign)
    with pytest.raises(ValueError, match="resnet34_weights"):
        pipeline.preflight(dict(params, resnet34_weights=str(foreign)))


def test_preflight_checks_the_digest_in_a_weights_file_name(tmp_path):
    import hashlib

    from omnifer_lib import models

    payload = b"not really resnet weights"
    digest = hashlib.sha256(payload).hexdigest()
    good = tmp_path / f"resnet34-{digest[:8]}.pth"
    good.write_bytes(payload)
    models.check_weights_digest(good)  # matches: passes
    bad = tmp_path / "resnet34-b627a593.pth"
    bad.write_bytes(payload)
    params = config.load_profile("paper", {"data_source": "synthetic", "backbones": ["resnet34"],
                                           "resnet34_weights": str(bad)})
    with pytest.raises(ValueError) as err:
        pipeline.preflight(params)
    msg = str(err.value)
    assert "resnet34_weights" in msg and "b627a593" in msg and digest[:8] in msg and "\n" not in msg


def test_preflight_stops_cuda_on_a_machine_without_it(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError) as err:
        pipeline.preflight(config.load_profile("smoke", {"device": "cuda"}))
    assert "'device'" in str(err.value) and "'cuda'" in str(err.value) and "-p device" in str(err.value)
    pipeline.preflight(config.load_profile("smoke", {"device": "cpu"}))


@pytest.fixture(scope="module")
def real_roots(tmp_path_factory):
    """Every dataset in its published layout (synthetic faces, tiny)."""
    from omnifer_lib.data.published_layouts import write_published_layouts

    return write_published_layouts(tmp_path_factory.mktemp("layouts"), image_size=16)


def test_preflight_names_missing_empty_or_foreign_dataset_roots(tmp_path, real_roots):
    params = config.load_profile("smoke", {"data_source": "real"})
    with pytest.raises(ValueError) as err:
        pipeline.preflight(params)
    msg = str(err.value)
    assert "RAF-DB" in msg and "rafdb_root" in msg and "list_patition_label.txt" in msg
    pipeline.preflight(dict(params, **real_roots))  # every root in its layout: passes
    empty = tmp_path / "empty"
    empty.mkdir()
    for value, problem in ((str(tmp_path / "missing"), "not a folder"), (str(empty), "empty"),
                           (real_roots["ckplus_root"], "")):
        with pytest.raises(ValueError) as err:
            pipeline.preflight(dict(params, **{**real_roots, "jaffe_root": value}))
        first = str(err.value).splitlines()[0]
        assert "jaffe_root" in first and "JAFFE" in first and problem in first
    pipeline.preflight(config.load_profile("demo"))  # synthetic data needs no roots


def test_pretraining_indices_keep_two_identities_however_small_n():
    subjects = np.repeat(np.arange(5), 10)  # grouped: 10 images of each identity in a row
    for n in (0, 1, 3, 10):
        idx = pipeline.pretraining_indices(subjects, n)
        assert len(np.unique(subjects[idx])) == 2 and len(idx) == max(n, 11)


def test_pretraining_indices_take_whole_identities():
    subjects = np.arange(100) % 10  # 10 identities, 10 images each
    idx = pipeline.pretraining_indices(subjects, 25)
    assert len(idx) == 25
    assert len(np.unique(subjects[idx])) == 3


def test_data_config_names_only_what_a_stage_reads():
    params = config.load_profile("smoke")
    anchor_only = pipeline.data_config(params, ["rafdb"])
    assert "n_pool" not in anchor_only and "n_anchor_train" in anchor_only and "rafdb_root" in anchor_only
    assert pipeline.data_config(dict(params, n_pool=params["n_pool"] + 1), ["rafdb"]) == anchor_only
    assert "n_pool" in pipeline.data_config(params, ["rafdb", "ms1m"])


def test_preflight_checks_cuda_indices_and_mps(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="'cuda:3'"):
        pipeline.preflight(config.load_profile("smoke", {"device": "cuda:3"}))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match="'mps'"):
        pipeline.preflight(config.load_profile("smoke", {"device": "mps"}))


def test_a_parameter_the_rule_does_not_read_is_in_no_key():
    from omnifer_lib.engine.pipeline._common import selection_config

    demo = config.load_profile("demo")
    margin = selection_config(demo)
    assert margin == selection_config({**demo, "softmax_threshold": None, "class_quantile": None})
    assert margin != selection_config({**demo, "delta": demo["delta"] + 0.05})
    softmax = {**demo, "selection_rule": "softmax"}
    assert selection_config(softmax) != selection_config({**softmax, "softmax_threshold": 0.5})


def test_mixup_is_in_a_learners_key_only_when_on(smoke):
    from omnifer_lib.engine.pipeline._common import train_config
    from omnifer_lib.engine.pipeline.learners import fit_kwargs

    without = {k: v for k, v in smoke.items() if k != "mixup_alpha"}
    assert "mixup_alpha" not in train_config(smoke) and train_config(smoke) == train_config(without)
    assert train_config({**smoke, "mixup_alpha": 0.4})["mixup_alpha"] == 0.4
    assert fit_kwargs(without)["mixup_alpha"] == 0.0 and fit_kwargs({**smoke, "mixup_alpha": 0.4})["mixup_alpha"] == 0.4
    mixing = {**smoke, "mixup_alpha": 0.4}
    prim = pipeline.learner(smoke, "resnet_small", "anchor", seed=smoke["seed"])  # smoke learners: a second each
    assert pipeline.learner(mixing, "resnet_small", "anchor", seed=smoke["seed"]).key != prim.key
    assert pipeline.learner(without, "resnet_small", "anchor", seed=smoke["seed"]).key == prim.key
    # the teacher trains without mixup: the selection under a mixup profile is the plain one
    assert pipeline.primitive_learner(mixing, "resnet_small").key == prim.key
    assert pipeline.selection(mixing, "resnet_small").key == pipeline.selection(smoke, "resnet_small").key


def test_flip_averaged_testing_tests_the_same_learner_on_two_views(smoke):
    from omnifer_lib.engine.pipeline._common import train_config
    from omnifer_lib.evaluate import evaluate
    from omnifer_lib.models import FlipAveraged

    without = {k: v for k, v in smoke.items() if k != "test_flip_average"}
    assert "test_flip_average" not in train_config(smoke) and train_config(smoke) == train_config(without)
    flipped = {**smoke, "test_flip_average": True}
    plain = pipeline.learner(smoke, "resnet_small", "anchor", seed=smoke["seed"])
    art = pipeline.learner(flipped, "resnet_small", "anchor", seed=smoke["seed"])
    assert art.key != plain.key
    # the teacher is tested on one view: toggling how learners are tested moves no selection
    assert pipeline.primitive_learner(flipped, "resnet_small").key == plain.key
    # one training (the same weights, the same history), tested on the mean logits of each image and its mirror
    model = pipeline.load_model(art)
    for name, tensor in pipeline.load_model(plain).state_dict().items():
        assert torch.equal(tensor, model.state_dict()[name]), name
    test = pipeline.dataset(smoke, "rafdb", "test")
    assert pipeline.evaluation(art)["rafdb"]["accuracy"] == evaluate(FlipAveraged(model), test)["accuracy"]
    assert pipeline.evaluation(plain)["rafdb"]["accuracy"] == evaluate(model, test)["accuracy"]


@pytest.mark.parametrize("strategy", ["minibatch", "samples"])
def test_epoch_costs_scale_a_timed_copy_to_the_full_epochs_minibatches(smoke, monkeypatch, strategy):
    import omnifer_lib.train as T

    params = dict(smoke, das_strategy=strategy)
    calls = []

    def fake_fit_final(model, anchor, mode, *, vas=None, das=None, das_strategy, batch_size, materialize, **kw):
        n_das = len(das.labels) if das is not None else 0
        n = len(anchor) + (len(vas) if vas is not None else 0) + (n_das if das_strategy == "samples" else 0)
        per_step = (batch_size + (n_das if das_strategy == "minibatch" else 0)) / 1000  # seconds
        steps = len(T._batch_bounds(n, batch_size))
        calls.append((mode, len(anchor), None if vas is None else len(vas), n_das, materialize))
        return [{"seconds": steps * per_step * (3 if e == 0 else 1)} for e in range(kw["epochs"])]

    pipeline.distilled(params, "resnet_small", "algorithm1")  # the upstream learner trains for real
    monkeypatch.setattr(T, "fit_final", fake_fit_final)
    art = pipeline.epoch_costs(params, "resnet_small", steps=2, repeats=2)
    summary = art.meta["summary"]
    anchor = pipeline.dataset(params, pipeline.anchor_of(params), "train")
    vas = pipeline.auxiliary_samples(params, "resnet_small")
    n_das = params["images_per_class"] * 7
    bs = params["batch_size"]
    extra = n_das if strategy == "samples" else 0
    expected = {"anchor": len(T._batch_bounds(len(anchor), bs)) * bs / 1000,
                "anchor+VAS": len(T._batch_bounds(len(anchor) + len(vas), bs)) * bs / 1000,
                "anchor+DAS": len(T._batch_bounds(len(anchor) + extra, bs)) * (bs + n_das - extra) / 1000}
    for mode, seconds in expected.items():
        assert summary[mode]["seconds_per_epoch"] == pytest.approx([seconds, seconds])
    assert summary["anchor+VAS"]["train_images"] == len(anchor) + len(vas)
    # two rounds over the modes, in turn; each timed on a copy of 2 minibatches of the anchor
    assert [c[0] for c in calls] == list(pipeline.MODES) * 2
    copy = min(len(anchor), 2 * bs)
    assert {c[1] for c in calls} == {copy}
    assert [c[2] for c in calls if c[0] == "anchor+VAS"] == [max(1, round(copy / len(anchor) * len(vas)))] * 2
    assert [c[3] for c in calls if c[0] == "anchor+DAS"] == [n_das] * 2 and all(c[4] for c in calls)
    table = pipeline.epoch_cost_table(params, ["resnet_small"], steps=2, repeats=2)
    assert not pipeline.epoch_costs(params, "resnet_small", steps=2, repeats=2).computed
    assert sorted(table["seed"].unique()) == [0, 1] and len(table) == 2 * len(pipeline.MODES)
    assert table["machine"].str.len().gt(0).all()
    # a timing belongs to its machine: other threads, another key
    assert pipeline.epoch_costs(dict(params, train_threads=2), "resnet_small", steps=2, repeats=2).key != art.key
    with pytest.raises(ValueError, match="steps and repeats"):
        pipeline.epoch_costs(params, "resnet_small", steps=0)
