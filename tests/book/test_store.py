import json
import multiprocessing as mp
import os
from pathlib import Path

import pytest
import torch

from omnifer_lib.files import atomic_torch_save, atomic_write_bytes, torch_load
from omnifer_lib.engine.store import Store, artifact_key


def test_key_is_stable_and_changes_exactly_with_dependencies():
    k = artifact_key("selection", {"delta": 0.1, "rule": "margin"}, {"primitive": "abc"})
    assert k == artifact_key("selection", {"rule": "margin", "delta": 0.1}, {"primitive": "abc"})  # order-free
    assert k == artifact_key("selection", {"delta": 0.1, "rule": "margin"}, {"primitive": "abc"})
    assert k != artifact_key("selection", {"delta": 0.2, "rule": "margin"}, {"primitive": "abc"})
    assert k != artifact_key("selection", {"delta": 0.1, "rule": "margin"}, {"primitive": "abd"})
    assert k != artifact_key("distill", {"delta": 0.1, "rule": "margin"}, {"primitive": "abc"})
    assert k != artifact_key("selection", {"delta": 0.1, "rule": "margin"}, {"primitive": "abc"}, version=2)
    assert artifact_key("s", {"epochs": 3}) == artifact_key("s", {"epochs": 3.0})
    assert artifact_key("s", {"x": [1, 2]}) != artifact_key("s", {"x": [2, 1]})


def test_key_rejects_unhashable_values():
    with pytest.raises(TypeError, match="cannot hash"):
        artifact_key("s", {"model": object()})


def test_get_or_compute_computes_once(tmp_path):
    store = Store(tmp_path)
    calls = []

    def compute(work: Path):
        calls.append(1)
        (work / "value.json").write_text(json.dumps({"x": 42}))
        return {"accuracy": 0.5}

    a = store.get_or_compute("stage", {"a": 1}, compute)
    b = store.get_or_compute("stage", {"a": 1}, compute)
    assert calls == [1]
    assert a.computed and not b.computed
    assert a.key == b.key and b.meta["summary"] == {"accuracy": 0.5}
    assert json.loads(b.file("value.json").read_text()) == {"x": 42}
    c = store.get_or_compute("stage", {"a": 2}, compute)
    assert calls == [1, 1] and c.key != a.key


def test_exception_mid_write_leaves_no_entry(tmp_path):
    store = Store(tmp_path)

    def compute(work: Path):
        (work / "half.bin").write_bytes(b"partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        store.get_or_compute("stage", {"a": 1}, compute)
    key = artifact_key("stage", {"a": 1})
    assert store.get("stage", key) is None
    assert list(store.entries()) == []
    # the next run starts clean (not resumable): the half file is not carried into the result
    art = store.get_or_compute("stage", {"a": 1}, lambda w: (w / "ok").write_text("1") and None)
    assert sorted(p.name for p in art.path.iterdir()) == ["meta.json", "ok"]


def test_resumable_stage_sees_its_previous_work(tmp_path):
    store = Store(tmp_path)

    def first(work: Path):
        (work / "checkpoint").write_text("epoch 3")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.get_or_compute("train", {"e": 5}, first, resumable=True)
    seen = []
    store.get_or_compute("train", {"e": 5}, lambda w: seen.append((w / "checkpoint").read_text()), resumable=True)
    assert seen == ["epoch 3"]


def _worker(root, out_queue):
    store = Store(root)

    def compute(work: Path):
        marker = Path(root) / f"computed-{os.getpid()}"
        marker.write_text("x")
        (work / "v").write_text(str(os.getpid()))

    art = store.get_or_compute("stage", {"same": True}, compute)
    out_queue.put(art.file("v").read_text())


def test_two_processes_computing_the_same_key_agree(tmp_path):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), q)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    values = {q.get(timeout=5) for _ in procs}
    assert len(values) == 1  # everybody reads the same result
    assert len(list(tmp_path.glob("computed-*"))) == 1  # and it was computed once


def test_entries_clear_and_sizes(tmp_path):
    store = Store(tmp_path)
    store.get_or_compute("a", {"x": 1}, lambda w: (w / "f").write_bytes(b"12345") and None)
    store.get_or_compute("b", {"x": 1}, lambda w: None)
    entries = list(store.entries())
    assert [e.stage for e in entries] == ["a", "b"]
    assert store.size_bytes(entries[0]) > 5
    assert store.clear("a") == 1
    assert [e.stage for e in store.entries()] == ["b"]
    assert store.clear() == 1 and list(store.entries()) == []


def test_default_root_honours_env(monkeypatch, tmp_path):
    from omnifer_lib.engine.store import default_root

    monkeypatch.setenv("OMNIFER_CACHE", str(tmp_path / "c"))
    assert default_root() == tmp_path / "c"


def test_atomic_helpers_round_trip(tmp_path):
    atomic_write_bytes(tmp_path / "d" / "f.bin", b"abc")
    assert (tmp_path / "d" / "f.bin").read_bytes() == b"abc"
    state = {"w": torch.arange(3.0), "meta": {"epoch": 2}}
    atomic_torch_save(state, tmp_path / "ck.pt")
    back = torch_load(tmp_path / "ck.pt")
    assert torch.equal(back["w"], state["w"]) and back["meta"] == {"epoch": 2}
    assert not list(tmp_path.glob(".*.tmp"))


def test_write_json_writes_numpy_values_and_the_asked_format(tmp_path):
    import json

    import numpy as np

    from omnifer_lib.files import write_json

    obj = {"b": np.int64(3), "a": np.float32(0.5), "c": np.arange(2), "d": tmp_path.name, "e": np.bool_(True)}
    write_json(tmp_path / "x" / "o.json", obj)
    assert json.loads((tmp_path / "x" / "o.json").read_text()) == {"b": 3, "a": 0.5, "c": [0, 1], "d": tmp_path.name,
                                                                  "e": True}
    write_json(tmp_path / "s.json", {"b": 1, "a": "é"}, indent=None, sort_keys=True, ensure_ascii=False, newline=True)
    assert (tmp_path / "s.json").read_text(encoding="utf-8") == '{"a": "é", "b": 1}\n'
    with pytest.raises(TypeError, match="PosixPath is not JSON"):  # a stray object is refused, not stringified
        write_json(tmp_path / "p.json", {"p": tmp_path})
    write_json(tmp_path / "p.json", {"p": tmp_path}, default=str)
    assert json.loads((tmp_path / "p.json").read_text()) == {"p": str(tmp_path)}
    assert not list(tmp_path.rglob(".*.tmp"))


def test_leftovers_of_a_killed_writer_do_not_enter_the_artifact(tmp_path):
    key = artifact_key("demo", {"x": 1})
    work = tmp_path / "demo" / f"{key}.work"
    (work / "ckpt").mkdir(parents=True)
    (work / "meta.json.tmp").write_text('{"stage": "demo"}')  # killed between writing and renaming meta
    (work / "ckpt" / ".fit.pt.1234.tmp").write_bytes(b"half")  # killed inside atomic_write_bytes
    calls = []

    def compute(w):
        calls.append(1)
        (w / "model.pt").write_bytes(b"m")

    art = Store(tmp_path).get_or_compute("demo", {"x": 1}, compute, resumable=True)
    assert sorted(art.meta["files"]) == ["model.pt"]
    assert not list(art.path.rglob("*.tmp"))
    again = Store(tmp_path).get_or_compute("demo", {"x": 1}, compute, resumable=True)
    assert not again.computed and calls == [1]


def _fake_code(module_hash="x"):
    # a code record naming a real module with a hash that cannot be its current one: stale
    return {"roots": ["omnifer_lib.device"], "modules": {"omnifer_lib.device": module_hash}, "fingerprint": "f"}


def test_staleness_follows_the_lineage_even_when_the_upstream_is_gone(tmp_path):
    from omnifer_lib.engine.fingerprint import code_fingerprint

    store = Store(tmp_path)
    current = code_fingerprint(["omnifer_lib.device"])
    up = store.get_or_compute("learner", {"a": 1}, lambda w: None, code=_fake_code())
    down = store.get_or_compute("selection", {"b": 1}, lambda w: None, upstream={"primitive": up.key}, code=current)
    assert down.meta["lineage"][up.key]["stage"] == "learner"
    reasons = store.stale_reasons()
    assert reasons[up.key].startswith("code changed: device")
    assert reasons[down.key].startswith(f"upstream learner {up.key}: code changed")
    store.clear("learner")
    assert store.stale_reasons()[down.key]  # still stale: its lineage remembers the upstream's code
    assert store.clear(stale=True) == 1 and not list(store.entries())


def test_clear_stale_removes_unfinished_work_of_old_code_and_keeps_current(tmp_path):
    from omnifer_lib.engine.fingerprint import code_fingerprint

    store = Store(tmp_path)
    for code, name in ((_fake_code(), "old"), (code_fingerprint(["omnifer_lib.device"]), "new")):
        with pytest.raises(RuntimeError):
            store.get_or_compute(name, {"x": 1}, lambda w: (_ for _ in ()).throw(RuntimeError("killed")),
                                 code=code, resumable=True)
    unfinished = {w.parent.name: why for w, why in store.unfinished()}
    assert unfinished["old"].startswith("code changed") and unfinished["new"] is None
    store.clear(stale=True)
    assert [w.parent.name for w, _ in store.unfinished()] == ["new"]


def test_maintenance_waits_for_no_run(tmp_path):
    from omnifer_lib.engine.store import StoreBusyError

    store = Store(tmp_path)
    store.get_or_compute("a", {"x": 1}, lambda w: None)
    with store.run_lock("a test run"):
        with pytest.raises(StoreBusyError, match="an omnifer run is using the artifact store"):
            Store(tmp_path).clear()
    assert Store(tmp_path).clear() == 1


def test_scratch_files_are_dropped_from_a_finished_artifact(tmp_path):
    def compute(w):
        (w / "ckpt").mkdir()
        (w / "ckpt" / "fit.pt").write_bytes(b"checkpoint")
        (w / "model.pt").write_bytes(b"m")

    art = Store(tmp_path).get_or_compute("learner", {"x": 1}, compute, scratch=("ckpt",))
    assert sorted(art.meta["files"]) == ["model.pt"] and not (art.path / "ckpt").exists()


def test_large_files_are_checked_by_size_and_their_ends(tmp_path, monkeypatch):
    from omnifer_lib.engine import store as store_module

    monkeypatch.setattr(store_module, "FULL_HASH_MAX_BYTES", 1000)
    art = Store(tmp_path).get_or_compute("s", {"x": 1}, lambda w: (w / "big.bin").write_bytes(b"\0" * 5000) and None)
    data = bytearray(art.file("big.bin").read_bytes())
    data[-1] = 1
    art.file("big.bin").write_bytes(bytes(data))
    assert Store(tmp_path).get("s", art.key) is None  # the last bytes changed: detected
