"""Code fingerprints: one hash of the library source a cached stage runs.

A pipeline stage names the modules it executes (its *roots*, e.g. ``pipeline.learners``);
:func:`code_fingerprint` follows every ``import`` of ``omnifer_lib`` in them, transitively,
and hashes the source of each module reached. The artifact store puts that hash into the
stage's key, so editing code a stage runs gives the stage a new key (it is recomputed, and
so is everything downstream, whose keys hold this one), while editing code it never runs
(plots, reporting, claims, notebooks, the CLI) changes nothing.

The rules, in the order they apply:

* Imports are followed by name: ``from ..select import select_auxiliary`` reaches
  ``select/stream.py`` (where ``select/__init__.py`` takes the name from), not every module
  of ``select``; ``from . import data`` (a package used by attribute) reaches
  ``data/__init__.py`` and all it imports. Imports inside functions count too.
* Modules of ``omnifer_lib.engine.pipeline`` are hashed only where a stage names them as roots:
  the code of an upstream stage already reaches a key through the upstream stage's key.
* :data:`NEVER_HASHED` modules move bytes or draw progress bars and cannot change a result
  (the artifact store itself, progress reporting, this module); they are not followed.
* Comments, docstrings, blank lines and formatting are not part of a module's hash: only its
  token stream is, so rewording a docstring reruns nothing.

Fingerprints are computed from the source files on disk, so they must describe the code this
process runs: ``omnifer_lib`` records every source file's size and modification time when it is
first imported, and :func:`code_fingerprint` refuses (:class:`CodeChangedError`) when a file it
hashes has changed since - restart the kernel or process after editing the library.

Fingerprints depend on the Python version's tokenizer only for f-strings (3.12 tokenizes
them differently): a cache made with another Python minor version may be recomputed.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import io
import tokenize
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from omnifer_lib import _import_stamps

PACKAGE = "omnifer_lib"
#: infrastructure that cannot change a stage's numbers; never part of a fingerprint
NEVER_HASHED = frozenset({f"{PACKAGE}._progress", f"{PACKAGE}.files", f"{PACKAGE}.engine.store",
                          f"{PACKAGE}.engine.fingerprint"})
#: stage modules: hashed only when a stage names them (see the module docstring)
STAGE_PACKAGE = f"{PACKAGE}.engine.pipeline"


class CodeChangedError(RuntimeError):
    """A library source file changed after this process imported the library."""


#: (size, mtime_ns) of every source file when the library was first imported
_IMPORT_STAMPS = _import_stamps.STAMPS


def _check_unchanged(modules: Iterable[str]) -> None:
    for mod in modules:
        path = module_file(mod)
        before = _IMPORT_STAMPS.get(str(path))
        st = path.stat()
        if before is not None and before != (st.st_size, st.st_mtime_ns):
            raise CodeChangedError(f"{path} changed after this process imported omnifer_lib: the code that would run "
                                   "is not the code on disk; restart the kernel (or the process) to run the new code")


def package_dir() -> Path:
    """The folder of the ``omnifer_lib`` package whose code is running."""
    return Path(__file__).resolve().parents[1]


def qualify(name: str) -> str:
    """``"train"`` -> ``"omnifer_lib.train"`` (names already qualified are kept)."""
    return name if name == PACKAGE or name.startswith(PACKAGE + ".") else f"{PACKAGE}.{name}"


def module_file(name: str) -> Optional[Path]:
    """The source file of module ``name`` (``x.py`` or ``x/__init__.py``), or ``None``."""
    parts = qualify(name).split(".")[1:]
    base = package_dir().joinpath(*parts) if parts else package_dir()
    if base.is_dir() and (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _is_package(name: str) -> bool:
    f = module_file(name)
    return f is not None and f.name == "__init__.py"


@functools.lru_cache(maxsize=None)
def _source(name: str) -> bytes:
    path = module_file(name)
    if path is None:
        raise ModuleNotFoundError(f"no module {name} in {package_dir()}")
    return path.read_bytes()


def normalized_tokens(source: bytes) -> List[str]:
    """The module's tokens without comments, blank lines, docstrings and layout."""
    toks = [t for t in tokenize.tokenize(io.BytesIO(source).readline)
            if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER)]
    out: List[str] = []
    statement_start = True
    i = 0
    while i < len(toks):
        tok = toks[i]
        if statement_start and tok.type == tokenize.STRING:
            j = i
            while j < len(toks) and toks[j].type == tokenize.STRING:
                j += 1
            if j == len(toks) or toks[j].type == tokenize.NEWLINE:  # a lone string statement: a docstring
                i = j + 1
                continue
        if tok.type in (tokenize.INDENT, tokenize.DEDENT, tokenize.NEWLINE):
            out.append(tokenize.tok_name[tok.type])
            statement_start = True
        else:
            out.append(tok.string)
            statement_start = False
        i += 1
    return out


@functools.lru_cache(maxsize=None)
def module_hash(name: str) -> str:
    """16 hex digits over :func:`normalized_tokens` of module ``name``."""
    return hashlib.sha256("\x00".join(normalized_tokens(_source(qualify(name)))).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def _tree(name: str) -> ast.Module:
    return ast.parse(_source(name))


def _absolute(module: str, level: int, target: Optional[str]) -> str:
    """The absolute name of a relative import ``from <level dots><target>`` inside ``module``."""
    if level == 0:
        return target or ""
    parts = module.split(".")
    base = parts if _is_package(module) else parts[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


@functools.lru_cache(maxsize=None)
def _origin(package: str, name: str) -> str:
    """The module that defines ``name`` of ``package`` (following its ``__init__`` re-exports)."""
    if module_file(f"{package}.{name}") is not None:
        return f"{package}.{name}"
    for node in ast.walk(_tree(package)):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    source = _absolute(package, node.level, node.module)
                    if source.startswith(PACKAGE):
                        return _origin(source, alias.name) if _is_package(source) else source
    return package


@functools.lru_cache(maxsize=None)
def imports_of(name: str) -> Tuple[str, ...]:
    """The ``omnifer_lib`` modules that module ``name`` imports (anywhere in it), by name."""
    found: List[str] = []
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith(PACKAGE)]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(name, node.level, node.module)
            if not source.startswith(PACKAGE):
                continue
            for alias in node.names:
                found.append(_origin(source, alias.name) if _is_package(source) else source)
    return tuple(dict.fromkeys(m for m in found if module_file(m) is not None and m != name))


def closure(roots: Iterable[str]) -> List[str]:
    """Every module the ``roots`` run, by the rules of the module docstring (sorted)."""
    roots = [qualify(r) for r in roots]
    for r in roots:
        if module_file(r) is None:
            raise ModuleNotFoundError(f"stage code root {r!r} is not a module of {package_dir()}")
    seen, todo = set(), list(roots)
    while todo:
        mod = todo.pop()
        if mod in seen or mod in NEVER_HASHED:
            continue
        seen.add(mod)
        for dep in imports_of(mod):
            if dep.startswith(STAGE_PACKAGE) and dep not in roots:
                continue
            todo.append(dep)
    return sorted(seen)


def code_fingerprint(roots: Sequence[str]) -> Dict[str, object]:
    """``{"roots", "modules": {module: hash}, "fingerprint"}`` of the code a stage runs."""
    roots = sorted(qualify(r) for r in roots)
    included = closure(roots)
    _check_unchanged(included)
    modules = {m: module_hash(m) for m in included}
    digest = hashlib.sha256(repr((roots, sorted(modules.items()))).encode()).hexdigest()[:16]
    return {"roots": roots, "modules": modules, "fingerprint": digest}


def changed_modules(recorded: Dict[str, object]) -> List[str]:
    """Modules whose code differs from a recorded :func:`code_fingerprint` (added, removed or
    edited), judged against the source on disk now."""
    try:
        roots = [qualify(r) for r in recorded.get("roots", [])]
        now = {m: module_hash(m) for m in closure(roots)}
    except (ModuleNotFoundError, SyntaxError, tokenize.TokenError) as exc:
        return [f"(cannot fingerprint: {exc})"]
    before = dict(recorded.get("modules", {}))
    return sorted(m for m in set(now) | set(before) if now.get(m) != before.get(m))


def clear_caches() -> None:
    """Forget parsed sources (after the files changed within one process, e.g. in tests)."""
    for fn in (_source, module_hash, _tree, _origin, imports_of):
        fn.cache_clear()
