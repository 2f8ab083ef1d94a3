"""MTCNN alignment (facenet-pytorch weights ship in the wheel: runs offline)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from omnifer_lib.data.align import (FaceAligner, align_folder, align_image, apply_transform,
                                    canonical_template, similarity_transform)

skimage_data = pytest.importorskip("skimage.data")


def eye_angle_deg(landmarks: np.ndarray) -> float:
    dx, dy = landmarks[1] - landmarks[0]
    return float(np.degrees(np.arctan2(dy, dx)))


@pytest.fixture(scope="module")
def aligner():
    return FaceAligner(224, device="cpu")


@pytest.fixture(scope="module")
def astronaut():
    return Image.fromarray(skimage_data.astronaut())


def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    ang, scale, t = np.radians(23), 1.7, np.array([5.0, -8.0])
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = src @ (scale * rot).T + t
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], scale * rot) and np.allclose(m[:, 2], t)
    assert np.allclose(apply_transform(m, src), dst)
    mirrored = dst * np.array([-1, 1])  # a reflection is not a similarity: no exact fit
    assert not np.allclose(apply_transform(similarity_transform(src, mirrored), src), mirrored)


def test_astronaut_aligned_224_with_level_eyes(aligner, astronaut):
    crop, face, matrix = aligner.align(astronaut)
    assert crop.size == (224, 224)
    mapped = apply_transform(matrix, face.landmarks)
    assert abs(eye_angle_deg(mapped)) < 1.0
    assert np.abs(mapped - canonical_template(224)).max() < 20  # landmarks near the template
    again = aligner.choose(aligner.detect(crop))  # re-detect on the aligned crop
    assert again is not None and abs(eye_angle_deg(again.landmarks)) < 3.0
    assert np.abs(again.landmarks[:2] - canonical_template(224)[:2]).max() < 12


def test_rotated_input_comes_out_upright(aligner, astronaut):
    tilted = astronaut.rotate(20, resample=Image.Resampling.BILINEAR)
    before = aligner.choose(aligner.detect(tilted))
    assert abs(eye_angle_deg(before.landmarks)) > 12
    crop = align_image(tilted, 224, aligner)
    after = aligner.choose(aligner.detect(crop))
    assert abs(eye_angle_deg(after.landmarks)) < 3.0


def test_align_folder_reports_missing_faces_and_caches(tmp_path, astronaut):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "people").mkdir(parents=True)
    astronaut.resize((256, 256)).save(src / "people" / "astro.jpg")
    Image.new("RGB", (128, 128), (120, 130, 140)).save(src / "blank.png")
    (src / "broken.jpg").write_bytes(b"garbage")
    small = FaceAligner(64, device="cpu")
    with pytest.warns(UserWarning, match="1 without a detected face, 1 unreadable"):
        report = align_folder(src, dst, size=64, aligner=small, show_progress=False)
    assert report.aligned == ["people/astro.jpg"] and report.not_found == ["blank.png"]
    assert report.unreadable == ["broken.jpg"]
    assert Image.open(dst / "people" / "astro.jpg").size == (64, 64)
    assert (dst / "not_found.txt").read_text().split() == ["blank.png"]

    class Counting(FaceAligner):
        calls = 0

        def detect(self, img):
            Counting.calls += 1
            return super().detect(img)

    counting = Counting(64, device="cpu")
    with pytest.warns(UserWarning):
        again = align_folder(src, dst, size=64, aligner=counting, show_progress=False)
    assert Counting.calls == 0 and again.from_cache == 1 and again.not_found == ["blank.png"]
    # a changed output size is a different cache entry: recomputed
    bigger = Counting(80, device="cpu")
    with pytest.warns(UserWarning):
        align_folder(src, dst, size=80, aligner=bigger, show_progress=False)
    assert Counting.calls == 2 and Image.open(dst / "people" / "astro.jpg").size == (80, 80)


def test_align_dataset_crops_faces_and_keeps_images_without_one(aligner, astronaut):
    from omnifer_lib.data._base import ArrayImageDataset
    from omnifer_lib.data.align import align_dataset

    blank = np.full((120, 160, 3), 128, dtype=np.uint8)
    photos = np.stack([np.asarray(astronaut.resize((160, 120))), blank])
    ds = ArrayImageDataset(photos, np.array([4, 0]), None, "two", transform=lambda im: im)
    small = FaceAligner(48)
    images, found = align_dataset(ds, 48, aligner=small, show_progress=False)
    assert images.shape == (2, 48, 48, 3) and images.dtype == np.uint8
    assert found.tolist() == [True, False]
    assert np.array_equal(images[0], np.asarray(small.align(ds[0][0])[0]))  # the aligned crop
    assert (images[1] == 128).all()  # no face: the whole image, resized, is kept
    with pytest.raises(ValueError, match="crops to 48 px"):
        align_dataset(ds, 64, aligner=small)
    with pytest.raises(TypeError, match="PIL images"):
        align_dataset(ArrayImageDataset(photos, np.array([4, 0]), None, "t"), 48, aligner=small)
