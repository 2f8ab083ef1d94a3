"""The built book as a reader sees it, checked in headless Chromium (Debian `chromium`).

Skipped, with the reason shown, on a machine without Chromium."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=20000", "--dump-dom"]
# Runs after load (and after MathJax had time to typeset) and reports into the DOM.
PROBE = """<script>window.addEventListener('load', function () { setTimeout(function () {
  var im = Array.from(document.images);
  var ok = im.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute('data-omnifer-images', im.length + ':' + ok.length);
  document.body.setAttribute('data-omnifer-math', document.querySelectorAll('mjx-container').length);
  document.body.setAttribute('data-omnifer-text', document.body.innerText.length);
}, 5000); });</script>"""


def render(page: Path, tmp: Path) -> dict:
    """Open ``page`` in headless Chromium and return what the probe saw, plus the final DOM."""
    probe = page.with_name(page.stem + ".__probe.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    try:
        proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", probe.as_uri()],
                              capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink()
    dom = proc.stdout
    attrs = dict(re.findall(r'data-omnifer-(\w+)="([^"]*)"', dom))
    assert attrs, f"the probe did not run in {page.name}: {proc.stderr[-500:]}"
    total, loaded = (int(x) for x in attrs["images"].split(":"))
    return {"images": total, "loaded": loaded, "math": int(attrs["math"]), "dom": dom}


@pytest.fixture(scope="module")
def html(smoke_book):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed here (apt-get install chromium); "
                    "the rendered-book check needs it")
    root, _ = smoke_book
    return root / "_build" / "html"


def test_every_chapter_renders_images_and_typeset_math(html, tmp_path):
    pages = sorted((html / "book" / "generated").glob("[0-9][0-9]_*.html"))
    assert pages
    for page in pages:
        seen = render(page, tmp_path)
        failed = seen["images"] - seen["loaded"]
        assert not failed, f"{page.name}: {failed} image(s) failed to load"
        source = page.read_text()
        if "\\(" in source or "\\[" in source or "math notranslate" in source:
            assert seen["math"] > 0, f"{page.name}: math is not typeset (raw TeX shown)"


def test_pipeline_page_shows_figure_and_equations(html, tmp_path):
    seen = render(html / "book" / "generated" / "00_pipeline.html", tmp_path)
    assert seen["images"] >= 1 and seen["loaded"] == seen["images"]
    assert seen["math"] >= 5


def test_table1_shows_paper_number_beside_this_run(html, tmp_path):
    page = html / "book" / "generated" / "05_inner_dataset.html"
    seen = render(page, tmp_path)
    assert seen["images"] >= 1 and seen["loaded"] == seen["images"]
    # the row "DAS + VGG-F": the paper's 86.55 and, in the next cells, this run's mean ± std
    row = re.search(r"DAS \+ VGG-F</td>(.*?)</tr>", seen["dom"], re.S)
    assert row, "Table 1 has no 'DAS + VGG-F' row"
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert "86.55" in cells, cells
    this_run = cells[-1]
    assert re.search(r"\d+\.\d\d", this_run) and this_run != "86.55", f"no measured value beside the paper's: {cells}"
