"""Content-addressed artifact store for pipeline stages.

Each stage result lives in ``<root>/<stage>/<key>/``. The key is a stable hash of

* the stage name (and a ``version``),
* exactly the configuration fields the stage depends on,
* the keys of its upstream artifacts, and
* the fingerprint of the library code the stage runs (``code``; see
  :mod:`omnifer_lib.engine.fingerprint`: the modules the stage names and everything of
  ``omnifer_lib`` they import, comments and docstrings aside).

So a rerun with a changed selection margin δ reuses the primitive learner and recomputes
only what depends on δ; an edit to code a stage runs (``train.fit``, a data loader, the
selection rule) gives that stage and everything downstream new keys, so they are recomputed
and a cached result is never older than the code that made it; an edit to code no stage runs
(plots, reporting, claims, notebooks, the CLI) reuses everything. ``omnifer cache ls`` marks
artifacts whose code has changed since (stale: no current run can reach them) and
``omnifer cache clear --stale`` removes them.

Writes are atomic: the stage computes into ``<key>.work/`` and the directory is renamed
to ``<key>/`` only after ``compute`` returned and ``meta.json`` was written. A run killed
at any moment leaves at most a ``.work`` directory, which is never read as a result (a
stage may use it to resume, e.g. from training checkpoints). Two processes asking for
the same key serialise on a lock file (``filelock``, on every platform): the second waits and
then reads the first's result instead of computing it again.

``meta.json`` lists every file of the artifact with its size and SHA-256. A finished artifact
whose files no longer match (truncated, corrupted, deleted) is reported, removed and computed
again; it is never loaded silently.

Under ``torchrun`` (a ``torch.distributed`` process group of several ranks), every rank calls
:meth:`Store.get_or_compute` in the same order and computes together (the stage's ``fit``,
selection or distillation split the work); rank 0 holds the lock, owns ``<key>.work/`` and
writes the result; every other rank computes in a private ``<key>.work/.rank<r>/`` in which the
stage's ``shared`` paths (checkpoints, selection shards) are links into rank 0's folder, and reads
the result from disk once rank 0 has written it (a rank's private folder never enters the result).

When ``$OMNIFER_ARTIFACT_LOG`` names a file, every artifact handed out is appended to it as a
JSON line (stage, key, computed now or reused, who made it): the notebook runner lists them in
each chapter's provenance.

The root is ``$OMNIFER_CACHE`` if set, else ``.omnifer/`` in the current repository
(the directory holding ``pyproject.toml``, searched upwards from the working directory),
else ``~/.cache/omnifer``.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from filelock import FileLock, Timeout

from omnifer_lib.files import _fsync_dir, _report, file_sha256, lock_or_fail, write_json

META = "meta.json"
ARTIFACT_LOG_ENV = "OMNIFER_ARTIFACT_LOG"
RUN_LOCK = ".run.lock"
WORK_RECORD = ".work.json"  # beside <key>.work/: what the unfinished work is for (stage, code)


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
                 version: int = 1, code: Optional[str] = None) -> str:
    """Stable 16-hex-digit key for a stage result (same inputs -> same key, any machine).
    ``code`` is the fingerprint of the code the stage runs (``None``: not part of the key)."""
    payload: Dict[str, Any] = {"stage": stage, "version": version, "config": _canonical(config),
                               "upstream": _canonical(dict(upstream or {}))}
    if code is not None:
        payload["code"] = code
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


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


# (path, size, mtime_ns) -> sha256 of files checked in this process: verify each file once
#: files larger than this are verified on every read by size and the SHA-256 of their first and
#: last MiB (a full hash of a multi-GB checkpoint per notebook would cost more than the notebook)
FULL_HASH_MAX_BYTES = 64 << 20


def key_for(stage: str, config: Mapping[str, Any], *, upstream: Optional[Mapping[str, str]] = None,
            version: int = 1, code: Optional[Mapping[str, Any]] = None, **_compute_only: Any) -> str:
    """The key :meth:`Store.get_or_compute` files a result under, for the same keyword arguments
    (those that only matter to computing, e.g. ``resumable``, are ignored)."""
    return artifact_key(stage, config, upstream, version, code=(code or {}).get("fingerprint"))


def _sample_sha256(path: Path) -> str:
    """SHA-256 of the first and the last MiB of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        fh.seek(max(path.stat().st_size - (1 << 20), 0))
        h.update(fh.read(1 << 20))
    return h.hexdigest()


def _file_table(folder: Path) -> Dict[str, List[Any]]:
    """``{relative path: [size, sha256, sha256 of the first and last MiB]}`` of every file under
    ``folder`` but ``meta.json``."""
    table = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.name != META:
            table[f.relative_to(folder).as_posix()] = [f.stat().st_size, file_sha256(f), _sample_sha256(f)]
    return table


def _remove_temporaries(folder: Path) -> None:
    """Delete what killed writers left behind: ``atomic_write_bytes``'s ``.<name>.<pid>.tmp``
    and a ``meta.json.tmp`` (when ``compute`` has returned, nothing else writes here)."""
    for f in folder.rglob("*.tmp"):
        if f.is_file() and (f.name.startswith(".") or f.name == META + ".tmp"):
            f.unlink()


def verify_files(folder: Path, table: Mapping[str, Sequence[Any]]) -> Optional[str]:
    """``None`` when every file of ``table`` is in ``folder`` with its size and SHA-256 (for files
    over :data:`FULL_HASH_MAX_BYTES`, that of their first and last MiB), else what is wrong with the
    first one that is not."""
    for rel, (size, digest, *sample) in table.items():
        f = folder / rel
        if not f.is_file():
            return f"{rel} is missing"
        actual = f.stat().st_size
        if actual != size:
            return f"{rel} has {actual} bytes, {size} were written" + (" (truncated)" if actual < size else "")
        if size > FULL_HASH_MAX_BYTES and sample:
            if _sample_sha256(f) != sample[0]:
                return f"{rel} does not match the SHA-256 recorded when it was written (corrupted)"
        elif file_sha256(f) != digest:
            return f"{rel} does not match the SHA-256 recorded when it was written (corrupted)"
    return None


def _creator() -> Dict[str, Any]:
    """Which code made an artifact, and where: the commit the notebook runner announced, else the
    git state of the library's own folder (``None`` outside a git checkout), and the machine
    (processor, torch threads, torch and numpy versions: :func:`~omnifer_lib.engine.provenance.machine`)."""
    from omnifer_lib.engine.provenance import git_state, machine

    announced = os.environ.get("OMNIFER_COMMIT")
    if announced == "none":  # the runner's book is not in a git checkout
        code: Dict[str, Any] = {"commit": None, "dirty": None}
    elif announced:
        code = {"commit": announced, "dirty": os.environ.get("OMNIFER_DIRTY") == "1"}
    else:
        code = git_state(Path(__file__).resolve().parents[1])
    return {**code, "machine": machine()}


def _rank_and_world() -> Tuple[int, int]:
    """This process's (rank, world size) in a running torch.distributed group, else (0, 1)."""
    import sys

    if "torch" not in sys.modules:  # a process that never imported torch runs no process group (and the
        return 0, 1                 # store must not import it: the CLI's cache commands stay fast)
    from omnifer_lib.distributed import is_running, rank_and_world

    return rank_and_world(is_running())


def _rank_work(work: Path, rank: int, shared: Sequence[str]) -> Path:
    """Rank ``rank``'s private work folder inside ``work``, with each ``shared`` path a link into ``work``."""
    mine = work / f".rank{rank}"
    shutil.rmtree(mine, ignore_errors=True)
    mine.mkdir()
    for name in shared:
        (mine / name.rstrip("/")).symlink_to((work / name.rstrip("/")).resolve())
    return mine


def _log_access(art: Artifact) -> None:
    log = os.environ.get(ARTIFACT_LOG_ENV)
    if not log:
        return
    line = json.dumps({"stage": art.stage, "key": art.key, "computed": art.computed,
                       "created": art.meta.get("created"), "created_by": art.meta.get("created_by"),
                       "code": (art.meta.get("code") or {}).get("fingerprint")})
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


class StoreBusyError(RuntimeError):
    """A maintenance step was asked for while a run holds the store."""


def _code_stale(record: Mapping[str, Any]) -> Optional[str]:
    """Why the code recorded in an artifact's (or a lineage entry's) ``code`` is not the code on
    disk now; ``None`` when it is."""
    from omnifer_lib.engine.fingerprint import changed_modules

    code = record.get("code")
    if not code:
        return "made before code-aware keys (no code fingerprint)"
    changed = [m.replace("omnifer_lib.", "") for m in changed_modules(code)]
    return f"code changed: {', '.join(changed)}" if changed else None


class Store:
    """An artifact store rooted at ``root`` (see module docstring for the default)."""

    def __init__(self, root: Optional[Union[str, os.PathLike]] = None):
        self.root = Path(root) if root is not None else default_root()

    def _dir(self, stage: str, key: str) -> Path:
        if not stage or "/" in stage or stage.startswith("."):
            raise ValueError(f"invalid stage name {stage!r}")
        return self.root / stage / key

    @contextlib.contextmanager
    def _locked(self, stage: str, key: str):
        final = self._dir(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(final.parent / f"{key}.lock")):
            yield final

    def _read(self, stage: str, key: str) -> Tuple[Optional[Artifact], Optional[str]]:
        """``(artifact, None)``, ``(None, None)`` when there is none, or ``(None, problem)``
        when a finished artifact is there but damaged."""
        path = self._dir(stage, key)
        if not path.is_dir():
            return None, None
        meta_file = path / META
        if not meta_file.is_file():
            return None, f"{META} is missing"
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return None, f"{META} is unreadable ({exc.__class__.__name__})"
        problem = verify_files(path, meta.get("files", {}))
        if problem:
            return None, problem
        return Artifact(stage, key, path, meta, computed=False), None

    def _discard(self, stage: str, key: str, problem: str) -> None:
        path = self._dir(stage, key)
        _report(f"cached artifact {stage}/{key} is damaged: {problem}; removing it, it will be computed again")
        trash = path.with_name(f"{key}.damaged")
        if trash.exists():
            shutil.rmtree(trash)
        os.replace(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def _get_locked(self, stage: str, key: str) -> Optional[Artifact]:
        """:meth:`get` for a caller that holds the key's lock (the lock is not re-entrant)."""
        found, problem = self._read(stage, key)
        if problem:
            self._discard(stage, key, problem)
        return found

    def get(self, stage: str, key: str) -> Optional[Artifact]:
        """The finished artifact, or ``None`` when the store has none under that key (a
        damaged one is reported and removed)."""
        found, problem = self._read(stage, key)
        if problem:
            with self._locked(stage, key):
                return self._get_locked(stage, key)
        return found

    def find(self, key: str) -> Optional[Artifact]:
        """The finished artifact with this key, whatever its stage (files not verified)."""
        if not self.root.is_dir():
            return None
        for stage_dir in self.root.iterdir():
            meta_file = stage_dir / key / META
            if meta_file.is_file():
                try:
                    return Artifact(stage_dir.name, key, meta_file.parent, json.loads(meta_file.read_text()), False)
                except (OSError, ValueError):
                    return None
        return None

    def _lineage(self, upstream: Mapping[str, str]) -> Dict[str, Any]:
        """``{key: {"stage", "code"}}`` of every artifact upstream of one with these upstream
        keys, transitively: staleness can be judged even after an upstream was removed."""
        out: Dict[str, Any] = {}
        for key in upstream.values():
            art = self.find(key)
            if art is None:
                continue
            out.update(art.meta.get("lineage") or {})
            out[key] = {"stage": art.stage, "code": art.meta.get("code")}
        return out

    def lookup(self, stage: str, key: str) -> Optional[Artifact]:
        """:meth:`get`, recorded in the run's artifact log like a read of :meth:`get_or_compute`."""
        found = self.get(stage, key)
        if found is not None:
            _log_access(found)
        return found

    def get_or_compute(self, stage: str, config: Mapping[str, Any],
                       compute: Callable[[Path], Optional[Mapping[str, Any]]], *,
                       upstream: Optional[Mapping[str, str]] = None, version: int = 1,
                       resumable: bool = False, code: Optional[Mapping[str, Any]] = None,
                       scratch: Sequence[str] = (), shared: Sequence[str] = ()) -> Artifact:
        """Return the artifact for (stage, config, upstream, code), computing it if needed.

        ``compute(work_dir)`` writes the result's files into ``work_dir`` and may return a
        dict of JSON-able summary values, stored in ``meta.json`` under ``"summary"``.
        With ``resumable=True`` a ``work_dir`` left by an interrupted run is handed to
        ``compute`` as it is (e.g. to resume from checkpoints in it); otherwise it is
        emptied first. ``code``: a :func:`omnifer_lib.engine.fingerprint.code_fingerprint` of what
        ``compute`` runs; its fingerprint is part of the key and the record is kept in
        ``meta.json`` (``omnifer cache ls`` judges staleness from it). ``scratch``: paths in
        ``work_dir`` that only serve resuming (checkpoints), removed once ``compute`` succeeded.
        ``shared``: paths in ``work_dir`` every rank of a distributed run reads or writes (besides
        ``scratch``; a name ending in ``/`` is a folder, which rank 0 makes before the ranks start).
        If ``compute`` raises, no entry is created and the exception propagates.
        """
        key = key_for(stage, config, upstream=upstream, version=version, code=code)
        record = dict(stage=stage, key=key, config=config, upstream=upstream, version=version, code=code,
                      scratch=scratch)
        rank, world = _rank_and_world()
        if world > 1:
            return self._get_or_compute_ranks(record, compute, rank, resumable, (*scratch, *shared))
        found = self.lookup(stage, key)
        if found is not None:
            return found
        with self._locked(stage, key) as final:
            found = self._get_locked(stage, key)  # another process may have finished meanwhile
            if found is not None:
                _log_access(found)
                return found
            work, lineage = self._open_work(record, final, resumable)
            started = time.time()
            summary = compute(work)
            return self._commit(record, final, work, lineage, summary, started)

    def _open_work(self, record: Mapping[str, Any], final: Path, resumable: bool) -> Tuple[Path, Dict[str, Any]]:
        """``<key>.work/`` (emptied unless ``resumable``) and the lineage, with the record of what the
        unfinished work is for beside it; the caller holds the key's lock."""
        key, code = record["key"], record["code"]
        work = final.parent / f"{key}.work"
        if work.exists() and not resumable:
            shutil.rmtree(work)
        work.mkdir(exist_ok=True)
        lineage = self._lineage(record["upstream"] or {})
        pending = {"stage": record["stage"], "key": key, "code": dict(code) if code else None, "lineage": lineage}
        write_json(final.parent / f"{key}{WORK_RECORD}", pending, indent=None, default=str)
        return work, lineage

    def _commit(self, record: Mapping[str, Any], final: Path, work: Path, lineage: Dict[str, Any],
                summary: Optional[Mapping[str, Any]], started: float) -> Artifact:
        """Turn a finished ``work`` into the artifact ``final`` (atomically); the caller holds the lock."""
        stage, key, code, upstream = record["stage"], record["key"], record["code"], record["upstream"]
        for private in work.glob(".rank*"):  # left by a rank of a distributed run that was killed
            shutil.rmtree(private, ignore_errors=True)
        for rel in record["scratch"]:
            target = work / rel
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        _remove_temporaries(work)
        meta = {
            "stage": stage, "key": key, "version": record["version"],
            "config": _canonical(record["config"]), "upstream": dict(upstream or {}),
            "code": dict(code) if code else None, "lineage": lineage,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "created_by": _creator(),
            "seconds": round(time.time() - started, 3),
            "summary": summary or {},
            "files": _file_table(work),
        }
        write_json(work / META, meta, indent=2, default=str)
        _fsync_dir(work)
        os.replace(work, final)  # atomic on POSIX; final cannot exist (we hold the lock)
        _fsync_dir(final.parent)
        (final.parent / f"{key}{WORK_RECORD}").unlink(missing_ok=True)
        art = Artifact(stage, key, final, meta, computed=True)
        _log_access(art)
        return art

    def _get_or_compute_ranks(self, record: Mapping[str, Any], compute: Callable[[Path], Optional[Mapping[str, Any]]],
                              rank: int, resumable: bool, shared: Sequence[str]) -> Artifact:
        """:meth:`get_or_compute` with every rank of the process group (module docstring)."""
        import torch.distributed as dist

        stage, key = record["stage"], record["key"]
        with contextlib.ExitStack() as held:
            box: List[Any] = [None]
            if rank == 0:
                final = held.enter_context(self._locked(stage, key))
                found = self._get_locked(stage, key)
                if found is None:
                    work, lineage = self._open_work(record, final, resumable)
                    for name in shared:
                        if name.endswith("/"):
                            (work / name).mkdir(parents=True, exist_ok=True)
                box[0] = "found" if found is not None else str(work)
            dist.broadcast_object_list(box, src=0)
            if box[0] != "found":
                mine = work if rank == 0 else _rank_work(Path(box[0]), rank, shared)
                started = time.time()
                summary = compute(mine)
                if rank != 0:
                    shutil.rmtree(mine, ignore_errors=True)
                dist.barrier()  # every rank is done with the shared paths
                if rank == 0:
                    found = self._commit(record, final, work, lineage, summary, started)
            dist.barrier()  # rank 0 has written the artifact (or found it)
        if rank != 0:
            found = self.get(stage, key)
            if found is None:
                raise RuntimeError(f"rank {rank}: rank 0 did not leave the {stage} artifact {key} in {self.root}; "
                                   "every rank needs the same cache folder ($OMNIFER_CACHE on a shared file system)")
        elif box[0] == "found":
            _log_access(found)  # rank 0 only: one line per artifact in the log, not one per rank
        return found

    def entries(self) -> Iterator[Artifact]:
        """Every finished artifact, sorted by stage then creation time (files not verified)."""
        if not self.root.is_dir():
            return
        found: List[Artifact] = []
        for stage_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for entry in stage_dir.iterdir():
                if entry.is_dir() and "." not in entry.name:
                    try:
                        meta = json.loads((entry / META).read_text())
                    except (OSError, ValueError):
                        continue
                    found.append(Artifact(stage_dir.name, entry.name, entry, meta, computed=False))
        yield from sorted(found, key=lambda a: (a.stage, a.meta.get("created", "")))

    def stale_reasons(self, entries: Optional[Sequence[Artifact]] = None) -> Dict[str, Optional[str]]:
        """``{key: reason or None}``: why each artifact is stale against the code on disk now -
        the code it ran changed, it predates code-aware keys, or an upstream artifact is stale.
        A stale artifact can never be reached again by a run of the current code."""
        from omnifer_lib.engine.fingerprint import clear_caches

        clear_caches()
        arts = list(self.entries()) if entries is None else list(entries)
        own: Dict[str, Optional[str]] = {}
        for art in arts:
            own[art.key] = _code_stale(art.meta)
        by_key = {a.key: a for a in arts}

        def reason(key: str, seen: frozenset) -> Optional[str]:
            if own.get(key):
                return own[key]
            for up, rec in (by_key[key].meta.get("lineage") or {}).items():
                why = _code_stale(rec)
                if why:
                    return f"upstream {rec.get('stage')} {up}: {why}"
            for name, up in by_key[key].meta.get("upstream", {}).items():
                if up in by_key and up not in seen and reason(up, seen | {key}):
                    return f"upstream {name} {up} is stale"
            return None

        return {a.key: reason(a.key, frozenset()) for a in arts}

    def unfinished(self) -> List[Tuple[Path, Optional[str]]]:
        """``(work dir, reason it is stale or None)`` of every unfinished computation (a run killed
        or failed mid-stage leaves one; a rerun of the same code resumes from it)."""
        out = []
        if not self.root.is_dir():
            return out
        for stage_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for work in sorted(stage_dir.glob("*.work")):
                record = work.with_name(work.name[:-len(".work")] + WORK_RECORD)
                try:
                    pending = json.loads(record.read_text())
                except (OSError, ValueError):
                    out.append((work, "no record of the code it was made by"))
                    continue
                why = _code_stale(pending)
                for up, rec in (pending.get("lineage") or {}).items():
                    why = why or (f"upstream {rec.get('stage')} {up}: {_code_stale(rec)}" if _code_stale(rec) else None)
                out.append((work, why))
        return out

    def size_bytes(self, artifact: Artifact) -> int:
        return sum(f.stat().st_size for f in artifact.path.rglob("*") if f.is_file())

    def clear(self, stage: Optional[str] = None, stale: bool = False) -> int:
        """Remove every artifact (or those of one stage, or only the stale ones), partial work
        included unless ``stale``. Returns the number of finished artifacts removed."""
        if not self.root.is_dir():
            return 0
        with self._idle():
            if stale:
                arts = [a for a in self.entries() if stage is None or a.stage == stage]
                reasons = self.stale_reasons(list(self.entries()))
                doomed = [a for a in arts if reasons.get(a.key)]
                for art in doomed:
                    with self._locked(art.stage, art.key):
                        shutil.rmtree(art.path, ignore_errors=True)
                for work, why in self.unfinished():
                    if why and (stage is None or work.parent.name == stage):
                        shutil.rmtree(work, ignore_errors=True)
                        work.with_name(work.name[:-len(".work")] + WORK_RECORD).unlink(missing_ok=True)
                return len(doomed)
            n = sum(1 for a in self.entries() if stage is None or a.stage == stage)
            targets = [self.root / stage] if stage else [p for p in self.root.iterdir()]
            for t in targets:
                if t.is_dir():
                    shutil.rmtree(t)
                elif t.exists() and t.name != RUN_LOCK:
                    t.unlink()
            return n

    def _idle(self):
        """Hold the run lock for a maintenance step; :class:`StoreBusyError` while a run holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        return lock_or_fail(self.root / RUN_LOCK, StoreBusyError(
            f"an omnifer run is using the artifact store {self.root}; clear it when the run has finished "
            "(or stop the run first)"))

    @contextlib.contextmanager
    def run_lock(self, what: str, log: Callable[[str], None] = print):
        """Hold the store for one run (``omnifer reproduce`` / ``run``): a second run on the same
        store says that it waits, then waits until the first has finished."""
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.root / RUN_LOCK))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log(f"another omnifer run is using the artifact store {self.root}; {what} waits until it has finished")
            lock.acquire()
        try:
            yield
        finally:
            lock.release()


