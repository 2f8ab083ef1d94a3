"""Check the built book as a reader sees it, in headless Chromium (Debian's ``chromium``), offline.

For every HTML page of the book: no console errors (script errors, failed loads), every image loads,
every equation is typeset by MathJax, every internal link (and its ``#anchor``) resolves, and every
table with a "paper" column shows this run's number beside each number of the paper. Screenshots of a
few pages at phone and desktop widths are written for a person to look at.

    python tools/check_book.py [_build/html] [--screenshots _build/screenshots]

Exits non-zero, listing the problems page by page, when any page fails. ``make test`` runs the same
checks on the smoke book (tests/book/test_rendered_book.py).
"""
from __future__ import annotations

import argparse
import html as htmllib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import unquote, urlparse

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=20000"]
#: pages (relative to the html root) screenshotted at each width
SCREENSHOT_PAGES = ("book/intro.html", "book/generated/05_inner_dataset.html",
                    "book/generated/03_auxiliary_selection.html")
WIDTHS = {"phone": (390, 844), "desktop": (1366, 900)}
SKIP_DIRS = ("_static", "_sources", "_images", "colab", "screenshots")

# Records errors from the first line of <head> on, so that errors of the theme's own scripts count.
CATCH = """<script>(function () { window.__omniferErrors = [];
  var push = function (m) { window.__omniferErrors.push(String(m).slice(0, 300)); };
  var original = console.error;
  console.error = function () { push(Array.from(arguments).join(' ')); original.apply(console, arguments); };
  window.addEventListener('error', function (e) {
    var t = e.target;
    if (t && t !== window && (t.src || t.href)) { push('failed to load ' + (t.src || t.href)); }
    else { push(e.message + ' (' + e.filename + ':' + e.lineno + ')'); }
  }, true);
  window.addEventListener('unhandledrejection', function (e) { push('unhandled rejection: ' + e.reason); });
})();</script>"""
# After load (and after MathJax had time to typeset), reports into the DOM that --dump-dom prints.
PROBE = """<script>window.addEventListener('load', function () { setTimeout(function () {
  var im = Array.from(document.images);
  var ok = im.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  var math = Array.from(document.querySelectorAll('.math'));
  var raw = math.filter(function (m) { return !m.querySelector('mjx-container'); });
  var b = document.body;
  b.setAttribute('data-omnifer-images', im.length + ':' + ok.length);
  b.setAttribute('data-omnifer-math', math.length + ':' + raw.length);
  b.setAttribute('data-omnifer-typeset', document.querySelectorAll('mjx-container').length);
  b.setAttribute('data-omnifer-errors', encodeURIComponent(JSON.stringify(window.__omniferErrors)));
}, 5000); });</script>"""


def book_pages(html: Path) -> List[Path]:
    """Every page of the built book (not the theme's assets, sources or the probe's own files)."""
    return sorted(p for p in html.rglob("*.html")
                  if not any(part in SKIP_DIRS for part in p.relative_to(html).parts)
                  and "__probe" not in p.name)


def render(page: Path, profile: Path) -> Dict:
    """Open ``page`` in headless Chromium; return what the probe saw and the final DOM."""
    probe = page.with_name(page.stem + ".__probe.html")
    source = page.read_text(encoding="utf-8")
    source = re.sub(r"<head>", "<head>" + CATCH, source, count=1).replace("</body>", PROBE + "</body>")
    probe.write_text(source, encoding="utf-8")
    try:
        proc = subprocess.run([CHROMIUM, *FLAGS, "--dump-dom", f"--user-data-dir={profile}", probe.as_uri()],
                              capture_output=True, text=True, timeout=180)
    finally:
        probe.unlink()
    dom = proc.stdout
    attrs = dict(re.findall(r'data-omnifer-(\w+)="([^"]*)"', dom))
    if "errors" not in attrs:
        return {"probe": False, "dom": dom, "stderr": proc.stderr[-500:]}
    images, loaded = (int(x) for x in attrs["images"].split(":"))
    math, raw = (int(x) for x in attrs["math"].split(":"))
    errors = json.loads(unquote(htmllib.unescape(attrs["errors"])))
    return {"probe": True, "images": images, "loaded": loaded, "math": math, "raw_math": raw,
            "typeset": int(attrs["typeset"]), "errors": errors, "dom": dom}


def _ids(path: Path, cache: Dict[Path, set]) -> set:
    if path not in cache:
        text = path.read_text(encoding="utf-8", errors="replace")
        cache[path] = {v for _, v in re.findall(r"""\b(?:id|name)=(["'])(.+?)\1""", text)}
    return cache[path]


def broken_links(page: Path, html: Path, cache: Optional[Dict[Path, set]] = None) -> List[str]:
    """Internal links of ``page`` whose file or ``#anchor`` does not exist in the built book."""
    cache = {} if cache is None else cache
    text = page.read_text(encoding="utf-8", errors="replace")
    broken = []
    for _, href in sorted(set(re.findall(r"""<a\b[^>]*\bhref=(["'])(.*?)\1""", text))):
        href = htmllib.unescape(href)
        url = urlparse(href)
        if url.scheme or url.netloc or href.startswith(("mailto:", "javascript:")):
            continue
        target = page if not url.path else (page.parent / unquote(url.path)).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            shown = target.relative_to(html.resolve()) if target.is_relative_to(html.resolve()) else target
            broken.append(f"{href} (no file {shown})")
        elif url.fragment and target.suffix == ".html" and unquote(url.fragment) not in _ids(target, cache):
            broken.append(f"{href} (no anchor #{url.fragment})")
    return broken


def _cells(row: str) -> List[str]:
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]


def paper_table_problems(dom: str) -> List[str]:
    """For each table with a "paper" and a "this run" column: a row with a number of the paper needs
    this run's number, or says why not ("cited only", "not run"). Returns the rows that fail."""
    problems = []
    for n, table in enumerate(re.findall(r"<table\b.*?</table>", dom, re.S), 1):
        rows = re.findall(r"<tr\b.*?</tr>", table, re.S)
        if not rows:
            continue
        header = [c.lower() for c in _cells(rows[0])]
        if "paper" not in header or "this run" not in header:
            continue
        ip, ir = header.index("paper"), header.index("this run")
        shown = 0
        for row in rows[1:]:
            cells = _cells(row)[-len(header):]  # an index column shifts cells: align from the right
            if len(cells) <= max(ip, ir):
                continue
            paper, this = cells[ip], cells[ir]
            if not re.search(r"\d", paper):
                continue
            if re.search(r"\d", this):
                shown += 1
            elif this not in ("cited only", "not run"):
                problems.append(f"table {n}: the paper's {paper} has nothing beside it ({this!r})")
        if not shown:
            problems.append(f"table {n}: no number of this run beside the paper's")
    return problems


def screenshot(page: Path, out: Path, size, profile: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
                    f"--screenshot={out}", page.as_uri()], capture_output=True, text=True, timeout=180)
    return out


def redirect_of(page: Path) -> Optional[str]:
    """The target of a redirect page (the book's root index.html), else None."""
    found = re.search(r'http-equiv="Refresh" content="\d+;\s*url=([^"]+)"', page.read_text(encoding="utf-8"), re.I)
    return found.group(1) if found else None


def check_page(page: Path, html: Path, profile: Path) -> Dict:
    """All checks of one page: ``{"page", "problems", "seen"}``."""
    target = redirect_of(page)
    if target is not None:
        ok = (page.parent / target.split("#")[0]).is_file()
        return {"page": page, "problems": [] if ok else [f"redirects to a missing page: {target}"], "seen": {}}
    seen = render(page, profile)
    problems: List[str] = []
    if not seen["probe"]:
        return {"page": page, "problems": [f"the page did not finish loading: {seen['stderr']}"], "seen": seen}
    problems += [f"console: {e}" for e in seen["errors"]]
    if seen["loaded"] != seen["images"]:
        problems.append(f"{seen['images'] - seen['loaded']} of {seen['images']} image(s) did not load")
    if seen["raw_math"]:
        problems.append(f"{seen['raw_math']} of {seen['math']} equation(s) not typeset (raw TeX shown)")
    problems += [f"broken link: {b}" for b in broken_links(page, html)]
    problems += paper_table_problems(seen["dom"])
    return {"page": page, "problems": problems, "seen": seen}


def check_book(html: Path, screenshots: Optional[Path] = None, workers: int = 2) -> List[Dict]:
    """Check every page of the book at ``html`` (two Chromium processes side by side)."""
    if CHROMIUM is None:
        raise RuntimeError("Chromium is not installed (Debian: apt-get install chromium)")
    html = Path(html).resolve()
    pages = book_pages(html)
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(workers) as pool:
        profiles = [Path(tmp) / f"profile{i}" for i in range(len(pages))]
        reports = list(pool.map(lambda a: check_page(a[0], html, a[1]), zip(pages, profiles)))
        if screenshots is not None:
            for rel in SCREENSHOT_PAGES:
                if (html / rel).is_file():
                    for label, size in WIDTHS.items():
                        name = rel.replace("/", "_").replace(".html", f"_{label}.png")
                        screenshot(html / rel, Path(screenshots) / name, size, Path(tmp) / "shots")
    return reports


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", nargs="?", default="_build/html", type=Path)
    parser.add_argument("--screenshots", type=Path, default=None,
                        help="folder for phone/desktop screenshots (default: _build/screenshots beside html)")
    args = parser.parse_args(argv)
    if not (args.html / "index.html").is_file():
        print(f"check_book: no built book at {args.html} (expected {args.html}/index.html; run `make book`)",
              file=sys.stderr)
        return 2
    shots = args.screenshots or args.html.parent / "screenshots"
    reports = check_book(args.html, shots)
    failed = [r for r in reports if r["problems"]]
    for r in reports:
        print(f"{'FAIL' if r['problems'] else 'ok  '} {r['page'].relative_to(args.html.resolve())}")
        for p in r["problems"]:
            print(f"       {p}")
    print(f"{len(reports) - len(failed)} of {len(reports)} pages pass; screenshots in {shots}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
