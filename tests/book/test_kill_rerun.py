"""`omnifer reproduce` killed with SIGKILL at the worst moments, then rerun to completion.

Each run is started in its own process group and the whole group is killed (``os.killpg``)
when the filesystem shows the run at one of these points: a learner in training (a
per-epoch checkpoint exists in its ``.work`` dir), the selection scoring the pool, Algorithm 1
distilling, and the notebook half executed in
``book/generated/.running/`` with no stage computing. The last rerun must succeed, leave no
``.work`` dir and no half-run notebook, and produce exactly what an uninterrupted run with
the same profile, overrides and seed produces on this machine: the same artifacts (files,
tensors, evaluations, summaries except timings) and the same tables in the executed notebook.

Chapter 04 alone covers the three resumable stages: it trains the primitive learner, selects
the auxiliary samples and distils them (several methods), so the test runs only that chapter.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest
import torch

from conftest import make_book_copy

pytestmark = pytest.mark.slow

CHAPTER = "04"
NOTEBOOK = "04_distillation.ipynb"
# Overrides applied to every run, the uninterrupted one included. They only shorten the chapter's
# own evaluation of the distilled sets (no stage computes it, so there is nothing to kill in it; it
# was half the chapter's time). The smoke profile's own values leave each kill point open long
# enough here: the learner's epoch-1 checkpoint stays in its .work dir through epoch 2 and the
# evaluation (seconds), the selection and the first Algorithm 1 run keep their .work dirs for about
# a second or more. Should a point be missed, widen it here, e.g. "-p epochs 4" or
# "-p distill_iterations 11" (Algorithm 1 checkpoints every 10 iterations, so 11 also makes the
# kill resume it from a checkpoint; the chapter gets slower).
OVERRIDES = ("-p", "distill_eval_inits", "1", "-p", "distill_sgd_epochs", "1")
POLL_S = 0.004
POINT_TIMEOUT_S = 300
RUN_TIMEOUT_S = 600
RUN_MARK = "OMNIFER_KILL_TEST_RUN"  # carried by every process of a run, the Jupyter kernel included

# Keys whose values are wall-clock measurements or dates, ignored when comparing results.
TIMING_KEY = re.compile(r"second|per_epoch|elapsed|duration|created|started|ended|timestamp|^time$", re.I)
# What of an artifact's meta.json must not depend on interruptions (not its dates, durations,
# or the hashes of files that record timings).
META_COMPARED = ("stage", "key", "version", "config", "upstream", "summary")
TIMING_COLUMN = re.compile(r"second|\(s\)|time|images/s|per epoch", re.I)


# --------------------------------------------------------------------------- running and killing
@dataclass
class Book:
    """An isolated copy of the book sources with its own artifact store."""

    root: Path
    cache: Path

    @property
    def running(self) -> Path:
        return self.root / "book" / "generated" / ".running"

    @property
    def generated(self) -> Path:
        return self.root / "book" / "generated"


def make_book(base: Path) -> Book:
    """A fresh book copy under ``base`` (``base/repo``) with the store ``base/cache``."""
    return Book(make_book_copy(base / "repo"), base / "cache")


def start_run(book: Book, log: Path) -> subprocess.Popen:
    """Start ``omnifer reproduce`` of chapter 04 (smoke profile, :data:`OVERRIDES`, no book build)
    in a new session, so that its process group id is its pid. Output goes to ``log``; every
    process of the run carries the environment variable :data:`RUN_MARK` with a fresh id
    (``proc.run_id``), which :func:`kill_run` uses to find processes outside the group."""
    run_id = uuid.uuid4().hex
    env = dict(os.environ, OMNIFER_CACHE=str(book.cache), OMNIFER_PROGRESS="0", **{RUN_MARK: run_id})
    cmd = [sys.executable, "-m", "omnifer_lib", "reproduce", "--profile", "smoke", "--no-build",
           "--only", CHAPTER, *OVERRIDES]
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, cwd=book.root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    proc.run_id = run_id  # type: ignore[attr-defined]
    return proc


def marked_processes(run_id: str) -> List[int]:
    """Pids of live processes whose environment carries ``RUN_MARK=run_id`` (found through
    ``/proc``, so also those that left the run's process group or lost their parent)."""
    needle = f"{RUN_MARK}={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours
            continue
    return found


def kill_run(proc: subprocess.Popen, timeout: float = 30.0) -> List[int]:
    """SIGKILL the run's whole process group at once (``os.killpg``), then any process of the run
    outside that group: jupyter_client starts the kernel, which does the stage work, in a session
    of its own, so the group kill alone leaves it running until it notices its parent is gone.
    Returns the pids that were killed outside the group (for the failure messages)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # the run had ended already
        pass
    outside: List[int] = []
    deadline = time.time() + timeout
    while True:
        left = [p for p in marked_processes(proc.run_id) if p != proc.pid]  # type: ignore[attr-defined]
        if not left:
            break
        if time.time() > deadline:
            raise AssertionError(f"processes {left} of the killed run are still alive after {timeout} s")
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
                outside.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    proc.wait(timeout=timeout)
    return sorted(set(outside))


def wait_for_point(proc: subprocess.Popen, probe: Callable[[], Optional[Path]],
                   timeout: float = POINT_TIMEOUT_S) -> Optional[Path]:
    """Poll ``probe()`` every :data:`POLL_S` seconds while ``proc`` runs; return the path it
    found, or ``None`` when the run ended (or ``timeout`` passed) before the point showed up."""
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        hit = probe()
        if hit is not None:
            return hit
        time.sleep(POLL_S)
    return None


def _first(paths) -> Optional[Path]:
    return next(iter(paths), None)


def work_dirs(book: Book) -> List[Path]:
    """Every ``<stage>/<key>.work`` dir of the book's store (unfinished stage results)."""
    return sorted(book.cache.glob("*/*.work")) if book.cache.is_dir() else []


def kill_points(book: Book) -> Dict[str, Callable[[], Optional[Path]]]:
    """The points to kill at, in the order a run reaches them, each a probe of the filesystem."""

    def training() -> Optional[Path]:
        """A learner is training and has written a per-epoch checkpoint into its .work dir."""
        return _first(book.cache.glob("learner/*.work/ckpt/fit.pt"))

    def selection() -> Optional[Path]:
        """The selection has started its manifest in its .work dir (scoring the pool)."""
        return _first(book.cache.glob("selection/*.work/manifest"))

    def distillation() -> Optional[Path]:
        """A distillation (the chapter's first: Algorithm 1 on the VAS) is computing in its .work dir."""
        return _first(book.cache.glob("distilled/*.work"))

    def notebook() -> Optional[Path]:
        """Papermill is writing the notebook into .running/, at least half its code cells are
        done, and no stage is computing (the kill hits the notebook, not a stage)."""
        running = book.running / NOTEBOOK
        if not running.is_file() or work_dirs(book):
            return None
        try:
            doc = json.loads(running.read_text())
        except (OSError, ValueError):  # being rewritten right now
            return None
        code = [c for c in doc["cells"] if c["cell_type"] == "code"]
        done = sum(c.get("metadata", {}).get("papermill", {}).get("status") == "completed" for c in code)
        return running if code and done >= len(code) // 2 else None

    return {"training": training, "selection": selection, "distillation": distillation, "notebook": notebook}


def finish(proc: subprocess.Popen, log: Path, what: str) -> None:
    """Wait for a run that must succeed; fail with the end of its log otherwise."""
    try:
        rc = proc.wait(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_run(proc)
        raise AssertionError(f"{what} did not finish in {RUN_TIMEOUT_S} s:\n{log.read_text()[-3000:]}") from None
    assert rc == 0, f"{what} exited with {rc}:\n{log.read_text()[-3000:]}"


# --------------------------------------------------------------------------- comparing results
def _drop_timing(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_timing(v) for k, v in obj.items() if not TIMING_KEY.search(str(k))}
    if isinstance(obj, (list, tuple)):
        return [_drop_timing(v) for v in obj]
    return obj


def _differences(a: Any, b: Any, where: str) -> List[str]:
    """Where two loaded objects (tensors, dicts, lists, numbers, ...) differ; exact comparison,
    NaN equal to NaN, timing keys ignored."""
    if isinstance(a, dict) and isinstance(b, dict):
        a, b = _drop_timing(a), _drop_timing(b)
        out = [f"{where}: keys {sorted(set(a) ^ set(b), key=str)} in one only"] if set(a) != set(b) else []
        for k in a.keys() & b.keys():
            out += _differences(a[k], b[k], f"{where}[{k!r}]")
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{where}[{i}]")]
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.dtype != b.dtype or a.shape != b.shape:
            return [f"{where}: tensor {a.dtype} {tuple(a.shape)} vs {b.dtype} {tuple(b.shape)}"]
        equal = a == b
        if a.is_floating_point() or a.is_complex():
            equal |= a.isnan() & b.isnan()
        return [] if bool(equal.all()) else [f"{where}: tensors differ in {int((~equal).sum())} of {a.numel()} values"]
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return []
    return [] if type(a) is type(b) and a == b else [f"{where}: {a!r} vs {b!r}"]


def _load(path: Path) -> Any:
    if path.suffix == ".json":
        return json.loads(path.read_text())
    if path.suffix == ".pt":
        return torch.load(path, map_location="cpu", weights_only=True)
    if path.suffix == ".npz":
        import numpy as np

        with np.load(path, allow_pickle=False) as z:
            return {k: torch.from_numpy(z[k].copy()) for k in z.files}
    return path.read_bytes()


def artifacts(book: Book) -> Dict[str, Path]:
    """The finished ``<stage>/<key>`` dirs of the store (lock files and .work dirs excluded)."""
    return {f"{p.parent.name}/{p.name}": p for p in sorted(book.cache.glob("*/*"))
            if p.is_dir() and not p.name.endswith(".work")}


def compare_stores(ref: Book, got: Book) -> List[str]:
    """Differences between two stores: the set of artifacts, the files in each, and every file's
    content (JSON and ``torch.load(weights_only=True)`` tensors compared exactly, timings
    ignored; ``meta.json``'s summary included)."""
    a, b = artifacts(ref), artifacts(got)
    problems = [f"artifacts only in the uninterrupted run: {sorted(a.keys() - b.keys())}",
                f"artifacts only in the killed-and-rerun run: {sorted(b.keys() - a.keys())}"] \
        if a.keys() != b.keys() else []
    for name in sorted(a.keys() & b.keys()):
        fa = {str(p.relative_to(a[name])) for p in a[name].rglob("*") if p.is_file()}
        fb = {str(p.relative_to(b[name])) for p in b[name].rglob("*") if p.is_file()}
        if fa != fb:
            problems.append(f"{name}: files only in the uninterrupted run {sorted(fa - fb)}, "
                            f"only in the rerun {sorted(fb - fa)}")
        for rel in sorted(fa & fb):
            ra, rb = _load(a[name] / rel), _load(b[name] / rel)
            if rel == "meta.json":  # its file table hashes checkpoints that record timings
                ra, rb = ({k: m.get(k) for k in META_COMPARED} for m in (ra, rb))
            problems += _differences(ra, rb, f"{name}/{rel}")
    return problems


class _Tables(HTMLParser):
    """The cells of the HTML tables of one output, as rows of text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: List[List[List[str]]] = []
        self._cell: Optional[List[str]] = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _without_timing_columns(table: List[List[str]]) -> List[List[str]]:
    header = table[0] if table else []
    drop = {i for i, h in enumerate(header) if TIMING_COLUMN.search(h)}
    return [[c for i, c in enumerate(row) if i not in drop] for row in table]


def notebook_results(path: Path, cache: Path) -> List[Any]:
    """What an executed notebook shows that must not depend on interruptions: printed text (the
    store's path replaced), glued values and the tables (timing columns dropped); figures and
    object reprs are left out."""
    doc = json.loads(path.read_text())
    text = lambda s: s if isinstance(s, str) else "".join(s)  # noqa: E731
    found: List[Any] = []
    for i, cell in enumerate(c for c in doc["cells"] if c["cell_type"] == "code"):
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                found.append((i, "stream", text(out["text"]).replace(str(cache), "<cache>")))
            elif out["output_type"] == "error":
                found.append((i, "error", out.get("ename"), out.get("evalue")))
            for mime, value in out.get("data", {}).items():
                if mime.startswith("application/papermill.record"):
                    found.append((i, mime, text(value) if isinstance(value, (str, list)) else value))
                elif mime == "text/html":
                    parser = _Tables()
                    parser.feed(text(value))
                    found += [(i, "table", _without_timing_columns(t)) for t in parser.tables]
    return found


def library_fingerprint() -> str:
    """Hash of omnifer_lib's sources: stage keys include the code's fingerprint, so an edit
    during the test gives the runs different keys and makes them incomparable."""
    import hashlib

    import omnifer_lib

    lib = Path(omnifer_lib.__file__).resolve().parent  # the copy the runs import
    h = hashlib.sha256()
    for f in sorted(lib.rglob("*")):
        if f.is_file() and f.suffix in (".py", ".yaml") and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(lib)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- the test
def test_reproduce_killed_at_each_stage_then_rerun_equals_an_uninterrupted_run(tmp_path):
    before = library_fingerprint()
    try:
        _kill_rerun_and_compare(tmp_path)
    except BaseException:
        if library_fingerprint() != before:
            pytest.fail("omnifer_lib/ was edited while this test ran: the runs before and after the edit "
                        "have different stage keys and cannot be compared; rerun the test (the original "
                        "failure is above)")
        raise


def _kill_rerun_and_compare(tmp_path: Path) -> None:
    ref, book = make_book(tmp_path / "uninterrupted"), make_book(tmp_path / "killed")
    ref_log, log = tmp_path / "uninterrupted.log", tmp_path / "killed.log"
    sidecar = book.generated / NOTEBOOK.replace(".ipynb", ".provenance.json")
    started: List[subprocess.Popen] = []

    # The uninterrupted run goes alongside the killed ones: the machine's two cores are shared
    # either way, and it takes the test's time from the sum of both to about the longer one.
    ref_proc = start_run(ref, ref_log)
    started.append(ref_proc)
    try:
        hits: Dict[str, Path] = {}
        for point, probe in kill_points(book).items():
            proc, t0 = start_run(book, log), time.time()
            started.append(proc)
            hit = wait_for_point(proc, probe)
            if hit is None:
                how = f"the run ended first (exit {proc.returncode})" if proc.poll() is not None else "timed out"
                kill_run(proc)
                pytest.fail(f"kill point {point!r} was never seen: {how}; killed so far at {sorted(hits)}. The "
                            "stage finished between two polls or no longer writes what the probe looks for: "
                            f"widen the window with OVERRIDES. Run log:\n{log.read_text()[-3000:]}")
            outside = kill_run(proc)
            hits[point] = hit
            assert proc.returncode == -signal.SIGKILL, (point, proc.returncode)
            # Killed mid-chapter: nothing of this chapter may look finished to a reader.
            assert not (book.generated / NOTEBOOK).exists(), f"half-run notebook published after the {point} kill"
            assert not sidecar.exists(), f"provenance of a half-run notebook written after the {point} kill"
            for work in work_dirs(book):
                assert not work.with_name(work.name[:-len(".work")]).exists(), \
                    f"{work} left beside its finished artifact after the {point} kill"
            with open(log, "a") as fh:
                fh.write(f"\n--- killed at {point} after {time.time() - t0:.1f} s: {hit} "
                         f"(and, outside the process group, pids {outside})\n")

        last = start_run(book, log)
        started.append(last)
        finish(last, log, "the rerun after the kills")
        finish(ref_proc, ref_log, "the uninterrupted run")
    finally:
        for proc in started:
            if proc.poll() is None:
                kill_run(proc)

    # The rerun finished everything the kills interrupted and published the chapter.
    assert list(hits) == list(kill_points(book))
    assert not work_dirs(book), f"unfinished stage dirs left after the rerun: {work_dirs(book)}"
    assert not list(book.running.glob("*")), f"left in .running/: {list(book.running.glob('*'))}"
    assert not (book.generated / "_failed").exists()
    assert json.loads((book.generated / NOTEBOOK).read_text())["metadata"]["omnifer"]["status"] == "ok"
    assert sidecar.is_file()
    assert not work_dirs(ref)

    problems = compare_stores(ref, book)
    assert not problems, "the killed-and-rerun store differs from the uninterrupted one:\n" + "\n".join(problems[:40])

    # The learner, the selection and the DAS specifically (the paper's numbers come from these).
    learners = [k for k in artifacts(ref) if k.startswith("learner/")]
    distilled = [k for k in artifacts(ref) if k.startswith("distilled/")]
    assert learners and distilled and any(k.startswith("selection/") for k in artifacts(ref))
    for key in learners:
        assert _load(ref.cache / key / "evaluation.json") == _load(book.cache / key / "evaluation.json"), key
    for key in distilled:
        assert not _differences(_load(ref.cache / key / "das.pt"), _load(book.cache / key / "das.pt"), key)
    for key in artifacts(ref):
        assert _drop_timing(_load(ref.cache / key / "meta.json")["summary"]) == \
            _drop_timing(_load(book.cache / key / "meta.json")["summary"]), key

    expected = notebook_results(ref.generated / NOTEBOOK, ref.cache)
    got = notebook_results(book.generated / NOTEBOOK, book.cache)
    assert any(kind == "table" for _, kind, *_ in expected)
    assert not [o for o in got if o[1] == "error"]
    differing = [(e, g) for e, g in zip(expected, got) if e != g]
    assert len(got) == len(expected) and not differing, \
        f"the notebook's outputs differ ({len(expected)} vs {len(got)} outputs); first: {differing[:2]}"
