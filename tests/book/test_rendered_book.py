"""The built book as a reader sees it, checked in headless Chromium (Debian `chromium`) by
tools/check_book.py: every page, offline.

Skipped, with the reason shown, on a machine without Chromium."""
import re
import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
import check_book  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def html(smoke_book):
    if check_book.CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed here (apt-get install chromium); "
                    "the rendered-book check needs it")
    root, _ = smoke_book
    return root / "_build" / "html"


@pytest.fixture(scope="module")
def reports(html):
    return check_book.check_book(html, screenshots=html.parent / "screenshots")


def test_every_page_passes_the_browser_check(html, reports):
    pages = {str(r["page"].relative_to(html.resolve())) for r in reports}
    for expected in ("index.html", "book/intro.html", "book/notes.html", "book/bibliography.html",
                     "book/api/index.html", "book/api/select.html", "book/generated/reproducibility.html",
                     "search.html", "genindex.html"):
        assert expected in pages
    chapters = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.md"))
    assert {f"book/generated/{c}.html" for c in chapters} <= pages
    failed = {str(r["page"].relative_to(html.resolve())): r["problems"] for r in reports if r["problems"]}
    assert not failed, failed


def test_screenshots_at_phone_and_desktop_widths(html, reports):
    shots = sorted((html.parent / "screenshots").glob("*.png"))
    names = {p.name for p in shots}
    assert "book_intro_phone.png" in names and "book_intro_desktop.png" in names
    assert all(p.stat().st_size > 10_000 for p in shots)  # not blank


def test_pipeline_page_shows_figure_and_equations(reports):
    seen = next(r["seen"] for r in reports if r["page"].name == "00_pipeline.html")
    assert seen["images"] >= 1 and seen["loaded"] == seen["images"]
    assert seen["typeset"] >= 5 and seen["raw_math"] == 0


def test_table1_shows_paper_number_beside_this_run(reports):
    seen = next(r["seen"] for r in reports if r["page"].name == "05_inner_dataset.html")
    # the row "DAS + VGG-F": the paper's 86.55 and, in the next cells, this run's mean ± std
    row = re.search(r"DAS \+ VGG-F</td>(.*?)</tr>", seen["dom"], re.S)
    assert row, "Table 1 has no 'DAS + VGG-F' row"
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert "86.55" in cells, cells
    this_run = cells[-1]
    assert re.search(r"\d+\.\d\d", this_run) and this_run != "86.55", f"no measured value beside the paper's: {cells}"
    assert not check_book.paper_table_problems(seen["dom"])
    assert "table" in seen["dom"] and len(re.findall(r"<table\b", seen["dom"])) >= 3


def test_the_check_fails_on_what_it_should_find(html, tmp_path):
    """A page with a broken image, raw TeX, a dead link, a script error and a paper number with
    nothing beside it fails every check (so a green run means something)."""
    bad = html / "book" / "__broken_page.html"
    bad.write_text(
        "<html><head></head><body><img src='missing.png'><span class='math'>\\(x^2\\)</span>"
        "<a href='nowhere.html'>x</a><a href='intro.html#no-such-anchor'>y</a>"
        "<script>undefinedFunction();</script>"
        "<table><tr><th>method</th><th>paper</th><th>this run</th></tr>"
        "<tr><td>DAS</td><td>86.55</td><td></td></tr></table></body></html>")
    try:
        problems = check_book.check_page(bad, html.resolve(), tmp_path / "profile")["problems"]
    finally:
        bad.unlink()
    text = "\n".join(problems)
    assert "image(s) did not load" in text
    assert "not typeset" in text
    assert "nowhere.html" in text and "#no-such-anchor" in text
    assert "undefinedFunction" in text
    assert "86.55 has nothing beside it" in text
