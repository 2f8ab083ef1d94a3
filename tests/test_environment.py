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


def test_source_notebooks_have_no_outputs_and_a_parameters_cell():
    import nbformat

    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), path.name
        assert any("parameters" in c.metadata.get("tags", []) for c in code), f"{path.name} has no parameters cell"


def test_every_source_notebook_is_in_the_table_of_contents():
    toc = (REPO / "_toc.yml").read_text()
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        assert f"book/generated/{path.stem}" in toc, f"{path.name} missing from _toc.yml"


def test_notebooks_match_their_python_sources(tmp_path):
    """notebooks/*.ipynb are generated from tools/notebooks/nbNN.py; edit those, then regenerate."""
    import shutil
    import subprocess
    import sys

    shutil.copytree(REPO / "tools", tmp_path / "tools")
    (tmp_path / "notebooks").mkdir()
    for script in sorted((REPO / "tools" / "notebooks").glob("nb*.py")):
        subprocess.run([sys.executable, str(tmp_path / "tools" / "notebooks" / script.name)], cwd=tmp_path, check=True)
    generated = sorted(p.name for p in (tmp_path / "notebooks").glob("*.ipynb"))
    assert generated == sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    for name in generated:
        assert (tmp_path / "notebooks" / name).read_bytes() == (REPO / "notebooks" / name).read_bytes(), \
            f"{name} differs from tools/notebooks: run `python tools/notebooks/nbNN.py` after editing"


def test_notebook_defaults_are_the_demo_profile():
    """Opened by hand in Jupyter (no injected parameters), a notebook runs the demo profile."""
    import ast

    from omnifer_lib import config, runner

    demo = config.load_profile("demo")
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        for name, default in runner.notebook_parameters(path).items():
            if name in demo:
                value = ast.literal_eval(default) if isinstance(default, str) else default
                assert value == demo[name], f"{path.name}: {name} = {value!r}, the demo profile says {demo[name]!r}"
