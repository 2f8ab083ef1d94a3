"""The chapters: MyST Markdown notebooks that Jupyter, papermill and the book all read."""
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

from omnifer_lib.publish import config, runner

REPO = Path(__file__).resolve().parents[2]
CHAPTERS = sorted((REPO / "notebooks").glob("*.md"))


def test_chapters_are_myst_text_notebooks_for_the_plain_python3_kernel():
    assert len(CHAPTERS) >= 11 and not list((REPO / "notebooks").glob("*.ipynb"))
    for path in CHAPTERS:
        nb = jupytext.read(str(path))
        assert nb.metadata["jupytext"]["text_representation"]["format_name"] == "myst", path.name
        assert nb.metadata["kernelspec"]["name"] == "python3", path.name
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert any("parameters" in c.metadata.get("tags", []) for c in code), f"{path.name} has no parameters cell"


def test_every_chapter_is_in_the_table_of_contents():
    toc = (REPO / "_toc.yml").read_text()
    for path in CHAPTERS:
        assert f"book/generated/{path.stem}" in toc, f"{path.name} missing from _toc.yml"


def test_chapter_defaults_are_the_demo_profile():
    """Opened by hand in Jupyter (no injected parameters), a chapter runs the demo profile."""
    demo = config.load_profile("demo")
    for path in CHAPTERS:
        declared = runner.notebook_parameters(path)
        assert declared.get("profile") == "demo" and declared.get("overrides") == {}, path.name
        for name, default in declared.items():
            if name in demo:
                assert default == demo[name], f"{path.name}: {name} = {default!r}, the demo profile says {demo[name]!r}"


@pytest.mark.slow
def test_plain_papermill_runs_a_chapter_with_a_parameter(tmp_path):
    """What the README shows: jupytext makes the .ipynb, papermill runs it with -p."""
    from conftest import make_book_copy

    root = make_book_copy(tmp_path / "repo")
    chapter = root / "notebooks" / "03_auxiliary_selection.md"
    env = dict(os.environ, OMNIFER_CACHE=str(tmp_path / "cache"))
    subprocess.run([sys.executable, "-m", "jupytext", "--to", "ipynb", str(chapter), "-o", str(tmp_path / "03.ipynb")],
                   check=True, capture_output=True, env=env)
    proc = subprocess.run([sys.executable, "-m", "papermill", str(tmp_path / "03.ipynb"), str(tmp_path / "out.ipynb"),
                           "-p", "profile", "smoke", "-p", "delta", "0.2", "-k", "python3", "--cwd", str(root)],
                          capture_output=True, text=True, env=env, cwd=root, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = jupytext.read(str(tmp_path / "out.ipynb"))
    injected = [c for c in out.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "delta = 0.2" in injected[0].source
