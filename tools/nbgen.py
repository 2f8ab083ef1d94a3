"""Write a source notebook from a compact Python description (developer helper).

Usage from Python: ``write_notebook(path, [("md", text), ("params", code), ("code", code), ...])``.
Cells are stored without outputs, as the book's source notebooks must be.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, Tuple

import nbformat


def write_notebook(path: str, cells: Iterable[Tuple[str, str]]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "omnifer", "display_name": "omnifer (.venv)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, src in cells:
        src = src.strip("\n")
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(src))
        elif kind == "params":
            nb.cells.append(nbformat.v4.new_code_cell(src, metadata={"tags": ["parameters"]}))
        elif kind == "hide":
            nb.cells.append(nbformat.v4.new_code_cell(src, metadata={"tags": ["hide-input"]}))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(src))
    for i, cell in enumerate(nb.cells):  # stable ids keep diffs small
        cell["id"] = f"c{i:02d}"
    Path(path).write_text(nbformat.writes(nb) + "\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit("import write_notebook from this module")
