"""Models: builds, feature shapes, pretrained-weight mapping, fresh initialisation, no downloads."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torchvision

from omnifer_lib import models
from omnifer_lib.models.vgg import vgg_face_expected_shapes
from omnifer_lib.files import atomic_torch_save, torch_load

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread (conftest)


@pytest.fixture
def stand_in_weights(monkeypatch):
    """Random weights saved under torchvision's published file name cannot match the digest in
    that name; tests of searching and loading skip the digest check (tested in test_pipeline)."""
    monkeypatch.setattr(models, "check_weights_digest", lambda path: None)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection or use torch.hub's downloaders fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


@pytest.mark.parametrize("name,options,size,dim", [
    ("vgg_small", {"width": 8}, 48, 64),
    ("vgg_small", {"width": 4, "fc_dim": 24}, 32, 24),
    ("resnet_small", {"width": 8}, 48, 64),
    ("resnet_small", {"width": 4}, 64, 32),
])
def test_small_models_build_with_documented_feature_dim(name, options, size, dim):
    m = models.build(name, num_classes=5, seed=0, **options).eval()
    x = torch.rand(3, 3, size, size)
    f = m.features(x)
    assert m.feature_dim == dim and f.shape == (3, dim)
    assert m.classify(f).shape == (3, 5)
    assert torch.allclose(m(x), m.classify(f))
    assert m.num_classes == 5 and m.family in {"vgg", "resnet"}


def test_resnet34_builds_512_features(no_network):
    m = models.build("resnet34", seed=0).eval()
    with torch.no_grad():
        f = m.features(torch.rand(2, 3, 64, 64))
    assert m.family == "resnet" and f.shape == (2, 512) and m.classify(f).shape == (2, 7)


def test_vgg_face_builds_4096_features_at_224(no_network):
    m = models.build("vgg_face", seed=0).eval()
    assert m.family == "vgg" and m.feature_dim == 4096
    # 13 convolutions, fc6 on 7x7x512 as in VGG-Face
    assert sum(isinstance(x, torch.nn.Conv2d) for x in m.modules()) == 13
    assert m.fc6.in_features == 7 * 7 * 512
    with torch.no_grad():
        f = m.features(torch.rand(1, 3, 224, 224))
    assert f.shape == (1, 4096) and (f >= 0).all()  # fc7 after ReLU
    assert m.classify(f).shape == (1, 7)


def test_vgg_face_normalises_with_its_mean_on_the_255_scale():
    m = models.build("vgg_face", seed=0)
    x = torch.full((1, 3, 2, 2), 0.5)
    out = m.normalize(x)
    expected = 0.5 * 255 - torch.tensor(models.vgg.VGG_FACE_MEAN_255).view(1, 3, 1, 1)
    assert torch.allclose(out, expected.expand_as(out), atol=1e-3)
    # statistics are architecture, not weights: state dicts hold learned tensors only
    assert not any(k.startswith("input_") for k in m.state_dict())


def test_unknown_name_and_option_give_clear_errors():
    with pytest.raises(ValueError, match="available: resnet34, resnet_small, vgg_face, vgg_small"):
        models.build("vgg19")
    with pytest.raises(ValueError, match="invalid options for 'vgg_small'"):
        models.build("vgg_small", depth=3)


# ---- VGG-Face weight files -------------------------------------------------------------

def _vgg_face_state(fmt: str):
    """A state dict in the documented VGG-Face key format with the right shapes. Every tensor
    but conv1_1.weight is a broadcast constant (its index), so the file stays tiny."""
    state, values = {}, {}
    for i, (key, shape) in enumerate(vgg_face_expected_shapes().items()):
        if key == "conv1_1.weight":
            t = torch.randn(shape)
        else:
            t = torch.full((1,) * len(shape), float(i)).expand(shape)
        values[key] = t
        name = key
        if fmt == "t7" and key.startswith("conv"):
            name = "conv_" + key[len("conv"):]  # conv3_2.weight -> conv_3_2.weight
        state[name] = t
    return state, values


@pytest.mark.parametrize("fmt", ["dag", "t7"])
def test_vgg_face_state_dict_loads_and_maps(tmp_path, no_network, fmt):
    state, values = _vgg_face_state(fmt)
    path = tmp_path / "vgg_face.pth"
    atomic_torch_save(state, path)
    m = models.build("vgg_face", weights=path, seed=0)
    own = m.state_dict()
    for key, val in values.items():
        if key.startswith("fc8"):
            continue  # the identity classifier is dropped
        expect = val.flip(1) if (fmt == "t7" and key == "conv1_1.weight") else val
        assert torch.equal(own[key], expect), key
    assert m.head.weight.shape == (7, 4096)
    assert not torch.equal(own["head.weight"], values["fc8.weight"][:7])


def test_vgg_face_default_file_location_and_wrapped_dicts(tmp_path, monkeypatch, no_network):
    state, values = _vgg_face_state("dag")
    monkeypatch.setenv("OMNIFER_WEIGHTS", str(tmp_path))
    atomic_torch_save({"state_dict": {f"module.{k}": v for k, v in state.items()}},
                      tmp_path / models.VGG_FACE_FILE)
    m = models.build("vgg_face", weights="vggface", num_classes=3)
    assert torch.equal(m.state_dict()["fc7.bias"], values["fc7.bias"])
    assert m.num_classes == 3


def test_vgg_face_mismatched_file_says_what_was_expected(tmp_path):
    state, _ = _vgg_face_state("dag")
    state["fc7.weight"] = torch.zeros(1, 1).expand(4096, 1000)
    del state["conv5_3.bias"]
    path = tmp_path / "bad.pth"
    atomic_torch_save(state, path)
    with pytest.raises(ValueError) as err:
        models.build("vgg_face", weights=path)
    msg = str(err.value)
    assert "conv5_3.bias" in msg and "fc7.weight: expected (4096, 4096), got (4096, 1000)" in msg

    atomic_torch_save({"features.0.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="conv1_1.weight .* conv_1_1.weight"):
        models.build("vgg_face", weights=path)


def test_missing_weights_file_is_a_clear_error_without_network(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("OMNIFER_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # hermetic
    with pytest.raises(FileNotFoundError) as err:
        models.build("vgg_face", weights="vggface")
    msg = str(err.value)
    assert str(tmp_path / "vgg_face_dag.pth") in msg and "never downloads" in msg and "conv1_1.weight" in msg
    assert str(Path(torch.hub.get_dir()) / "checkpoints" / "vgg_face_dag.pth") in msg
    with pytest.raises(FileNotFoundError, match="resnet34-b627a593.pth"):
        models.build("resnet34", weights="imagenet")
    with pytest.raises(FileNotFoundError, match="never downloads"):
        models.build("resnet34", weights=tmp_path / "nope.pth")


def test_default_weights_are_searched_in_omnifer_weights_then_torch_hub_cache(tmp_path, monkeypatch,
                                                                              stand_in_weights):
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.delenv("OMNIFER_WEIGHTS", raising=False)
    assert models.weights_search_path("resnet34") == [hub / "checkpoints" / "resnet34-b627a593.pth"]
    monkeypatch.setenv("OMNIFER_WEIGHTS", str(tmp_path / "mine"))
    own, cached = models.weights_search_path("resnet34")
    assert own == tmp_path / "mine" / "resnet34-b627a593.pth" and cached.parent == hub / "checkpoints"
    assert models.default_weights_path("resnet34") == own  # nothing there yet: where to put it
    cached.parent.mkdir(parents=True)
    atomic_torch_save(torchvision.models.resnet34(weights=None).state_dict(), cached)
    assert models.default_weights_path("resnet34") == cached  # torchvision's cached file is found
    assert models.build("resnet34", weights="imagenet").head.out_features == 7


def test_resnet34_loads_torchvision_checkpoint(tmp_path, monkeypatch, no_network, stand_in_weights):
    tv = torchvision.models.resnet34(weights=None)
    state = tv.state_dict()
    monkeypatch.setenv("OMNIFER_WEIGHTS", str(tmp_path))
    atomic_torch_save(state, tmp_path / models.RESNET34_FILE)
    m = models.build("resnet34", weights="imagenet", seed=1)
    own = m.state_dict()
    for key in ("conv1.weight", "layer3.4.bn2.running_var", "layer4.2.conv2.weight"):
        assert torch.equal(own[key], state[key])
    assert m.head.weight.shape == (7, 512)
    tv.eval(), m.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():  # same backbone: torchvision's pooled features == ours
        tv.fc = torch.nn.Identity()
        assert torch.allclose(tv(m.normalize(x)), m.features(x), atol=1e-5)

    del state["layer2.0.downsample.0.weight"]
    atomic_torch_save(state, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="layer2.0.downsample.0.weight"):
        models.build("resnet34", weights=tmp_path / "partial.pth")


# ---- initialisation, heads, save/load ----------------------------------------------------

def _params(m):
    return [p.detach().clone() for p in m.state_dict().values()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("name", ["vgg_small", "resnet_small"])
def test_seeded_build_reinitialize_and_fresh_like(name):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = models.build(name, seed=5, width=4)
    b = models.build(name, seed=5, width=4)
    assert torch.equal(torch.rand(1), before)  # the caller's RNG state is untouched
    assert _same(_params(a), _params(b))
    c = models.build(name, seed=6, width=4)
    assert not _same(_params(a), _params(c))

    with torch.no_grad():
        for p in a.parameters():
            p.add_(1.0)
    models.reinitialize(a, 5)
    assert _same(_params(a), _params(b))  # θ0 of seed 5 again
    f = models.fresh_like(a, 6)
    assert f is not a and f.config == a.config and _same(_params(f), _params(c))


def test_replace_head_and_save_load_round_trip(tmp_path):
    m = models.build("vgg_small", width=4, seed=0)
    models.replace_head(m, 11, seed=1)
    assert m.num_classes == 11 and m.config["num_classes"] == 11
    path = tmp_path / "m.pt"
    models.save(m, path)
    assert isinstance(torch_load(path), dict)
    back = models.load(path)
    assert back.config == m.config and _same(_params(back), _params(m))

    # pretrained backbone reused for 7 expressions: identity head left out, fresh head kept
    expr = models.build("vgg_small", width=4, weights=path, seed=2)
    assert expr.num_classes == 7
    sd, msd = expr.state_dict(), m.state_dict()
    assert all(torch.equal(sd[k], msd[k]) for k in sd if not k.startswith("head."))

    with pytest.raises(ValueError, match="expected"):
        models.build("vgg_small", width=8, weights=path)
    with pytest.raises(ValueError, match="holds a 'vgg_small' model"):
        models.build("resnet_small", weights=path)


def test_flip_averaged_scores_are_the_mean_of_both_views():
    model = models.build("resnet_small", width=4, seed=0).eval()
    x = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    both = models.FlipAveraged(model)
    with torch.no_grad():
        f = both.features(x)
        torch.testing.assert_close(f, (model.features(x) + model.features(x.flip(3))) / 2)
        torch.testing.assert_close(both(x), (model(x) + model(x.flip(3))) / 2)  # the head is linear
        torch.testing.assert_close(both(x.flip(3)), both(x))  # a face and its mirror score alike
    assert both.num_classes == 7
