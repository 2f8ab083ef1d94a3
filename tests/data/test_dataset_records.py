"""One record per dataset: every list of datasets is derived from the records, and adding a dataset
is what CONTRIBUTING's recipe says (its module with a RECORD, and one entry in data/registry.py)."""
import shutil
import subprocess
import sys
from pathlib import Path

from omnifer_lib import data
from conftest import changed_files

from omnifer_lib.engine import pipeline, roles
from omnifer_lib.data import registry

LIB = Path(__file__).resolve().parents[2] / "omnifer_lib"


def test_every_dataset_module_declares_its_record_and_the_lists_agree():
    for name, record in registry.RECORDS.items():
        assert record.name == name
        module = sys.modules[record.factory.__module__]
        assert module.RECORD is record, f"{name}'s record is not its loader module's RECORD"
        assert record.default_split in record.splits or record.splits == ("all",)
        assert set(record.optional_splits) <= set(record.splits)
    assert list(data.REGISTRY) == list(registry.RECORDS)
    assert set(data.LAYOUT_CHECKS) == {n for n, r in registry.RECORDS.items() if r.needs_root}
    assert registry.PAPER_DATASETS == ("rafdb", "fer2013", "ckplus", "jaffe", "mmi", "ms1m")
    assert pipeline.REAL_DATASETS == registry.PAPER_DATASETS and pipeline.SIZE_KEYS == registry.SIZE_KEYS
    assert pipeline.DATASET_NAMES == {"rafdb": "RAF-DB", "fer2013": "FER-2013", "ckplus": "CK+", "jaffe": "JAFFE",
                                      "mmi": "MMI", "ms1m": "MS-Celeb-1M"}
    assert roles.SPLIT_DATASETS == ("rafdb", "fer2013")
    assert "folder" not in data.SIZE_KEYS and "synthetic" not in data.LAYOUT_CHECKS


TOY = '''"""A toy dataset for the recipe test: ``root/toy.npz`` with ``x_<split>`` (N, 3, 8, 8) float32 in
[0, 1] and ``y_<split>`` (N,) labels, for splits train and test."""
from pathlib import Path

import numpy as np
import torch

from ._base import DatasetRecord, FERDataset, layout_error, require_dir

LAYOUT = "root/toy.npz   arrays x_train, y_train, x_test, y_test"


def check_layout(root) -> None:
    if not (require_dir(root, "toyfer", LAYOUT) / "toy.npz").is_file():
        raise layout_error("toyfer", f"no toy.npz in {root}", LAYOUT)


class ToyFER(FERDataset):
    def __init__(self, root, split="train", transform=None):
        check_layout(root)
        arrays = np.load(Path(root) / "toy.npz")
        self.x = torch.as_tensor(arrays[f"x_{split}"])
        super().__init__(arrays[f"y_{split}"], None, f"toyfer[{split}]", transform)

    def _load(self, index):
        return self.x[index]


RECORD = DatasetRecord("toyfer", "Toy-FER", ToyFER, "train", ("train", "test"), check_layout)
'''

CHECK = '''
import sys
import numpy as np
from omnifer_lib import data
from omnifer_lib.engine import roles
from omnifer_lib.data import protocols
root = sys.argv[1]
rng = np.random.default_rng(0)
np.savez(f"{root}/toy.npz", x_train=rng.random((6, 3, 8, 8), dtype=np.float32), y_train=np.arange(6) % 7,
         x_test=rng.random((3, 3, 8, 8), dtype=np.float32), y_test=np.arange(3))
data.check_root("toyfer", root)
ds = data.load("toyfer", root=root)
assert len(ds) == 6 and ds[1][1] == 1 and tuple(ds[0][0].shape) == (3, 8, 8)
assert sorted(protocols.official_splits("toyfer", root)) == ["test", "train"]
assert data.DISPLAY_NAMES["toyfer"] == "Toy-FER" and "toyfer" in data.LAYOUT_CHECKS
assert "toyfer" in roles.SPLIT_DATASETS
try:
    data.check_root("toyfer", root + "/missing")
except data.DatasetLayoutError as exc:
    assert "toy.npz" in str(exc)
else:
    raise AssertionError("a missing root passed")
print("ok")
'''


def test_adding_a_dataset_follows_the_recipe(tmp_path):
    copy = tmp_path / "omnifer_lib"
    shutil.copytree(LIB, copy, ignore=shutil.ignore_patterns("__pycache__"))
    # the recipe: the dataset's module with its RECORD, and its entry in data/registry.py
    (copy / "data" / "toyfer.py").write_text(TOY)
    reg = copy / "data" / "registry.py"
    text = reg.read_text()
    assert "    synthetic.RECORD,\n" in text and "from . import ckplus," in text
    reg.write_text(text.replace("from . import ckplus,", "from . import toyfer, ckplus,")
                   .replace("    synthetic.RECORD,\n", "    synthetic.RECORD, toyfer.RECORD,\n"))
    changed = changed_files(LIB, copy)
    assert changed == {"data/registry.py", "data/toyfer.py"}, changed
    (tmp_path / "root").mkdir()
    proc = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path / "root")], capture_output=True, text=True,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_the_old_name_of_the_display_names_still_reads_them():
    from omnifer_lib import names

    assert names.DATASET_NAMES == registry.DATASET_NAMES
    assert data.RAFDB is data.RECORDS["rafdb"].factory and data.load_fer2013 is data.RECORDS["fer2013"].factory
