"""Shared fixtures: an isolated copy of the book sources, so tests never touch the
developer's book/generated/ or artifact cache."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers side by side on a small machine: one thread each (for the notebook kernels and
    # CLI runs the tests start too), or OpenMP's barriers make both many times slower.
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
BOOK_SOURCES = ("_config.yml", "_toc.yml", "notebooks", "book", "tools")
#: the repository URL the smoke book is built with, so that its pages carry launch buttons
DUMMY_REPOSITORY = "https://github.com/example-org/omnifer"


def make_book_copy(dest: Path) -> Path:
    """Copy what `omnifer reproduce` needs (sources only, no outputs) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in BOOK_SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("generated", ".ipynb_checkpoints"))
        else:
            shutil.copy2(src, dest / name)
    vendor = REPO / ".vendor" / "static"
    if vendor.is_dir():
        shutil.copytree(vendor, dest / ".vendor" / "static")
    return dest


@pytest.fixture
def book_copy(tmp_path, monkeypatch):
    """A fresh copy of the book sources as the working directory, with its own cache."""
    root = make_book_copy(tmp_path / "repo")
    monkeypatch.chdir(root)
    monkeypatch.setenv("OMNIFER_CACHE", str(tmp_path / "cache"))
    return root


@pytest.fixture(autouse=True)
def _no_progress_bars(monkeypatch):
    monkeypatch.setenv("OMNIFER_PROGRESS", os.environ.get("OMNIFER_TEST_PROGRESS", "0"))


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """Run `omnifer reproduce --profile smoke` once in an isolated copy of the sources."""
    base = tmp_path_factory.mktemp("book")
    root = make_book_copy(base / "repo")
    # what `make test` leaves in a checkout: the book build (warnings as errors) must not trip on it
    (root / ".pytest_cache").mkdir()
    (root / ".pytest_cache" / "README.md").write_text("# pytest cache directory #\n")
    config = root / "_config.yml"
    config.write_text(config.read_text().replace('  url: ""', f'  url: "{DUMMY_REPOSITORY}"', 1))
    env = dict(os.environ, OMNIFER_CACHE=str(base / "cache"), OMNIFER_PROGRESS="0")
    proc = subprocess.run([sys.executable, "-m", "omnifer_lib", "reproduce", "--profile", "smoke"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root, proc


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, run every test of the session-wide smoke book in one worker, so the
    book is built once."""
    for item in items:
        if "smoke_book" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("smoke_book"))


@pytest.fixture
def one_thread():
    """Tiny tensors gain nothing from threads, and on a loaded shared CPU OpenMP's barriers
    make two threads many times slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def changed_files(original: Path, copy: Path) -> set:
    """Paths (relative, ``/``-separated) of the files that differ between two folder trees, or exist in
    one only (``__pycache__`` left out): what a recipe test touched in its copy of the package."""
    import filecmp

    out = set()

    def walk(cmp, prefix=""):
        out.update(prefix + n for n in cmp.diff_files + cmp.left_only + cmp.right_only)
        for name, sub in cmp.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(filecmp.dircmp(original, copy, ignore=["__pycache__"]))
    return out
