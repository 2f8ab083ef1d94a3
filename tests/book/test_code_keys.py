"""Code-aware artifact keys: a cached result is never older than the code that made it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from omnifer_lib.engine import fingerprint, pipeline
from omnifer_lib.publish.reproducibility import artifacts_summary, render_page

REPO = Path(__file__).resolve().parents[2]

# every combination of pipeline modules a stage names (see omnifer_lib/pipeline/*.py)
STAGE_ROOTS = {
    "rendered": (), "face_pretraining": ("pretraining",), "learner": ("pretraining", "learners"),
    "learner (VAS)": ("pretraining", "learners", "selection"), "selection": ("selection",),
    "distilled": ("selection", "distillation"), "kfold_learner": ("pretraining", "learners", "kfold"),
    "kfold_learner (DAS)": ("pretraining", "learners", "kfold", "distillation"),
    "epoch_costs": ("pretraining", "learners", "selection", "cost"),
}
NOT_STAGE_CODE = ("publish.plots", "publish.reporting", "publish.claims", "publish.cli", "publish.runner",
                  "engine.provenance",
                  "publish.reproducibility", "publish.config", "publish.selection_plots", "publish.distill_plots",
                  "publish.dataset_figures", "select.report", "distill.discussion", "engine.pipeline.tables",
                  "engine.pipeline.display", "engine.pipeline.preflight", "engine.store", "_progress", "files")


def test_comments_docstrings_and_layout_do_not_change_a_module_hash():
    base = b'"""Doc."""\ndef f(x):\n    """What f does."""\n    return x + 1  # why\n'
    same = b'"""Reworded doc."""\n\n\ndef f( x ):\n    """Another text."""\n    # a comment\n    return x+1\n'
    other = b'"""Doc."""\ndef f(x):\n    """What f does."""\n    return x + 2\n'
    kept = b'"""Doc."""\ndef f(x):\n    y = "a string that is a value"\n    return x + 1\n'
    norm = fingerprint.normalized_tokens
    assert norm(base) == norm(same)
    assert norm(base) != norm(other)
    assert "'a string that is a value'" in " ".join(norm(kept)).replace('"', "'")


@pytest.mark.parametrize("stage", sorted(STAGE_ROOTS))
def test_stage_code_covers_the_science_it_runs_and_nothing_of_the_book(stage):
    modules = {m.replace("omnifer_lib.", "") for m in pipeline.stage_code(*STAGE_ROOTS[stage])["modules"]}
    assert {"data", "data.synthetic", "engine.pipeline._common", "engine.pipeline.datasets"} <= modules
    assert not modules & set(NOT_STAGE_CODE), modules & set(NOT_STAGE_CODE)
    expected = {"learner": {"train", "evaluate", "models"}, "selection": {"select.stream", "select.rules"},
                "distilled": {"distill.algorithm", "distill.baselines", "select.reselect"},
                "learner (VAS)": {"train", "select.dataset"},
                "epoch_costs": {"train", "select.dataset", "distill.export"}}.get(stage, set())
    assert expected <= modules


def test_imports_are_followed_by_name_not_by_package():
    # `from ..select import select_auxiliary` reaches select/stream.py, not the reports
    assert "omnifer_lib.select.stream" in fingerprint.closure(["engine.pipeline.selection"])
    assert "omnifer_lib.select.report" not in fingerprint.closure(["engine.pipeline.selection"])


# ----------------------------------------------------------------------------- acceptance
SCRIPT = r"""
import json, os, sys
import omnifer_lib
assert omnifer_lib.__file__.startswith(sys.argv[1]), omnifer_lib.__file__
from omnifer_lib.engine import pipeline
from omnifer_lib.publish import config
p = config.load_profile("smoke", {"epochs": 1, "distill_iterations": 1, "n_pool": 100})
pipeline.learner(p, "resnet_small", "anchor+VAS")
pipeline.distilled(p, "resnet_small", "algorithm1")
"""


def _run_stages(src: Path, cache: Path, log: Path) -> dict:
    """Run the primitive learner, selection, Algorithm 1 and the VAS learner with the library in
    ``src``; ``{(stage, key): computed}`` of every artifact read."""
    log.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=str(src), OMNIFER_CACHE=str(cache), OMNIFER_ARTIFACT_LOG=str(log),
               OMNIFER_PROGRESS="0")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(src)], cwd=src, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen: dict = {}
    for line in log.read_text().splitlines():
        e = json.loads(line)
        seen[(e["stage"], e["key"])] = seen.get((e["stage"], e["key"]), False) or e["computed"]
    return seen


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _cli(src: Path, cache: Path, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(src), OMNIFER_CACHE=str(cache))
    proc = subprocess.run([sys.executable, "-m", "omnifer_lib", *args], cwd=src, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.slow
def test_editing_fit_reruns_learners_and_downstream_but_editing_a_plot_reruns_nothing(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO / "omnifer_lib", src / "omnifer_lib", ignore=shutil.ignore_patterns("__pycache__"))
    cache, log = tmp_path / "cache", tmp_path / "artifacts.jsonl"

    first = _run_stages(src, cache, log)
    stages = {s for s, _ in first}
    assert {"learner", "selection", "distilled"} <= stages and all(first.values())

    # a function fit calls: the learning-rate schedule (same numbers, other code)
    _edit(src / "omnifer_lib" / "train.py", "def lr_at_epoch(", "def _unused():\n    return 0\n\n\ndef lr_at_epoch(")
    second = _run_stages(src, cache, log)
    for stage in ("learner", "selection", "distilled"):
        keys1 = {k for s, k in first if s == stage}
        keys2 = {k for s, k in second if s == stage}
        assert keys1.isdisjoint(keys2), f"{stage} kept its key after fit's code changed"
        assert all(c for (s, _), c in second.items() if s == stage), f"{stage} was not recomputed"
    for (stage, key), computed in second.items():
        if stage == "rendered":  # the synthetic images do not run fit
            assert (stage, key) in first and not computed

    listing = _cli(src, cache, "cache", "ls")
    stale = [ln for ln in listing.splitlines() if "STALE" in ln]
    assert any("code changed: train" in ln for ln in stale)
    assert any("upstream" in ln for ln in stale)  # e.g. the old selection: its primitive learner is stale
    assert len(stale) == sum(1 for (s, _) in first if s != "rendered")

    # a plotting function: no stage runs it
    _edit(src / "omnifer_lib" / "publish" / "selection_plots.py", "import ", "import math as _unused_math\nimport ")
    third = _run_stages(src, cache, log)
    assert not any(third.values())  # everything reused (the datasets are not even opened)
    assert {k for k in third if k[0] != "rendered"} == {k for k in second if k[0] != "rendered"}

    assert "removed 4 stale artifact(s)" in _cli(src, cache, "cache", "clear", "--stale")
    assert "0 stale" in _cli(src, cache, "cache", "ls")


def test_reproducibility_page_marks_reused_artifacts():
    rec = {"git": {"commit": "a" * 40, "dirty": False}, "profile": "smoke", "status": "ok",
           "artifacts": [
               {"stage": "learner", "key": "k1", "computed": True, "created_by": {"commit": "a" * 40}},
               {"stage": "selection", "key": "k2", "computed": False, "created_by": {"commit": "a" * 40}},
               {"stage": "distilled", "key": "k3", "computed": False, "created_by": {"commit": "b" * 40},
                "created": "2026-11-27T10:00:00+00:00"}]}
    assert artifacts_summary(rec) == f"1 of 3 reused from earlier code (commit {'b' * 10})"
    page = render_page(["02_x"], [rec])
    assert "reused from commit bbbbbbbbbb" in page and "computed in this run" in page
    assert "reused, computed earlier by this commit" in page
    rec["artifacts"] = rec["artifacts"][:2]
    assert artifacts_summary(rec) == "all 2 computed by this commit (1 in this run)"
    rec["artifacts"][1]["created_by"] = {"commit": "a" * 40, "dirty": True}
    assert artifacts_summary(rec) == f"1 of 2 reused from earlier code (commit {'a' * 10} with uncommitted changes)"
    rec["artifacts"][1]["created_by"] = {"commit": None, "dirty": None}
    assert artifacts_summary(rec) == "1 of 2 reused from earlier code (a run outside a git checkout)"
    assert artifacts_summary({"artifacts": []}) == "none read"


def test_an_edit_after_import_is_refused_not_fingerprinted(tmp_path):
    """Old code in memory must not store its result under the new code's key."""
    src = tmp_path / "src"
    shutil.copytree(REPO / "omnifer_lib", src / "omnifer_lib", ignore=shutil.ignore_patterns("__pycache__"))
    script = (
        "import sys, time\n"
        "from omnifer_lib import train\n"
        "from omnifer_lib.engine import pipeline\n"
        "assert train.__file__.startswith(sys.argv[1])\n"
        "path = sys.argv[1] + '/omnifer_lib/train.py'\n"
        "time.sleep(0.05)\n"
        "open(path, 'a').write('\\n_EDITED = 1\\n')\n"
        "try:\n"
        "    pipeline.stage_code('pretraining', 'learners')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(src)], env=dict(os.environ, PYTHONPATH=str(src)),
                          cwd=src, capture_output=True, text=True, timeout=300)
    assert "CodeChangedError" in proc.stdout and "train.py changed after this process imported" in proc.stdout, \
        proc.stdout + proc.stderr
