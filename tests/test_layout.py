"""The paper's method, the cached-stage engine and the book's publishing side import one another in one
direction only (CONTRIBUTING.md, "Layout"): method -> engine -> publish."""
import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "omnifer_lib"
SCIENCE = ["data", "models", "train.py", "evaluate.py", "select", "distill", "names.py", "seeds.py", "files.py",
           "device.py", "distributed.py", "_progress.py", "_import_stamps.py"]


def _modules(entry: str):
    path = LIB / entry
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


def _imports(path: Path):
    """Absolute names of what a module imports (relative imports resolved)."""
    package = path.relative_to(LIB.parent).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            yield ".".join(base + ([node.module] if node.module else []))


@pytest.mark.parametrize("entry", SCIENCE + ["__init__.py"])
def test_the_method_imports_nothing_of_the_engine_or_the_book(entry):
    for path in _modules(entry):
        bad = [name for name in _imports(path) if name.startswith(("omnifer_lib.publish", "omnifer_lib.engine",
                                                                   "omnifer_lib.book"))]
        assert not bad, f"{path.relative_to(LIB.parent)} imports {bad}"


def test_the_engine_imports_nothing_of_the_publishing_side():
    for path in _modules("engine"):
        bad = [name for name in _imports(path) if name.startswith(("omnifer_lib.publish", "omnifer_lib.book"))]
        assert not bad, f"{path.relative_to(LIB.parent)} imports {bad}"


def test_nothing_imports_the_old_names():
    """``omnifer_lib.book`` only serves code written before the split: the library never imports it."""
    for path in LIB.rglob("*.py"):
        if path.parent.name != "book":
            bad = [name for name in _imports(path) if name.startswith("omnifer_lib.book")]
            assert not bad, f"{path.relative_to(LIB.parent)} imports {bad}"


def test_every_library_module_is_method_engine_or_publishing():
    top = {p.name for p in LIB.iterdir() if not p.name.startswith("__")} - {"engine", "publish", "book"}
    assert top <= set(SCIENCE) | {"__init__.py", "__main__.py"}, top - set(SCIENCE)


def test_the_old_names_are_the_new_modules():
    import importlib

    from omnifer_lib.book import config, pipeline
    from omnifer_lib.engine import pipeline as engine_pipeline
    from omnifer_lib.publish import config as publish_config

    assert pipeline is engine_pipeline and config is publish_config
    assert importlib.import_module("omnifer_lib.book.store") is importlib.import_module("omnifer_lib.engine.store")
    assert importlib.import_module("omnifer_lib.book.pipeline.learners").train_learner
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("omnifer_lib.book.no_such_module")


def test_importing_the_method_loads_nothing_of_the_book():
    """``import omnifer_lib.data`` (and the package's own ``__init__``) runs no publishing code."""
    import subprocess
    import sys

    code = ("import sys, omnifer_lib.data, omnifer_lib.select, omnifer_lib.distill; "
            "print(sorted(m for m in sys.modules if m.startswith('omnifer_lib.publish')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def _contributing_map() -> str:
    text = (LIB.parent / "CONTRIBUTING.md").read_text()
    start = text.index("## Layout and dependency direction")
    block = text[text.index("```", start) + 3:]
    return block[:block.index("```")]


@pytest.mark.parametrize("folder", ["", "engine", "engine/pipeline", "publish"])
def test_contributing_names_every_module_and_package_of_the_library(folder):
    """CONTRIBUTING's map of the tree matches the tree: each module and package is named there."""
    import re

    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*(?:\.py|/)?", _contributing_map()))
    here = LIB / folder if folder else LIB
    missing = []
    for path in sorted(here.iterdir()):
        if path.name.startswith("__") or path.name.startswith("."):
            continue
        if path.is_dir() and ((path / "__init__.py").exists() or path.name in ("archives", "profiles")):
            named = {f"{path.name}/"}
        elif path.suffix == ".py":
            named = {path.name, path.stem} if folder == "engine/pipeline" else {path.name}
        else:
            continue
        if not named & words:
            missing.append(str(path.relative_to(LIB)))
    assert not missing, f"CONTRIBUTING.md's layout does not name {missing}"


def test_every_python_file_contributing_names_exists():
    import re

    named = set(re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*\.py)\b", _contributing_map()))
    found = {p.name for p in LIB.rglob("*.py")} | {p.name for d in ("tools", "benchmarks")
                                                    for p in (LIB.parent / d).glob("*.py")}
    assert named and not named - found, f"CONTRIBUTING.md names files that do not exist: {sorted(named - found)}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(LIB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict:
    """``{module: the library modules it imports}``, imports inside functions included (an import
    deferred into a function to dodge a cycle is still a cycle). ``from package import name`` counts
    as an import of the submodule ``name`` when there is one, else of the submodule the package's
    ``__init__`` takes ``name`` from: a package re-exporting its modules' names is no cycle. Not counted:
    a module-level ``__getattr__`` (PEP 562), which only serves an old name on request
    (``names.DATASET_NAMES``) and which no code of the library uses."""
    paths = {_module_name(p): p for p in LIB.rglob("*.py")}

    def imported(name):
        path = paths[name]
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        tree.body = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name == "__getattr__")]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                yield from ((a.name, None) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                yield from ((module, a.name) for a in node.names)

    reexported = {(name, n): module for name, path in paths.items() if path.name == "__init__.py"
                  for module, n in imported(name) if n and module in paths and module != name}

    def target(module, n):
        if n and f"{module}.{n}" in paths:
            return f"{module}.{n}"
        seen = set()
        while n and (module, n) in reexported and (module, n) not in seen:
            seen.add((module, n))
            module = reexported[(module, n)]
        while module not in paths and "." in module:
            module = module.rpartition(".")[0]
        return module

    return {name: {target(m, n) for m, n in imported(name) if m.startswith("omnifer_lib")} - {name}
            for name in paths}


def cycles(graph: dict) -> list:
    """The strongly connected components of ``graph`` with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_itself_back():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    graph = import_graph()
    assert "omnifer_lib.engine.pipeline.learners" in graph["omnifer_lib.engine.pipeline.selection"]
    # an import inside a function counts: the selection's teacher is what would close a loop
    assert cycles({**graph, "omnifer_lib.engine.pipeline.learners": graph["omnifer_lib.engine.pipeline.learners"]
                   | {"omnifer_lib.engine.pipeline.final"}})


# Seeding a generator anywhere but omnifer_lib/seeds.py is a second home for random streams.
SEEDING_CALLS = {"manual_seed", "manual_seed_all", "default_rng", "RandomState", "SeedSequence", "seed", "fork_rng",
                 "Random", "PCG64", "MT19937", "Philox"}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            yield node, f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


def seeding_sites(root: Path = LIB) -> list:
    """``path:line name`` of every call that seeds a generator outside ``seeds.py``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "seeds.py":
            continue
        for node, name in _calls(ast.parse(path.read_text(), str(path))):
            if name in SEEDING_CALLS:
                found.append(f"{path.relative_to(root)}:{node.lineno} {name}")
    return found


def json_writes(root: Path = LIB) -> list:
    """``path:line`` of every file write whose bytes come from ``json.dumps`` (or a ``json.dump``)
    outside ``files.py``: JSON is written by ``files.write_json`` only."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "files.py":
            continue
        for node, name in _calls(ast.parse(path.read_text(), str(path))):
            inner = {n for _, n in _calls(ast.Module(body=[ast.Expr(a) for a in node.args], type_ignores=[]))}
            if name == "dump" or (name in {"atomic_write_bytes", "write_text", "write_bytes", "write"}
                                  and "dumps" in inner):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_random_streams_are_seeded_in_seeds_only():
    assert seeding_sites() == []


def test_json_is_written_by_files_only():
    assert json_writes() == []


def test_the_one_home_checks_find_a_second_home(tmp_path):
    (tmp_path / "seeds.py").write_text("import torch\ntorch.manual_seed(0)\n")
    (tmp_path / "files.py").write_text("import json\njson.dump({}, open('x', 'w'))\n")
    (tmp_path / "stray.py").write_text(
        "import json, numpy as np, torch\n"
        "rng = np.random.default_rng(3)\n"
        "g = torch.Generator().manual_seed(1)\n"
        "atomic_write_bytes(p, json.dumps({}).encode())\n"
        "p.write_text(json.dumps({}))\n")
    assert seeding_sites(tmp_path) == ["stray.py:2 default_rng", "stray.py:3 manual_seed"]
    assert json_writes(tmp_path) == ["stray.py:4", "stray.py:5"]
