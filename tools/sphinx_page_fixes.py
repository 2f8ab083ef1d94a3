"""Sphinx extension (a build tool of the book): two defects of the theme's pages that the browser
check (tools/check_book.py) finds on every page, fixed where they arise.

* sphinx-thebe adds its inline configuration script (``const THEBE_JS_URL = ...``) twice under
  Sphinx 7, and the second copy throws "Identifier 'THEBE_JS_URL' has already been declared":
  each inline script is kept once.
* pydata-sphinx-theme logs "Got invalid theme mode" for a reader who never chose light or dark,
  because Jupyter Book leaves its ``default_mode`` empty: the book defaults to light (its figures
  are drawn on white).
"""
from __future__ import annotations


def _fix_page(app, pagename, templatename, context, doctree):
    if not context.get("default_mode"):
        context["default_mode"] = "light"
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        body = getattr(script, "attributes", {}).get("body") if not isinstance(script, str) else None
        if body:  # an inline script: keep its first copy only
            if body in seen:
                continue
            seen.add(body)
        kept.append(script)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _fix_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
