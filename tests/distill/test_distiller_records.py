"""One record per distiller: every list of distillers is derived from distill.registry.DISTILLERS, and a
record runs its distiller from the profile parameters as the distillation stage does."""
import pytest
import torch
import torch.utils.data

from omnifer_lib.engine import pipeline
from omnifer_lib.publish import distill_chapter, real_faces
from omnifer_lib.distill import DISTILLERS, distiller, mean_image, random_real


def test_the_lists_of_distillers_come_from_the_records():
    assert tuple(DISTILLERS) == ("algorithm1", "distribution_matching", "random_real", "mean_image")
    assert pipeline.DAS_METHODS == tuple(DISTILLERS)
    assert real_faces.DISTILLERS == tuple((d.label, name) for name, d in DISTILLERS.items())
    assert set(distill_chapter.BASELINES.values()) == set(DISTILLERS) - {"algorithm1"}
    assert all(DISTILLERS[name].label == label for label, name in distill_chapter.BASELINES.items())
    assert [d.learned for d in DISTILLERS.values()] == [True, True, False, False]
    with pytest.raises(ValueError, match="unknown distiller 'kmeans'.*algorithm1"):
        distiller("kmeans")


def test_a_record_runs_its_distiller_from_the_profile_parameters():
    images = torch.rand(12, 3, 8, 8)
    labels = torch.arange(12) % 3
    params = {"images_per_class": 2, "seed": 5, "eta0": 0.3}
    for name, direct in (("random_real", random_real), ("mean_image", mean_image)):
        got = distiller(name).run(None, torch.utils.data.TensorDataset(images, labels), params)
        want = direct(images, labels, images_per_class=2, seed=5, step_size=0.3)
        assert torch.equal(got.images, want.images) and torch.equal(got.labels, want.labels), name
        assert got.step_sizes.tolist() == pytest.approx([0.3])
