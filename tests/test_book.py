"""Every notebook on the smoke profile, then the book built from the outputs (offline, -W)."""
import nbformat
import pytest

pytestmark = pytest.mark.slow


def test_every_notebook_ran_on_smoke(smoke_book):
    root, proc = smoke_book
    sources = sorted((root / "notebooks").glob("*.ipynb"))
    assert sources
    for src in sources:
        out = root / "book" / "generated" / src.name
        nb = nbformat.read(str(out), as_version=4)
        assert nb.metadata["omnifer"]["status"] == "ok"
        assert nb.metadata["omnifer"]["profile"] == "smoke"
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, src.name
    assert f"[{len(sources)}/{len(sources)}]" in proc.stdout


def test_book_has_intro_pipeline_and_reproducibility_pages(smoke_book):
    root, _ = smoke_book
    html = root / "_build" / "html"
    assert (html / "index.html").is_file()
    intro = (html / "book" / "intro.html").read_text()
    assert "What the paper claims" in intro
    fig1 = (html / "book" / "generated" / "00_pipeline.html").read_text()
    assert "<img" in fig1 and "Fig. 1" in fig1
    repro = (html / "book" / "generated" / "reproducibility.html").read_text()
    for src in sorted((root / "notebooks").glob("*.ipynb")):
        assert src.stem in repro
    assert "smoke" in repro


def test_mathjax_is_served_locally(smoke_book):
    root, _ = smoke_book
    page = (root / "_build" / "html" / "book" / "generated" / "00_pipeline.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in page
    assert (root / "_build" / "html" / "_static" / "mathjax" / "tex-chtml.js").is_file()
