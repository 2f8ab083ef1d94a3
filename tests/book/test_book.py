"""Every notebook on the smoke profile, then the book built from the outputs (offline, -W)."""
import nbformat
import pytest

pytestmark = pytest.mark.slow


def test_every_notebook_ran_on_smoke(smoke_book):
    root, proc = smoke_book
    sources = sorted((root / "notebooks").glob("*.md"))
    assert sources
    for src in sources:
        out = root / "book" / "generated" / f"{src.stem}.ipynb"
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
    for src in sorted((root / "notebooks").glob("*.md")):
        assert src.stem in repro
    assert "smoke" in repro


def test_mathjax_is_served_locally(smoke_book):
    root, _ = smoke_book
    page = (root / "_build" / "html" / "book" / "generated" / "00_pipeline.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in page
    assert (root / "_build" / "html" / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_every_notebook_runs_on_the_real_loaders(tmp_path_factory):
    """`--profile smoke -p data_source real` with every root given: the notebooks read the published
    layouts (written from synthetic faces), including a pool without hidden labels, and the book builds."""
    import os
    import subprocess
    import sys

    from conftest import make_book_copy
    from omnifer_lib.data.published_layouts import write_published_layouts

    base = tmp_path_factory.mktemp("real")
    root = make_book_copy(base / "repo")
    roots = write_published_layouts(base / "layouts", image_size=40)
    args = [a for k, v in roots.items() for a in ("-p", k, v)]
    env = dict(os.environ, OMNIFER_CACHE=str(base / "cache"), OMNIFER_PROGRESS="0")
    proc = subprocess.run([sys.executable, "-m", "omnifer_lib", "reproduce", "--profile", "smoke",
                           "-p", "data_source", "real", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sources = sorted((root / "notebooks").glob("*.md"))
    assert sources
    for src in sources:
        nb = nbformat.read(str(root / "book" / "generated" / f"{src.stem}.ipynb"), as_version=4)
        assert nb.metadata["omnifer"]["parameters"]["data_source"] == "real", src.name
    page = (root / "_build" / "html" / "book" / "generated" / "03_auxiliary_selection.html").read_text()
    assert "real data at" in page and "n/a (no hidden labels)" in page and "nan %" not in page
