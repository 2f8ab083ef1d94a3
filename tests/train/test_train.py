"""fit(): learning, determinism, exact resume, checkpoints, DAS strategies, pretraining."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from omnifer_lib import models, train
from omnifer_lib.publish.config import load_profile
from omnifer_lib.files import torch_load

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread (conftest)


SIZE = 16


def toy_data(n=96, seed=0, num_classes=7, size=SIZE):
    """Images whose class shows as a bright square at a class-specific position (learnable
    by a tiny conv net in a few epochs), plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    x = 0.3 * torch.rand(n, 3, size, size, generator=g)
    for k in range(num_classes):
        r, c = divmod(k, 3)
        x[y == k, k % 3, 4 * r:4 * r + 4, 4 * c:4 * c + 4] += 0.7
    return x.clamp(0, 1), y


class ListDataset(Dataset):
    """A plain Dataset (no tensors attribute) to exercise the streaming path."""

    def __init__(self, x, y):
        self.x, self.y = x, y
        self.labels = y.numpy()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def small(name="vgg_small", seed=0, **kw):
    if name == "vgg_small":
        kw.setdefault("dropout", 0.3)  # so that the dropout draws are part of what must replay
    return models.build(name, width=4, seed=seed, **kw)


def strip(history):
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_second")} for r in history]


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


FAST = dict(lr=0.05, batch_size=16, progress=False)


def test_fit_on_smoke_profile_lowers_the_loss():
    p = load_profile("smoke")
    x, y = toy_data(112)
    for name in p["backbones"]:
        model = models.build(name, width=p["width"], seed=0)
        hist = train.fit(model, (x, y), epochs=max(p["epochs"], 4), lr=p["lr"], momentum=p["momentum"],
                         lr_step=p["lr_step"], lr_gamma=p["lr_gamma"], batch_size=p["batch_size"],
                         weight_decay=p["weight_decay"], flip_p=p["flip_p"], seed=0, progress=False)
        assert hist[-1]["loss"] < hist[0]["loss"], (name, [h["loss"] for h in hist])


def test_fit_learns_and_reports_history():
    x, y = toy_data(112)
    model = small("resnet_small")
    hist = train.fit(model, (x, y), epochs=6, test_data=(x, y), lr_step=4, **FAST)
    assert [h["epoch"] for h in hist] == list(range(1, 7))
    assert hist[0]["lr"] == 0.05 and math.isclose(hist[-1]["lr"], 0.005)
    assert hist[-1]["loss"] < 0.7 * hist[0]["loss"]
    assert hist[-1]["test_accuracy"] > 60  # chance is 14 %
    assert all(h["seconds"] > 0 and h["images_per_second"] > 0 for h in hist)
    assert not model.training


@pytest.mark.parametrize("name", ["vgg_small", "resnet_small"])
def test_same_seed_same_history_and_weights(name):
    x, y = toy_data()
    runs = []
    for _ in range(2):
        m = small(name)
        h = train.fit(m, (x, y), epochs=2, **FAST)
        runs.append((strip(h), weights(m)))
    assert runs[0][0] == runs[1][0] and same_weights(runs[0][1], runs[1][1])
    m = small(name)
    h = train.fit(m, (x, y), epochs=2, seed=1, **FAST)
    assert strip(h) != runs[0][0]


def test_fit_leaves_the_callers_rng_alone():
    x, y = toy_data()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    train.fit(small(), (x, y), epochs=1, **FAST)
    assert torch.equal(torch.rand(3), expected)


class Stop(Exception):
    pass


@pytest.mark.parametrize("name", ["vgg_small", "resnet_small"])  # dropout / BatchNorm
def test_interrupted_fit_resumes_to_the_same_weights(tmp_path, name):
    x, y = toy_data()
    full = small(name)
    h_full = train.fit(full, (x, y), epochs=4, lr_step=2, **FAST)

    def stop_after_2(record):
        if record["epoch"] == 2:
            raise Stop

    part = small(name)
    with pytest.raises(Stop):
        train.fit(part, (x, y), epochs=4, lr_step=2, checkpoint_dir=tmp_path, callback=stop_after_2, **FAST)
    assert torch_load(tmp_path / train.CHECKPOINT_FILE)["epoch"] == 2

    sparse = tmp_path / "every3"
    with pytest.raises(Stop):
        train.fit(small(name), (x, y), epochs=4, lr_step=2, checkpoint_dir=sparse, checkpoint_every=3,
                  callback=stop_after_2, **FAST)
    assert not (sparse / train.CHECKPOINT_FILE).exists()  # epoch 2 is not a checkpoint epoch

    resumed = small(name, seed=99)  # a fresh process would start from other weights
    seen = []
    h_res = train.fit(resumed, (x, y), epochs=4, lr_step=2, checkpoint_dir=tmp_path,
                      callback=lambda r: seen.append(r["epoch"]), **FAST)
    assert seen == [3, 4]  # only the missing epochs ran
    assert strip(h_res) == strip(h_full)
    assert same_weights(weights(resumed), weights(full))


def test_checkpoint_round_trip_and_finished_run_returns_at_once(tmp_path):
    x, y = toy_data()
    m = small()
    hist = train.fit(m, (x, y), epochs=2, checkpoint_dir=tmp_path, **FAST)
    ck = torch_load(tmp_path / train.CHECKPOINT_FILE)  # weights_only=True
    assert ck["epoch"] == 2 and set(ck) >= {"model", "optimizer", "history", "fingerprint"}
    assert same_weights(ck["model"], weights(m))

    again = small(seed=5)
    calls = []
    hist2 = train.fit(again, (x, y), epochs=2, checkpoint_dir=tmp_path, callback=calls.append, **FAST)
    assert calls == [] and hist2 == hist and same_weights(weights(again), weights(m))

    with pytest.raises(ValueError, match=r"other settings \(lr: checkpoint 0.05 vs now 0.1\)"):
        train.fit(small(), (x, y), epochs=2, checkpoint_dir=tmp_path, **{**FAST, "lr": 0.1})
    with pytest.raises(ValueError, match="more than the 1 asked for"):
        train.fit(small(), (x, y), epochs=1, checkpoint_dir=tmp_path, **FAST)


def test_streamed_dataset_gives_the_same_numbers_as_tensors():
    x, y = toy_data(50)
    a, b = small(), small()
    ha = train.fit(a, (x, y), epochs=2, **FAST)
    hb = train.fit(b, ListDataset(x, y), epochs=2, materialize=False, test_data=TensorDataset(x, y), **FAST)
    assert [h["loss"] for h in ha] == [h["loss"] for h in hb]
    assert same_weights(weights(a), weights(b))
    assert "test_accuracy" in hb[-1]


def test_unknown_labels_and_bad_arguments_are_rejected():
    x, y = toy_data(20)
    y = y.clone()
    y[3] = -1
    with pytest.raises(ValueError, match="unknown label -1"):
        train.fit(small(), (x, y), epochs=1, **FAST)
    with pytest.raises(ValueError, match="das_strategy must be one of"):
        train.fit(small(), toy_data(20), epochs=1, das_strategy="mix", **FAST)
    with pytest.raises(ValueError, match="out of range for a model with 3 classes"):
        train.fit(small(num_classes=3), toy_data(20), epochs=1, **FAST)


def test_single_sample_tail_batch_is_merged():
    assert train._batch_bounds(33, 16) == [(0, 16), (16, 33)]
    assert train._batch_bounds(34, 16) == [(0, 16), (16, 32), (32, 34)]
    x, y = toy_data(33)
    train.fit(small("resnet_small"), (x, y), epochs=1, **FAST)  # BatchNorm would fail on 1 sample


# ---- final-training modes --------------------------------------------------------------

def test_das_strategies_change_training_and_weight_matters():
    x, y = toy_data(48)
    dx, dy = toy_data(7, seed=3)
    das = train.DAS(dx, dy)
    base = small()
    train.fit(base, (x, y), epochs=1, **FAST)
    out = {}
    for strategy, lam in [("minibatch", 1.0), ("minibatch", 0.1), ("samples", 1.0), ("samples", 3.0)]:
        m = small()
        h = train.fit(m, (x, y), epochs=1, das=das, das_strategy=strategy, das_weight=lam, **FAST)
        out[(strategy, lam)] = weights(m)
        assert math.isfinite(h[0]["loss"])
        assert not same_weights(out[(strategy, lam)], weights(base))
    assert not same_weights(out[("minibatch", 1.0)], out[("minibatch", 0.1)])
    assert not same_weights(out[("samples", 1.0)], out[("samples", 3.0)])
    # a tuple or any object with .images/.labels is accepted alike
    m = small()
    train.fit(m, (x, y), epochs=1, das=(dx, dy), das_strategy="minibatch", das_weight=0.1, **FAST)
    assert same_weights(weights(m), out[("minibatch", 0.1)])
    with pytest.raises(ValueError, match="expected images"):
        train.fit(small(), (x, y), epochs=1, das=(dx[:, :1], dy), **FAST)


def test_fit_final_modes():
    x, y = toy_data(40)
    vx, vy = toy_data(30, seed=2)
    anchor_only, with_vas, union_direct = small(), small(), small()
    h0 = train.fit_final(anchor_only, (x, y), "anchor", epochs=1, **FAST)
    h1 = train.fit_final(with_vas, (x, y), "anchor+VAS", vas=ListDataset(vx, vy), epochs=1, **FAST)
    train.fit(union_direct, (torch.cat([x, vx]), torch.cat([y, vy])), epochs=1, **FAST)
    assert same_weights(weights(with_vas), weights(union_direct))
    assert not same_weights(weights(with_vas), weights(anchor_only)) and h0 and h1
    h2 = train.fit_final(small(), (x, y), "anchor+DAS", das=train.DAS(vx[:7], vy[:7]), epochs=1, **FAST)
    assert h2
    with pytest.raises(ValueError, match="needs vas="):
        train.fit_final(small(), (x, y), "anchor+VAS")
    with pytest.raises(ValueError, match="mode must be one of"):
        train.fit_final(small(), (x, y), "VAS")


def test_pretrain_identity_returns_backbone_with_expression_head():
    # the toy image encodes its subject (12 identities); expressions are unknown (-1)
    x, ids = toy_data(84, num_classes=12)
    subjects = np.array([f"celeb{i}" for i in ids.tolist()])

    class Pool(ListDataset):
        pass

    pool = Pool(x, torch.full((84,), -1))  # unlabeled for expressions
    pool.subjects = subjects
    model = small(dropout=0.0)
    before = weights(model)
    model, hist = train.pretrain_identity(model, pool, epochs=3, lr=0.05, batch_size=16, progress=False)
    assert model.num_classes == 7 and model.config["num_classes"] == 7
    assert hist[-1]["loss"] < hist[0]["loss"]
    after = weights(model)
    assert not torch.equal(after["conv1_1.weight"], before["conv1_1.weight"])
    with pytest.raises(ValueError, match="needs identities"):
        train.pretrain_identity(small(), TensorDataset(x, torch.zeros(84, dtype=torch.long)), epochs=1)


def test_derive_seed_and_lr_schedule():
    assert train.derive_seed(0, 1) == train.derive_seed(0, 1) != train.derive_seed(0, 2)
    assert [train.lr_at_epoch(e, 0.001, 10, 0.1) for e in (0, 9, 10, 20, 24)] == pytest.approx(
        [1e-3, 1e-3, 1e-4, 1e-5, 1e-5])


def test_channels_last_default_avoids_the_small_channel_crash():
    cpu = torch.device("cpu")
    assert not train.channels_last_is_safe(models.build("resnet_small", width=4), cpu)  # smoke widths: NCHW
    assert train.channels_last_is_safe(models.build("resnet_small", width=16), cpu)    # demo width
    assert train.channels_last_is_safe(models.build("vgg_small", width=16), cpu)


def test_channels_last_trains_like_nchw():
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(70, 3, 32, 32, generator=g), torch.randint(0, 7, (70,), generator=g))
    runs = []
    for channels_last in (True, False):
        model = models.build("resnet_small", width=16, seed=0)
        runs.append(train.fit(model, data, epochs=2, lr=0.01, batch_size=16, seed=0, progress=False,
                              channels_last=channels_last))
    for a, b in zip(*runs):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)


def test_a_damaged_checkpoint_is_reported_and_training_starts_over(tmp_path, capsys):
    x, y = toy_data()
    h_full = train.fit(small("resnet_small"), (x, y), epochs=2, **FAST)
    (tmp_path / train.CHECKPOINT_FILE).write_bytes(b"PK\x03\x04 truncated zip")
    seen = []
    h = train.fit(small("resnet_small"), (x, y), epochs=2, checkpoint_dir=tmp_path,
                  callback=lambda r: seen.append(r["epoch"]), **FAST)
    assert seen == [1, 2] and strip(h) == strip(h_full)
    assert "cannot be read as a torch file" in capsys.readouterr().err


def test_one_derive_seed_for_every_stream():
    from omnifer_lib.seeds import derive_seed, generator

    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2) and derive_seed(0, 1, 2) != derive_seed(0, 2, 1)
    assert derive_seed(0, "batch", 3) != derive_seed(0, "batch", 4) != derive_seed(1, "batch", 3)
    assert derive_seed(0, "ab") != derive_seed(0, 97, 98)  # a text key is not its bytes as ints
    assert 0 <= derive_seed(2 ** 62, "x") < 2 ** 63
    assert torch.equal(torch.rand(3, generator=generator(5, "s")), torch.rand(3, generator=generator(5, "s")))
    with pytest.raises(ValueError, match="non-negative"):
        derive_seed(0, -1)
    assert train.derive_seed is derive_seed


def test_seeds_as_given_draw_what_torch_and_numpy_draw_and_leave_the_caller_state():
    from omnifer_lib import seeds

    assert torch.equal(torch.rand(4, generator=seeds.torch_generator(7)),
                       torch.rand(4, generator=torch.Generator().manual_seed(7)))
    assert np.array_equal(seeds.numpy_rng(7).permutation(9), np.random.default_rng(7).permutation(9))
    torch.manual_seed(123)
    expected_after = torch.rand(2)
    torch.manual_seed(123)
    with seeds.torch_seeded(7):
        inside = torch.rand(3)
    assert torch.equal(inside, torch.rand(3, generator=torch.Generator().manual_seed(7)))
    assert torch.equal(torch.rand(2), expected_after)  # the caller's stream goes on as if nothing ran
    np.random.seed(5)
    expected_np = np.random.rand(2)
    np.random.seed(5)
    with seeds.numpy_global_seeded(0):
        assert np.array_equal(np.random.rand(3), np.random.RandomState(0).rand(3))
    assert np.array_equal(np.random.rand(2), expected_np)
    seeds.seed_global(3, "x")
    assert torch.equal(torch.rand(2), torch.rand(2, generator=seeds.generator(3, "x")))
    assert seeds.split_seed_of(0, 0) == 0 and seeds.split_seed_of(4, 2) == 6  # seed 0 keeps the profile's split
