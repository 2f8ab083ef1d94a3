"""Files the library writes and reads: atomic writes, safe torch loads, checkpoints, locks.

Infrastructure shared by the paper's method (``train``, ``select``, ``distill``, ``models``) and the
book's machinery (``omnifer_lib.publish``): nothing here depends on either.

* :func:`atomic_write_bytes` / :func:`atomic_torch_save` / :func:`write_json` write through a
  temporary name and a rename, so a reader never sees half a file and a run killed mid-write leaves
  the old file. Every JSON file the library writes goes through :func:`write_json`.
* :func:`torch_load` loads checkpoints and user-supplied weights with ``weights_only=True`` and
  names a damaged file; :func:`load_checkpoint_or_none` treats a damaged resume checkpoint as
  absent (reported), so the computation starts over instead of failing.
* :func:`lock_or_fail` holds a cross-platform file lock (``filelock``) or fails at once.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

from filelock import FileLock, Timeout


def _report(message: str) -> None:
    from ._progress import report

    report(message)
    print(f"omnifer: {message}", file=sys.stderr)


_VERIFIED: Dict[Tuple[str, int, int], str] = {}


def file_sha256(path: Union[str, os.PathLike]) -> str:
    """SHA-256 of a file (hex), computed once per process for an unchanged file."""
    path = Path(path)
    st = path.stat()
    memo = (str(path), st.st_size, st.st_mtime_ns)
    if memo not in _VERIFIED:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _VERIFIED[memo] = h.hexdigest()
    return _VERIFIED[memo]


@contextlib.contextmanager
def lock_or_fail(path: Union[str, os.PathLike], busy: Exception):
    """Hold an exclusive lock on the file ``path`` (any platform), or raise ``busy`` at once when
    another process holds it."""
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise busy from None
    try:
        yield
    finally:
        lock.release()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Union[str, os.PathLike], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def json_default(o: Any) -> Any:
    """JSON for what ``json`` cannot write: numpy scalars and arrays as numbers and lists; anything else
    is a ``TypeError`` (pass ``default=str`` to :func:`write_json` to write it as text)."""
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON: write numbers, text, lists and dicts")


def write_json(path: Union[str, os.PathLike], obj: Any, *, indent: Optional[int] = 1, sort_keys: bool = False,
               ensure_ascii: bool = True, newline: bool = False,
               default: Callable[[Any], Any] = json_default) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (:func:`atomic_write_bytes`). ``indent``,
    ``sort_keys`` and ``ensure_ascii`` are ``json.dumps``'s; ``newline`` ends the file with a line
    break; ``default`` turns what JSON cannot hold into what it can (:func:`json_default`)."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=ensure_ascii, default=default)
    atomic_write_bytes(path, (text + ("\n" if newline else "")).encode())


def atomic_torch_save(obj: Any, path: Union[str, os.PathLike]) -> None:
    """``torch.save`` through a temporary file and rename (checkpoints, state dicts)."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


class DamagedFileError(ValueError):
    """A file that should hold a torch checkpoint cannot be read (truncated, corrupted)."""


def torch_load(path: Union[str, os.PathLike], map_location: Any = "cpu") -> Any:
    """Load a checkpoint or user-supplied weights safely (``weights_only=True``).

    A file that exists but cannot be read as a torch file raises :class:`DamagedFileError`
    naming it (instead of the unpickler's own error)."""
    import pickle
    import zipfile

    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        if not Path(path).is_file():
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DamagedFileError(f"{path} cannot be read as a torch file, it is damaged or truncated ({first})") from None


def load_checkpoint_or_none(path: Union[str, os.PathLike]) -> Any:
    """A resumable stage's checkpoint, or ``None`` when there is none - or when it is damaged:
    that is reported, the file removed, and the caller starts over."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return torch_load(path)
    except DamagedFileError as exc:
        _report(f"{exc}; starting over without it")
        path.unlink(missing_ok=True)
        return None
