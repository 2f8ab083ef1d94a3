"""Lint the code of the book's chapters (MyST Markdown notebooks) with ruff, through jupytext.

Usage: ``python tools/lint_chapters.py notebooks`` (``make lint`` runs it). Each chapter's code
cells are written as one Python script (jupytext's ``py:percent`` form, markdown left out) and
checked with the project's ruff settings; a problem is reported as ``notebooks/NN_name.md``, code
cell k, line l. Chapters are notebooks, so imports may follow other cells (E402 is not checked).
Exit status: ruff's (0 when every chapter is clean).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_IGNORES = "E402"


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
            print(f"{path.relative_to(ROOT)}: code cell {cell}, line {row}: {message}")
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
    status = max(lint(p) for p in chapters)
    print(f"{len(chapters)} chapters checked" + (": clean" if status == 0 else ""))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
