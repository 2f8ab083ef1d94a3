"""How tables and captions name backbones and the datasets playing the paper's roles, and whether
figures may show this run's images."""
from __future__ import annotations

from typing import Any, Mapping

from omnifer_lib.data.registry import DATASET_NAMES  # noqa: F401  (re-exported)
from omnifer_lib.names import display_backbone  # noqa: F401  (re-exported)


def role_description(params: Mapping[str, Any], name: str) -> str:
    """E.g. ``"RAF-DB — played by the synthetic 'rafdb' domain"`` or ``"RAF-DB (real, /data/raf)"``;
    ``name`` may also be a pool role (``anchor_rest``, ``folder``)."""
    from omnifer_lib.engine.pipeline._common import ANCHOR_REST, FOLDER, anchor_of, is_semi_supervised, split_text

    if name == ANCHOR_REST:
        return f"the rest of the train split of {_described(params, anchor_of(params))}, labels hidden"
    if name == FOLDER:
        return f"unlabeled face images at {params.get('folder_root')}"
    if name == anchor_of(params) and is_semi_supervised(params):
        return f"{split_text(params)} of {_described(params, name)}"
    return _described(params, name)


def _described(params: Mapping[str, Any], name: str) -> str:
    if params["data_source"] == "synthetic":
        return f"{DATASET_NAMES[name]} — played by the synthetic '{name}' domain"
    return f"{DATASET_NAMES[name]} (real data at {params.get(f'{name}_root')})"


#: What a chapter prints instead of a figure of images that :func:`images_may_be_shown` withholds.
IMAGES_WITHHELD = ("This figure shows images of this run's data, which are real faces here: it is left out, since a "
                   "dataset's terms may forbid publishing its images or images made from them (set "
                   "show_real_images to true for data whose terms allow it). The numbers around it are unaffected.")


def images_may_be_shown(params: Mapping[str, Any]) -> bool:
    """Whether figures may show images of this run's data: always for the embedded synthetic faces,
    for real data (a real dataset, or a folder of faces as the pool) only with ``show_real_images``."""
    from omnifer_lib.engine.pipeline._common import FOLDER, pool_of

    synthetic = params["data_source"] == "synthetic" and pool_of(params) != FOLDER
    return synthetic or bool(params["show_real_images"])
