"""The heavy stages under torchrun (2 gloo processes on the CPU): ``omnifer reproduce
--nproc-per-node`` computes Table 1's learners with every rank into the cache, and the notebooks'
single process then reads them without computing anything (vgg_small: its face pretraining runs
distributed too)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from omnifer_lib.engine import pipeline
from omnifer_lib.publish import config

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with the gloo backend is not available in this torch build")

ONE_SEED = ["-p", "seeds", "[0]", "-p", "backbones", "[vgg_small]"]


def test_torchrun_computes_table_1_into_the_cache_the_notebooks_read(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    env = {**os.environ, "OMNIFER_CACHE": str(cache), "OMNIFER_PROGRESS": "0"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           "-m", "omnifer_lib.publish.distributed_run", "--profile", "smoke", *ONE_SEED],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes, gloo" in done.stdout
    assert not list(cache.rglob("*.work")) and not list(cache.rglob(".rank*"))  # nothing left half-done

    monkeypatch.setenv("OMNIFER_CACHE", str(cache))
    pipeline.clear_memory_caches()
    params = config.load_profile("smoke", {"seeds": [0], "backbones": ["vgg_small"]})
    assert pipeline.face_pretraining(params, "vgg_small").meta["created_by"]["machine"]["world_size"] == 2
    for mode in ("anchor", "anchor+VAS", "anchor+DAS"):
        art = pipeline.learner(params, "vgg_small", mode, seed=0)
        assert not art.computed, f"{mode} was computed again in one process"
        made_on = art.meta["created_by"]["machine"]
        assert made_on["world_size"] == 2 and made_on["backend"] == "gloo"
        assert len(pipeline.history(art)) == params["epochs"]
    selection = pipeline.selection(params, "vgg_small")
    assert not selection.computed
    from omnifer_lib import select as S

    scored = S.open_manifest(selection.path / "manifest").columns(["pool_index"])["pool_index"]
    pool = pipeline.dataset(params, pipeline.pool_of(params), "train")
    assert sorted(scored.tolist()) == list(range(len(pool)))  # both ranks' shards, merged in pool order

def test_reproduce_with_nproc_per_node_runs_torchrun_first_and_stops_when_it_fails(monkeypatch, capsys):
    from omnifer_lib.publish.cli import main

    calls = []

    def fake_run(cmd, check):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 3)

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert main(["reproduce", "--profile", "smoke", "--nproc-per-node", "2", "-p", "seeds", "[0]",
                 "--no-build"]) == 1
    (cmd,) = calls
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m"]
    assert cmd[6:9] == ["omnifer_lib.publish.distributed_run", "--profile", "smoke"]
    assert " ".join(cmd[9:]) == "-p seeds [0] -p world_size 2"
    assert "torchrun exit status 3" in capsys.readouterr().err  # and no notebook ran after it
