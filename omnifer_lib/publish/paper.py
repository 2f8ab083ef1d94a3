"""The paper's reported numbers (Tables 1–8), for showing beside this run's numbers.

The values are transcribed in ``paper_results.yaml``; a test checks each one against the
paper's text. Nothing here is ever used *as* a result of this project."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any, Dict, List, Optional

import yaml


@lru_cache(maxsize=1)
def _load() -> Dict[str, Any]:
    with resources.files("omnifer_lib.publish").joinpath("paper_results.yaml").open("r", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def table(number: int) -> Dict[str, Any]:
    """One of the paper's tables: ``{"title", "unit", "rows": [{"method", "value", ...}], ...}``."""
    tables = _load()["tables"]
    if str(number) not in tables:
        raise KeyError(f"the paper has Tables 1–8; got {number!r}")
    return tables[str(number)]


def rows(number: int) -> List[Dict[str, Any]]:
    return list(table(number)["rows"])


def value(number: int, method: str) -> float:
    """The paper's value of row ``method`` in Table ``number``."""
    for row in rows(number):
        if row["method"] == method:
            return float(row["value"])
    raise KeyError(f"Table {number} has no row {method!r}")


def reproduced_value(number: int, backbone: Optional[str] = None, mode: Optional[str] = None) -> Optional[float]:
    """The paper's value of the row this project reproduces as (backbone family, mode)."""
    for row in rows(number):
        rep = row.get("reproduced_as")
        if rep and rep.get("mode") == mode and rep.get("backbone") == backbone:
            return float(row["value"])
    return None


def counts() -> Dict[str, int]:
    return dict(_load()["counts"])
