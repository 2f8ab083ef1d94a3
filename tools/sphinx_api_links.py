"""Sphinx extension (a build tool of the book, not part of the library): the API reference says
which chapters use each function and class.

A chapter *uses* an object of ``omnifer_lib`` when its notebook (``notebooks/NN_name.md``) imports
it by name from the library, or links to it with a ``{py:func}`` / ``{py:class}`` / ``{py:data}`` role.
The reverse links, from a chapter to the reference, are those roles themselves.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Set, Tuple

CHAPTERS = "notebooks"
CHAPTER_DOCS = "book/generated"
_IMPORT = re.compile(r"^\s*from\s+(omnifer_lib[\w.]*)\s+import\s+(\([^)]*\)|[^\n]*)", re.M)
_ROLE = re.compile(r"\{py:(?:func|class|data|meth|mod)\}`~?(omnifer_lib[\w.]+)`")


def chapter_links(text: str) -> Set[str]:
    """The dotted names a chapter links to with ``{py:...}`` roles."""
    return {m.group(1) for m in _ROLE.finditer(text)}


def chapter_uses(text: str) -> Set[str]:
    """The dotted names of library objects one chapter imports by name or links to."""
    used = chapter_links(text)
    for module, names in _IMPORT.findall(text):
        for item in re.sub(r"#[^\n]*", "", names).strip("() \n").split(","):
            words = item.split()  # "name" or "name as alias"
            if words and words[0].isidentifier():
                used.add(f"{module}.{words[0]}")
    return used


def usage_index(srcdir: Path) -> Dict[str, List[Tuple[str, str]]]:
    """Map each short object name to ``(module, chapter docname)`` pairs, one per chapter using it."""
    index: Dict[str, List[Tuple[str, str]]] = {}
    for path in sorted((srcdir / CHAPTERS).glob("[0-9][0-9]_*.md")):
        for dotted in sorted(chapter_uses(path.read_text(encoding="utf-8"))):
            module, _, short = dotted.rpartition(".")
            index.setdefault(short, []).append((module, f"{CHAPTER_DOCS}/{path.stem}"))
    return index


def chapters_for(index: Dict[str, List[Tuple[str, str]]], fullname: str) -> List[str]:
    """Chapters that use ``fullname``: the same name from its module, a subpackage of it (where it
    is defined) or the package that re-exports it (``omnifer_lib.select`` for
    ``omnifer_lib.select.rules.margin_select``)."""
    module, _, short = fullname.rpartition(".")
    return sorted({doc for mod, doc in index.get(short, [])
                   if mod.startswith(module) or (module.startswith(mod) and mod != "omnifer_lib")})


def _add_used_in(app, what, name, obj, options, lines):
    if what not in ("function", "class", "data") or not name.startswith("omnifer_lib."):
        return
    docs = chapters_for(app.env.omnifer_usage, name)
    if docs:
        lines.extend(["", ".. rubric:: Used in", "", ", ".join(f":doc:`/{d}`" for d in docs), ""])


def _load_index(app):
    app.env.omnifer_usage = usage_index(Path(app.srcdir))


def setup(app):
    app.connect("builder-inited", _load_index)
    app.connect("autodoc-process-docstring", _add_used_in)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
