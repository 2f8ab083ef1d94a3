"""Content-addressed artifact store for pipeline stages.

Each stage result lives in ``<root>/<stage>/<key>/`` where ``key`` is a stable hash of the
stage name, the stage's version, exactly the configuration fields the stage depends on,
and the keys of its upstream artifacts. So a rerun with a changed selection margin δ
reuses the primitive learner and recomputes only what depends on δ.

Writes are atomic: the stage computes into ``<key>.work/`` and the directory is renamed
to ``<key>/`` only after ``compute`` returned and ``meta.json`` was written. A run killed
at any moment leaves at most a ``.work`` directory, which is never read as a result (a
stage may use it to resume, e.g. from training checkpoints). Two processes asking for
the same key serialise on a lock file: the second waits and then reads the first's
result instead of computing it again.

The root is ``$OMNIFER_CACHE`` if set, else ``.omnifer/`` in the current repository
(the directory holding ``pyproject.toml``, searched upwards from the working directory),
else ``~/.cache/omnifer``.
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Union

META = "meta.json"


def default_root() -> Path:
    env = os.environ.get("OMNIFER_CACHE")
    if env:
        return Path(env).expanduser()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "omnifer_lib").is_dir():
            return folder / ".omnifer"
    return Path.home() / ".cache" / "omnifer"


def _canonical(value: Any) -> Any:
    """JSON-ready canonical form: dict keys sorted, tuples as lists, paths as strings,
    floats normalised so that 1 and 1.0 hash alike."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return repr(value)
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot hash config value {value!r} of type {type(value).__name__}; "
                    "use str, int, float, bool, None, lists or dicts of them")


def artifact_key(stage: str, config: Mapping[str, Any], upstream: Optional[Mapping[str, str]] = None,
                 version: int = 1) -> str:
    """Stable 16-hex-digit key for a stage result (same inputs -> same key, any machine)."""
    payload = json.dumps({"stage": stage, "version": version, "config": _canonical(config),
                          "upstream": _canonical(dict(upstream or {}))},
                         sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Artifact:
    """A finished stage result: its directory and metadata."""

    stage: str
    key: str
    path: Path
    meta: Dict[str, Any]
    computed: bool  # True when this call computed it, False when it was read from the store

    def file(self, name: str) -> Path:
        return self.path / name


class Store:
    """An artifact store rooted at ``root`` (see module docstring for the default)."""

    def __init__(self, root: Optional[Union[str, os.PathLike]] = None):
        self.root = Path(root) if root is not None else default_root()

    def _dir(self, stage: str, key: str) -> Path:
        if not stage or "/" in stage or stage.startswith("."):
            raise ValueError(f"invalid stage name {stage!r}")
        return self.root / stage / key

    def get(self, stage: str, key: str) -> Optional[Artifact]:
        """The finished artifact, or ``None`` when the store has none under that key."""
        path = self._dir(stage, key)
        meta_file = path / META
        if not meta_file.is_file():
            return None
        return Artifact(stage, key, path, json.loads(meta_file.read_text()), computed=False)

    def get_or_compute(self, stage: str, config: Mapping[str, Any],
                       compute: Callable[[Path], Optional[Mapping[str, Any]]], *,
                       upstream: Optional[Mapping[str, str]] = None, version: int = 1,
                       resumable: bool = False) -> Artifact:
        """Return the artifact for (stage, config, upstream), computing it if needed.

        ``compute(work_dir)`` writes the result's files into ``work_dir`` and may return a
        dict of JSON-able summary values, stored in ``meta.json`` under ``"summary"``.
        With ``resumable=True`` a ``work_dir`` left by an interrupted run is handed to
        ``compute`` as it is (e.g. to resume from checkpoints in it); otherwise it is
        emptied first.
        If ``compute`` raises, no entry is created and the exception propagates.
        """
        key = artifact_key(stage, config, upstream, version)
        found = self.get(stage, key)
        if found is not None:
            return found
        final = self._dir(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        lock_path = final.parent / f"{key}.lock"
        with open(lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                found = self.get(stage, key)  # another process may have finished meanwhile
                if found is not None:
                    return found
                work = final.parent / f"{key}.work"
                if work.exists() and not resumable:
                    shutil.rmtree(work)
                work.mkdir(exist_ok=True)
                started = time.time()
                summary = compute(work)
                meta = {
                    "stage": stage, "key": key, "version": version,
                    "config": _canonical(config), "upstream": dict(upstream or {}),
                    "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    "seconds": round(time.time() - started, 3),
                    "summary": summary or {},
                }
                tmp_meta = work / (META + ".tmp")
                tmp_meta.write_text(json.dumps(meta, indent=2, default=str))
                os.replace(tmp_meta, work / META)
                _fsync_dir(work)
                os.replace(work, final)  # atomic on POSIX; final cannot exist (we hold the lock)
                _fsync_dir(final.parent)
                return Artifact(stage, key, final, meta, computed=True)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def entries(self) -> Iterator[Artifact]:
        """Every finished artifact, sorted by stage then creation time."""
        if not self.root.is_dir():
            return
        found: List[Artifact] = []
        for stage_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for entry in stage_dir.iterdir():
                if entry.is_dir() and not entry.name.endswith(".work"):
                    art = self.get(stage_dir.name, entry.name)
                    if art is not None:
                        found.append(art)
        yield from sorted(found, key=lambda a: (a.stage, a.meta.get("created", "")))

    def size_bytes(self, artifact: Artifact) -> int:
        return sum(f.stat().st_size for f in artifact.path.rglob("*") if f.is_file())

    def clear(self, stage: Optional[str] = None) -> int:
        """Remove every artifact (or those of one stage), partial work included.
        Returns the number of finished artifacts removed."""
        if not self.root.is_dir():
            return 0
        n = sum(1 for a in self.entries() if stage is None or a.stage == stage)
        targets = [self.root / stage] if stage else [p for p in self.root.iterdir()]
        for t in targets:
            if t.is_dir():
                shutil.rmtree(t)
            elif t.exists():
                t.unlink()
        return n


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


def atomic_torch_save(obj: Any, path: Union[str, os.PathLike]) -> None:
    """``torch.save`` through a temporary file and rename (checkpoints, state dicts)."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def torch_load(path: Union[str, os.PathLike], map_location: Any = "cpu") -> Any:
    """Load a checkpoint or user-supplied weights safely (``weights_only=True``)."""
    import torch

    return torch.load(path, map_location=map_location, weights_only=True)
