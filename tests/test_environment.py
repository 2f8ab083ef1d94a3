"""Packaging checks: environment.yml names every runtime dependency of pyproject.toml."""
import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# conda-forge names that differ from PyPI's
CONDA_NAMES = {"torch": "pytorch"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_names_every_runtime_dependency():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            names |= {_name(d) for d in dep.get("pip", [])}
        else:
            names.add(_name(dep))
    missing = [d for d in project["dependencies"] if CONDA_NAMES.get(_name(d), _name(d)) not in names]
    assert not missing, f"environment.yml lacks {missing}"


def test_facenet_pin_and_jupyter_book_range_agree():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = " ".join(project["dependencies"])
    env = (REPO / "environment.yml").read_text()
    assert "facenet-pytorch==2.5.3" in deps and "facenet-pytorch==2.5.3" in env
    assert "jupyter-book>=1.0.4,<2" in deps and "jupyter-book>=1.0.4,<2" in env
