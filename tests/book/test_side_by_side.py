"""Learners trained side by side in worker processes give the numbers they give in this process."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from omnifer_lib import models
from omnifer_lib.engine import pipeline
from omnifer_lib.publish import config
from omnifer_lib.engine.pipeline import side_by_side

# one backbone, two seeds sharing one selection (the script asks for the learners with the profile's own
# parameters): round 1 trains the two anchor learners (the VAS learners wait for the primitive learner's
# selection), round 2 the two VAS learners
SMALL = {"backbones": ["vgg_small"], "seeds": [0, 1], "train_threads": 1, "seeds_redraw_pipeline": False}

# a caller's script without an `if __name__ == "__main__"` guard: the workers must not run it again
SCRIPT = """
import json, sys
from omnifer_lib.engine import pipeline
from omnifer_lib.publish import config
params = config.load_profile("smoke", json.loads(sys.argv[1]))
trained = pipeline.train_side_by_side(params, [(pipeline.learner, (params, "vgg_small", mode), {"seed": seed})
                                               for mode in ("anchor", "anchor+VAS") for seed in (0, 1)])
table = pipeline.results_table(params, ["vgg_small"], modes=("anchor", "anchor+VAS"))
print(json.dumps({"trained": trained, "accuracy": table["accuracy"].tolist()}))
"""


def _learner_records(cache: Path):
    return {p.parent.name: json.loads(p.read_text()) for p in cache.glob("learner/*/meta.json")}


def test_two_worker_processes_train_what_one_process_trains_with_the_same_numbers(tmp_path, monkeypatch):
    script = tmp_path / "no_main_guard.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMNIFER_CACHE=str(tmp_path / "workers"), OMNIFER_PROGRESS="0")
    done = subprocess.run([sys.executable, str(script), json.dumps({**SMALL, "learner_processes": 2})], env=env,
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["trained"] == 4  # the two rounds, all in workers

    monkeypatch.setenv("OMNIFER_CACHE", str(tmp_path / "here"))
    pipeline.clear_memory_caches()
    params = config.load_profile("smoke", {**SMALL, "learner_processes": 1})
    threads = torch.get_num_threads()
    here = pipeline.results_table(params, ["vgg_small"], modes=("anchor", "anchor+VAS"))
    assert torch.get_num_threads() == threads  # train_threads held for the training only
    assert here["accuracy"].tolist() == out["accuracy"]

    workers, local = _learner_records(tmp_path / "workers"), _learner_records(tmp_path / "here")
    assert workers.keys() == local.keys() and len(workers) == 4
    for key in workers:
        assert workers[key]["created_by"]["machine"]["threads"] == 1 == local[key]["created_by"]["machine"]["threads"]
        a, b = (models.load(tmp_path / d / "learner" / key / "model.pt").state_dict() for d in ("workers", "here"))
        assert all(torch.equal(a[name], b[name]) for name in a), key


def test_nothing_runs_in_workers_when_everything_is_cached_or_one_learner_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("OMNIFER_CACHE", str(tmp_path / "cache"))
    pipeline.clear_memory_caches()
    params = config.load_profile("smoke", {**SMALL, "learner_processes": 2})
    one = [(pipeline.learner, (params, "vgg_small", "anchor"), {"seed": 0})]
    assert pipeline.train_side_by_side(params, one) == 0  # one learner: trained where it is asked for
    pipeline.learner(params, "vgg_small", "anchor", seed=0)
    assert side_by_side.missing_learners(one) == {}
    assert pipeline.train_side_by_side(params, one * 3) == 0


def test_a_failure_in_a_worker_is_raised_to_the_caller_and_caches_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("OMNIFER_CACHE", str(tmp_path / "cache"))
    pipeline.clear_memory_caches()
    params = config.load_profile("smoke", {**SMALL, "learner_processes": 2, "lr": 1e9})
    with pytest.raises(FloatingPointError, match="training loss became"):
        pipeline.results_table(params, ["vgg_small"], modes=("anchor",))
    assert not _learner_records(tmp_path / "cache")


def test_how_many_learners_train_at_once():
    smoke = config.load_profile("smoke")
    assert smoke["train_threads"] is None and pipeline.learner_processes(smoke) == 1  # a learner takes every core
    one = dict(smoke, train_threads=1, device="cpu")
    assert pipeline.learner_processes(one) == torch.get_num_threads()
    assert pipeline.learner_processes(dict(one, learner_processes=3)) == 3
    two = dict(one, train_threads=2)
    assert pipeline.learner_processes(two) == max(1, torch.get_num_threads() // 2)
    demo = config.load_profile("demo")
    assert demo["train_threads"] == 1 and demo["learner_processes"] is None
