"""FER models: the paper's two backbones and their small CPU stand-ins.

``build(name, num_classes=7, weights=None, seed=None, **options)`` returns an ``nn.Module``
(:class:`~omnifer_lib.models.base.FERModel`) with

* ``features(x)``: ``(B, 3, H, W)`` images in ``[0, 1]`` -> ``(B, feature_dim)``, the layer
  before the softmax output (§3.3 computes the class centroids and cosine scores on it);
* ``classify(features)`` -> ``(B, num_classes)`` logits; ``forward(x) = classify(features(x))``;
* ``feature_dim``, ``num_classes``, ``family`` (``"vgg"`` / ``"resnet"``), ``config``;
* ``head``: the expression classifier (the ``nn.Linear`` after the features).

Each model normalises its input itself.

================  ========  ===========  =====================================================
name              family    feature_dim  notes
================  ========  ===========  =====================================================
``vgg_face``      vgg       4096 (fc7)   VGG-16 of VGG-Face, 224x224; options ``dropout=0.5``
``resnet34``      resnet    512 (GAP)    torchvision ResNet-34, 224x224
``vgg_small``     vgg       8*width      plain VGG-style, no BatchNorm, 32-64 px; options
                                         ``width=16``, ``fc_dim=8*width``, ``dropout=0.0``
``resnet_small``  resnet    8*width      ResNet-style with BatchNorm, 32-64 px; options
                                         ``width=16``, ``blocks=(1, 1, 1, 1)``
================  ========  ===========  =====================================================

Weights (``weights=``), never downloaded:

* ``None``: the family's random initialiser (seeded by ``seed`` when given).
* ``vgg_face``: a path to a VGG-Face state dict (``vgg_face_dag.pth``, or a ``VGG_FACE.t7``
  port; see :mod:`omnifer_lib.models.vgg` for the exact keys), or ``"vggface"`` for
  ``vgg_face_dag.pth`` in the weights folders below.
* ``resnet34``: a path to torchvision's ImageNet checkpoint, or ``"imagenet"`` for
  ``resnet34-b627a593.pth`` in the weights folders below.
* any model: a file written by :func:`save` (e.g. the identity-pretrained ``vgg_small``).

The keywords look in ``$OMNIFER_WEIGHTS`` (when set), then in torch's hub cache
``torch.hub.get_dir()/checkpoints`` (where torchvision would have cached the file).
Pretrained backbones always get a freshly initialised ``num_classes`` head.

Fresh initial weights of the same family (Algorithm 1 samples θ0 ~ p(θ0)):
``build(name, seed=s)``, :func:`reinitialize` (in place) or :func:`fresh_like` (a new model).

The "simple CNN" that §4.5 trains on the distilled images is :class:`SimpleCNN`
(:func:`simple_cnn`); it is not an expression backbone, so :func:`build` does not list it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

import torch
from torch import nn

from .base import FERModel, FlipAveraged, init_resnet_style, init_vgg_style, seeded
from .resnet import RESNET34_FILE, ResNet34, ResNetSmall, apply_resnet34_state
from .simple_cnn import SimpleCNN, simple_cnn
from .vgg import VGGFace16, VGGSmall, apply_vgg_face_state, read_state_file, vgg_face_expected_shapes

__all__ = ["FERModel", "FlipAveraged", "build",
           "available", "reinitialize", "fresh_like", "replace_head", "save", "load",
           "weights_dir", "weights_search_path", "default_weights_path", "VGGFace16", "VGGSmall", "ResNet34",
           "ResNetSmall", "SimpleCNN", "simple_cnn", "vgg_face_expected_shapes", "VGG_FACE_FILE", "RESNET34_FILE",
           "resolve_weights_path", "check_weights_digest", "check_weights"]

#: File name looked for by ``weights="vggface"``.
VGG_FACE_FILE = "vgg_face_dag.pth"

_BUILDERS: Dict[str, Callable[..., FERModel]] = {
    "vgg_face": VGGFace16,
    "resnet34": ResNet34,
    "vgg_small": VGGSmall,
    "resnet_small": ResNetSmall,
}
# weights= keywords that mean "the standard pretrained file in weights_dir()".
_DEFAULT_FILES = {"vgg_face": ("vggface", VGG_FACE_FILE), "resnet34": ("imagenet", RESNET34_FILE)}
_SOURCES = {
    "vgg_face": "the PyTorch conversion of VGG-Face (Parkhi et al. 2015): vgg_face_dag.pth "
                "(keys conv1_1.weight ... fc8.weight) or a VGG_FACE.t7 port (conv_1_1.weight ... fc8.weight)",
    "resnet34": "torchvision's ImageNet ResNet-34 checkpoint resnet34-b627a593.pth "
                "(the file torchvision.models.resnet34(weights='IMAGENET1K_V1') would download)",
}


def available() -> list:
    """Names accepted by :func:`build`."""
    return sorted(_BUILDERS)


def weights_dir() -> Path:
    """Where default pretrained files are looked for first: ``$OMNIFER_WEIGHTS`` when set,
    else ``torch.hub.get_dir()/checkpoints``."""
    env = os.environ.get("OMNIFER_WEIGHTS")
    return Path(env).expanduser() if env else _hub_checkpoints()


def _hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_search_path(name: str) -> list:
    """Candidate files for ``build(name, weights="vggface"|"imagenet")``, in search order:
    ``$OMNIFER_WEIGHTS/<file>`` (when set), then ``torch.hub.get_dir()/checkpoints/<file>``."""
    if name not in _DEFAULT_FILES:
        raise ValueError(f"{name!r} has no default pretrained file; models with one: {sorted(_DEFAULT_FILES)}")
    fname = _DEFAULT_FILES[name][1]
    dirs = [weights_dir(), _hub_checkpoints()]
    return [d / fname for i, d in enumerate(dirs) if d not in dirs[:i]]


def default_weights_path(name: str) -> Path:
    """The file ``build(name, weights="vggface"|"imagenet")`` reads: the first existing
    candidate of :func:`weights_search_path`, else the first candidate (where to put it)."""
    candidates = weights_search_path(name)
    return next((p for p in candidates if p.is_file()), candidates[0])


def resolve_weights_path(name: str, weights: Union[str, os.PathLike]) -> Path:
    """The file ``build(name, weights=weights)`` would read; ``FileNotFoundError`` saying where
    to put it when it is missing (nothing is ever downloaded)."""
    keyword = _DEFAULT_FILES.get(name, (None, None))[0]
    if isinstance(weights, str) and weights in {keyword, "default", "pretrained"}:
        if name not in _DEFAULT_FILES:
            raise ValueError(f"{name!r} has no default pretrained file; pass a path written by models.save")
        path = default_weights_path(name)
    else:
        path = Path(weights).expanduser()
    if not path.is_file():
        what = _SOURCES.get(name, f"a {name} state dict written by omnifer_lib.models.save")
        hint = ""
        if name in _DEFAULT_FILES:
            searched = " or ".join(str(p) for p in weights_search_path(name))
            hint = (f" Put the file at {searched} and pass weights={keyword!r} "
                    "(or set $OMNIFER_WEIGHTS to its folder), or pass weights='/path/to/file'.")
        raise FileNotFoundError(f"{name} weights not found: {path}. omnifer never downloads weights; "
                                f"expected {what}.{hint}")
    check_weights_digest(path)
    return path


# torchvision names its files <name>-<first hex digits of their SHA-256>.pth
_DIGEST_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.(?:pth|pt)$")
def check_weights_digest(path: Union[str, os.PathLike]) -> None:
    """When a weights file's name carries a published digest (torchvision's
    ``resnet34-b627a593.pth``: the first hex digits of its SHA-256), check the file against it;
    ``ValueError`` with the expected and the actual digest on a mismatch. Other names pass."""
    m = _DIGEST_IN_NAME.search(Path(path).name)
    if not m:
        return
    from ..files import file_sha256

    expected, actual = m.group(1), file_sha256(path)
    if not actual.startswith(expected):
        raise ValueError(f"weights file {path} is damaged or not the published one: its name promises a SHA-256 "
                         f"starting with {expected}, but the file's is {actual[:len(expected)]}... "
                         f"(sha256 {actual}); download it again from its publisher")


def check_weights(name: str, weights: Union[str, os.PathLike]) -> Path:
    """Open a pretrained weights file the way :func:`build` will, before any work starts: find it
    (:func:`resolve_weights_path`), read it weights-only (a pickle that would run code is refused,
    never executed) and map it onto a fresh ``name`` model. Returns the file's path; raises
    ``FileNotFoundError`` or ``ValueError`` naming the file and what was expected."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available())}")
    path = resolve_weights_path(name, weights)
    with seeded(0):  # construction draws from the RNG: keep the caller's state
        model = _BUILDERS[name](num_classes=7)
    model.config = {"name": name, "num_classes": 7}
    _load_weights(model, name, path)
    return path


def build(name: str, num_classes: int = 7, weights: Optional[Union[str, os.PathLike]] = None,
          seed: Optional[int] = None, **options: Any) -> FERModel:
    """Build model ``name`` (see module docstring) with a ``num_classes`` expression head.

    ``seed`` makes the random initialisation (of everything, or of the head when weights are
    loaded) reproducible without touching the caller's RNG state. ``options`` are passed to
    the architecture (e.g. ``width=16`` for the small nets). Raises ``ValueError`` for an
    unknown name or option and ``FileNotFoundError`` (saying where to put the file) when
    ``weights`` names a missing file.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available())}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    path = resolve_weights_path(name, weights) if weights is not None else None
    ctor = _BUILDERS[name]
    try:
        if seed is None:
            model = ctor(num_classes=num_classes, **options)
        else:
            with seeded(seed):  # construction draws from the RNG too: keep the caller's state
                model = ctor(num_classes=num_classes, **options)
    except TypeError as exc:
        raise ValueError(f"invalid options for {name!r}: {options} ({exc})") from None
    if seed is not None:
        reinitialize(model, seed)  # so that build(seed=s) and reinitialize(m, s) give the same θ0
    model.config = {"name": name, "num_classes": num_classes,
                    **{k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()}}
    if path is not None:
        _load_weights(model, name, path)
    return model


def reinitialize(model: FERModel, seed: int) -> FERModel:
    """Draw all of ``model``'s weights afresh from its family's initialiser, in place
    (BatchNorm statistics reset too). Same seed -> same weights. Returns ``model``.

    This is θ0 ~ p(θ0) of Algorithm 1: random weights of the architecture, not pretrained ones.
    """
    with seeded(seed, model):
        model.init_weights()
    return model


def fresh_like(model: FERModel, seed: int) -> FERModel:
    """A new model of ``model``'s architecture (same ``config``) with fresh random weights from
    seed ``seed``, on the same device. ``model`` is untouched."""
    cfg = dict(model.config)
    name, num_classes = cfg.pop("name"), cfg.pop("num_classes")
    new = build(name, num_classes=num_classes, seed=seed, **cfg)
    device = next(model.parameters()).device
    return new.to(device)


def replace_head(model: FERModel, num_classes: int, seed: Optional[int] = None) -> FERModel:
    """Give ``model`` a freshly initialised ``num_classes``-way head (in place; e.g. identity
    head -> expression head after face pretraining). Returns ``model``."""
    p = next(model.head.parameters())
    head = nn.Linear(model.feature_dim, num_classes)
    init = init_vgg_style if model.family == "vgg" else init_resnet_style
    if seed is None:
        init(head)
    else:
        with seeded(seed):
            init(head)
    model.head = head.to(device=p.device, dtype=p.dtype)
    model.config["num_classes"] = num_classes
    return model


def save(model: FERModel, path: Union[str, os.PathLike]) -> None:
    """Write ``{"omnifer_model": config, "state_dict": ...}`` atomically; read back with
    :func:`load` or ``build(name, weights=path)``."""
    from ..files import atomic_torch_save

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save({"omnifer_model": dict(model.config), "state_dict": state}, path)


def load(path: Union[str, os.PathLike], device: Optional[Union[str, torch.device]] = None) -> FERModel:
    """Rebuild a model written by :func:`save` (architecture from its stored config)."""
    from ..device import resolve_device
    from ..files import torch_load

    obj = torch_load(path)
    if not isinstance(obj, dict) or "omnifer_model" not in obj or "state_dict" not in obj:
        raise ValueError(f"{path} was not written by omnifer_lib.models.save "
                         "(expected a dict with 'omnifer_model' and 'state_dict')")
    cfg = dict(obj["omnifer_model"])
    name, num_classes = cfg.pop("name"), cfg.pop("num_classes")
    model = build(name, num_classes=num_classes, **cfg)
    model.load_state_dict(obj["state_dict"])
    return model.to(resolve_device(device))


def _load_weights(model: FERModel, name: str, path: Path) -> None:
    raw = read_state_file(path, _SOURCES.get(name, f"a {name} file written by omnifer_lib.models.save"))
    if isinstance(raw, dict) and "omnifer_model" in raw:
        _load_omnifer_state(model, raw, path)
    elif name == "vgg_face":
        apply_vgg_face_state(model, raw, path)
    elif name == "resnet34":
        apply_resnet34_state(model, raw, path)
    else:
        raise ValueError(f"{path}: expected a file written by omnifer_lib.models.save "
                         "({'omnifer_model': config, 'state_dict': ...})")


def _load_omnifer_state(model: FERModel, obj: dict, path: Path) -> None:
    """Load a :func:`save` file into ``model``; a head of another size (e.g. the identity
    head) is left out and the model's fresh head kept."""
    stored = obj["omnifer_model"].get("name")
    if stored != model.config.get("name"):
        raise ValueError(f"{path} holds a {stored!r} model, not {model.config.get('name')!r}")
    state = dict(obj["state_dict"])
    own = model.state_dict()
    if state.get("head.weight") is not None and state["head.weight"].shape != own["head.weight"].shape:
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    wrong = [f"{k}: expected {tuple(own[k].shape)}, got {tuple(v.shape)}"
             for k, v in state.items() if k in own and v.shape != own[k].shape]
    if wrong:
        raise ValueError(f"{path} does not fit {model.config.get('name')} with options {model.config} "
                         f"(stored options {obj['omnifer_model']}): " + "; ".join(wrong[:8]))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("head.")]
    if missing or unexpected:
        raise ValueError(f"{path} does not fit {model.config.get('name')}: missing {missing[:8]}, "
                         f"unexpected {unexpected[:8]}")
