"""Cached pipeline stages shared by the notebooks (filled in as the stages land)."""
from __future__ import annotations

from typing import Any, Dict


def preflight(params: Dict[str, Any]) -> None:
    """Checks run before any notebook starts (dataset roots for real data)."""
    return None
