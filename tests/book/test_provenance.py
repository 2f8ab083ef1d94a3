"""Provenance: two runs on different copies of a dataset can be told apart."""
from omnifer_lib.engine import provenance
from omnifer_lib.publish.reproducibility import render_page


def test_dataset_fingerprint_follows_the_file_list(tmp_path):
    root = tmp_path / "fer"
    (root / "train" / "happy").mkdir(parents=True)
    (root / "train" / "happy" / "a.png").write_bytes(b"x" * 10)
    first = provenance.dataset_fingerprint(root)
    assert first["files"] == 1 and first["bytes"] == 10 and len(first["sha256"]) == 16
    copy = tmp_path / "copy"
    (copy / "train" / "happy").mkdir(parents=True)
    (copy / "train" / "happy" / "a.png").write_bytes(b"y" * 10)  # same names and sizes: same list
    assert provenance.dataset_fingerprint(copy)["sha256"] == first["sha256"]
    (copy / "train" / "happy" / "b.png").write_bytes(b"y")
    assert provenance.dataset_fingerprint(copy)["sha256"] != first["sha256"]
    assert provenance.dataset_fingerprint(tmp_path / "nowhere")["missing"]


def test_records_of_real_data_runs_carry_each_roots_fingerprint(tmp_path):
    (tmp_path / "f.png").write_bytes(b"1")
    params = {"data_source": "real", "rafdb_root": str(tmp_path), "mmi_root": None}
    assert set(provenance.dataset_fingerprints(params)) == {"rafdb"}
    assert provenance.dataset_fingerprints({**params, "data_source": "synthetic"}) == {}
    rec = provenance.record(notebook="02_x.ipynb", profile="smoke", parameters=params, overrides={}, repo=tmp_path,
                            started="s", ended="e", seconds=1.0, status="ok", inputs_hash="h",
                            git={"commit": None, "dirty": None})
    page = render_page(["02_x"], [rec])
    assert f"dataset rafdb: 1 files, 1 bytes, file-list digest `{rec['datasets']['rafdb']['sha256']}`" in page


def test_records_and_artifacts_name_the_machine(tmp_path):
    import torch

    from omnifer_lib.engine.store import Store

    m = provenance.machine()
    assert m["cpu"] and m["threads"] == torch.get_num_threads() and m["torch"] == torch.__version__
    text = provenance.machine_text(m)
    assert m["cpu"] in text and f"{m['threads']} thread(s)" in text and f"torch {m['torch']}" in text
    assert m["cpu_id"] is None or (" family " in m["cpu_id"] and f"({m['cpu_id']})" in text)
    assert provenance.machine_text(None) == "not recorded"
    rec = provenance.record(notebook="02_x.ipynb", profile="smoke", parameters={"device": "cpu"}, overrides={},
                            repo=tmp_path, started="s", ended="e", seconds=1.0, status="ok", inputs_hash="h",
                            git={"commit": None, "dirty": None})
    page = render_page(["02_x"], [rec])
    assert f"on {m['cpu']}" in page and f"machine: {text}" in page
    art = Store(tmp_path / "store").get_or_compute("stage", {"a": 1}, lambda work: {})
    assert art.meta["created_by"]["machine"] == m


def test_cpu_id_tells_chips_apart_that_share_a_vague_model_name(monkeypatch):
    import io

    zen4 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
            "model name\t: AMD EPYC\nflags\t\t: fpu avx avx2 avx512f\n\nprocessor\t: 1\nmodel\t\t: 99\n")
    for text, expected in [(zen4, "AuthenticAMD family 25 model 17, AVX-512"),
                           (zen4.replace(" avx512f", ""), "AuthenticAMD family 25 model 17, AVX2"),
                           ("processor\t: 0\nmodel name\t: Apple M2\n", None)]:
        monkeypatch.setattr(provenance, "open", lambda *a, text=text, **k: io.StringIO(text), raising=False)
        provenance._cpuinfo.cache_clear()
        assert provenance.cpu_id() == expected
    monkeypatch.undo()
    provenance._cpuinfo.cache_clear()


def test_git_state_names_the_files_that_differ_from_the_commit(tmp_path):
    import subprocess

    from omnifer_lib.engine.provenance import git_state

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    clean = git_state(tmp_path)
    assert clean["dirty"] is False and "changed" not in clean and len(clean["commit"]) == 40
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_state(tmp_path)["changed"] == ["a.py"]
