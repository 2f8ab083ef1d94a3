"""The size and modification time of every source file of the package, as it was imported.

Cached results are keyed by the source on disk (:mod:`omnifer_lib.engine.fingerprint`); a file
edited after this process imported the package would be keyed by code that is not the code
running. ``omnifer_lib/__init__`` records the stamps when the package is imported, so that the
fingerprint can refuse such a file. Standard library only: the paper's method imports nothing
of the book's machinery, and this module is the part of it the package needs at import time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

#: source path -> (size in bytes, modification time in ns) when the package was imported
STAMPS: Dict[str, Tuple[int, int]] = {}


def record() -> None:
    """Remember every source file's size and modification time (once per process)."""
    if STAMPS:
        return
    for path in Path(__file__).resolve().parent.rglob("*.py"):
        st = path.stat()
        STAMPS[str(path)] = (st.st_size, st.st_mtime_ns)
