"""One progress-bar helper for the whole library.

Long loops (training epochs, feature extraction over a pool, distillation steps) show a
tqdm bar on a terminal. Bars are switched off when ``OMNIFER_PROGRESS=0`` is set, which the
notebook runner does so that executed notebooks in the book are not cluttered by them.
"""
from __future__ import annotations

import os
from typing import Iterable, Optional, TypeVar

from tqdm import tqdm  # not tqdm.auto: notebooks run with bars off, and auto wants ipywidgets

T = TypeVar("T")


def progress_enabled(enable: Optional[bool] = None) -> bool:
    """Whether bars are shown: ``enable`` if given, else the ``OMNIFER_PROGRESS`` variable."""
    if enable is not None:
        return bool(enable)
    return os.environ.get("OMNIFER_PROGRESS", "1").lower() not in {"0", "false", "no", "off"}


def progress(iterable: Optional[Iterable[T]] = None, *, desc: str = "", total: Optional[int] = None,
             enable: Optional[bool] = None, leave: bool = False, **kwargs) -> "tqdm":
    """Wrap ``iterable`` in a tqdm bar (or a disabled one: same interface, no output)."""
    return tqdm(iterable, desc=desc, total=total, disable=not progress_enabled(enable),
                leave=leave, dynamic_ncols=True, **kwargs)
