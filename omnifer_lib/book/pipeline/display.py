"""How tables and captions name backbones and the datasets playing the paper's roles."""
from __future__ import annotations

from typing import Any, Mapping

from omnifer_lib.names import DATASET_NAMES, display_backbone  # noqa: F401  (re-exported)


def role_description(params: Mapping[str, Any], name: str) -> str:
    """E.g. ``"RAF-DB — played by the synthetic 'rafdb' domain"`` or ``"RAF-DB (real, /data/raf)"``."""
    if params["data_source"] == "synthetic":
        return f"{DATASET_NAMES[name]} — played by the synthetic '{name}' domain"
    return f"{DATASET_NAMES[name]} (real data at {params.get(f'{name}_root')})"
