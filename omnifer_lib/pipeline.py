"""The paper's pipeline as cached stages, shared by the notebooks.

Each stage is a pure function of the profile parameters it depends on and of the artifacts
upstream of it; its result is stored in the artifact store (:mod:`omnifer_lib.store`) under a
key hashing exactly those, so every notebook that needs, say, the VGG primitive learner gets
the same one, trained once, and a rerun with a new margin δ reuses it::

    face_pretraining (vgg_small on the demo)      ─┐
    learner(anchor, seed=params["seed"])  = the primitive learner (§3.2)
    selection  ── manifest of per-sample scores over the pool (§3.3; δ and rule applied later)
    auxiliary_samples(δ, rule)  ── the VAS, re-thresholded from the manifest (not cached: cheap)
    distilled(method)  ── DAS from the VAS (§3.4, Algorithm 1) or a baseline set
    learner(mode, seed)  ── final learners, evaluated on the inner test set and the cross targets
    kfold_learner  ── CK+ 10-fold (Table 3)

Datasets are named after the paper's datasets (``rafdb``, ``fer2013``, ``ckplus``, ``jaffe``,
``mmi``, ``ms1m``); with ``data_source="synthetic"`` each name is played by the synthetic domain
of that name (:func:`role_description` says which).
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import torch

from . import data as fdata
from . import models
from .device import describe_device, resolve_device
from .paper import DATASET_NAMES
from .store import Artifact, Store, atomic_torch_save, atomic_write_bytes

#: The paper's roles (§4): the anchor, the unlabeled pool, inner-dataset tests, cross targets.
ANCHOR = "rafdb"
POOL = "ms1m"
CROSS_TARGETS = ("ckplus", "jaffe", "mmi", "fer2013")  # Tables 4-7, in the paper's order
REAL_DATASETS = ("rafdb", "fer2013", "ckplus", "jaffe", "mmi", "ms1m")
MODES = ("anchor", "anchor+VAS", "anchor+DAS")
SNAPSHOTS_FILE = "snapshots.pt"
DAS_METHODS = ("algorithm1", "distribution_matching", "random_real", "mean_image")

# Parameters each stage depends on (beyond upstream keys); anything else never invalidates it.
DATA_KEYS = ("data_source", "image_size", "seed")  # what every dataset depends on
#: the size parameters of each dataset's synthetic stand-in
SIZE_KEYS = {"rafdb": ("n_anchor_train", "n_anchor_test"), "fer2013": ("n_fer2013_train", "n_anchor_test"),
             "ckplus": ("n_cross_test",), "jaffe": ("n_cross_test",), "mmi": ("n_cross_test",), "ms1m": ("n_pool",)}
TRAIN_KEYS = ("epochs", "lr", "lr_step", "lr_gamma", "momentum", "weight_decay", "batch_size", "flip_p", "amp",
              "width")
PRETRAIN_KEYS = ("pretrain_epochs", "pretrain_lr", "n_pretrain", "width", "batch_size", "flip_p", "momentum",
                 "weight_decay", "amp")
DISTILL_KEYS = ("images_per_class", "distill_iterations", "distill_inits", "distill_inner_steps", "distill_lr",
                "distill_eta_lr", "eta0", "distill_real_batch", "distill_fixed_init", "distill_init_scope",
                "snapshot_every", "dm_iterations")
SELECT_KEYS = ("selection_rule", "delta", "softmax_threshold", "per_class_k", "class_quantile", "per_class_cap")


# ----------------------------------------------------------------------------- basics
def store() -> Store:
    return Store()


def pick(params: Mapping[str, Any], keys: Sequence[str]) -> Dict[str, Any]:
    return {k: params[k] for k in keys if k in params}


def data_config(params: Mapping[str, Any], names: Sequence[str]) -> Dict[str, Any]:
    """The data parameters that datasets ``names`` depend on (source, image size, seed, their
    synthetic sizes and their roots) — and nothing else, so that e.g. a larger pool does not
    retrain the anchor-only learners."""
    keys = list(DATA_KEYS)
    for name in names:
        keys += list(SIZE_KEYS[name]) + [f"{name}_root"]
    return pick(params, dict.fromkeys(keys))


def family(backbone: str) -> str:
    """``"vgg"`` or ``"resnet"``: the paper's two families (VGG-Face / ResNet-34)."""
    if backbone.startswith("vgg"):
        return "vgg"
    if backbone.startswith("resnet"):
        return "resnet"
    raise ValueError(f"unknown backbone {backbone!r}; expected one of {models.available()}")


def display_backbone(backbone: str) -> str:
    return {"vgg_face": "VGG-F", "resnet34": "ResNet-34", "vgg_small": "VGG-small (VGG-F's role)",
            "resnet_small": "ResNet-small (ResNet-34's role)"}.get(backbone, backbone)


def device_of(params: Mapping[str, Any]) -> torch.device:
    return resolve_device(params.get("device", "auto"))


# ----------------------------------------------------------------------------- data
PRETRAINED_WEIGHTS = {"vgg_face": "vgg_face_weights", "resnet34": "resnet34_weights"}


def preflight(params: Mapping[str, Any]) -> None:
    """Stop at once, before any notebook runs: when real data is asked for and a dataset root is
    missing (naming the dataset, the parameter and the expected layout), and when a paper
    backbone's pretrained weights file is missing (naming the parameter and where to put it)."""
    if params.get("data_source") == "real":
        _check_dataset_roots(params)
    for backbone in params.get("backbones", []):
        key = PRETRAINED_WEIGHTS.get(backbone)
        if key and params.get(key):
            try:
                models.resolve_weights_path(backbone, params[key])
            except FileNotFoundError as exc:
                raise ValueError(f"{backbone} (parameter {key}): {exc}") from None


def _check_dataset_roots(params: Mapping[str, Any]) -> None:
    from importlib import import_module

    for name in REAL_DATASETS:
        key = f"{name}_root"
        root = params.get(key)
        if root and Path(root).is_dir():
            continue
        factory = fdata.REGISTRY[name][0]
        layout = getattr(import_module(factory.__module__), "LAYOUT", "").rstrip()
        problem = "is not set" if not root else f"points at {root!r}, which is not a folder"
        raise ValueError(f"{DATASET_NAMES[name]} ({name}): parameter {key} {problem}; pass "
                         f"-p {key} /path/to/{name} pointing at a folder laid out as:\n{layout}")


def _real_transform(size: int):
    from torchvision import transforms as T

    # Aligned face crops are resized to the learners' input size (§4.3: 224 x 224).
    return T.Compose([T.Lambda(lambda im: im.convert("RGB")), T.Resize((size, size)), T.ToTensor()])


def _synthetic_size(params: Mapping[str, Any], name: str, split: str) -> int:
    if name == POOL:
        return int(params["n_pool"])
    if name == ANCHOR:
        return int(params["n_anchor_train"] if split == "train" else params["n_anchor_test"])
    if name == "fer2013":  # Table 2's training set; its test split doubles as Table 7's target
        return int(params["n_fer2013_train"] if split == "train" else params["n_anchor_test"])
    return int(params["n_cross_test"])


def dataset(params: Mapping[str, Any], name: str, split: str = "train"):
    """The dataset playing ``name``'s role, ``split`` in {"train", "test"} (``"all"`` for the
    real lab datasets, which have no official split)."""
    key = tuple(sorted(data_config(params, [name]).items()))
    return _dataset_cached(key, name, split)


@functools.lru_cache(maxsize=32)
def _dataset_cached(key: Tuple, name: str, split: str):
    params = dict(key)
    if params["data_source"] == "synthetic":
        ds = fdata.load("synthetic", split=split, domain=name, size=_synthetic_size(params, name, split),
                        image_size=params["image_size"], seed=params["seed"])
        if ds.caches_images:  # render once per machine, not once per notebook process
            ds.use_rendered(_rendered_images(ds, name, split, len(ds), params["image_size"], params["seed"]))
        return ds
    if params["data_source"] != "real":
        raise ValueError(f"data_source must be 'synthetic' or 'real', got {params['data_source']!r}")
    root = params.get(f"{name}_root")
    if name in ("ckplus", "jaffe", "mmi"):
        split = "all"
    # The pool too: MS1M's 112 px crops must reach the learners at their input size.
    return fdata.load(name, root=root, split=split, transform=_real_transform(params["image_size"]))


def _rendered_images(ds, name: str, split: str, size: int, image_size: int, seed: int) -> torch.Tensor:
    config = {"domain": name, "split": split, "size": size, "image_size": image_size, "seed": seed}

    def compute(work: Path):
        from .store import atomic_torch_save

        atomic_torch_save(ds.rendered(), work / "images.pt")

    art = store().get_or_compute("rendered", config, compute, version=1)
    from .store import torch_load

    return torch_load(art.file("images.pt"))


def role_description(params: Mapping[str, Any], name: str) -> str:
    """E.g. ``"RAF-DB — played by the synthetic 'rafdb' domain"`` or ``"RAF-DB (real, /data/raf)"``."""
    if params["data_source"] == "synthetic":
        return f"{DATASET_NAMES[name]} — played by the synthetic '{name}' domain"
    return f"{DATASET_NAMES[name]} (real data at {params.get(f'{name}_root')})"


# ----------------------------------------------------------------------------- model building
def face_pretraining(params: Mapping[str, Any], backbone: str) -> Optional[Artifact]:
    """Identity pretraining of the demo's VGG-style net on the celebrity pool (the stand-in for
    VGG-Face's face training), cached; ``None`` for backbones that do not get it."""
    if backbone != "vgg_small" or int(params.get("pretrain_epochs", 0)) <= 0:
        return None
    config = {"backbone": backbone, **pick(params, PRETRAIN_KEYS), "data": data_config(params, [POOL])}

    def compute(work: Path):
        from .train import pretrain_identity

        pool = dataset(params, POOL, "train")
        index = pretraining_indices(pool.subjects, int(params["n_pretrain"]))
        subset = fdata.protocols.DatasetView(pool, index)
        model = models.build(backbone, width=params["width"], seed=params["seed"])
        model, history = pretrain_identity(model, subset, subjects=np.asarray(pool.subjects)[index],
                                           epochs=params["pretrain_epochs"], lr=params["pretrain_lr"],
                                           seed=params["seed"], batch_size=params["batch_size"],
                                           flip_p=params["flip_p"], momentum=params["momentum"],
                                           weight_decay=params["weight_decay"], lr_step=10 ** 6,
                                           device=device_of(params), checkpoint_dir=work / "ckpt")
        models.save(model, work / "backbone.pt")
        _write_json(work / "history.json", history)
        return {"identities": int(len(np.unique(np.asarray(pool.subjects)[index]))), "images": int(len(index)),
                "identity_accuracy": history[-1]["train_accuracy"]}

    return store().get_or_compute("face_pretraining", config, compute, resumable=True)


def pretraining_indices(subjects: Sequence, n: int) -> np.ndarray:
    """About ``n`` pool indices covering as few identities as possible (all images of the
    identities in order of first appearance): identity classification needs many images per
    identity, as VGG-Face's training set had (~1000 per celebrity)."""
    subjects = np.asarray(subjects)
    _, first = np.unique(subjects, return_index=True)
    order = subjects[np.sort(first)]
    chosen, total = [], 0
    counts = {s: c for s, c in zip(*np.unique(subjects, return_counts=True))}
    for s in order:
        if total >= n:
            break
        chosen.append(s)
        total += counts[s]
    return np.flatnonzero(np.isin(subjects, chosen))[:max(n, 0)]


def initial_model(params: Mapping[str, Any], backbone: str, seed: int, pretrained: Optional[Artifact] = None):
    """A fresh learner of ``backbone`` with its pretrained weights (VGG-Face / ImageNet files for
    the paper's backbones, ``pretrained`` = the :func:`face_pretraining` artifact for vgg_small)
    and a freshly drawn 7-way head (seeded by ``seed``)."""
    if pretrained is not None:
        return models.build(backbone, weights=pretrained.file("backbone.pt"), width=params["width"], seed=seed)
    if backbone in PRETRAINED_WEIGHTS:
        return models.build(backbone, weights=params.get(PRETRAINED_WEIGHTS[backbone]), seed=seed)
    return models.build(backbone, width=params["width"], seed=seed)


# ----------------------------------------------------------------------------- learners
def _fit_kwargs(params: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: params[k] for k in ("epochs", "lr", "lr_step", "lr_gamma", "momentum", "weight_decay", "batch_size",
                                   "flip_p", "amp")}


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, default=_json_default).encode())


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def eval_targets_of(train_on: str) -> Tuple[str, ...]:
    """Names of the test sets of a learner trained on ``train_on``: its own test split, and for
    the anchor also the cross-dataset targets (Tables 4-7)."""
    return (train_on, *CROSS_TARGETS) if train_on == ANCHOR else (train_on,)


def eval_targets(params: Mapping[str, Any], train_on: str) -> Dict[str, Any]:
    """The test sets of :func:`eval_targets_of`, by name."""
    return {name: dataset(params, name, "test") for name in eval_targets_of(train_on)}


@functools.lru_cache(maxsize=16)
def _learner_cached(params_json: str, backbone: str, train_on: str, mode: str, seed: int,
                    das_method: str, selection_json: str, das_strategy: Optional[str]) -> Artifact:
    params = json.loads(params_json)
    selection_over = json.loads(selection_json)
    return _learner(params, backbone, train_on, mode, seed, das_method, selection_over, das_strategy)


def learner(params: Mapping[str, Any], backbone: str, mode: str = "anchor", *, seed: Optional[int] = None,
            train_on: str = ANCHOR, das_method: str = "algorithm1", selection: Optional[Mapping[str, Any]] = None,
            das_strategy: Optional[str] = None) -> Artifact:
    """A trained and evaluated learner (cached).

    ``mode``: ``"anchor"`` (baseline; with ``seed = params["seed"]`` on the anchor this is the
    primitive learner), ``"anchor+VAS"`` or ``"anchor+DAS"`` (§4.4). ``train_on``: the labeled
    training set (``rafdb`` for Table 1 and the cross-dataset tables, ``fer2013`` for Table 2).
    ``das_method``: which set plays the DAS (Algorithm 1 or a baseline of
    :data:`DAS_METHODS`); ``selection``: overrides of the selection parameters (rule, δ) for the
    VAS/DAS; ``das_strategy``: override of ``params["das_strategy"]``.

    The artifact holds ``model.pt``, ``history.json`` (per epoch: loss, accuracies, seconds) and
    ``evaluation.json`` (per test set: accuracy, mean class accuracy, confusion matrix)."""
    seed = int(params["seed"] if seed is None else seed)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return _learner_cached(json.dumps(dict(params), sort_keys=True), backbone, train_on, mode, seed, das_method,
                           json.dumps(dict(selection or {}), sort_keys=True), das_strategy)


def _learner(params: Mapping[str, Any], backbone: str, train_on: str, mode: str, seed: int, das_method: str,
             selection_over: Mapping[str, Any], das_strategy: Optional[str]) -> Artifact:
    from .evaluate import evaluate
    from .train import fit_final

    strategy = das_strategy or params["das_strategy"]
    config: Dict[str, Any] = {"backbone": backbone, "train_on": train_on, "mode": mode, "seed": seed,
                              **pick(params, TRAIN_KEYS), "data": data_config(params, list(eval_targets_of(train_on)))}
    upstream: Dict[str, str] = {}
    vas = das = None
    if mode != "anchor":
        sel_params = {**dict(params), **dict(selection_over)}
        config.update(pick(sel_params, SELECT_KEYS))
        if mode == "anchor+VAS":
            sel = selection(params, backbone)
            upstream["selection"] = sel.key
            vas = auxiliary_samples(sel_params, backbone)
        else:
            d = distilled(sel_params, backbone, das_method)
            upstream["das"] = d.key
            config.update({"das_method": das_method, "das_strategy": strategy, "das_weight": params["das_weight"]})
            from .distill import load_das

            das = load_das(d.file("das.pt"))
    pre = face_pretraining(params, backbone)
    if pre is not None:
        upstream["face_pretraining"] = pre.key

    def compute(work: Path):
        model = initial_model(params, backbone, seed, pre)
        train = dataset(params, train_on, "train")
        history = fit_final(model, train, mode, vas=vas, das=das, seed=seed, device=device_of(params),
                            checkpoint_dir=work / "ckpt", das_strategy=strategy, das_weight=params["das_weight"],
                            **_fit_kwargs(params))
        models.save(model, work / "model.pt")
        evaluation = {}
        for name, test in eval_targets(params, train_on).items():
            res = evaluate(model, test, device=device_of(params))
            evaluation[name] = {"n": res["n"], "accuracy": res["accuracy"],
                                "mean_class_accuracy": res["mean_class_accuracy"],
                                "confusion": np.asarray(res["confusion"]).tolist()}
        _write_json(work / "history.json", history)
        _write_json(work / "evaluation.json", evaluation)
        summary = {"accuracy": {k: v["accuracy"] for k, v in evaluation.items()},
                   "seconds_per_epoch": float(np.mean([h["seconds"] for h in history])),
                   "train_images": int(len(train) + (len(vas) if vas is not None else 0)),
                   "device": describe_device(device_of(params))}
        if vas is not None:
            summary["vas_images"] = int(len(vas))
        return summary

    return store().get_or_compute("learner", config, compute, upstream=upstream, resumable=True)


def primitive_learner(params: Mapping[str, Any], backbone: str) -> Artifact:
    """The primitive learner of §3.2: the anchor-only learner with the master seed."""
    return learner(params, backbone, "anchor", seed=params["seed"], train_on=ANCHOR)


def load_model(artifact: Artifact, device=None):
    return models.load(artifact.file("model.pt"), device=device)


def history(artifact: Artifact) -> pd.DataFrame:
    return pd.DataFrame(json.loads(artifact.file("history.json").read_text()))


def evaluation(artifact: Artifact) -> Dict[str, Any]:
    return json.loads(artifact.file("evaluation.json").read_text())


# ----------------------------------------------------------------------------- selection (§3.3)
def selection(params: Mapping[str, Any], backbone: str) -> Artifact:
    """Scores of every pool sample against the primitive learner's class centroids (cached
    manifest). δ and the rule are *not* part of the key: :func:`auxiliary_samples` re-thresholds
    the manifest, so a new δ costs no feature extraction."""
    from .select import select_auxiliary

    prim = primitive_learner(params, backbone)
    config = {"backbone": backbone, "selection_batch_size": params["selection_batch_size"],
              "data": data_config(params, [ANCHOR, POOL])}

    def compute(work: Path):
        model = load_model(prim)
        summary = select_auxiliary(model, dataset(params, ANCHOR, "train"), dataset(params, POOL, "train"),
                                   delta=params["delta"], manifest_dir=work / "manifest",
                                   batch_size=params["selection_batch_size"], device=device_of(params),
                                   identity=prim.key)
        return {"pool": int(len(dataset(params, POOL, "train"))), "images_per_second": summary.to_dict().get(
            "images_per_second")}

    return store().get_or_compute("selection", config, compute, upstream={"primitive": prim.key}, resumable=True)


def selection_kwargs(params: Mapping[str, Any]) -> Dict[str, Any]:
    """The rule arguments of :func:`omnifer_lib.select.reselect` from the profile parameters."""
    return {"rule": params["selection_rule"], "delta": params["delta"],
            "softmax_threshold": params["softmax_threshold"], "per_class_k": params["per_class_k"],
            "class_quantile": params["class_quantile"], "per_class_cap": params["per_class_cap"]}


def manifest_dir(params: Mapping[str, Any], backbone: str) -> Path:
    return selection(params, backbone).path / "manifest"


def auxiliary_samples(params: Mapping[str, Any], backbone: str):
    """The vanilla auxiliary samples (VAS): pool samples accepted by the selection rule, with
    their pseudo-labels (an :class:`~omnifer_lib.select.AuxiliaryDataset`)."""
    from .select import AuxiliaryDataset

    return AuxiliaryDataset(dataset(params, POOL, "train"), manifest_dir(params, backbone),
                            **selection_kwargs(params))


# ----------------------------------------------------------------------------- distillation (§3.4)
def distilled(params: Mapping[str, Any], backbone: str, method: str = "algorithm1", source: str = "vas") -> Artifact:
    """Distilled auxiliary samples (DAS) of ``backbone``'s family (cached; ``das.pt`` and PNGs).

    ``method``: Algorithm 1 or a baseline (:data:`DAS_METHODS`). ``source``: ``"vas"`` (the
    selected auxiliary samples, as in the paper) or ``"anchor"`` (the labeled anchor training
    set; Fig. 4 shows both)."""
    from .distill import DistillConfig, DMConfig, distill, distribution_matching, export_das, mean_image, random_real

    if method not in DAS_METHODS:
        raise ValueError(f"method must be one of {DAS_METHODS}, got {method!r}")
    if source not in ("vas", "anchor"):
        raise ValueError(f"source must be 'vas' or 'anchor', got {source!r}")
    prim = primitive_learner(params, backbone)
    upstream = {"primitive": prim.key}
    config: Dict[str, Any] = {"backbone": backbone, "method": method, "source": source,
                              **pick(params, DISTILL_KEYS), "data": data_config(params, [ANCHOR, POOL]),
                              "seed": params["seed"]}
    if source == "vas":
        upstream["selection"] = selection(params, backbone).key
        config.update(pick(params, SELECT_KEYS))

    def compute(work: Path):
        real = auxiliary_samples(params, backbone) if source == "vas" else dataset(params, ANCHOR, "train")
        if len(real) == 0:
            raise ValueError(f"no auxiliary samples to distil: the selection (rule {params['selection_rule']}, "
                             f"delta {params['delta']}) accepted none; lower delta")
        model = load_model(prim)
        dev = device_of(params)
        n = params["images_per_class"]
        if method == "algorithm1":
            cfg = DistillConfig.from_params(params)
            result = distill(model, real, config=cfg, device=dev, checkpoint=work / "checkpoint.pt")
        elif method == "distribution_matching":
            result = distribution_matching(model, real, config=DMConfig(images_per_class=n,
                                                                        iterations=params["dm_iterations"],
                                                                        seed=params["seed"]), device=dev)
        elif method == "random_real":
            result = random_real(real, images_per_class=n, seed=params["seed"], step_size=params["eta0"])
        else:
            result = mean_image(real, images_per_class=n, seed=params["seed"], step_size=params["eta0"])
        export_das(result, work)
        if result.snapshots:  # §4.5 trains on the intermediate images; das.pt holds the final set only
            atomic_torch_save(result.snapshots, work / SNAPSHOTS_FILE)
        return {"method": method, "num_real": int(len(real)),
                "final_loss": float(result.loss_history[-1]) if result.loss_history else None,
                "step_sizes": [float(e) for e in result.step_sizes]}

    return store().get_or_compute("distilled", config, compute, upstream=upstream, resumable=True)


def load_distilled(artifact: Artifact):
    """The :class:`~omnifer_lib.distill.DistillResult` of a :func:`distilled` artifact, with its
    snapshots (intermediate distilled images) when the method kept any."""
    from .distill import load_das
    from .store import torch_load

    result = load_das(artifact.file("das.pt"))
    if artifact.file(SNAPSHOTS_FILE).is_file():
        result.snapshots = list(torch_load(artifact.file(SNAPSHOTS_FILE)))
    return result


# ----------------------------------------------------------------------------- CK+ k-fold (Table 3)
def kfold_learner(params: Mapping[str, Any], backbone: str, mode: str, fold: int, k: Optional[int] = None,
                  dataset_name: str = "ckplus") -> Dict[str, Any]:
    """One fold of the subject-independent k-fold protocol on CK+ (§4.2; Table 3): trained on the
    other folds (+ DAS), tested on this one. Returns ``{"accuracy", "n", "correct"}`` (cached)."""
    from .evaluate import accuracy, predict
    from .train import fit_final

    if mode not in ("anchor", "anchor+DAS"):
        raise ValueError("the paper runs CK+ only without auxiliary samples and with DAS (Table 3)")
    k = int(params["ckplus_folds"] if k is None else k)
    full = _kfold_source(params, dataset_name)
    folds = fdata.protocols.subject_kfold(full, k=k, seed=params["seed"])
    train, test = folds[fold]
    config = {"backbone": backbone, "mode": mode, "fold": fold, "k": k, "dataset": dataset_name,
              **pick(params, TRAIN_KEYS), "data": data_config(params, [dataset_name])}
    upstream: Dict[str, str] = {}
    das = None
    if mode == "anchor+DAS":
        d = distilled(params, backbone, "algorithm1")
        upstream["das"] = d.key
        config.update({"das_strategy": params["das_strategy"], "das_weight": params["das_weight"],
                       **pick(params, SELECT_KEYS)})
        das = load_distilled(d)
    pre = face_pretraining(params, backbone)
    if pre is not None:
        upstream["face_pretraining"] = pre.key

    def compute(work: Path):
        model = initial_model(params, backbone, params["seed"], pre)
        fit_final(model, train, mode, das=das, seed=params["seed"], device=device_of(params),
                  das_strategy=params["das_strategy"], das_weight=params["das_weight"], **_fit_kwargs(params))
        y_pred = predict(model, test, device=device_of(params))
        y_true = np.asarray(test.labels)
        return {"accuracy": float(accuracy(y_true, y_pred)), "n": int(len(y_true)),
                "correct": int((np.asarray(y_pred) == y_true).sum())}

    art = store().get_or_compute("kfold_learner", config, compute, upstream=upstream)
    return dict(art.meta["summary"])


def kfold_table(params: Mapping[str, Any], backbone: str, modes: Sequence[str] = ("anchor", "anchor+DAS"),
                dataset_name: str = "ckplus") -> pd.DataFrame:
    """Per-fold accuracies of the k-fold protocol (Table 3), one row per (mode, fold)."""
    rows = []
    for mode in modes:
        for fold in range(int(params["ckplus_folds"])):
            res = kfold_learner(params, backbone, mode, fold, dataset_name=dataset_name)
            rows.append({"backbone": backbone, "family": family(backbone), "mode": mode, "fold": fold, **res})
    return pd.DataFrame(rows)


def _kfold_source(params: Mapping[str, Any], name: str):
    if params["data_source"] == "synthetic":
        return dataset(params, name, "train")
    return dataset(params, name, "all")


# ----------------------------------------------------------------------------- result tables
def results_table(params: Mapping[str, Any], backbones: Sequence[str], modes: Sequence[str] = MODES, *,
                  train_on: str = ANCHOR, seeds: Optional[Sequence[int]] = None, das_method: str = "algorithm1",
                  selection_over: Optional[Mapping[str, Any]] = None, das_strategy: Optional[str] = None,
                  label: Optional[str] = None) -> pd.DataFrame:
    """One row per (backbone, mode, seed, test set): accuracy (%), mean class accuracy, seconds
    per epoch. Trains whatever is not cached yet."""
    rows = []
    for backbone in backbones:
        for mode in modes:
            for seed in (seeds if seeds is not None else params["seeds"]):
                art = learner(params, backbone, mode, seed=seed, train_on=train_on, das_method=das_method,
                              selection=selection_over, das_strategy=das_strategy)
                hist = history(art)
                for target, ev in evaluation(art).items():
                    rows.append({"backbone": backbone, "family": family(backbone), "mode": mode, "seed": seed,
                                 "train_on": train_on, "target": target, "accuracy": ev["accuracy"],
                                 "mean_class_accuracy": ev.get("mean_class_accuracy"),
                                 "seconds_per_epoch": float(hist["seconds"].mean()),
                                 "train_images": art.meta["summary"].get("train_images"),
                                 "das_method": das_method if mode == "anchor+DAS" else None,
                                 "variant": label})
    return pd.DataFrame(rows)
