"""The book's build tools (tools/): fast checks without building a book."""
import sys
from pathlib import Path
from types import SimpleNamespace

from conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
import check_book  # noqa: E402
import sphinx_api_links  # noqa: E402
import sphinx_launch  # noqa: E402


def test_chapter_uses_imports_and_roles():
    text = ("```{code-cell}\nfrom omnifer_lib.select import (margin_select,\n    select_auxiliary)\n"
            "from omnifer_lib.evaluate import summarize_seeds as s  # seeds\n```\n"
            "Eq. 5 is {py:func}`~omnifer_lib.distill.unrolled_loss`.\n")
    used = sphinx_api_links.chapter_uses(text)
    assert {"omnifer_lib.select.margin_select", "omnifer_lib.select.select_auxiliary",
            "omnifer_lib.evaluate.summarize_seeds", "omnifer_lib.distill.unrolled_loss"} <= used


def test_chapters_for_matches_reexports_not_other_packages():
    index = {"margin_select": [("omnifer_lib.select", "book/generated/03"),
                               ("omnifer_lib.select.rules", "book/generated/09")],
             "load": [("omnifer_lib.models", "book/generated/02")]}
    assert sphinx_api_links.chapters_for(index, "omnifer_lib.select.margin_select") == ["book/generated/03",
                                                                                          "book/generated/09"]
    assert sphinx_api_links.chapters_for(index, "omnifer_lib.data.load") == []


def test_every_chapter_link_names_a_documented_object():
    """Each {py:func} role in a chapter names something the API pages document (else Sphinx would
    render it as plain text without a warning)."""
    import importlib

    documented = {}
    for page in (REPO / "book" / "api").glob("*.md"):
        for module in __import__("re").findall(r"automodule:: (\S+)", page.read_text()):
            documented[module] = importlib.import_module(module)
    roles = set()
    for chapter in list((REPO / "notebooks").glob("*.md")) + list((REPO / "book").glob("*.md")):
        roles |= sphinx_api_links.chapter_links(chapter.read_text())
    assert roles
    for dotted in roles:
        module, _, name = dotted.rpartition(".")
        assert module in documented, f"{dotted}: module {module} has no API page"
        mod = documented[module]
        assert hasattr(mod, name), dotted
        public = getattr(mod, "__all__", None)
        assert public is None or name in public, f"{dotted} is not in {module}.__all__"


def test_launch_buttons_only_with_a_repository():
    config = SimpleNamespace(html_theme_options={"launch_buttons": {"colab_url": "x"}, "repository_url": ""})
    sphinx_launch._drop_launch_buttons_without_repository(None, config)
    assert "launch_buttons" not in config.html_theme_options
    config = SimpleNamespace(html_theme_options={"launch_buttons": {"colab_url": "x"},
                                                 "repository_url": "https://github.com/a/b"})
    sphinx_launch._drop_launch_buttons_without_repository(None, config)
    assert "launch_buttons" in config.html_theme_options


def test_colab_copy_installs_first_and_keeps_the_chapter():
    nb = {"cells": [{"cell_type": "markdown", "source": "# Chapter"}], "metadata": {}, "nbformat": 4}
    copy = sphinx_launch.colab_copy(nb, "https://github.com/a/b", "main")
    assert copy["cells"][1:] == nb["cells"] and len(nb["cells"]) == 1
    assert 'git+https://github.com/a/b@main' in copy["cells"][0]["source"]


def test_paper_table_problems():
    ok = ("<table><tr><th>method</th><th>paper</th><th>this run</th></tr>"
          "<tr><td>DAS</td><td>86.55</td><td>70.1 ± 0.3</td></tr>"
          "<tr><td>DA [16]</td><td>80.0</td><td>cited only</td></tr></table>")
    assert check_book.paper_table_problems(ok) == []
    empty = ok.replace("70.1 ± 0.3", "")
    assert "86.55 has nothing beside it" in check_book.paper_table_problems(empty)[0]
    cited = ok.replace("70.1 ± 0.3", "not run").replace("DAS", "x")
    assert any("no number of this run" in p for p in check_book.paper_table_problems(cited))
    assert check_book.paper_table_problems("<table><tr><th>a</th></tr><tr><td>1</td></tr></table>") == []


def test_broken_links(tmp_path: Path):
    (tmp_path / "a.html").write_text('<h1 id="top">A</h1><a href="b.html#x">b</a><a href="a.html#top">self</a>'
                                     '<a href="https://example.org/">out</a><a href="#top">here</a>')
    (tmp_path / "b.html").write_text('<p id="y">B</p>')
    assert check_book.broken_links(tmp_path / "a.html", tmp_path) == ["b.html#x (no anchor #x)"]


import lint_chapters  # noqa: E402

MYST_HEAD = ("---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
             "    format_version: 0.13\nkernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n"
             "---\n\n# A chapter\n\n")


def _chapter(tmp_path, name, code):
    path = tmp_path / name
    path.write_text(MYST_HEAD + "".join(f"```{{code-cell}}\n{c}\n```\n\n" for c in code))
    return path


def test_a_chapter_that_computes_is_named_with_what_it_does(tmp_path, capsys):
    path = _chapter(tmp_path, "99_x.md", ["import pandas as pd\nrows = []\nfor i in range(3):\n    rows.append(i)",
                                          "def helper(x):\n    return x\n",
                                          "\n".join(f"a{i} = {i}" for i in range(16))])
    problems = lint_chapters.shape_problems(path)
    assert any("code cell 1, line 3: a for loop" in p for p in problems)
    assert any("code cell 2, line 1: a def" in p for p in problems)
    assert any("code cell 3: 16 lines of code" in p for p in problems)
    assert lint_chapters.check_shape(path) == 1
    assert "the library computes" in capsys.readouterr().out


def test_a_chapter_that_calls_the_library_passes_and_imports_do_not_count(tmp_path):
    imports = "\n".join(f"import m{i}" for i in range(20))
    path = _chapter(tmp_path, "99_x.md", [imports + "\nt = pipeline.results_table(params, ['vgg_small'])\nshow(t)",
                                          "fig = seed_points(t, x='mode')  # a comprehension is not a loop\n"
                                          "names = {b: display_backbone(b) for b in backbones}"])
    assert len(lint_chapters.chapter_script(path)[0].split("# %%")) == 3  # both cells were read as code
    assert lint_chapters.shape_problems(path) == []
    assert lint_chapters.check_shape(path) == 0


def test_a_cell_that_draws_hides_its_code(tmp_path):
    shown = _chapter(tmp_path, "99_x.md", ["fig = seed_points(t, x='mode')\nplt.show()"])
    assert any("tag it hide-input" in p for p in lint_chapters.shape_problems(shown))
    hidden = tmp_path / "98_y.md"
    hidden.write_text(shown.read_text().replace("```{code-cell}\n", "```{code-cell}\n:tags: [hide-input]\n\n")
                      .replace("# A chapter\n", "# A chapter\n\nSee {py:func}`~m.plots.seed_points`.\n"))
    assert lint_chapters.shape_problems(hidden) == []


def test_a_drawing_cell_is_linked_from_the_text(tmp_path):
    cell = ":tags: [hide-input]\n\nimport plotting\nfig = plotting.plot_curves(t)\nplt.show()"
    unlinked = _chapter(tmp_path, "99_x.md", [cell])
    problems = lint_chapters.shape_problems(unlinked)
    assert any("draws a figure with plot_curves" in p and "~omnifer_lib.publish.<module>.plot_curves" in p
               for p in problems)
    linked = tmp_path / "98_y.md"
    linked.write_text(unlinked.read_text().replace("# A chapter\n",
                                                   "# A chapter\n\nDrawn by {py:func}`~m.plotting.plot_curves`.\n"))
    assert lint_chapters.shape_problems(linked) == []
    imports_only = _chapter(tmp_path, "97_z.md", ["from omnifer_lib.publish.plots import plot_curves\nx = load()"])
    assert lint_chapters.shape_problems(imports_only) == []  # importing a plot function draws nothing


def test_the_book_keeps_its_code_short(tmp_path, capsys, monkeypatch):
    chapters = sorted((REPO / "notebooks").glob("*.md"))
    assert lint_chapters.book_lines(chapters) < lint_chapters.MAX_BOOK_LINES
    path = _chapter(tmp_path, "99_x.md", ["# a comment\nimport m\nshow(t)\n\nshow(u)", "x = 1"])
    assert lint_chapters.code_lines(path) == 4  # the import counts, the comment and the blank line do not
    monkeypatch.setattr(lint_chapters, "MAX_BOOK_LINES", 4)
    assert lint_chapters.main([str(tmp_path)]) == 1
    assert "4 lines of code, at most 3" in capsys.readouterr().out


import compare_runs  # noqa: E402


def _executed(folder: Path, name: str, glued: float, table: str, text: str, image: str, table_id: str = "a1") -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"application/papermill.record/text/plain": str(glued)},
                               metadata={"scrapbook": {"name": "acc"}}),
        nbformat.v4.new_output("execute_result", data={"text/html": f'<table id="T_{table_id}">{table}</table>'},
                               execution_count=1),
        nbformat.v4.new_output("stream", name="stdout", text=f"{text} at /tmp/{name}\n"),
        nbformat.v4.new_output("display_data", data={"image/png": image}),
    ]
    nb.cells = [cell]
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_compare_runs_finds_what_moved_and_ignores_paths_and_table_ids(tmp_path, capsys):
    before, after = tmp_path / "before", tmp_path / "after"
    _executed(before, "01_a", 61.5, "rows", "trained", "png1", table_id="abc123")
    _executed(after, "01_a", 61.5, "rows", "trained", "png1", table_id="def456")  # another table id and path
    assert compare_runs.differences(before / "01_a.ipynb", after / "01_a.ipynb") == []
    _executed(before, "02_b", 61.5, "rows", "trained", "png1")
    _executed(after, "02_b", 62.0, "other rows", "trained", "png2")
    found = compare_runs.differences(before / "02_b.ipynb", after / "02_b.ipynb")
    assert any(f.startswith("glued acc:") and "61.5" in f and "62.0" in f for f in found)
    assert any(f.startswith("only before: table:") for f in found) and any("figures:" in f for f in found)
    assert compare_runs.main([str(before), str(after)]) == 1
    out = capsys.readouterr().out
    assert "01_a: SAME" in out and "02_b: 4 difference(s)" in out
