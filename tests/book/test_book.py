"""Every notebook on the smoke profile, then the book built from the outputs (offline, -W)."""
import nbformat
import pytest
from conftest import REPO

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
    # no figure of real images (photographs, or distilled images started from them) by default
    from omnifer_lib.engine.pipeline import IMAGES_WITHHELD

    for stem in ("01_datasets", "03_auxiliary_selection", "04_distillation"):
        assert IMAGES_WITHHELD[:60] in (root / "book" / "generated" / f"{stem}.ipynb").read_text(), stem


def test_book_cites_and_lists_its_references(smoke_book):
    root, _ = smoke_book
    html = root / "_build" / "html" / "book"
    bib = (html / "bibliography.html").read_text().lower()  # the style sentence-cases titles
    for title in ("Omni-supervised Facial Expression Recognition via Distilled Data. 2020",
                  "Dataset distillation. 2018", "Deep face recognition", "Challenges in representation learning"):
        assert title.lower() in bib, title
    # a citation in a chapter's text links into the bibliography
    distill = (html / "generated" / "04_distillation.html").read_text()
    assert "Wang <em>et al.</em>, 2018" in distill and "bibliography.html#id" in distill
    assert "How to cite" in (html / "intro.html").read_text()
    assert (REPO / "LICENSE").is_file() and "MIT License" in (REPO / "LICENSE").read_text()
    assert "preferred-citation" in (REPO / "CITATION.cff").read_text()


def test_api_reference_links_functions_and_chapters_both_ways(smoke_book):
    root, _ = smoke_book
    html = root / "_build" / "html" / "book"
    select = (html / "api" / "select.html").read_text()
    assert 'id="omnifer_lib.select.margin_select"' in select
    # the entry names the chapters that use it ...
    entry = select[select.index('id="omnifer_lib.select.margin_select"'):]
    entry = entry[:entry.index("</dd>")]
    assert "Used in" in entry and "03_auxiliary_selection.html" in entry
    # ... and the chapter's equation links to the entry
    chapter = (html / "generated" / "03_auxiliary_selection.html").read_text()
    assert "../api/select.html#omnifer_lib.select.margin_select" in chapter
    algorithm = (html / "generated" / "04_distillation.html").read_text()
    assert "../api/distill.html#omnifer_lib.distill.unrolled_loss" in algorithm
    for page in ("data", "models", "train", "evaluate", "select", "distill", "names"):
        assert '<dt class="sig sig-object py"' in (html / "api" / f"{page}.html").read_text(), page


def test_chapter_pages_have_download_and_launch_buttons(smoke_book):
    """The smoke book is built with a dummy repository URL (conftest.DUMMY_REPOSITORY)."""
    import json

    from conftest import DUMMY_REPOSITORY

    root, _ = smoke_book
    html = root / "_build" / "html"
    org_repo = DUMMY_REPOSITORY.split("github.com/")[1]
    for src in sorted((root / "notebooks").glob("[0-9][0-9]_*.md")):
        page = (html / "book" / "generated" / f"{src.stem}.html").read_text()
        assert f"_sources/book/generated/{src.stem}.ipynb" in page, src.name  # download
        assert (html / "_sources" / "book" / "generated" / f"{src.stem}.ipynb").is_file()
        binder = f"https://mybinder.org/v2/gh/{org_repo}/main?urlpath=lab/tree/book/generated/{src.stem}.ipynb"
        assert binder in page, src.name
        colab = f"https://colab.research.google.com/github/{org_repo}/blob/gh-pages/colab/{src.stem}.ipynb"
        assert colab in page, src.name
        copy = json.loads((html / "colab" / f"{src.stem}.ipynb").read_text())
        first = copy["cells"][0]["source"]
        assert f'pip install --quiet "git+{DUMMY_REPOSITORY}@main"' in first
        assert len(copy["cells"]) > 2
    # Binder builds the repository with binder/: the package and the chapters as notebooks
    post = (REPO / "binder" / "postBuild").read_text()
    assert "pip install" in post and "jupytext" in post and "book/generated" in post


def test_wide_tables_scroll_instead_of_squeezing(smoke_book):
    root, _ = smoke_book
    html = root / "_build" / "html"
    for page in ("book/generated/11_real_faces.html", "book/generated/reproducibility.html"):
        assert '_static/omnifer.css' in (html / page).read_text(), page
    css = (html / "_static" / "omnifer.css").read_text()
    assert "overflow-x: auto" in css and "min-width" in css
