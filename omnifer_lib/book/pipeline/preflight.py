"""Checks that stop a run at once, before any notebook starts, with a one-line reason."""
from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any, Mapping

from omnifer_lib import data as fdata
from omnifer_lib import models
from omnifer_lib.book.pipeline._common import PRETRAINED_WEIGHTS, REAL_DATASETS
from omnifer_lib.device import resolve_device
from omnifer_lib.names import DATASET_NAMES


def preflight(params: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the parameter when:

    * ``device`` names a device this machine does not have (``cuda`` without CUDA);
    * real data is asked for and a dataset root is missing, empty or in another layout
      (naming the dataset, the parameter and the expected layout);
    * a paper backbone's pretrained weights file is missing (naming where to put it) or does
      not match the digest in its name (torchvision's ``resnet34-b627a593.pth``).

    The profile's own checks (types, choices, ranges) ran when it was loaded."""
    check_device(params)
    if params.get("data_source") == "real":
        check_dataset_roots(params)
    for backbone in params.get("backbones", []):
        key = PRETRAINED_WEIGHTS.get(backbone)
        if key and params.get(key):
            try:
                models.resolve_weights_path(backbone, params[key])
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
    factory = fdata.REGISTRY[name][0]
    return getattr(import_module(factory.__module__), "LAYOUT", "").rstrip()


def check_dataset_roots(params: Mapping[str, Any]) -> None:
    """Every real dataset's root is set and holds its published layout (a quick look at the
    files the loader needs, no image is decoded)."""
    for name in REAL_DATASETS:
        key = f"{name}_root"
        root = params.get(key)
        if not root or not Path(root).is_dir():
            problem = "is not set" if not root else f"points at {root!r}, which is not a folder"
            raise ValueError(f"{DATASET_NAMES[name]} ({name}): parameter {key} {problem}; pass "
                             f"-p {key} /path/to/{name} pointing at a folder laid out as:\n{_layout(name)}")
        try:
            fdata.check_root(name, root)
        except (FileNotFoundError, ValueError) as exc:
            first, _, rest = str(exc).partition("\n")
            first = first[len(f"{name}: "):] if first.startswith(f"{name}: ") else first
            raise ValueError(f"{DATASET_NAMES[name]} ({name}): parameter {key}: {first}"
                             + (f"\n{rest}" if rest else "")) from None
