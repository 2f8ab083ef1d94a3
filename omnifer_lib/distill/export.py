"""Write a distilled set so others can reuse it, and read it back.

Layout written by :func:`export_das` into ``out_dir``::

    das.pt              torch file (loadable with weights_only=True): images (n·C, 3, H, W)
                        float32, labels (n·C,) int64, step_sizes (T,) float32, label_names,
                        method, config (JSON-able dict), loss_history, step_size_history
    images/<class>_<k>.png   one 8-bit RGB PNG per image (k-th image of that class)

Every file is written atomically. The PNGs are for looking at and for reuse as ordinary
images; the tensors in ``das.pt`` are the exact values (PNG quantises to 1/255 and clips
to [0, 1]).
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Dict, List, Union

import torch

from ..files import atomic_torch_save, atomic_write_bytes, torch_load

from ..data._base import tensor_to_pil
from ..names import class_names
from .result import DistillResult

DAS_FILE = "das.pt"
IMAGE_DIR = "images"
_FORMAT = 1


def _png_bytes(image: torch.Tensor) -> bytes:
    """``(3, H, W)`` float in [0, 1] -> PNG bytes (values outside [0, 1] are clipped)."""
    buf = io.BytesIO()
    tensor_to_pil(image).save(buf, format="PNG")
    return buf.getvalue()


def _jsonable(config: Dict) -> Dict:
    """The config round-tripped through JSON (so only JSON types go into the torch file)."""
    return json.loads(json.dumps(config, default=str))


def export_das(result: DistillResult, out_dir: Union[str, Path]) -> Path:
    """Write ``result`` to ``out_dir`` (layout in the module docstring); returns the path of ``das.pt``.

    PNG names use the canonical class names, e.g. ``images/happy_0.png``.
    """
    out = Path(out_dir)
    names = class_names(result.num_classes)
    counts: Dict[int, int] = {}
    files: List[str] = []
    for image, label in zip(result.images, result.labels.tolist()):
        k = counts.get(label, 0)
        counts[label] = k + 1
        rel = f"{IMAGE_DIR}/{names[label]}_{k}.png"
        atomic_write_bytes(out / rel, _png_bytes(image))
        files.append(rel)
    payload = {
        "format": _FORMAT,
        "images": result.images.detach().cpu().float().contiguous(),
        "labels": result.labels.detach().cpu().long().contiguous(),
        "step_sizes": result.step_sizes.detach().cpu().float().contiguous(),
        "label_names": list(names),
        "method": result.method,
        "config": _jsonable(result.config),
        "loss_history": [float(v) for v in result.loss_history],
        "step_size_history": [[float(e) for e in row] for row in result.step_size_history],
        "png_files": files,
    }
    path = out / DAS_FILE
    atomic_torch_save(payload, path)
    return path


def load_das(path: Union[str, Path]) -> DistillResult:
    """Read a set written by :func:`export_das` (``path``: the ``das.pt`` file or its folder).

    Snapshots are not exported; everything else comes back as saved.
    """
    path = Path(path)
    if path.is_dir():
        path = path / DAS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no distilled set at {path}; expected a folder written by export_das "
                                f"containing {DAS_FILE} (and {IMAGE_DIR}/*.png)")
    data = torch_load(path)
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a distilled-set file of format {_FORMAT} (written by export_das)")
    return DistillResult(images=data["images"], labels=data["labels"], step_sizes=data["step_sizes"],
                         method=data["method"], config=dict(data["config"]),
                         loss_history=list(data["loss_history"]),
                         step_size_history=[list(r) for r in data["step_size_history"]])
