"""The real-data path end to end: synthetic faces written in each dataset's published layout,
read back by the real loaders, through every cached stage the notebooks use."""
import numpy as np
import pytest
import torch

from omnifer_lib import data
from omnifer_lib.engine import pipeline
from omnifer_lib.publish import config
from omnifer_lib.data.published_layouts import DATASETS, write_published_layouts

SIZES = {"rafdb_train": 140, "rafdb_test": 70, "fer2013_train": 70, "fer2013_test": 35, "ckplus": 210,
         "jaffe": 35, "mmi": 140, "ms1m": 200}


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    # written at 40 px while the smoke learners take 32 px: the loaders must resize
    return write_published_layouts(tmp_path_factory.mktemp("layouts"), sizes=SIZES, image_size=40)


@pytest.fixture
def real(roots, tmp_path, monkeypatch):
    monkeypatch.setenv("OMNIFER_CACHE", str(tmp_path / "cache"))
    pipeline.clear_memory_caches()
    return config.load_profile("smoke", {"data_source": "real", "backbones": ["vgg_small"], "seeds": [0],
                                         "per_class_cap": None, **roots})


def test_every_layout_reads_back_with_its_labels(roots):
    assert set(roots) == {f"{n}_root" for n in DATASETS}
    for name in ("rafdb", "fer2013", "ckplus", "jaffe", "mmi"):
        ds = data.load(name, root=roots[f"{name}_root"], split="test" if name in ("rafdb", "fer2013") else None)
        counts = data.class_counts(ds)
        assert len(ds) > 0 and counts.sum() == len(ds)
        assert (counts > 0).sum() >= 5, f"{name}: classes {counts.tolist()}"
        assert ds.subjects is None or len(set(ds.subjects.tolist())) > 1
        first, second = ds[0][0], ds[len(ds) - 1][0]
        assert first.std() > 0.02 and not torch.equal(first, second), f"{name}: blank or identical faces"
    pool = data.load("ms1m", root=roots["ms1m_root"])
    assert len(pool) == SIZES["ms1m"] and (pool.labels == -1).all()
    assert len(set(pool.subjects.tolist())) > 1
    assert pool[0][0].std() > 0.02


def test_ckplus_frames_are_the_rendered_faces(roots):
    # PNG is lossless: every frame on disk is one of the synthetic faces, pixel for pixel
    from omnifer_lib.data.synthetic import SyntheticFER

    synthetic = SyntheticFER(split="train", domain="ckplus", size=SIZES["ckplus"], image_size=40, seed=0)
    rendered = synthetic.rendered()
    ds = data.load("ckplus", root=roots["ckplus_root"])
    for i in range(0, len(ds), 7):
        frame = (ds[i][0] * 255).round().to(torch.uint8)
        match = torch.nonzero((rendered == frame).flatten(1).all(1)).flatten()
        assert len(match), f"frame {i} is not a rendered face"
        assert ds.labels[i] in synthetic.labels[match.numpy()], f"frame {i} lost its expression"


def test_refuses_to_mix_with_an_existing_folder(roots):
    parent = roots["rafdb_root"].rsplit("/", 1)[0]
    with pytest.raises(FileExistsError, match="empty folder"):
        write_published_layouts(parent, datasets=["rafdb"])
    with pytest.raises(ValueError, match="unknown dataset"):
        write_published_layouts(parent, datasets=["affectnet"])


def test_pipeline_runs_on_real_layouts(real):
    pipeline.preflight(real)
    for name in pipeline.REAL_DATASETS:
        assert "real data at" in pipeline.role_description(real, name)
    size = real["image_size"]
    for name, split in (("rafdb", "train"), ("fer2013", "test"), ("ckplus", "all"), ("ms1m", "train")):
        image, _ = pipeline.dataset(real, name, split)[0]
        assert tuple(image.shape) == (3, size, size), f"{name} images reach the learners at {tuple(image.shape)}"

    table = pipeline.results_table(real, ["vgg_small"])
    assert set(table["mode"]) == set(pipeline.MODES)
    assert set(table["target"]) == {"rafdb", *pipeline.CROSS_TARGETS}
    assert table["accuracy"].between(0, 100).all()
    assert pipeline.selection(real, "vgg_small").meta["summary"]["pool"] == SIZES["ms1m"]
    vas = pipeline.auxiliary_samples(real, "vgg_small")
    assert 0 < len(vas) <= SIZES["ms1m"]

    folds = pipeline.kfold_table(real, "vgg_small", modes=("anchor",))
    assert len(folds) == real["ckplus_folds"]
    assert np.isfinite(folds["accuracy"]).all()
