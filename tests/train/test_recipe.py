"""The strong-recipe options of fit(): pad-and-crop translation, cosine schedule, label smoothing, mixup."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from omnifer_lib import models, train

pytestmark = pytest.mark.usefixtures("one_thread")


def reference_translate(x: np.ndarray, dy: int, dx: int, pad: int) -> np.ndarray:
    """One image (C, H, W) moved by (dy, dx): reflect-pad, then crop at (pad - dy, pad - dx)."""
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    h, w = x.shape[1:]
    return padded[:, pad - dy:pad - dy + h, pad - dx:pad - dx + w]


def test_translate_matches_a_numpy_pad_and_crop():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 9, 11, generator=g)
    shifts = torch.tensor([[0, 0], [2, -1], [-3, 3], [1, 0], [0, -2], [-1, 1]])
    out = train.translate(x, shifts, pad=3)
    for i, (dy, dx) in enumerate(shifts.tolist()):
        np.testing.assert_array_equal(out[i].numpy(), reference_translate(x[i].numpy(), dy, dx, 3))
    # a positive shift moves the content down/right: a pixel lands dy rows lower
    assert torch.equal(out[1, :, 2 + 2, 4 - 1], x[1, :, 2, 4])
    assert train.translate(x, shifts, pad=0) is x


def test_cosine_schedule_and_unknown_schedule():
    lrs = [train.lr_at_epoch(e, 0.1, 10, 0.1, "cosine", 4) for e in range(4)]
    half = [(1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert lrs == pytest.approx([0.1 * h for h in half]) and lrs[2] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="lr schedule must be one of"):
        train.lr_at_epoch(0, 0.1, 10, 0.1, "linear", 4)


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 16, 16, generator=g), torch.arange(n) % 7


def _fit(**kw):
    model = models.build("resnet_small", width=4, seed=0)
    hist = train.fit(model, _data(), epochs=3, lr=0.05, batch_size=16, seed=1, progress=False, **kw)
    return hist, {k: v.clone() for k, v in model.state_dict().items()}


def test_recipe_options_are_deterministic_and_change_the_training():
    base_hist, base = _fit()
    for kw in (dict(crop_pad=2), dict(lr_schedule="cosine"), dict(label_smoothing=0.1)):
        h1, w1 = _fit(**kw)
        h2, w2 = _fit(**kw)
        assert all(torch.equal(w1[k], w2[k]) for k in w1), kw  # same seed, same weights
        assert not all(torch.equal(w1[k], base[k]) for k in w1), kw  # the option does something
    cos_hist, _ = _fit(lr_schedule="cosine")
    assert [h["lr"] for h in cos_hist] == pytest.approx([0.05, 0.0375, 0.0125])
    # the defaults are the paper's recipe: naming them changes nothing
    h, w = _fit(crop_pad=0, lr_schedule="step", label_smoothing=0.0)
    assert all(torch.equal(w[k], base[k]) for k in w)


def test_recipe_options_are_checked():
    for kw, text in ((dict(crop_pad=-1), "crop_pad"), (dict(label_smoothing=1.0), "label_smoothing"),
                     (dict(lr_schedule="exp"), "lr schedule")):
        with pytest.raises(ValueError, match=text):
            _fit(**kw)


def test_a_checkpoint_of_another_recipe_is_refused(tmp_path):
    model = models.build("resnet_small", width=4, seed=0)
    train.fit(model, _data(), epochs=1, lr=0.05, batch_size=16, progress=False, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="crop_pad"):
        train.fit(models.build("resnet_small", width=4, seed=0), _data(), epochs=2, lr=0.05, batch_size=16,
                  crop_pad=2, progress=False, checkpoint_dir=tmp_path)


def test_a_cosine_run_resumes_exactly_and_is_not_continued_by_a_longer_one(tmp_path):
    full = models.build("resnet_small", width=4, seed=0)
    train.fit(full, _data(), epochs=3, lr=0.05, batch_size=16, lr_schedule="cosine", progress=False)
    first = models.build("resnet_small", width=4, seed=0)
    with pytest.raises(KeyboardInterrupt):  # killed after its first epoch
        def stop(record):
            raise KeyboardInterrupt
        train.fit(first, _data(), epochs=3, lr=0.05, batch_size=16, lr_schedule="cosine", progress=False,
                  checkpoint_dir=tmp_path, callback=stop)
    resumed = models.build("resnet_small", width=4, seed=0)
    train.fit(resumed, _data(), epochs=3, lr=0.05, batch_size=16, lr_schedule="cosine", progress=False,
              checkpoint_dir=tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(full.state_dict().values(), resumed.state_dict().values()))
    # the cosine rates depend on the length of the run: a 6-epoch run does not continue the 3-epoch one
    with pytest.raises(ValueError, match="epochs"):
        train.fit(models.build("resnet_small", width=4, seed=0), _data(), epochs=6, lr=0.05, batch_size=16,
                  lr_schedule="cosine", progress=False, checkpoint_dir=tmp_path)


def test_soft_targets_equal_to_the_labels_train_like_the_labels():
    images, labels = _data()
    hard_hist, hard = _fit()
    soft_hist, soft = _fit(soft_targets=torch.nn.functional.one_hot(labels, 7).float())
    assert all(torch.allclose(hard[k].float(), soft[k].float(), atol=1e-5) for k in hard)
    assert [h["train_accuracy"] for h in soft_hist] == [h["train_accuracy"] for h in hard_hist]
    smooth = torch.full((len(labels), 7), 1 / 7)
    _, other = _fit(soft_targets=smooth)
    assert not all(torch.allclose(hard[k].float(), other[k].float(), atol=1e-5) for k in hard)


def test_vas_soft_labels_replace_only_the_auxiliary_samples_labels():
    images, labels = _data()
    anchor, vas = (images[:40], labels[:40]), (images[40:], labels[40:])

    def final(**kw):
        model = models.build("resnet_small", width=4, seed=0)
        train.fit_final(model, anchor, "anchor+VAS", vas=vas, epochs=2, lr=0.05, batch_size=16, seed=1,
                        progress=False, **kw)
        return model.state_dict()

    hard = final()
    same = final(vas_soft_labels=torch.nn.functional.one_hot(vas[1], 7).float())
    assert all(torch.allclose(hard[k].float(), same[k].float(), atol=1e-5) for k in hard)
    uncertain = final(vas_soft_labels=torch.full((24, 7), 1 / 7))
    assert not all(torch.allclose(hard[k].float(), uncertain[k].float(), atol=1e-5) for k in hard)
    with pytest.raises(ValueError, match=r"\(24, K\)"):
        final(vas_soft_labels=torch.full((23, 7), 1 / 7))
    with pytest.raises(ValueError, match="mode 'anchor\\+VAS'"):
        train.fit_final(models.build("resnet_small", width=4, seed=0), anchor, "anchor",
                        vas_soft_labels=torch.full((24, 7), 1 / 7), epochs=1, progress=False)


def test_soft_targets_are_checked():
    for soft, text in ((torch.full((63, 7), 1 / 7), r"\(64, 7\)"), (torch.full((64, 7), 0.5), "summing to 1"),
                       (torch.full((64, 7), float("nan")), "finite")):
        with pytest.raises(ValueError, match=text):
            _fit(soft_targets=soft)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def test_mixup_matches_a_numpy_reference():
    g = torch.Generator().manual_seed(0)
    x, logits = torch.rand(5, 3, 4, 4, generator=g), torch.randn(5, 7, generator=g, dtype=torch.float64)
    y, lam, perm = torch.tensor([0, 3, 6, 3, 1]), 0.3, torch.tensor([2, 0, 4, 1, 3])
    np.testing.assert_allclose(train.mixup(x, lam, perm).numpy(),
                               lam * x.numpy() + (1 - lam) * x.numpy()[perm.numpy()], rtol=1e-6)
    # the mixed loss is the cross-entropy against the mixed one-hot targets
    onehot = np.eye(7)[y.numpy()]
    mixed = lam * onehot + (1 - lam) * onehot[perm.numpy()]
    expected = -(mixed * _log_softmax(logits.numpy())).sum(1)
    assert train.mixup_loss(logits, y, lam, perm).item() == pytest.approx(expected.mean(), rel=1e-10)
    # per-image weights: each term carries its own image's weight, so a weight-0 image teaches nothing
    w = torch.tensor([1.0, 2.0, 0.0, 0.5, 1.0], dtype=torch.float64)
    logp, y_np, p_np = _log_softmax(logits.numpy()), y.numpy(), perm.numpy()
    terms = (lam * w.numpy() * -logp[np.arange(5), y_np]
             + (1 - lam) * w.numpy()[p_np] * -logp[np.arange(5), y_np[p_np]])
    assert train.mixup_loss(logits, y, lam, perm, weight=w).item() == pytest.approx(terms.mean())
    grad_logits = logits.clone().requires_grad_(True)
    train.mixup_loss(grad_logits, y, lam, perm, weight=w).backward()
    # image 2 (weight 0) is image 0's partner: image 0's logits get no pull toward image 2's class 6
    assert p_np[0] == 2 and grad_logits.grad[0, 6] > 0
    soft = torch.softmax(torch.randn(5, 7, generator=g, dtype=torch.float64), 1)  # soft targets mix alike
    expected_soft = -((lam * soft.numpy() + (1 - lam) * soft.numpy()[perm.numpy()]) * _log_softmax(logits.numpy()))
    assert train.mixup_loss(logits, soft, lam, perm).item() == pytest.approx(expected_soft.sum(1).mean())
    # label smoothing ε: targets (1 - ε) one-hot + ε / K, mixed
    eps = 0.1
    smooth = (1 - eps) * mixed + eps / 7
    assert train.mixup_loss(logits, y, lam, perm, label_smoothing=eps).item() == pytest.approx(
        -(smooth * _log_softmax(logits.numpy())).sum(1).mean())


def test_mixup_trains_deterministically_resumes_exactly_and_leaves_runs_without_it_unchanged(tmp_path):
    assert train.Recipe(mixup_alpha=0.0).mixing(0) is None  # α = 0 takes no mixup path and draws nothing more
    base_hist, base = _fit()
    lam_rng, perm_rng = train.Recipe(seed=1, mixup_alpha=0.4).mixing(2, rank=0)
    other_rank = train.Recipe(seed=1, mixup_alpha=0.4).mixing(2, rank=1)
    # one λ per global minibatch on every rank, each rank its own partners
    assert lam_rng.beta(0.4, 0.4) == other_rank[0].beta(0.4, 0.4)
    assert not np.array_equal(perm_rng.permutation(32), other_rank[1].permutation(32))
    h1, w1 = _fit(mixup_alpha=0.4)
    h2, w2 = _fit(mixup_alpha=0.4)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert not all(torch.equal(w1[k], base[k]) for k in w1)
    # interrupted after 2 epochs and resumed: the same weights as the run in one go
    model = models.build("resnet_small", width=4, seed=0)
    kw = dict(lr=0.05, batch_size=16, seed=1, progress=False, mixup_alpha=0.4, checkpoint_dir=tmp_path)
    train.fit(model, _data(), epochs=2, **kw)
    with pytest.raises(ValueError, match="epochs"):  # the step schedule's run length is not in the checkpoint
        train.fit(model, _data(), epochs=3, lr_schedule="cosine", **kw)
    resumed = models.build("resnet_small", width=4, seed=0)
    train.fit(resumed, _data(), epochs=3, **kw)
    assert all(torch.equal(resumed.state_dict()[k], w1[k]) for k in w1)
    with pytest.raises(ValueError, match="differ|mixup_alpha"):  # a checkpoint of another α is not continued
        train.fit(models.build("resnet_small", width=4, seed=0), _data(), epochs=4,
                  **{**kw, "mixup_alpha": 0.2})
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="mixup_alpha"):
            _fit(mixup_alpha=bad)
