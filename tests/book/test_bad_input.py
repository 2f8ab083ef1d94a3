"""Bad input stops at the door: one line naming the problem, a non-zero exit, no traceback,
nothing written to the artifact store or book/generated/."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from omnifer_lib.engine.store import Store


def omnifer(*args, cwd, env=None, timeout=600):
    proc = subprocess.run([sys.executable, "-m", "omnifer_lib", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_error(rc: int, err: str, *needles: str) -> str:
    assert rc != 0
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("omnifer: error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def assert_nothing_written(root: Path) -> None:
    generated = root / "book" / "generated"
    assert not list(generated.glob("*.ipynb")) if generated.is_dir() else True
    cache = Path(os.environ["OMNIFER_CACHE"])
    assert not list(Store(cache).entries())


# (arguments after `--profile smoke`, what the one-line message must name)
AT_THE_DOOR = [
    (["-p", "delta", "-1"], ["'delta'", "-1", "[0, 2)"]),
    (["-p", "selection_rule", "bogus"], ["'selection_rule'", "'bogus'", "'margin'"]),
    (["-p", "backbones", "[nope]"], ["'backbones'", "'nope'", "'vgg_small'"]),
    (["-p", "das_strategy", "bogus"], ["'das_strategy'", "'bogus'", "'minibatch'"]),
    (["-p", "data_source", "bogus"], ["'data_source'", "'bogus'", "'synthetic'"]),
    (["-p", "distill_init_scope", "bogus"], ["'distill_init_scope'", "'head'"]),
    (["-p", "epochs", "-3"], ["'epochs'", "-3", "[1, inf)"]),
    (["-p", "batch_size", "0"], ["'batch_size'", "0", "[1, inf)"]),
    (["-p", "image_size", "3"], ["'image_size'", "3"]),
    (["-p", "backbones", "[vgg_face]", "-p", "image_size", "16"], ["'image_size'", "vgg_face", "32"]),
    (["-p", "flip_p", "1.5"], ["'flip_p'", "1.5", "[0, 1]"]),
    (["-p", "class_quantile", "2"], ["'class_quantile'", "[0, 1]"]),
    (["-p", "seeds", "[]"], ["'seeds'", "at least 1"]),
    (["-p", "device", "gpu"], ["'device'", "'gpu'", "'cuda:N'"]),
    (["-p", "seeds", "[0, 1"], ["'seeds'", "cannot parse", "list[int]"]),  # malformed YAML
    (["-p", "epochs", "abc"], ["'epochs'", "int"]),  # wrong type
    (["-p", "nonexistent", "1"], ["'nonexistent'", "seed"]),  # unknown parameter
]


@pytest.mark.parametrize("args,needles", AT_THE_DOOR, ids=[" ".join(a) for a, _ in AT_THE_DOOR])
def test_bad_parameter_stops_reproduce_before_any_notebook(book_copy, args, needles):
    rc, out, err = omnifer("reproduce", "--profile", "smoke", "--no-build", *args, cwd=book_copy)
    assert_one_line_error(rc, err, *needles)
    assert "[1/" not in out  # no notebook started
    assert_nothing_written(book_copy)


def test_bad_parameter_stops_run_before_the_notebook(book_copy):
    rc, out, err = omnifer("run", "02", "--profile", "smoke", "-p", "delta", "-1", cwd=book_copy)
    assert_one_line_error(rc, err, "'delta'")
    assert "running" not in out
    assert_nothing_written(book_copy)


def test_unknown_profile_and_notebook(book_copy):
    assert_one_line_error(*omnifer("reproduce", "--profile", "nope", cwd=book_copy)[::2], "'nope'", "demo")
    assert_one_line_error(*omnifer("run", "42", "--profile", "smoke", cwd=book_copy)[::2], "'42'", "00_pipeline")
    assert_nothing_written(book_copy)


def test_cuda_on_a_machine_without_it_stops_at_once(book_copy):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: -p device cuda is valid here")
    rc, out, err = omnifer("reproduce", "--profile", "smoke", "-p", "device", "cuda", cwd=book_copy)
    assert_one_line_error(rc, err, "'device'", "'cuda'", "-p device cpu")
    assert "[1/" not in out
    assert_nothing_written(book_copy)


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    from omnifer_lib.data.published_layouts import write_published_layouts

    root = tmp_path_factory.mktemp("layouts")
    return root, write_published_layouts(root, image_size=16)


def _real_args(roots):
    args = ["--profile", "smoke", "-p", "data_source", "real"]
    for k, v in roots.items():
        args += ["-p", k, v]
    return args


@pytest.mark.parametrize("problem", ["missing", "empty", "other layout"])
def test_dataset_root_missing_empty_or_in_another_layout(book_copy, tmp_path, layouts, problem):
    _, roots = layouts
    bad = {"missing": str(tmp_path / "nowhere"), "empty": str(tmp_path / "empty"),
           "other layout": roots["jaffe_root"]}[problem]
    (tmp_path / "empty").mkdir()
    rc, out, err = omnifer("reproduce", "--no-build", *_real_args({**roots, "rafdb_root": bad}), cwd=book_copy)
    line = assert_one_line_error(rc, err, "rafdb_root", "RAF-DB")
    assert {"missing": "not a folder", "empty": "empty", "other layout": "list_patition_label.txt"}[problem] in err
    assert "[1/" not in out
    assert line
    assert_nothing_written(book_copy)


@pytest.mark.slow
def test_corrupt_image_fails_in_one_line_naming_the_file(book_copy, tmp_path, layouts):
    import shutil

    _, roots = layouts
    rafdb = tmp_path / "rafdb"
    shutil.copytree(roots["rafdb_root"], rafdb)
    victim = sorted((rafdb / "basic" / "Image" / "aligned").glob("train_*"))[0]
    victim.write_bytes(b"\xff\xd8\xff this is not a JPEG any more")
    rc, out, err = omnifer("run", "02", *_real_args({**roots, "rafdb_root": str(rafdb)}), "--quiet", cwd=book_copy)
    assert rc == 1
    assert_one_line_error(rc, err, "02_primitive_learner", "cannot read image", victim.name)
    assert not (book_copy / "book" / "generated" / "02_primitive_learner.ipynb").exists()
    assert not [a for a in Store().entries() if a.stage == "learner"]  # no learner stored from a broken set


@pytest.mark.slow
def test_delta_that_selects_nothing_names_the_chapter_and_a_delta_that_works(book_copy):
    rc, out, err = omnifer("run", "04", "--profile", "smoke", "-p", "delta", "1.99", "--quiet", cwd=book_copy)
    line = assert_one_line_error(rc, err, "04_distillation", "delta 1.99", "accepted no auxiliary samples",
                                 "largest margin", "-p delta")
    assert not (book_copy / "book" / "generated" / "04_distillation.ipynb").exists()
    assert not [a for a in Store().entries() if a.stage == "distilled"]
    suggested = float(line.rsplit("-p delta ", 1)[1].split(")")[0])
    assert 0 <= suggested < 1.99


def test_corrupt_artifact_is_reported_removed_and_recomputed(tmp_path, capsys):
    store = Store(tmp_path)
    calls = []

    def compute(work: Path):
        calls.append(1)
        (work / "model.pt").write_bytes(b"w" * 4096)
        (work / "sub").mkdir()
        (work / "sub" / "history.json").write_text('{"loss": [1, 2]}')

    art = store.get_or_compute("learner", {"a": 1}, compute)
    assert art.meta["files"]["model.pt"][0] == 4096
    # truncated
    with open(art.file("model.pt"), "r+b") as fh:
        fh.truncate(100)
    again = store.get_or_compute("learner", {"a": 1}, compute)
    assert again.computed and calls == [1, 1] and again.file("model.pt").stat().st_size == 4096
    assert "model.pt has 100 bytes, 4096 were written (truncated)" in capsys.readouterr().err
    # same size, other bytes
    data = bytearray(again.file("model.pt").read_bytes())
    data[10] ^= 1
    again.file("model.pt").write_bytes(bytes(data))
    third = store.get_or_compute("learner", {"a": 1}, compute)
    assert third.computed and calls == [1, 1, 1]
    assert "does not match the SHA-256" in capsys.readouterr().err
    # a file gone, and an unreadable meta.json
    (third.path / "sub" / "history.json").unlink()
    assert store.get("learner", third.key) is None and "sub/history.json is missing" in capsys.readouterr().err
    fourth = store.get_or_compute("learner", {"a": 1}, compute)
    (fourth.path / "meta.json").write_text('{"stage": "learn')
    assert store.get("learner", fourth.key) is None and "meta.json is unreadable" in capsys.readouterr().err
    assert not list(tmp_path.glob("learner/*.damaged"))


def test_a_second_reproduce_on_the_same_store_waits_for_the_first(book_copy):
    store = Store()
    lines = []
    with store.run_lock("the test"):
        proc = subprocess.Popen([sys.executable, "-m", "omnifer_lib", "reproduce", "--profile", "smoke",
                                 "--only", "00", "--no-build", "--quiet"], cwd=book_copy, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        deadline = time.time() + 120
        while not any("waits until it has finished" in ln for ln in lines) and time.time() < deadline:
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.2)
        assert any("another omnifer run is using the artifact store" in ln for ln in lines), "".join(lines)
        time.sleep(1)
        assert proc.poll() is None  # still waiting: it has not run the notebook meanwhile
        assert not (book_copy / "book" / "generated" / "00_pipeline.ipynb").exists()
    assert proc.wait(300) == 0, "".join(lines)
    reader.join(5)
    assert (book_copy / "book" / "generated" / "00_pipeline.ipynb").is_file()
