"""Executing the book's notebooks with papermill and building the Jupyter Book.

Chapter sources live in ``notebooks/`` as MyST Markdown notebooks (``NN_name.md``, read through
jupytext; a user's ``.ipynb`` works too): a ``parameters`` cell each, no outputs. Executed copies
go to ``book/generated/NN_name.ipynb``. A notebook is executed into ``book/generated/.running/``
and moved into place only when every cell succeeded, so the book never shows a half-run
notebook; a failed run is kept in ``book/generated/_failed/`` for inspection.

A chapter may declare in its front matter what a profile must give for it to make sense
(``omnifer: {needs: [paper_roles]}``: the paper's own datasets in their roles); under a profile that
does not, the runner writes a page saying so in one sentence instead of running it.

A notebook whose inputs did not change since its last successful run (its source, the
parameters injected into it, and the library's source code) is not executed again unless
``force=True``; the stages it calls are cached in the artifact store in any case.

``reproduce(jobs=N)`` runs N chapters side by side, each in its own worker process whose kernel
uses ``cpu_count // N`` threads. That pays where a second thread adds little to one kernel's work
(on the AMD EPYC of issue 14, vgg_small trained at ~840 images/s with one thread and ~900 with two)
and not where it already adds much (the development Xeon saved 5 %; ``benchmarks/README.md``,
"Learners side by side"). Chapters that need the same cached result do not compute it twice: the
artifact store's per-key lock makes the second wait for the first and then read it.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from omnifer_lib.engine import provenance, roles
from omnifer_lib.publish import config
from omnifer_lib.files import atomic_write_bytes, write_json

KERNEL_NAME = "omnifer"
NO_COMMIT = "none"  # OMNIFER_COMMIT when the book is not in a git checkout
# Parameters every notebook may declare that are not profile parameters.
RUNNER_PARAMETERS = ("profile", "overrides")


class RunnerError(RuntimeError):
    """A notebook could not be found or run; the message is one line for the CLI."""


class NotebookFailed(RunnerError):
    def __init__(self, notebook: str, cell: Optional[int], ename: str, evalue: str, kept: Path):
        self.notebook, self.cell, self.ename, self.evalue, self.kept = notebook, cell, ename, evalue, kept
        where = f"cell {cell}" if cell is not None else "a cell"
        first_line = (evalue or "").strip().splitlines()[0] if (evalue or "").strip() else ""
        super().__init__(f"notebook {notebook} failed in {where}: {ename}: {first_line} "
                         f"(executed notebook kept at {kept})")

    def __reduce__(self):  # raised in a worker process of reproduce(jobs=N), re-raised here
        return (NotebookFailed, (self.notebook, self.cell, self.ename, self.evalue, self.kept))


def repo_root() -> Path:
    """The project root: the folder holding ``_config.yml`` and ``notebooks/``.

    Searched upwards from the working directory, then from this file (editable install)."""
    for start in (Path.cwd().resolve(), Path(__file__).resolve().parents[1]):
        for folder in (start, *start.parents):
            if (folder / "_config.yml").is_file() and (folder / "notebooks").is_dir():
                return folder
    raise RunnerError("cannot find the omnifer repository (a folder with _config.yml and notebooks/); "
                      "run this command from inside your clone")


@dataclass
class Paths:
    root: Path

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def generated(self) -> Path:
        return self.root / "book" / "generated"

    @property
    def running(self) -> Path:
        return self.generated / ".running"

    @property
    def failed(self) -> Path:
        return self.generated / "_failed"

    @property
    def html_index(self) -> Path:
        return self.root / "_build" / "html" / "index.html"


SOURCE_SUFFIXES = (".md", ".ipynb")


def list_notebooks(paths: Paths) -> List[Path]:
    """Chapter sources in dependency order (their names start with a two-digit number)."""
    return sorted(p for p in paths.notebooks.iterdir()
                  if p.suffix in SOURCE_SUFFIXES and p.is_file() and not p.name.startswith("."))


def resolve_notebook(paths: Paths, name: str) -> Path:
    """Accept ``notebooks/03_x.md``, ``03_x.md``, ``03_x.ipynb`` (the executed copy's name), ``03_x``
    or ``03``."""
    candidates = list_notebooks(paths)
    given = Path(name)
    if given.suffix in SOURCE_SUFFIXES and given.is_file() and given.resolve().parent == paths.notebooks.resolve():
        return given.resolve()
    stem = given.stem if given.suffix in SOURCE_SUFFIXES else given.name
    matches = [p for p in candidates if p.stem == stem] or [p for p in candidates if p.stem.split("_")[0] == stem]
    if len(matches) == 1:
        return matches[0]
    names = ", ".join(p.name for p in candidates)
    raise RunnerError(f"notebook {name!r} not found in {paths.notebooks}; available: {names}")


def read_notebook(path: Path):
    """The chapter as an ``nbformat`` notebook (MyST Markdown through jupytext, or ``.ipynb``)."""
    import jupytext

    try:
        return jupytext.read(str(path))
    except Exception as exc:  # jupytext raises several kinds for a malformed file
        raise RunnerError(f"cannot read notebook {path.name}: {exc}") from None


def notebook_parameters(path: Path) -> Dict[str, Any]:
    """Names (and literal defaults, else ``None``) assigned in a notebook's ``parameters`` cell."""
    import ast

    cells = [c for c in read_notebook(path).cells
             if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        return {}
    try:
        tree = ast.parse(cells[0].source)
    except SyntaxError as exc:
        raise RunnerError(f"the parameters cell of {path.name} is not valid Python: {exc}") from None
    declared: Dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    try:
                        declared[target.id] = ast.literal_eval(node.value) if node.value is not None else None
                    except ValueError:
                        declared[target.id] = None
    return declared


def _library_hash() -> str:
    return provenance.tree_hash(Path(__file__).resolve().parents[1])


def inputs_hash(path: Path, profile: str, injected: Mapping[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(path.read_bytes())
    h.update(json.dumps({"profile": profile, "parameters": injected}, sort_keys=True, default=str).encode())
    h.update(_library_hash().encode())
    return h.hexdigest()[:16]


def ensure_kernel() -> str:
    """Make the ``omnifer`` kernel name resolve to this interpreter, whatever else is registered.

    A kernelspec is written under ``<sys.prefix>/share/omnifer/jupyter`` and that folder is put
    first on ``JUPYTER_PATH`` for this process (and the kernels it starts)."""
    base = Path(sys.prefix) / "share" / "omnifer" / "jupyter"
    spec_dir = base / "kernels" / KERNEL_NAME
    # Errors only: where the kernel still talks over local TCP (no Unix sockets, see
    # kernel_manager_class) its warning on every start buried the progress lines of `omnifer reproduce`.
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                     "--IPKernelApp.log_level=ERROR"],
            "display_name": "omnifer (.venv)", "language": "python",
            "metadata": {"debugger": False}}
    target = spec_dir / "kernel.json"
    text = json.dumps(spec, indent=1)
    if not target.is_file() or target.read_text() != text:
        spec_dir.mkdir(parents=True, exist_ok=True)
        write_json(target, spec, indent=1)
    current = os.environ.get("JUPYTER_PATH", "")
    if str(base) not in current.split(os.pathsep):
        os.environ["JUPYTER_PATH"] = os.pathsep.join([str(base)] + ([current] if current else []))
    return KERNEL_NAME


def kernel_manager_class(socket_dir: Path) -> Optional[type]:
    """A kernel manager whose kernel talks over Unix sockets in ``socket_dir``, or ``None``
    where the platform has none (Windows: papermill's default, TCP on localhost, is kept).

    Over IPC a chapter runs where TCP on localhost does not: in a network namespace without a
    loopback interface (a sandbox, some CI runners) the TCP kernel never answers and papermill gives
    up after 60 s with "Kernel didn't respond". Nothing is sent unencrypted over a network port
    either. ``socket_dir`` should have a short path: a Unix socket's path holds at most ~100 bytes."""
    if os.name != "posix":
        return None
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self) -> str:
            return "ipc"

        @default("ip")
        def _ip_default(self) -> str:  # the sockets are <ip>-<port>
            return str(socket_dir / "kernel")

    return IPCKernelManager


@dataclass
class RunResult:
    notebook: str
    output: Path
    skipped: bool
    seconds: float
    record: Dict[str, Any] = field(default_factory=dict)
    #: why the chapter was not run under this profile (its ``needs``), or None
    not_applicable: Optional[str] = None


#: What a chapter may list under ``omnifer: needs:`` in its front matter, and the test of each.
NEEDS = {"paper_roles": roles.paper_roles}


def unmet_needs(nb: Path, params: Mapping[str, Any], profile: str) -> Optional[str]:
    """One sentence saying why chapter ``nb`` does not run with ``params`` (what its front matter's
    ``omnifer: needs:`` asks that the profile does not give), or ``None`` when it runs."""
    needs = (read_notebook(nb).metadata.get("omnifer") or {}).get("needs") or []
    unknown = [n for n in needs if n not in NEEDS]
    if unknown:
        raise RunnerError(f"{nb.name}: unknown needs {unknown} in its front matter; known: {', '.join(NEEDS)}")
    if "paper_roles" in needs and not roles.paper_roles(params):
        return (f"This chapter reproduces the paper's own tables, which need its datasets in their roles (anchor "
                f"RAF-DB, pool MS-Celeb-1M); profile '{profile}' plays anchor {roles.anchor_of(params)!r} and pool "
                f"{roles.pool_of(params)!r}, so it is not run here.")
    return None


def _not_applicable_notebook(title: str, reason: str) -> bytes:
    import nbformat

    doc = nbformat.v4.new_notebook()
    doc.cells.append(nbformat.v4.new_markdown_cell(f"# {title}\n\n{reason}\n"))
    doc.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nbformat.writes(doc).encode()


def _sidecar(paths: Paths, nb: Path) -> Path:
    return paths.generated / f"{nb.stem}.provenance.json"


def executed_path(paths: Paths, nb: Path) -> Path:
    """Where the executed copy of chapter ``nb`` goes (``book/generated/NN_name.ipynb``)."""
    return paths.generated / f"{nb.stem}.ipynb"


def plan_parameters(nb: Path, profile: str, overrides: Mapping[str, Any]) -> Dict[str, Any]:
    """Parameters to inject into ``nb``.

    Every notebook declares ``profile`` and ``overrides`` (a dict) and, by name, the profile
    parameters it is about. It receives the profile's (or the overridden) value of each name it
    declares, ``profile``, and in ``overrides`` every other override, so that all notebooks of
    a run see the same parameters and share the same cached stages.
    Raises :class:`config.ProfileError` for unknown names or bad values."""
    declared = notebook_parameters(nb)
    specs = config.parameter_specs()
    missing = [n for n in RUNNER_PARAMETERS if n not in declared]
    if missing:
        raise RunnerError(f"{nb.name} must declare {missing} in its parameters cell "
                          "(profile = 'demo' and overrides = {})")
    undeclared = [n for n in declared if n not in specs and n not in RUNNER_PARAMETERS]
    if undeclared:
        raise RunnerError(f"{nb.name} declares parameters {undeclared} that no profile defines; "
                          "declare them in omnifer_lib/publish/profiles/parameters.yaml")
    values = config.load_profile(profile, overrides)
    injected: Dict[str, Any] = {k: values[k] for k in declared if k in values}
    injected["profile"] = profile
    injected["overrides"] = {k: v for k, v in overrides.items() if k not in declared}
    return injected


@contextlib.contextmanager
def _environment(values: Mapping[str, Optional[str]]):
    """Set (or, for ``None``, unset) environment variables for the kernels started inside."""
    saved = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _ProgressTail:
    """Print the progress lines a notebook's kernel writes to its events file, as they come."""

    def __init__(self, path: Path, prefix: str, log: Callable[[str], None]):
        self.path, self.prefix, self.log = path, prefix, log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._offset = 0

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()  # the loop wakes at once when stopped; then the last lines, once
        self._drain()

    def _drain(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except OSError:
            return
        complete = chunk[:chunk.rfind(b"\n") + 1]  # a line still being written waits for the next look
        self._offset += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            self.log(f"{self.prefix}{line}")

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._drain()


def _read_artifact_log(path: Path) -> List[Dict[str, Any]]:
    """The artifacts a notebook read, one entry per key (computed wins over reused)."""
    seen: Dict[str, Dict[str, Any]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        prev = seen.get(entry["key"])
        if prev is None or (entry.get("computed") and not prev.get("computed")):
            seen[entry["key"]] = entry
    return list(seen.values())


def run_notebook(nb: Path, *, profile: str = config.DEFAULT_PROFILE, overrides: Optional[Mapping[str, Any]] = None,
                 paths: Optional[Paths] = None, force: bool = False,
                 progress_bar: bool = False, log: Optional[Callable[[str], None]] = None,
                 datasets: Optional[Mapping[str, Any]] = None) -> RunResult:
    """Execute one notebook with papermill into ``book/generated/``; see module docstring.

    ``log``: where the progress lines of the stages the notebook runs go as they happen
    (e.g. ``print``; ``None``: nowhere). ``datasets``: the dataset fingerprints for the
    provenance, when the caller computed them already (one walk of each root per run)."""
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    paths = paths or Paths(repo_root())
    overrides = dict(overrides or {})
    injected = plan_parameters(nb, profile, overrides)
    digest = inputs_hash(nb, profile, injected)
    out = executed_path(paths, nb)
    sidecar = _sidecar(paths, nb)
    effective = config.load_profile(profile, overrides)
    reason = unmet_needs(nb, effective, profile)
    if reason is not None:
        git = provenance.git_state(paths.root)
        now = provenance.now_iso()
        rec = provenance.record(notebook=nb.name, profile=profile, parameters=effective, overrides=overrides,
                                repo=paths.root, started=now, ended=now, seconds=0.0, status="not applicable",
                                inputs_hash=digest, git=git, datasets=datasets)
        paths.generated.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, _not_applicable_notebook(_title_of(nb), reason))
        write_json(sidecar, rec, indent=2, default=str)
        return RunResult(nb.name, out, skipped=False, seconds=0.0, record=rec, not_applicable=reason)
    if not force and out.is_file() and sidecar.is_file():
        previous = json.loads(sidecar.read_text())
        if previous.get("inputs_hash") == digest and previous.get("status") == "ok":
            return RunResult(nb.name, out, skipped=True, seconds=0.0, record=previous)

    paths.running.mkdir(parents=True, exist_ok=True)
    running = paths.running / out.name
    artifact_log = paths.running / f"{nb.stem}.artifacts.jsonl"
    events = paths.running / f"{nb.stem}.progress.log"
    for f in (artifact_log, events):
        f.unlink(missing_ok=True)
    kernel = ensure_kernel()
    git = provenance.git_state(paths.root)
    env = {"OMNIFER_PROGRESS": "0", "OMNIFER_NOTEBOOK": nb.stem, "OMNIFER_ARTIFACT_LOG": str(artifact_log),
           "OMNIFER_EVENTS": str(events) if log is not None else None,
           "OMNIFER_COMMIT": git.get("commit") or NO_COMMIT, "OMNIFER_DIRTY": "1" if git.get("dirty") else "0"}
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    started, t0 = provenance.now_iso(), time.time()
    status, error = "ok", None
    prefix = f"    {nb.stem.split('_')[0]} | "
    tail = _ProgressTail(events, prefix, log) if log is not None else contextlib.nullcontext()
    with _environment(env), tail, tempfile.TemporaryDirectory(prefix="omnifer-kernel-") as sockets:
        manager = kernel_manager_class(Path(sockets))
        try:
            papermill.execute_notebook(read_notebook(nb), str(running), parameters=injected, kernel_name=kernel,
                                       cwd=str(paths.root), progress_bar=progress_bar, log_output=False,
                                       report_mode=False, **({"kernel_manager_class": manager} if manager else {}))
        except PapermillExecutionError as exc:
            status, error = "failed", exc
        except Exception as exc:  # kernel died, notebook unreadable, ...
            status, error = "failed", exc
    seconds = time.time() - t0
    rec = provenance.record(notebook=nb.name, profile=profile, parameters=effective, overrides=overrides,
                            repo=paths.root, started=started, ended=provenance.now_iso(), seconds=seconds,
                            status=status, inputs_hash=digest, git=git,
                            artifacts=_read_artifact_log(artifact_log), datasets=datasets)
    for f in (artifact_log, events):
        f.unlink(missing_ok=True)
    if running.is_file():
        doc = nbformat.read(str(running), as_version=4)
        doc.metadata["omnifer"] = rec
        _hide_injected_parameters(doc)
        atomic_write_bytes(running, nbformat.writes(doc).encode())
    if status != "ok":
        paths.failed.mkdir(parents=True, exist_ok=True)
        kept = paths.failed / out.name
        if running.is_file():
            os.replace(running, kept)
        cell = getattr(error, "exec_count", None)
        raise NotebookFailed(nb.name, cell, getattr(error, "ename", type(error).__name__),
                             getattr(error, "evalue", str(error)), kept)
    os.replace(running, out)
    write_json(sidecar, rec, indent=2, default=str)
    stale = paths.failed / out.name
    if stale.is_file():
        stale.unlink()
    return RunResult(nb.name, out, skipped=False, seconds=seconds, record=rec)


def _hide_injected_parameters(doc: Any) -> None:
    """Collapse the parameter cells in the rendered book (they are shown on the
    Reproducibility page instead)."""
    for cell in doc.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags or "parameters" in tags:
            if "hide-input" not in tags:
                tags.append("hide-input")
            cell.metadata["tags"] = tags


def threads_per_job(jobs: int, cpus: Optional[int] = None) -> int:
    """Threads for each of ``jobs`` kernels side by side: the CPUs shared out, at least one."""
    return max(1, (cpus or os.cpu_count() or 1) // max(1, jobs))


def _run_in_worker(nb: Path, threads: int, kwargs: Dict[str, Any]) -> RunResult:
    """One chapter in a worker process of :func:`reproduce`; its kernel inherits the thread count."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    return run_notebook(nb, **kwargs)


def _print_flush(line: str) -> None:
    print(line, flush=True)  # a worker's stdout is a pipe under make: lines must not wait in a buffer


def _done_line(res: RunResult, profile: str) -> str:
    if res.not_applicable:
        return f"not run under profile '{profile}': it needs the paper's roles"
    return "up to date, not rerun" if res.skipped else f"done in {res.seconds:.1f} s"


def reproduce(*, profile: str = config.DEFAULT_PROFILE, overrides: Optional[Mapping[str, Any]] = None,
              only: Sequence[str] = (), force: bool = False, build: bool = True,
              log: Callable[[str], None] = print, preflight: Optional[Callable[[Dict[str, Any]], None]] = None,
              quiet: bool = False, jobs: int = 1) -> List[RunResult]:
    """Run the notebooks (all, or ``only`` those named) in dependency order, then build the book.

    Overrides may name any profile parameter; each notebook receives those it declares.
    ``preflight(params)`` runs first (e.g. checks dataset roots) and may raise. The stages'
    progress lines go to ``log`` as they happen unless ``quiet``. ``jobs``: chapters run side by
    side (see the module docstring); results are returned in notebook order, and the first failure
    stops new chapters from starting and is raised once the running ones finished. One run at a time
    holds the artifact store: a second one started meanwhile says so and waits."""
    if jobs < 1:
        raise RunnerError(f"jobs must be at least 1, got {jobs}")
    paths = Paths(repo_root())
    overrides = dict(overrides or {})
    params = config.load_profile(profile, overrides)  # validates names, types and ranges first
    if preflight is not None:
        preflight(params)
    notebooks = [resolve_notebook(paths, n) for n in only] if only else list_notebooks(paths)
    total = len(notebooks)
    from omnifer_lib.engine.store import Store

    with Store().run_lock("this run", log=log):
        datasets = provenance.dataset_fingerprints(params)
        t_all = time.time()
        kwargs = dict(profile=profile, overrides=overrides, paths=paths, force=force, datasets=datasets)
        if jobs == 1:
            results = []
            for i, nb in enumerate(notebooks, 1):
                log(f"[{i}/{total}] {nb.stem} ...")
                res = run_notebook(nb, progress_bar=quiet and sys.stderr.isatty(), log=None if quiet else log,
                                   **kwargs)
                log(f"[{i}/{total}] {nb.stem}: {_done_line(res, profile)}")
                results.append(res)
        else:
            results = _run_side_by_side(notebooks, jobs, dict(kwargs, log=None if quiet else _print_flush), log,
                                        profile)
        log(f"notebooks finished in {time.time() - t_all:.1f} s" + (f" ({jobs} side by side)" if jobs > 1 else ""))
        if build:
            build_book(paths, log=log)
    return results


def _run_side_by_side(notebooks: List[Path], jobs: int, kwargs: Dict[str, Any], log: Callable[[str], None],
                      profile: str) -> List[RunResult]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    threads = threads_per_job(jobs)
    log(f"running {len(notebooks)} notebooks, {jobs} side by side ({threads} thread(s) each)")
    order = {nb: i for i, nb in enumerate(notebooks, 1)}
    results: Dict[Path, RunResult] = {}
    failure: Optional[BaseException] = None
    # spawn, not fork: the workers must not inherit this process's threads or torch state
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = {}
        queue = list(notebooks)
        while queue or pending:
            while queue and len(pending) < jobs and failure is None:
                nb = queue.pop(0)
                log(f"[{order[nb]}/{len(notebooks)}] {nb.stem} ...")
                pending[pool.submit(_run_in_worker, nb, threads, kwargs)] = nb
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                nb = pending.pop(fut)
                try:
                    res = fut.result()
                except BaseException as exc:  # the first failure wins; the others finish
                    log(f"[{order[nb]}/{len(notebooks)}] {nb.stem}: failed")
                    failure = failure or exc
                    continue
                results[nb] = res
                log(f"[{order[nb]}/{len(notebooks)}] {nb.stem}: {_done_line(res, profile)}")
    if failure is not None:
        raise failure
    return [results[nb] for nb in notebooks]


# --------------------------------------------------------------------------- the book
PLACEHOLDER = """# {title}

This chapter has not been run yet. Run it with

```bash
omnifer run notebooks/{name}
```

or run the whole book with `make book` (`omnifer reproduce`).
"""


def _placeholder_notebook(title: str, name: str) -> bytes:
    import nbformat

    doc = nbformat.v4.new_notebook()
    doc.cells.append(nbformat.v4.new_markdown_cell(PLACEHOLDER.format(title=title, name=name)))
    doc.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "omnifer", "language": "python"}
    return nbformat.writes(doc).encode()


def _title_of(nb: Path) -> str:
    for cell in read_notebook(nb).cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return nb.stem


def prepare_book(paths: Paths) -> None:
    """Placeholders for chapters not run yet, and the Reproducibility page."""
    from omnifer_lib.publish.reproducibility import write_reproducibility_page

    paths.generated.mkdir(parents=True, exist_ok=True)
    for nb in list_notebooks(paths):
        out = executed_path(paths, nb)
        if not out.is_file():
            atomic_write_bytes(out, _placeholder_notebook(_title_of(nb), nb.name))
    write_reproducibility_page(paths.generated, [nb.stem for nb in list_notebooks(paths)])
    (paths.root / ".vendor" / "static").mkdir(parents=True, exist_ok=True)


def build_book(paths: Optional[Paths] = None, *, log: Callable[[str], None] = print) -> Path:
    """Build the Jupyter Book (offline, warnings as errors) and return ``_build/html/index.html``."""
    paths = paths or Paths(repo_root())
    prepare_book(paths)
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(paths.root), "--warningiserror",
           "--keep-going", "--quiet"]
    log("building the book: " + " ".join(cmd[1:]))
    proc = subprocess.run(cmd, cwd=paths.root, capture_output=True, text=True)
    if proc.returncode != 0 or not paths.html_index.is_file():
        # Sphinx's warnings (the usual cause under -W) come first, without colour codes.
        lines = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + "\n" + proc.stderr).strip().splitlines()
        warnings = [ln for ln in lines if "WARNING" in ln or "ERROR" in ln]
        tail = "\n".join(warnings + [ln for ln in lines[-25:] if ln not in warnings])
        raise RunnerError(f"the book build failed (exit {proc.returncode}):\n{tail}")
    log(f"book built: {paths.html_index}")
    return paths.html_index
