"""Roles are parameters: the anchor, the pool (a dataset, the anchor's rest, a folder), the test
split and the cross targets; chapters that need the paper's roles say so under other profiles."""
import numpy as np
import pytest

from omnifer_lib.engine import pipeline, roles
from omnifer_lib.publish import config, runner
from omnifer_lib.engine.pipeline.preflight import datasets_needed


@pytest.fixture
def semi(tmp_path, monkeypatch):
    monkeypatch.setenv("OMNIFER_CACHE", str(tmp_path / "cache"))
    pipeline.clear_memory_caches()
    return config.load_profile("smoke", {"pool": "anchor_rest", "labeled_fraction": 0.2})


def test_paper_profiles_keep_the_paper_roles():
    for name in ("smoke", "demo", "paper"):
        params = config.load_profile(name)
        assert roles.paper_roles(params)
        assert roles.cross_targets_of(params) == roles.CROSS_TARGETS
    fer = config.load_profile("fer2013")
    assert (roles.anchor_of(fer), roles.pool_of(fer), roles.cross_targets_of(fer)) == ("fer2013", "anchor_rest", ())
    assert not roles.paper_roles(fer)


def test_semi_supervised_split_partitions_the_anchor_and_hides_the_pool_labels(semi):
    full = pipeline.dataset({**semi, "pool": "ms1m"}, "rafdb", "train")
    anchor = pipeline.dataset(semi, "rafdb", "train")
    rest = pipeline.dataset(semi, "anchor_rest", "train")
    assert len(anchor) + len(rest) == len(full)
    assert not set(anchor.indices.tolist()) & set(rest.indices.tolist())
    assert (rest.labels == -1).all() and (rest.true_labels >= 0).all()
    truth = np.asarray(getattr(full, "true_labels", full.labels))  # synthetic labels carry annotation noise
    assert np.array_equal(rest.true_labels, truth[rest.indices])
    # about 20 % of each class stays labeled
    for c in np.unique(full.labels):
        n_class = int((np.asarray(full.labels) == c).sum())
        assert int((anchor.labels == c).sum()) == max(1, round(0.2 * n_class))
    # the split seed, not the master seed, decides the split
    other_seed = pipeline.dataset(dict(semi, seed=semi["seed"]), "anchor_rest", "train")
    assert np.array_equal(other_seed.indices, rest.indices)
    moved = pipeline.dataset(dict(semi, split_seed=1), "anchor_rest", "train")
    assert not np.array_equal(moved.indices, rest.indices)


def test_a_seed_redraws_the_whole_pipeline_only_when_asked(semi):
    shared = dict(semi, seeds_redraw_pipeline=False)
    assert pipeline.seed_params(shared, 2) == shared  # the paper's protocol: one upstream for every seed
    redraw = dict(semi, seeds_redraw_pipeline=True, split_seed=5)
    run = pipeline.seed_params(redraw, 2)
    assert (run["seed"], run["split_seed"]) == (2, 7)
    assert pipeline.seed_params(redraw, 0)["split_seed"] == 5  # seed 0 keeps the profile's split
    # each seed has its own labeled images (the split seed alone moves them: on synthetic data the seed
    # renders other images too), primitive learner and selection
    a = pipeline.dataset(pipeline.seed_params(redraw, 0), "rafdb", "train")
    b = pipeline.dataset({**pipeline.seed_params(redraw, 1), "seed": 0}, "rafdb", "train")
    assert not np.array_equal(a.indices, b.indices)
    keys = {pipeline.primitive_learner(pipeline.seed_params(redraw, s), "resnet_small").key for s in (0, 1)}
    assert len(keys) == 2
    # a redraw over a dataset's own test split (no hidden-label pool) keeps the split parameters alone
    paper = dict(config.load_profile("smoke"), seeds_redraw_pipeline=True)
    assert "split_seed" not in {k for k, v in pipeline.seed_params(paper, 3).items() if v != paper.get(k)}
    assert all(config.load_profile(p)["seeds_redraw_pipeline"] for p in ("fer2013", "demo", "smoke"))
    assert not config.load_profile("paper")["seeds_redraw_pipeline"]  # the paper's protocol


def test_select_then_retrain_and_flip_averaged_scores_are_other_selections(semi):
    base = dict(semi, delta=0.0)
    first = pipeline.selection(base, "resnet_small")
    second = pipeline.selection(dict(base, selection_rounds=2), "resnet_small")
    flipped = pipeline.selection(dict(base, selection_flip_average=True), "resnet_small")
    assert len({first.key, second.key, flipped.key}) == 3
    # round 2's teacher is round 1's anchor+VAS learner, not the primitive learner
    assert pipeline.teacher(dict(base, selection_rounds=2), "resnet_small").key == \
        pipeline.learner(base, "resnet_small", "anchor+VAS", seed=base["seed"]).key
    assert pipeline.teacher(base, "resnet_small").key == pipeline.primitive_learner(base, "resnet_small").key
    # a learner asked for round 2 trains on round 2's selection
    vas1 = pipeline.auxiliary_samples(base, "resnet_small")
    vas2 = pipeline.auxiliary_samples(dict(base, selection_rounds=2), "resnet_small")
    assert not np.array_equal(vas1.labels, vas2.labels) or not np.array_equal(vas1.pool_index, vas2.pool_index)
    learner2 = pipeline.learner(base, "resnet_small", "anchor+VAS", selection={"selection_rounds": 2})
    assert learner2.key != pipeline.learner(base, "resnet_small", "anchor+VAS").key


def test_curriculum_labels_a_growing_share_and_every_round_takes_the_anchors_steps(semi):
    curriculum = {"selection_rule": "curriculum", "curriculum_share": 0.3, "per_class_cap": None,
                  "vas_equal_steps": True}
    base = dict(semi, epochs=6, lr_step=4, **curriculum)
    n_pool = len(pipeline.dataset(base, "anchor_rest", "train"))
    n_anchor = len(pipeline.dataset(base, "rafdb", "train"))
    sizes = [len(pipeline.auxiliary_samples(dict(base, selection_rounds=r), "resnet_small")) for r in (1, 2, 4)]
    assert sizes == [round(0.3 * n_pool), round(0.6 * n_pool), n_pool]  # round 4 would keep 120 %: all of it
    assert pipeline.selection_kwargs(dict(base, selection_rounds=4))["curriculum_share"] == 1.0
    # the learner of round 2 (round 3's teacher) is cut to the anchor's steps: its epochs scaled, in its key
    six = dict(semi, epochs=6, lr_step=4)
    art = pipeline.learner(six, "resnet_small", "anchor+VAS", selection={**curriculum, "selection_rounds": 2})
    epochs = max(1, round(6 * n_anchor / (n_anchor + sizes[1])))
    assert len(pipeline.history(art)) == epochs < 6
    assert pipeline.teacher(dict(base, selection_rounds=3), "resnet_small").key == art.key
    uncut = pipeline.learner(six, "resnet_small", "anchor+VAS",
                             selection={**curriculum, "vas_equal_steps": False, "selection_rounds": 2})
    assert len(pipeline.history(uncut)) == 6 and uncut.key != art.key


def test_split_parameters_key_the_anchor_only_when_semi_supervised(semi):
    paper = config.load_profile("smoke")
    assert "labeled_fraction" not in pipeline.data_config(paper, ["rafdb"])
    assert pipeline.data_config(semi, ["rafdb"])["labeled_fraction"] == 0.2
    assert pipeline.data_config(semi, ["anchor_rest"]) == pipeline.data_config(semi, ["rafdb"])
    # learners on another split are other learners
    assert (pipeline.learner(semi, "resnet_small", "anchor").key
            != pipeline.learner(dict(semi, labeled_fraction=0.3), "resnet_small", "anchor").key)


def test_selection_reads_the_anchor_rest_and_the_oracle_reveals_its_labels(semi):
    vas = pipeline.auxiliary_samples(dict(semi, delta=0.0), "resnet_small")
    rest = pipeline.dataset(semi, "anchor_rest", "train")
    assert len(vas) > 0 and vas.pool_index.max() < len(rest)
    oracle = pipeline.learner(semi, "resnet_small", "anchor+pool")
    assert oracle.meta["summary"]["train_images"] == len(pipeline.dataset(semi, "rafdb", "train")) + len(rest)



def test_the_oracle_needs_hidden_labels(monkeypatch):
    from types import SimpleNamespace

    from omnifer_lib.engine.pipeline import learners

    unlabeled = SimpleNamespace(labels=np.full(5, -1), name="faces")  # a real MS-Celeb-1M or a folder
    monkeypatch.setattr(learners, "dataset", lambda *a, **k: unlabeled)
    with pytest.raises(ValueError, match="hidden labels"):
        learners.oracle_pool(config.load_profile("smoke"))


def test_preflight_asks_for_exactly_one_split_size():
    with pytest.raises(ValueError, match="labeled_fraction or by labeled_per_class, and neither is set"):
        pipeline.preflight(config.load_profile("smoke", {"pool": "anchor_rest"}))
    with pytest.raises(ValueError, match="both are set"):
        pipeline.preflight(config.load_profile("smoke", {"pool": "anchor_rest", "labeled_fraction": 0.1,
                                                         "labeled_per_class": 5}))


def test_roles_are_checked_at_the_door():
    with pytest.raises(config.ProfileError, match="pool"):
        config.load_profile("smoke", {"pool": "imagenet"})
    with pytest.raises(config.ProfileError, match="labeled_fraction"):
        config.load_profile("smoke", {"labeled_fraction": 1.5})
    with pytest.raises(config.ProfileError, match="test_split"):
        config.load_profile("smoke", {"test_split": "train"})


def test_only_the_datasets_a_profile_reads_need_roots():
    fer = config.load_profile("fer2013")
    assert datasets_needed(fer) == ("fer2013",)
    with pytest.raises(ValueError, match="fer2013_root is not set"):
        pipeline.preflight(fer)
    assert set(datasets_needed(config.load_profile("paper"))) == set(pipeline.REAL_DATASETS)


def test_fer2013_profile_reads_a_folder_release(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("angry", "happy"):
            d = tmp_path / "fer" / split / cls
            d.mkdir(parents=True)
            for i in range(10):
                Image.fromarray(np.full((48, 48), 20 * i + (cls == "happy") * 50, np.uint8)).save(d / f"{i}.png")
    params = config.load_profile("fer2013", {"fer2013_root": str(tmp_path / "fer"), "test_split": "val"})
    pipeline.preflight(params)
    pipeline.clear_memory_caches()
    anchor = pipeline.dataset(params, "fer2013", "train")
    test = pipeline.dataset(params, "fer2013", "test")
    assert len(anchor) == 2 and len(test) == 20  # 10 % of 10 per class, rounded to one; val as test
    assert tuple(test[0][0].shape) == (3, 48, 48)


def test_chapters_needing_the_paper_roles_say_so(tmp_path):
    paths = runner.Paths(runner.repo_root())
    fer = config.load_profile("fer2013")
    needing = [nb for nb in runner.list_notebooks(paths) if runner.unmet_needs(nb, fer, "fer2013")]
    assert {nb.stem for nb in needing} == {"01_datasets", "02_primitive_learner", "05_inner_dataset",
                                          "06_cross_dataset", "10_claims"}
    assert all(runner.unmet_needs(nb, config.load_profile("demo"), "demo") is None
               for nb in runner.list_notebooks(paths))
    sentence = runner.unmet_needs(paths.notebooks / "05_inner_dataset.md", fer, "fer2013")
    assert "profile 'fer2013'" in sentence and "RAF-DB" in sentence and "\n" not in sentence
