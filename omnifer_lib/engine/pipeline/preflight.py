"""Checks that stop a run at once, before any notebook starts, with a one-line reason."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Tuple

from omnifer_lib import data as fdata
from omnifer_lib import models
from omnifer_lib.engine.pipeline._common import (FOLDER, POOL, PRETRAINED_WEIGHTS, REAL_DATASETS, anchor_of,
                                               cross_targets_of, is_semi_supervised, pool_of)
from omnifer_lib.device import resolve_device
from omnifer_lib.data.registry import DATASET_NAMES


def preflight(params: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the parameter when:

    * ``device`` names a device this machine does not have (``cuda`` without CUDA);
    * real data is asked for and a dataset root is missing, empty or in another layout
      (naming the dataset, the parameter and the expected layout);
    * a paper backbone's pretrained weights file is missing (naming where to put it), does
      not match the digest in its name (torchvision's ``resnet34-b627a593.pth``), or cannot be
      read weights-only and mapped onto the backbone (:func:`omnifer_lib.models.check_weights`:
      a file that would run code when unpickled stops here, before any notebook starts).

    * the pool is ``anchor_rest`` and neither or both of ``labeled_fraction`` and
      ``labeled_per_class`` are set.

    The profile's own checks (types, choices, ranges) ran when it was loaded."""
    check_device(params)
    check_roles(params)
    if params.get("data_source") == "real" or pool_of(params) == FOLDER:
        check_dataset_roots(params)
    for backbone in params.get("backbones", []):
        key = PRETRAINED_WEIGHTS.get(backbone)
        if key and params.get(key):
            try:
                models.check_weights(backbone, params[key])
            except (FileNotFoundError, ValueError) as exc:
                raise ValueError(f"{backbone} (parameter {key}): {exc}") from None


def check_device(params: Mapping[str, Any]) -> None:
    device = params.get("device", "auto")
    try:
        resolve_device(device)
    except (ValueError, RuntimeError):
        raise ValueError(f"parameter 'device' is {device!r}, but torch sees no such device on this machine; "
                         "use -p device auto (CUDA when present, else CPU) or -p device cpu") from None


def _layout(name: str) -> str:
    return fdata.registry.layout_of(name)


def check_roles(params: Mapping[str, Any]) -> None:
    if not is_semi_supervised(params):
        return
    given = [k for k in ("labeled_fraction", "labeled_per_class") if params.get(k) is not None]
    if len(given) != 1:
        problem = "neither is set" if not given else "both are set"
        raise ValueError(f"pool 'anchor_rest' splits the anchor's train split by labeled_fraction or by "
                         f"labeled_per_class, and {problem}; give one, e.g. -p labeled_fraction 0.1 "
                         "(and -p labeled_per_class null)")


def datasets_needed(params: Mapping[str, Any]) -> Tuple[str, ...]:
    """The datasets a run of the profile reads: with the paper's roles all six; else the anchor,
    the pool (unless it is the anchor's rest), the cross targets, and MS-Celeb-1M when a backbone
    is face-pretrained on it. ``folder`` is the pool of unlabeled images at ``folder_root``."""
    if params.get("data_source") != "real":
        return (FOLDER,) if pool_of(params) == FOLDER else ()
    names = [anchor_of(params)]
    if not is_semi_supervised(params):
        names.append(pool_of(params))
    names += cross_targets_of(params)
    if "vgg_small" in params.get("backbones", ()) and int(params.get("pretrain_epochs") or 0) > 0:
        names.append(POOL)
    if anchor_of(params) == "rafdb" and pool_of(params) == POOL:
        names += REAL_DATASETS  # the paper's tables read every dataset
    return tuple(dict.fromkeys(names))


def check_dataset_roots(params: Mapping[str, Any]) -> None:
    """The root of every dataset the run reads (:func:`datasets_needed`) is set and holds its
    published layout (a quick look at the files the loader needs, no image is decoded)."""
    for name in datasets_needed(params):
        key = f"{name}_root"
        root = params.get(key)
        if not root or not Path(root).is_dir():
            problem = "is not set" if not root else f"points at {root!r}, which is not a folder"
            raise ValueError(f"{DATASET_NAMES.get(name, 'image folder')} ({name}): parameter {key} {problem}; pass "
                             f"-p {key} /path/to/{name} pointing at a folder laid out as:\n{_layout(name)}")
        try:
            fdata.check_root(name, root)
        except (FileNotFoundError, ValueError) as exc:
            first, _, rest = str(exc).partition("\n")
            first = first[len(f"{name}: "):] if first.startswith(f"{name}: ") else first
            raise ValueError(f"{DATASET_NAMES.get(name, 'image folder')} ({name}): parameter {key}: {first}"
                             + (f"\n{rest}" if rest else "")) from None
