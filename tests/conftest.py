"""Shared fixtures: an isolated copy of the book sources, so tests never touch the
developer's book/generated/ or artifact cache."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BOOK_SOURCES = ("_config.yml", "_toc.yml", "notebooks", "book")


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
