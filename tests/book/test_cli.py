"""The `omnifer` command line: errors are one line and exit non-zero; runs land in book/generated."""
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import torch
import pytest

from omnifer_lib.publish import cli

REPO = Path(__file__).resolve().parents[2]


def omnifer(*args, cwd):
    proc = subprocess.run([sys.executable, "-m", "omnifer_lib", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def _error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("omnifer: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_unknown_parameter_for_run(book_copy):
    rc, out, err = omnifer("run", "notebooks/00_pipeline.md", "-p", "nonexistent", "1", cwd=book_copy)
    assert rc != 0
    line = _error_line(err)
    assert "nonexistent" in line and "seed" in line  # names the problem and the valid ones
    assert not (book_copy / "book" / "generated" / "00_pipeline.ipynb").exists()


def test_unknown_profile_for_reproduce(book_copy):
    rc, out, err = omnifer("reproduce", "--profile", "nope", cwd=book_copy)
    assert rc != 0
    line = _error_line(err)
    assert "'nope'" in line and "demo" in line


def test_wrong_type(book_copy):
    rc, _, err = omnifer("run", "00_pipeline", "-p", "seed", "abc", cwd=book_copy)
    assert rc != 0 and "seed" in _error_line(err) and "int" in _error_line(err)


def test_notebook_not_found(book_copy):
    rc, _, err = omnifer("run", "notebooks/42_nothing.ipynb", cwd=book_copy)
    assert rc != 0 and "42_nothing" in _error_line(err) and "00_pipeline" in _error_line(err)


def _failing_notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "omnifer", "display_name": "omnifer", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# Failing"),
                nbformat.v4.new_code_cell("profile = \"demo\"\noverrides = {}", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("raise ValueError('boom in cell')")]
    nbformat.write(nb, str(path))


def test_failed_cell_names_notebook_cell_and_error_and_keeps_it(book_copy):
    _failing_notebook(book_copy / "notebooks" / "98_fails.ipynb")
    rc, _, err = omnifer("run", "98_fails", cwd=book_copy)
    assert rc == 1
    line = _error_line(err)
    assert "98_fails.ipynb" in line and "cell" in line and "ValueError" in line and "boom in cell" in line
    kept = book_copy / "book" / "generated" / "_failed" / "98_fails.ipynb"
    assert kept.is_file() and str(kept) in line
    executed = nbformat.read(str(kept), as_version=4)
    assert any(o.get("ename") == "ValueError" for c in executed.cells for o in c.get("outputs", []))
    assert not (book_copy / "book" / "generated" / "98_fails.ipynb").exists()


def test_run_injects_parameters_and_records_provenance(book_copy):
    rc, out, err = omnifer("run", "00_pipeline", "--profile", "smoke", "-p", "seed", "5", cwd=book_copy)
    assert rc == 0, err
    out_nb = book_copy / "book" / "generated" / "00_pipeline.ipynb"
    nb = nbformat.read(str(out_nb), as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "overrides = {\"seed\": 5}" in injected[0].source
    rec = nb.metadata["omnifer"]
    assert rec["profile"] == "smoke" and rec["parameters"]["seed"] == 5 and rec["overrides"] == {"seed": 5}
    assert rec["seeds"]["seed"] == 5 and rec["packages"]["torch"] and rec["device"]
    assert rec["started"] <= rec["ended"] and "git" in rec and "commit" in rec["git"]
    side = json.loads((book_copy / "book" / "generated" / "00_pipeline.provenance.json").read_text())
    assert side["inputs_hash"] == rec["inputs_hash"]


def test_profiles_lists_every_parameter(capsys):
    assert cli.main(["profiles"]) == 0
    out = capsys.readouterr().out
    from omnifer_lib.publish import config

    for name in config.parameter_specs():
        assert name in out
    for prof in ("smoke", "demo", "paper"):
        assert prof in out


def test_cache_ls_and_clear(tmp_path, monkeypatch, capsys):
    from omnifer_lib.engine.store import Store

    monkeypatch.setenv("OMNIFER_CACHE", str(tmp_path))
    Store().get_or_compute("primitive", {"x": 1}, lambda w: (w / "m.pt").write_bytes(b"0" * 2048) and None)
    assert cli.main(["cache", "ls"]) == 0
    out = capsys.readouterr().out
    assert "primitive" in out and "KB" in out and "1 artifact" in out
    assert cli.main(["cache", "clear"]) == 0
    assert "removed 1" in capsys.readouterr().out
    assert cli.main(["cache", "ls"]) == 0 and "(empty)" in capsys.readouterr().out


def test_reproduce_skips_unchanged_notebooks(book_copy, capsys):
    from omnifer_lib.publish import runner

    first = runner.reproduce(profile="smoke", only=["00"], build=False, log=lambda s: None)
    second = runner.reproduce(profile="smoke", only=["00"], build=False, log=lambda s: None)
    changed = runner.reproduce(profile="smoke", overrides={"seed": 3}, only=["00"], build=False, log=lambda s: None)
    assert not first[0].skipped and second[0].skipped and not changed[0].skipped


def test_export_das_writes_a_set_that_loads_back(tmp_path, monkeypatch, capsys):
    from omnifer_lib.engine import pipeline
    from omnifer_lib.publish import config
    from omnifer_lib.distill import load_das

    monkeypatch.setenv("OMNIFER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "das"
    assert cli.main(["export-das", str(out), "--profile", "smoke", "--backbone", "resnet_small",
                     "--method", "mean_image"]) == 0
    back = load_das(out / "das.pt")
    params = config.load_profile("smoke")
    stored = pipeline.load_distilled(pipeline.distilled(params, "resnet_small", "mean_image"))
    assert torch.equal(back.images, stored.images) and torch.equal(back.labels, stored.labels)
    assert len(list((out / "images").glob("*.png"))) == len(back.labels)
    assert cli.main(["export-das", str(out), "--profile", "smoke", "--method", "nope"]) == 2
    assert "method" in capsys.readouterr().err


def test_write_layouts_prints_the_roots_and_refuses_to_overwrite(tmp_path, capsys):
    assert cli.main(["write-layouts", str(tmp_path), "--image-size", "24"]) == 0
    out = capsys.readouterr().out
    for name in ("rafdb", "fer2013", "ckplus", "jaffe", "mmi", "ms1m"):
        assert f"-p {name}_root {tmp_path / name}" in out and (tmp_path / name).is_dir()
    assert "not real data" in out
    assert cli.main(["write-layouts", str(tmp_path)]) == 2
    assert "exists" in capsys.readouterr().err


@pytest.mark.slow
def test_run_prints_stage_progress_and_records_the_artifacts_it_read(book_copy):
    import os

    from omnifer_lib.publish.reproducibility import artifacts_summary

    env = dict(os.environ, OMNIFER_PROGRESS_EVERY="0")
    # a committed checkout, as a user's clone is (book/generated/ ignored, so runs leave it clean)
    import shutil

    shutil.copy2(REPO / ".gitignore", book_copy / ".gitignore")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=book_copy, check=True, capture_output=True)

    def run(*extra):
        proc = subprocess.run([sys.executable, "-m", "omnifer_lib", "run", "04", "--profile", "smoke", *extra],
                              cwd=book_copy, capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 0, proc.stderr
        rec = json.loads((book_copy / "book" / "generated" / "04_distillation.provenance.json").read_text())
        return proc.stdout, rec

    out, rec = run()
    assert "learner vgg_small · anchor · trained on rafdb · seed 0: epoch 2/2: loss" in out
    assert "selection chunk 1/1" in out
    assert "Algorithm 1 iteration" in out and "finished in" in out
    computed = [a for a in rec["artifacts"] if a["stage"] != "rendered"]
    assert {"learner", "selection", "distilled"} <= {a["stage"] for a in computed}
    assert all(a["computed"] for a in computed)
    n, fresh = len(rec["artifacts"]), sum(a["computed"] for a in rec["artifacts"])
    assert artifacts_summary(rec) == f"all {n} computed by this commit ({fresh} in this run)"
    # the same chapter again: everything reused from this run's commit
    out, rec = run("--quiet")
    assert rec["artifacts"] and not any(a["computed"] for a in rec["artifacts"])
    assert artifacts_summary(rec) == f"all {len(rec['artifacts'])} computed by this commit (0 in this run)"
    # --quiet while stages compute (another seed): no progress lines
    out, rec = run("--quiet", "-p", "seed", "1")
    assert any(a["computed"] for a in rec["artifacts"])
    assert "epoch" not in out and " | " not in out


def test_reproduce_side_by_side_matches_one_after_the_other(book_copy, tmp_path, monkeypatch):
    """--jobs 2: two chapters in worker processes; each chapter's outputs are those of a run one after
    the other (00 draws Fig. 1; 11 renders the real-faces archive)."""
    import nbformat

    from omnifer_lib.publish import runner

    lines = []
    both = runner.reproduce(profile="smoke", only=["00", "11"], build=False, log=lines.append, jobs=2, force=True)
    assert [r.notebook for r in both] == ["00_pipeline.md", "11_real_faces.md"] and not any(r.skipped for r in both)
    assert any("2 side by side (" in s and "thread(s) each)" in s for s in lines)
    side = nbformat.read(str(both[0].output), as_version=4)
    one = runner.reproduce(profile="smoke", only=["00"], build=False, log=lambda s: None, force=True)
    alone = nbformat.read(str(one[0].output), as_version=4)

    def images(nb):
        return [o["data"]["image/png"] for c in nb.cells for o in c.get("outputs", [])
                if "image/png" in o.get("data", {})]
    assert images(side) and images(side) == images(alone)


def test_reproduce_side_by_side_reports_a_failed_chapter(book_copy):
    from omnifer_lib.publish import runner

    bad = book_copy / "notebooks" / "00_pipeline.md"
    source = bad.read_text()
    assert "\nimport matplotlib.pyplot as plt\n" in source
    bad.write_text(source.replace("\nimport matplotlib.pyplot as plt\n",
                                  "\nraise ValueError('broken on purpose')\nimport matplotlib.pyplot as plt\n", 1))
    with pytest.raises(runner.NotebookFailed, match="broken on purpose"):
        runner.reproduce(profile="smoke", only=["00", "11"], build=False, log=lambda s: None, jobs=2, force=True)
    assert (book_copy / "book" / "generated" / "11_real_faces.ipynb").is_file()  # the other chapter finished


def test_jobs_share_the_cpus():
    import pickle

    from omnifer_lib.publish import runner

    assert runner.threads_per_job(2, cpus=2) == 1 and runner.threads_per_job(1, cpus=2) == 2
    assert runner.threads_per_job(4, cpus=2) == 1 and runner.threads_per_job(2, cpus=16) == 8
    err = runner.NotebookFailed("05.md", 3, "ValueError", "bad", Path("/x"))
    back = pickle.loads(pickle.dumps(err))  # raised in a worker process, re-raised in the parent
    assert str(back) == str(err) and back.cell == 3
    with pytest.raises(runner.RunnerError, match="at least 1"):
        runner.reproduce(profile="smoke", only=["00"], build=False, log=lambda s: None, jobs=0)


def test_make_book_hands_params_to_reproduce():
    """`make book PARAMS="-p seeds '[0]'"` (README: one seed for a class) reaches `omnifer reproduce`
    as the same words the CLI parses; `make -n` prints the recipe without running it."""
    if shutil.which("make") is None or not (REPO / "Makefile").is_file():
        pytest.skip("make or the Makefile is not here")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}  # under `make test`
    proc = subprocess.run(["make", "-n", "book", "PROFILE=demo", "JOBS=1", "NPROC=",
                           "PARAMS=-p seeds '[0]' -p backbones '[vgg_small, resnet_small]'"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    line = next(ln for ln in proc.stdout.splitlines() if "omnifer reproduce" in ln)
    words = shlex.split(line)
    assert words[-6:] == ["-p", "seeds", "[0]", "-p", "backbones", "[vgg_small, resnet_small]"]
    args = cli.build_parser().parse_args(words[words.index("reproduce"):])
    assert args.parameter == [["seeds", "[0]"], ["backbones", "[vgg_small, resnet_small]"]]


def _network_namespace_works() -> bool:
    try:
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def test_kernel_talks_over_unix_sockets(tmp_path):
    from omnifer_lib.publish import runner

    manager = runner.kernel_manager_class(tmp_path)
    if os.name != "posix":
        assert manager is None
        return
    km = manager(kernel_name="python3")
    assert km.transport == "ipc" and km.ip == str(tmp_path / "kernel")


@pytest.mark.skipif(not _network_namespace_works(), reason="needs `unshare -rn` (a user and network namespace)")
def test_a_chapter_runs_without_a_loopback_interface(book_copy):
    # In a new network namespace the loopback interface is down: a kernel on TCP localhost never answers.
    proc = subprocess.run(["unshare", "-rn", sys.executable, "-m", "omnifer_lib", "run", "00", "--profile", "smoke",
                           "--quiet"], cwd=book_copy, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = nbformat.read(str(book_copy / "book" / "generated" / "00_pipeline.ipynb"), as_version=4)
    assert out.metadata["omnifer"]["status"] == "ok"
