"""Sphinx extension (a build tool of the book, not part of the library): launch buttons that work.

* Without a repository URL in ``_config.yml`` (``repository: url:``) the chapter pages keep only the
  download button: the theme's launch buttons need a repository and fail the build without one.
* With one, Binder opens ``book/generated/NN_name.ipynb`` of the repository, which ``binder/postBuild``
  writes from the chapter sources after installing the package; Colab, which opens only notebooks
  committed to GitHub, opens the copy of the executed chapter this extension writes to
  ``_build/html/colab/NN_name.ipynb`` (published with the book, e.g. by ``ghp-import`` to the
  ``omnifer_colab_branch`` branch), whose first cell installs the package from the repository.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

COLAB_DIR = "colab"
CHAPTER_PREFIX = "book/generated/"


def repository_url(config) -> str:
    return (config.html_theme_options.get("repository_url") or "").strip().rstrip("/")


def _drop_launch_buttons_without_repository(app, config):
    if not repository_url(config):
        config.html_theme_options.pop("launch_buttons", None)


def install_cell(url: str, branch: str) -> dict:
    """The first cell of a Colab copy: install omnifer where it is not installed yet."""
    source = ("# Colab: install omnifer and its dependencies from the repository this book was built from\n"
              "import importlib.util\n"
              "if importlib.util.find_spec(\"omnifer_lib\") is None:\n"
              f"    %pip install --quiet \"git+{url}@{branch}\"")
    return {"cell_type": "code", "execution_count": None, "id": "omnifer-install", "metadata": {},
            "outputs": [], "source": source}


def colab_copy(notebook: dict, url: str, branch: str) -> dict:
    """``notebook`` with the install cell first (its outputs are kept: Colab shows them until rerun)."""
    copy = dict(notebook)
    copy["cells"] = [install_cell(url, branch)] + list(notebook.get("cells", []))
    return copy


def _retarget(buttons, colab_url: str) -> None:
    for button in buttons:
        if button.get("type") == "group":
            _retarget(button.get("buttons", []), colab_url)
        elif button.get("text") == "Colab":
            button["url"] = colab_url


def _colab_for_chapters(app, pagename, templatename, context, doctree):
    url = repository_url(app.config)
    if not url or not pagename.startswith(CHAPTER_PREFIX) or "github.com/" not in url:
        return
    source = Path(app.env.doc2path(pagename))
    if source.suffix != ".ipynb" or not source.is_file() or not re.match(r"\d\d_", source.stem):
        return  # only the chapters are notebooks a reader runs
    branch = app.config.html_theme_options.get("repository_branch") or "main"
    name = source.name
    out = Path(app.outdir) / COLAB_DIR / name
    out.parent.mkdir(parents=True, exist_ok=True)
    notebook = json.loads(source.read_text(encoding="utf-8"))
    out.write_text(json.dumps(colab_copy(notebook, url, branch), indent=1), encoding="utf-8")
    org_repo = "/".join(url.split("github.com/")[-1].split("/")[:2])
    colab = (app.config.html_theme_options.get("launch_buttons", {}).get("colab_url") or "").rstrip("/")
    if colab:
        _retarget(context.get("header_buttons", []),
                  f"{colab}/github/{org_repo}/blob/{app.config.omnifer_colab_branch}/{COLAB_DIR}/{name}")


def setup(app):
    app.add_config_value("omnifer_colab_branch", "gh-pages", "html")
    app.connect("config-inited", _drop_launch_buttons_without_repository)
    app.connect("html-page-context", _colab_for_chapters, priority=502)  # after the theme's (501)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
