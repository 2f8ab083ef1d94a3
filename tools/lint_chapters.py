"""Lint the code of the book's chapters (MyST Markdown notebooks): ruff, and "chapters call, the library computes".

Usage: ``python tools/lint_chapters.py notebooks`` (``make lint`` runs it). Each chapter's code
cells are written as one Python script (jupytext's ``py:percent`` form, markdown left out) and
checked with the project's ruff settings; a problem is reported as ``notebooks/NN_name.md``, code
cell k, line l. Chapters are notebooks, so imports may follow other cells (E402 is not checked).

Then the shape of a chapter's code (:func:`shape_problems`): a code cell calls the library, shows
what it returns and at most sets up parameters, so it holds no ``def``, ``class``, ``lambda``,
``for`` or ``while`` and at most :data:`MAX_CELL_LINES` lines of code (imports, comments and blank
lines not counted), and a cell that draws a figure is tagged ``hide-input`` (the page shows the
figure, not its plotting code) while the chapter's text links (``{py:func}``) a library function the
cell calls, so a reader finds the code that drew it in the API reference. Computation belongs in a
tested library function. And the book as a whole keeps its code short: all chapters' code cells
together hold fewer than :data:`MAX_BOOK_LINES` lines of code (:func:`book_lines`: every non-blank,
non-comment line, parameters and imports included). Exit status: 0 when every chapter is clean.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_IGNORES = "E402"
#: Lines of code a chapter's cell may hold (imports, comments and blank lines not counted).
MAX_CELL_LINES = 15
#: What a chapter's code may not define or loop over: computation belongs in the library.
FORBIDDEN = {ast.FunctionDef: "def", ast.AsyncFunctionDef: "def", ast.ClassDef: "class", ast.Lambda: "lambda",
             ast.For: "for loop", ast.While: "while loop"}
#: Calls that draw a figure on the page: their cells are tagged ``hide-input``.
DRAWS = ("plt.show()", "show_figure(", "show_images(", "plot_", '"seed points"', '"learning curve"')
#: All chapters' code cells together hold fewer lines of code than this (:func:`book_lines`).
MAX_BOOK_LINES = 300


def chapter_script(path: Path) -> tuple[str, list[tuple[int, int]]]:
    """The chapter's code cells as one script, and for each script line its (cell, line) origin."""
    nb = jupytext.read(str(path))
    lines: list[str] = []
    origin: list[tuple[int, int]] = []
    for k, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        lines.append("# %%")
        origin.append((k + 1, 0))
        for i, text in enumerate(cell.source.splitlines()):
            lines.append(text)
            origin.append((k + 1, i + 1))
        lines.append("")
        origin.append((k + 1, 0))
    return "\n".join(lines) + "\n", origin


#: Calls a drawing cell makes that are not what draws its figure (display helpers, matplotlib).
NOT_DRAWING = {"show", "show_figure", "glue_values", "display", "print"}
_LINK = re.compile(r"\{py:(?:func|class|meth)\}`~?([\w.]+)`")


def _draws(source: str) -> bool:
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("import ", "from ")))
    return any(call in code for call in DRAWS)


def _called_names(tree: ast.AST) -> set[str]:
    """The last part of every called name, ``plt.*`` and :data:`NOT_DRAWING` left out."""
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute):
            if not (isinstance(f.value, ast.Name) and f.value.id == "plt"):
                names.add(f.attr)
        elif isinstance(f, ast.Name):
            names.add(f.id)
    return names - NOT_DRAWING


def _drawing_first(name: str) -> tuple:
    return not name.startswith(("plot_", "fig", "draw", "show_")), name


def shape_problems(path: Path) -> list[str]:
    """Where the chapter's code computes instead of calling the library: every ``def``, ``class``,
    ``lambda`` and loop, and every code cell over :data:`MAX_CELL_LINES` lines of code."""
    problems = []
    nb = jupytext.read(str(path))
    linked = {m.rpartition(".")[2] for c in nb.cells if c.cell_type == "markdown" for m in _LINK.findall(c.source)}
    for k, cell in enumerate((c for c in nb.cells if c.cell_type == "code"), 1):
        code = [line for line in cell.source.splitlines()
                if line.strip() and not line.lstrip().startswith(("#", "import ", "from ", "%", "!"))]
        if len(code) > MAX_CELL_LINES:
            problems.append(f"code cell {k}: {len(code)} lines of code (at most {MAX_CELL_LINES}): "
                            "move the computation into a library function")
        draws = _draws(cell.source)
        if draws and "hide-input" not in cell.metadata.get("tags", []):
            problems.append(f"code cell {k}: draws a figure: tag it hide-input (the page shows the figure, "
                            "not the code that draws it)")
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue  # ruff reports it
        called = _called_names(tree)
        if draws and called and not called & linked:
            problems.append(f"code cell {k}: draws a figure with {', '.join(sorted(called))}, which the chapter's "
                            "text links none of: link the function that draws it, e.g. "
                            f"{{py:func}}`~omnifer_lib.publish.<module>.{min(called, key=_drawing_first)}` "
                            "(its page is book/api/figures.md)")
        for node in ast.walk(tree):
            kind = FORBIDDEN.get(type(node))
            if kind:
                problems.append(f"code cell {k}, line {node.lineno}: a {kind} in a chapter: "
                                "the library computes, the chapter calls it")
    return problems


def check_shape(path: Path) -> int:
    """1 when the chapter computes instead of calling the library (its problems printed), else 0."""
    problems = shape_problems(path)
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    for problem in problems:
        print(f"{rel}: {problem}")
    return 1 if problems else 0


def code_lines(path: Path) -> int:
    """The chapter's lines of code: every non-blank line of its code cells that is not a comment."""
    return sum(1 for cell in jupytext.read(str(path)).cells if cell.cell_type == "code"
               for line in cell.source.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def book_lines(chapters) -> int:
    """All ``chapters``' lines of code together (:func:`code_lines`)."""
    return sum(code_lines(p) for p in chapters)


def lint(path: Path) -> int:
    script, origin = chapter_script(path)
    ruff = Path(sys.executable).with_name("ruff")
    proc = subprocess.run([str(ruff) if ruff.exists() else "ruff", "check", "--quiet", "--output-format", "concise",
                           "--extend-ignore", NOTEBOOK_IGNORES, "--stdin-filename", str(path.with_suffix(".py")),
                           "-"], input=script, capture_output=True, text=True, cwd=ROOT)
    for line in proc.stdout.splitlines():
        head, _, message = line.partition(": ")
        parts = head.rsplit(":", 2)
        if len(parts) == 3 and parts[1].isdigit():
            cell, row = origin[int(parts[1]) - 1]
            rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            print(f"{rel}: code cell {cell}, line {row}: {message}")
        else:
            print(line)
    if proc.stderr.strip():
        print(proc.stderr.strip(), file=sys.stderr)
    return proc.returncode


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else ROOT / "notebooks").resolve()
    chapters = sorted(folder.glob("*.md"))
    if not chapters:
        print(f"no chapters (*.md) in {folder}", file=sys.stderr)
        return 2
    status = max(max(lint(p), check_shape(p)) for p in chapters)
    total = book_lines(chapters)
    if total >= MAX_BOOK_LINES:
        print(f"the chapters hold {total} lines of code, at most {MAX_BOOK_LINES - 1}: move computation or repeated "
              "display logic into library functions")
        status = 1
    print(f"{len(chapters)} chapters checked, {total} lines of code" + (": clean" if status == 0 else ""))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
