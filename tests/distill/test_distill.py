"""Dataset distillation (§3.4, Algorithm 1): gradients, BatchNorm, determinism, resume,
export, baselines and evaluation, on tiny networks defined here."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from omnifer_lib.distill import (DistillConfig, DMConfig, InitSampler, distill, distribution_matching,
                                 distribution_matching_loss, evaluate_learned, evaluate_sgd, export_das,
                                 load_das, mean_image, random_real, unrolled_loss)
from omnifer_lib.distill.functional import (batchnorm_statistics, forward_batch_stats, forward_trained,
                                            forward_with_stats)
from omnifer_lib.files import torch_load
from omnifer_lib.names import class_names


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These networks are tiny: one intra-op thread is fastest, and on a loaded machine more
    threads only contend with other processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TinyNet(nn.Module):
    """conv -> [BatchNorm] -> ReLU -> conv -> ReLU -> global mean -> linear, with the
    features/classify/forward interface of omnifer's models."""

    def __init__(self, num_classes: int = 3, bn: bool = False, width: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width) if bn else nn.Identity()
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.head = nn.Linear(width, num_classes)

    def features(self, x):
        x = F.relu(self.bn(self.conv1(x)))
        return F.relu(self.conv2(x)).mean(dim=(2, 3))

    def classify(self, f):
        return self.head(f)

    def forward(self, x):
        return self.classify(self.features(x))


def separable_data(num_classes=3, per_class=40, size=8, seed=0):
    """Each class: a constant colour offset in one channel plus noise (linearly separable)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.4 + 0.2 * torch.rand(num_classes * per_class, 3, size, size, generator=g)
    y = torch.arange(num_classes).repeat_interleave(per_class)
    for k in range(num_classes):
        x[y == k, k % 3] += 0.35
    return x.clamp(0, 1), y


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("bn,bn_stats", [(False, "synthetic"), (True, "synthetic"), (True, "batch"),
                                         (True, "running")])
def test_unrolled_loss_gradients_match_central_finite_differences(bn, bn_stats):
    torch.manual_seed(0)
    model = TinyNet(num_classes=3, bn=bn).double()
    params, buffers = InitSampler(model).sample(1)
    if bn_stats == "running":  # running statistics of a "trained" network, not (0, 1)
        buffers = {**buffers, "bn.running_mean": torch.linspace(-0.2, 0.3, 4, dtype=torch.float64),
                   "bn.running_var": torch.linspace(0.5, 1.5, 4, dtype=torch.float64)}
    g = torch.Generator().manual_seed(0)
    syn = torch.rand(3, 3, 5, 5, generator=g, dtype=torch.float64)
    syn_labels = torch.arange(3)
    eta = torch.tensor([0.3, 0.2], dtype=torch.float64)  # T = 2 inner steps
    real = torch.rand(10, 3, 5, 5, generator=g, dtype=torch.float64)
    real_labels = torch.randint(0, 3, (10,), generator=g)

    def loss(s, e):
        return unrolled_loss(model, params, s, syn_labels, e, real, real_labels, buffers=buffers, bn_stats=bn_stats)

    s_leaf, e_leaf = syn.clone().requires_grad_(True), eta.clone().requires_grad_(True)
    grad_syn, grad_eta = torch.autograd.grad(loss(s_leaf, e_leaf), [s_leaf, e_leaf])

    eps = 1e-6
    fd_syn = torch.zeros_like(syn).reshape(-1)
    flat = syn.reshape(-1)
    with torch.no_grad():
        for i in range(flat.numel()):
            up, down = flat.clone(), flat.clone()
            up[i] += eps
            down[i] -= eps
            fd_syn[i] = (loss(up.view_as(syn), eta) - loss(down.view_as(syn), eta)) / (2 * eps)
    fd_eta = torch.zeros_like(eta)
    for i in range(eta.numel()):
        up, down = eta.clone(), eta.clone()
        up[i] += eps
        down[i] -= eps
        with torch.no_grad():
            fd_eta[i] = (loss(syn, up) - loss(syn, down)) / (2 * eps)

    assert grad_syn.abs().max() > 1e-6 and grad_eta.abs().max() > 1e-6  # a real, non-zero gradient
    assert relative_error(grad_syn, fd_syn.view_as(syn)) < 1e-3
    assert relative_error(grad_eta, fd_eta) < 1e-3


def test_synthetic_bn_statistics_reproduce_training_mode_on_the_distilled_images():
    torch.manual_seed(0)
    model = TinyNet(bn=True).double()
    params, buffers = InitSampler(model).sample(2)
    syn = torch.rand(6, 3, 5, 5, dtype=torch.float64)
    train_mode = forward_batch_stats(model, params, buffers, syn)
    stats = batchnorm_statistics(model, params, buffers, syn)
    assert set(stats) == {"bn"}
    # The learner evaluated with x̃'s statistics computes on x̃ exactly what training saw.
    assert torch.allclose(forward_with_stats(model, params, buffers, syn, stats), train_mode, atol=1e-12)
    # ... and normalises each test sample independently of its batch.
    real = torch.rand(5, 3, 5, 5, dtype=torch.float64)
    whole = forward_trained(model, params, buffers, real, syn)
    single = torch.cat([forward_trained(model, params, buffers, real[i:i + 1], syn) for i in range(5)])
    assert torch.allclose(whole, single, atol=1e-12)


def test_step_sizes_must_be_a_vector():
    model = TinyNet()
    p, b = InitSampler(model).sample(0)
    x, y = torch.rand(3, 3, 5, 5), torch.arange(3)
    with pytest.raises(ValueError, match="step_sizes"):
        unrolled_loss(model, p, x, y, torch.ones(2, 2), x, y)
    with pytest.raises(ValueError, match="bn_stats"):
        unrolled_loss(model, p, x, y, torch.ones(1), x, y, bn_stats="bogus")


# --------------------------------------------------------------------------- θ0 sampling
def test_init_sampler_is_seeded_fresh_and_leaves_global_rng_alone():
    model = TinyNet(bn=True)
    sampler = InitSampler(model)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a, _ = sampler.sample(7)
    assert torch.equal(torch.rand(3), expected_next)  # caller's RNG untouched
    b, bufs = sampler.sample(7)
    c, _ = sampler.sample(8)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])
    assert not torch.equal(a["conv1.weight"], model.conv1.weight)
    assert torch.equal(bufs["bn.running_var"], torch.ones(4))


def test_head_scope_keeps_the_trained_backbone_and_its_statistics():
    model = TinyNet(bn=True)
    with torch.no_grad():
        model.bn.running_mean.fill_(0.3)
    a, bufs = InitSampler(model, scope="head").sample(1)
    b, _ = InitSampler(model, scope="head").sample(2)
    for name, p in model.named_parameters():
        if name.startswith("head."):
            assert not torch.equal(a[name], b[name])
        else:
            assert torch.equal(a[name], p) and torch.equal(b[name], p)
    assert torch.equal(bufs["bn.running_mean"], model.bn.running_mean)
    with pytest.raises(ValueError, match="scope"):
        InitSampler(model, scope="backbone")


def test_init_sampler_uses_the_models_own_initialiser():
    class WithInit(TinyNet):
        def init_weights(self):
            for p in self.parameters():
                nn.init.constant_(p, 0.5)

    params, _ = InitSampler(WithInit()).sample(0)
    assert all(bool((p == 0.5).all()) for p in params.values())


# --------------------------------------------------------------------------- Algorithm 1
def small_config(**kw):
    base = dict(images_per_class=1, num_classes=3, iterations=4, inits=2, inner_steps=1, lr=0.05,
                eta_lr=0.05, eta0=0.1, real_batch=24, snapshot_every=2, checkpoint_every=2, seed=0)
    base.update(kw)
    return DistillConfig(**base)


@pytest.mark.parametrize("bn", [False, True])
def test_distill_is_deterministic_and_leaves_the_model_untouched(bn):
    torch.manual_seed(0)
    model = TinyNet(bn=bn)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = separable_data()
    r1 = distill(model, x, y, small_config())
    r2 = distill(model, x, y, small_config())
    r3 = distill(model, x, y, small_config(seed=1))
    assert torch.equal(r1.images, r2.images) and torch.equal(r1.step_sizes, r2.step_sizes)
    assert r1.loss_history == r2.loss_history
    assert not torch.equal(r1.images, r3.images)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert r1.images.shape == (3, 3, 8, 8) and r1.labels.tolist() == [0, 1, 2]
    assert r1.step_sizes.shape == (1,) and bool((r1.step_sizes > 0).all())
    assert float(r1.images.min()) >= 0 and float(r1.images.max()) <= 1
    assert [s["iteration"] for s in r1.snapshots] == [2, 4]
    assert torch.equal(r1.snapshots[-1]["images"], r1.images)
    assert len(r1.loss_history) == 4 and len(r1.step_size_history) == 4


def test_per_init_accumulation_equals_summing_all_inits():
    x, y = separable_data()
    model = TinyNet(bn=True)
    a = distill(model, x, y, small_config(accumulate="per_init", iterations=2))
    b = distill(model, x, y, small_config(accumulate="sum", iterations=2))
    assert torch.allclose(a.images, b.images, atol=1e-5)
    assert torch.allclose(a.step_sizes, b.step_sizes, rtol=1e-5)
    assert np.allclose(a.loss_history, b.loss_history, rtol=1e-5)


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    x, y = separable_data()
    model = TinyNet(bn=True)
    cfg = small_config(iterations=5)
    full = distill(model, x, y, cfg)

    class Interrupt(Exception):
        pass

    def stop_at_3(done, loss):
        if done == 3:
            raise Interrupt

    ckpt = tmp_path / "distill.ckpt"
    with pytest.raises(Interrupt):
        distill(model, x, y, cfg, checkpoint=ckpt, callback=stop_at_3)
    assert torch_load(ckpt)["iteration"] == 2  # last checkpoint before the interruption
    resumed = distill(model, x, y, cfg, checkpoint=ckpt)
    assert torch.equal(resumed.images, full.images)
    assert torch.equal(resumed.step_sizes, full.step_sizes)
    assert resumed.loss_history == full.loss_history
    assert [s["iteration"] for s in resumed.snapshots] == [2, 4]
    # A finished checkpoint returns the result without computing again.
    again = distill(model, x, y, cfg, checkpoint=ckpt, callback=lambda *_: pytest.fail("recomputed"))
    assert torch.equal(again.images, full.images)
    with pytest.raises(ValueError, match="different settings"):
        distill(model, x, y, small_config(iterations=5, lr=0.5), checkpoint=ckpt)
    with pytest.raises(ValueError, match="real samples"):
        distill(model, x[:100], y[:100], cfg, checkpoint=ckpt)


def test_fixed_init_uses_the_given_weights_and_learning_only_eta_keeps_images():
    x, y = separable_data()
    model = TinyNet()
    r = distill(model, x, y, small_config(fixed_init=True, learn_images=False, iterations=3, init="real"))
    start = distill(model, x, y, small_config(fixed_init=True, learn_images=False, iterations=0))
    assert torch.equal(r.images, start.images)
    assert not torch.equal(r.step_sizes, start.step_sizes)
    # The first outer loss is the unrolled loss at the model's own weights.
    p = {k: v.detach() for k, v in model.named_parameters()}
    from omnifer_lib.seeds import generator
    gen = generator(0, "batch", 0)
    idx = torch.randperm(len(y), generator=gen)[:24]
    with torch.no_grad():
        expected = unrolled_loss(model, p, start.images, start.labels, start.step_sizes, x[idx], y[idx])
    assert math.isclose(r.loss_history[0], float(expected), rel_tol=1e-5)


def test_distillation_lowers_the_outer_loss_on_held_out_inits():
    x, y = separable_data(per_class=30)
    model = TinyNet()
    cfg = small_config(iterations=40, inits=2, init="noise", lr=0.1, eta_lr=0.1, snapshot_every=0)
    result = distill(model, x, y, cfg)
    start = distill(model, x, y, small_config(iterations=0, init="noise"))
    sampler = InitSampler(model)

    def held_out_loss(res):
        with torch.no_grad():
            losses = [float(unrolled_loss(model, sampler.sample(10_000 + j)[0], res.images, res.labels,
                                          res.step_sizes, x, y)) for j in range(4)]
        return sum(losses) / len(losses)

    assert (result.images - start.images).abs().max() > 0.1
    assert held_out_loss(result) < held_out_loss(start) - 0.03


def test_trained_theta0_uses_its_running_statistics_by_default():
    x, y = separable_data()
    model = TinyNet(bn=True)
    head = distill(model, x, y, small_config(init_scope="head", iterations=2))
    fixed = distill(model, x, y, small_config(fixed_init=True, iterations=2))
    sampled = distill(model, x, y, small_config(iterations=2))
    assert head.config["bn_stats_resolved"] == "running" == fixed.config["bn_stats_resolved"]
    assert sampled.config["bn_stats_resolved"] == "synthetic"
    ev = evaluate_learned(head, model, x, y, inits=2)
    assert ev.config["init_scope"] == "head" and ev.config["bn_stats"] == "running"
    assert evaluate_learned(fixed, model, x, y).config["fixed_init"] is True


def test_profiles_give_valid_distillation_settings():
    from omnifer_lib.publish.config import available_profiles, load_profile

    for name in available_profiles():
        cfg = DistillConfig.from_params(load_profile(name))
        assert cfg.iterations >= 1 and cfg.images_per_class >= 1


def test_divergence_is_reported():
    x, y = separable_data()
    with pytest.raises(FloatingPointError, match="lower eta0"):
        distill(TinyNet(), x, y, small_config(eta0=1e30, iterations=2))


def test_real_labels_must_be_known_classes():
    x, y = separable_data()
    y = y.clone()
    y[0] = -1
    with pytest.raises(ValueError, match="outside 0..2"):
        distill(TinyNet(), x, y, small_config())


def test_dataset_input_gives_the_same_result_as_tensors():
    x, y = separable_data()

    class DS(torch.utils.data.Dataset):
        labels = y.tolist()

        def __len__(self):
            return len(y)

        def __getitem__(self, i):
            return x[i], int(y[i])

    model = TinyNet()
    a = distill(model, x, y, small_config(iterations=2))
    b = distill(model, DS(), config=small_config(iterations=2))
    assert torch.equal(a.images, b.images)


# --------------------------------------------------------------------------- baselines
def test_algorithm1_starts_from_the_random_real_baseline():
    x, y = separable_data()
    start = distill(TinyNet(), x, y, small_config(iterations=0, images_per_class=2, init="real"))
    assert torch.equal(start.images, random_real(x, y, images_per_class=2, num_classes=3, seed=0).images)


def test_random_real_and_mean_image_shapes_and_contents():
    x, y = separable_data()
    rr = random_real(x, y, images_per_class=2, num_classes=3, seed=0)
    assert rr.images.shape == (6, 3, 8, 8) and rr.labels.tolist() == [0, 0, 1, 1, 2, 2]
    for img, lab, idx in zip(rr.images, rr.labels, rr.config["indices"]):
        assert int(y[idx]) == int(lab) and torch.equal(img, x[idx])
    assert len(set(rr.config["indices"])) == 6
    mi = mean_image(x, y, num_classes=3)
    assert mi.images.shape == (3, 3, 8, 8) and mi.labels.tolist() == [0, 1, 2]
    for k in range(3):
        assert torch.allclose(mi.images[k], x[y == k].mean(dim=0), atol=1e-6)
    mi2 = mean_image(x, y, images_per_class=2, num_classes=3)
    assert mi2.images.shape == (6, 3, 8, 8)
    assert torch.allclose(mi2.images[:2].mean(dim=0), x[y == 0].mean(dim=0), atol=1e-6)  # equal halves
    for res in (rr, mi):
        assert res.step_sizes.tolist() == [pytest.approx(0.01)]
    # a class the selection left empty gets no image, and is reported
    rr4 = random_real(x, y, num_classes=4)
    assert rr4.labels.tolist() == [0, 1, 2] and rr4.config["empty_classes"] == [3]
    mi4 = mean_image(x, y, num_classes=4)
    assert mi4.labels.tolist() == [0, 1, 2] and mi4.images.shape[0] == 3 and mi4.config["empty_classes"] == [3]
    dm4 = distribution_matching(TinyNet(bn=False), x, y, DMConfig(images_per_class=1, num_classes=4, iterations=2,
                                                                  real_per_class=5))
    assert dm4.labels.tolist() == [0, 1, 2] and dm4.config["empty_classes"] == [3]
    with pytest.raises(ValueError, match="no real samples"):
        random_real(x[:0], y[:0], num_classes=3)


@pytest.mark.parametrize("bn", [False, True])
def test_distribution_matching_reduces_its_loss(bn):
    x, y = separable_data()
    model = TinyNet(bn=bn)
    cfg = DMConfig(images_per_class=1, num_classes=3, iterations=30, real_per_class=20, lr=0.05, init="noise")
    result = distribution_matching(model, x, y, cfg)
    start = distribution_matching(model, x, y, DMConfig(num_classes=3, iterations=0, init="noise"))
    assert result.images.shape == (3, 3, 8, 8) and result.labels.tolist() == [0, 1, 2]
    assert result.method == "distribution_matching"
    sampler = InitSampler(model)

    def held_out(res):
        total = 0.0
        for j in range(5):
            net = TinyNet(bn=bn)
            net.load_state_dict({**sampler.sample(50_000 + j)[0], **sampler.sample(50_000 + j)[1]})
            with torch.no_grad():
                total += float(distribution_matching_loss(net, x, y, res.images, res.labels))
        return total / 5

    assert held_out(result) < 0.5 * held_out(start)


# --------------------------------------------------------------------------- evaluation
def test_evaluation_learned_and_sgd():
    x, y = separable_data(per_class=30)
    xt, yt = separable_data(per_class=20, seed=1)
    model = TinyNet(bn=True)
    rr = random_real(x, y, images_per_class=2, num_classes=3)
    sgd = evaluate_sgd(rr, model, xt, yt, inits=3, epochs=60, lr=0.05)
    assert len(sgd.accuracies) == 3 and sgd.mode == "sgd"
    assert sgd.mean > 0.6  # separable data: real samples teach it, chance is 1/3
    learned = evaluate_learned(rr, model, xt, yt, inits=3)
    again = evaluate_learned(rr, model, xt, yt, inits=3)
    assert learned.accuracies == again.accuracies and learned.chance == pytest.approx(1 / 3)
    assert all(0 <= a <= 1 for a in learned.accuracies)
    assert "random_real" in str(learned)


# --------------------------------------------------------------------------- export
def test_export_and_load_round_trip(tmp_path):
    x, y = separable_data()
    result = distill(TinyNet(bn=True), x, y, small_config(iterations=2, images_per_class=2))
    path = export_das(result, tmp_path / "das")
    loaded = load_das(tmp_path / "das")
    assert torch.equal(loaded.images, result.images) and torch.equal(loaded.labels, result.labels)
    assert torch.equal(loaded.step_sizes, result.step_sizes)
    assert loaded.config == result.config and loaded.loss_history == result.loss_history
    raw = torch.load(path, weights_only=True)
    assert set(raw) >= {"images", "labels", "step_sizes", "config"}
    names = class_names(3)
    pngs = sorted(p.name for p in (tmp_path / "das" / "images").iterdir())
    assert pngs == sorted(f"{names[k]}_{i}.png" for k in range(3) for i in range(2))
    png = np.asarray(Image.open(tmp_path / "das" / "images" / f"{names[1]}_0.png"), dtype=np.float32) / 255
    assert np.abs(png - result.images[2].permute(1, 2, 0).numpy()).max() <= 0.5 / 255 + 1e-6
    assert not list((tmp_path / "das").rglob("*.tmp"))
    with pytest.raises(FileNotFoundError, match="export_das"):
        load_das(tmp_path / "missing")
