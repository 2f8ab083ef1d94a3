"""Real-dataset loaders on tiny fixtures written in each published layout."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from omnifer_lib.data import LABELS, DatasetLayoutError, class_counts, describe, load

L = {name: i for i, name in enumerate(LABELS)}


def write_img(path: Path, value: int, size=(12, 10), mode="RGB") -> Path:
    """A solid image whose gray level identifies it in assertions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, (value,) * 3 if mode == "RGB" else value).save(path)
    return path


def level(img: torch.Tensor) -> int:
    return int(round(float(img.mean()) * 255))


# ----------------------------------------------------------------------------- registry
def test_unknown_name_and_option_are_errors():
    with pytest.raises(ValueError, match="unknown dataset 'affectnet'.*rafdb"):
        load("affectnet")
    with pytest.raises(ValueError, match="unknown option.*colour.*accepted"):
        load("synthetic", colour=True)


def test_missing_root_names_expected_layout(tmp_path):
    with pytest.raises(DatasetLayoutError, match="list_patition_label.txt"):
        load("rafdb")
    with pytest.raises(DatasetLayoutError, match="does not exist|not a folder"):
        load("jaffe", root=tmp_path / "nowhere")


# ----------------------------------------------------------------------------- RAF-DB
def make_rafdb(root: Path, lines, variant="aligned"):
    basic = root / "basic"
    (basic / "EmoLabel").mkdir(parents=True)
    (basic / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    for i, line in enumerate(lines):
        name = line.split()[0]
        stem = name[:-4]
        write_img(basic / "Image" / "aligned" / f"{stem}_aligned.jpg", 20 * i + 10)
        write_img(basic / "Image" / "original" / name, 20 * i + 10)


def test_rafdb_labels_split_and_images(tmp_path):
    lines = ["train_00001.jpg 5", "train_00002.jpg 7", "test_0001.jpg 1", "train_00003.jpg 4"]
    make_rafdb(tmp_path, lines)
    train = load("rafdb", root=tmp_path, split="train")
    test = load("rafdb", root=tmp_path / "basic", split="test", variant="original")
    assert train.labels.tolist() == [L["sad"], L["neutral"], L["happy"]]
    assert test.labels.tolist() == [L["surprise"]]
    assert train.subjects is None and train.classes == LABELS and train.name == "rafdb:train"
    img, lab = train[1]
    assert img.shape == (3, 10, 12) and img.dtype == torch.float32 and lab == L["neutral"]
    assert abs(level(img) - 30) <= 2  # JPEG of the second line's image
    assert abs(level(test[0][0]) - 50) <= 2


def test_rafdb_transform_gets_pil(tmp_path):
    make_rafdb(tmp_path, ["train_00001.jpg 4"])
    seen = []
    ds = load("rafdb", root=tmp_path, transform=lambda im: seen.append(type(im).__name__) or "x")
    assert ds[0] == ("x", L["happy"]) and seen == ["Image"]


def test_rafdb_bad_codes_and_compound(tmp_path):
    make_rafdb(tmp_path, ["train_00001.jpg 9"])
    with pytest.raises(ValueError, match=r"list_patition_label.txt:1: label code 9 .*compound"):
        load("rafdb", root=tmp_path)
    comp = tmp_path / "c"
    (comp / "compound" / "EmoLabel").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="compound set"):
        load("rafdb", root=comp)


def test_unreadable_image_names_file_and_skip_option(tmp_path):
    make_rafdb(tmp_path, ["train_00001.jpg 1", "train_00002.jpg 2"])
    bad = tmp_path / "basic" / "Image" / "aligned" / "train_00002_aligned.jpg"
    bad.write_bytes(b"not a jpeg at all")
    ds = load("rafdb", root=tmp_path)
    with pytest.raises(ValueError, match="train_00002_aligned.jpg.*expected a JPEG"):
        ds[1]
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        ds = load("rafdb", root=tmp_path, skip_corrupt=True)
    assert len(ds) == 1 and ds.skipped == [str(bad)] and ds.labels.tolist() == [L["surprise"]]


# ----------------------------------------------------------------------------- FER-2013
def fer_rows():
    rows = []
    for i, (code, usage) in enumerate([(0, "Training"), (6, "Training"), (3, "PublicTest"), (5, "PrivateTest")]):
        rows.append((code, " ".join([str(10 * i + 5)] * 2304), usage))
    return rows


def test_fer2013_csv_splits_and_codes(tmp_path):
    text = "emotion,pixels,Usage\n" + "".join(f"{c},{p},{u}\n" for c, p, u in fer_rows())
    (tmp_path / "fer2013.csv").write_text(text)
    train = load("fer2013", root=tmp_path)
    assert train.labels.tolist() == [L["anger"], L["neutral"]] and train.subjects is None
    img, _ = train[1]
    assert img.shape == (3, 48, 48) and level(img) == 15
    assert load("fer2013", root=tmp_path, split="val").labels.tolist() == [L["happy"]]
    assert load("fer2013", root=tmp_path / "fer2013.csv", split="test").labels.tolist() == [L["surprise"]]


def test_fer2013_csv_with_leading_space_columns(tmp_path):
    text = "emotion, Usage, pixels\n" + "".join(f"{c}, {u}, {p}\n" for c, p, u in fer_rows())
    (tmp_path / "icml_face_data.csv").write_text(text)
    assert load("fer2013", root=tmp_path, split="train").labels.tolist() == [L["anger"], L["neutral"]]


def test_fer2013_csv_errors(tmp_path):
    (tmp_path / "fer2013.csv").write_text("emotion,pixels,Usage\n7," + " ".join(["1"] * 2304) + ",Training\n")
    with pytest.raises(ValueError, match="row 2: emotion '7' outside FER-2013 range 0..6"):
        load("fer2013", root=tmp_path)
    (tmp_path / "fer2013.csv").write_text("emotion,pixels,Usage\n1,1 2 3,Training\n")
    with pytest.raises(ValueError, match="2304 values"):
        load("fer2013", root=tmp_path)
    (tmp_path / "fer2013.csv").write_text("label,pixels\n")
    with pytest.raises(ValueError, match="missing column"):
        load("fer2013", root=tmp_path)


def test_ferplus_majority_and_skips(tmp_path):
    text = "emotion,pixels,Usage\n" + "".join(f"{c},{p},{u}\n" for c, p, u in fer_rows())
    (tmp_path / "fer2013.csv").write_text(text)
    head = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
    rows = ["Training,fer0000000.png,0,8,1,0,0,1,0,0,0,0",   # happy
            "Training,,0,0,0,0,0,0,0,0,0,10",                 # no face -> skipped
            "PublicTest,fer0000002.png,5,5,0,0,0,0,0,0,0,0",  # tie -> skipped
            "PrivateTest,fer0000003.png,0,0,0,0,0,0,0,9,1,0"]  # contempt -> skipped
    (tmp_path / "fer2013new.csv").write_text(head + "\n".join(rows) + "\n")
    ds = load("fer2013", root=tmp_path, ferplus=True)
    assert ds.labels.tolist() == [L["happy"]] and ds.name == "ferplus:train"
    assert any("tie 1" in n and "contempt 1" in n for n in ds.notes)
    assert len(load("fer2013", root=tmp_path, split="test", ferplus=True)) == 0


def test_fer2013_image_folder_release(tmp_path):
    write_img(tmp_path / "train" / "angry" / "a.jpg", 40, (48, 48), "L")
    write_img(tmp_path / "train" / "neutral" / "b.jpg", 80, (48, 48), "L")
    write_img(tmp_path / "test" / "surprise" / "c.jpg", 120, (48, 48), "L")
    train = load("fer2013", root=tmp_path)
    assert sorted(train.labels.tolist()) == [L["neutral"], L["anger"]]
    assert train[0][0].shape == (3, 48, 48)
    assert load("fer2013", root=tmp_path, split="test").labels.tolist() == [L["surprise"]]
    with pytest.raises(DatasetLayoutError, match="val"):
        load("fer2013", root=tmp_path, split="val")
    write_img(tmp_path / "train" / "contempt" / "d.jpg", 10, (48, 48), "L")
    with pytest.raises(DatasetLayoutError, match="unexpected class folder.*contempt"):
        load("fer2013", root=tmp_path)


# ----------------------------------------------------------------------------- CK+
def make_ckplus(root: Path, seqs):
    """seqs: {(subject, seq): (n_frames, code)}; frame k of a sequence has gray level 10 + k."""
    for (subj, seq), (n, code) in seqs.items():
        for k in range(1, n + 1):
            write_img(root / "cohn-kanade-images" / subj / seq / f"{subj}_{seq}_{k:08d}.png", 10 + k)
        if code is not None:
            f = root / "Emotion" / subj / seq / f"{subj}_{seq}_{n:08d}_emotion.txt"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(f"   {code:.7e}\n")


def test_ckplus_official_protocol(tmp_path):
    make_ckplus(tmp_path, {("S005", "001"): (6, 3), ("S010", "002"): (5, 5), ("S010", "004"): (4, 2),
                           ("S011", "001"): (7, None)})
    ds = load("ckplus", root=tmp_path)
    # S005/001 disgust: frame 1 neutral + frames 4,5,6; S010/002 happy: 1 + 3,4,5;
    # S010/004 contempt: only its neutral first frame; S011 unlabeled: unused
    n, d, h = L["neutral"], L["disgust"], L["happy"]
    assert ds.labels.tolist() == [n, d, d, d, n, h, h, h, n]
    assert ds.subjects.tolist() == ["S005"] * 4 + ["S010"] * 5
    assert [level(ds[i][0]) for i in range(4)] == [11, 14, 15, 16]
    assert ds.classes == LABELS and len(ds) == 9
    kept = load("ckplus", root=tmp_path, keep_contempt=True)
    assert kept.classes == LABELS + ("contempt",) and kept.labels.tolist()[-3:] == [7, 7, 7]
    assert "8 classes" in describe(kept)


def test_ckplus_errors(tmp_path):
    make_ckplus(tmp_path, {("S005", "001"): (4, 9)})
    with pytest.raises(ValueError, match="_emotion.txt: emotion code .* outside CK\\+ range 0..7"):
        load("ckplus", root=tmp_path)
    with pytest.raises(ValueError, match="no official 'train' split.*subject_kfold"):
        load("ckplus", root=tmp_path, split="train")
    with pytest.raises(DatasetLayoutError, match="neither the official CK\\+ release .*nor CK\\+48"):
        load("ckplus", root=tmp_path / "Emotion" / "S005")


def test_ckplus48_has_no_neutral(tmp_path):
    write_img(tmp_path / "CK+48" / "anger" / "S010_004_00000017.png", 30, (48, 48), "L")
    write_img(tmp_path / "CK+48" / "sadness" / "S011_002_00000009.png", 60, (48, 48), "L")
    write_img(tmp_path / "CK+48" / "contempt" / "S012_001_00000004.png", 90, (48, 48), "L")
    ds = load("ckplus", root=tmp_path)
    assert ds.labels.tolist() == [L["anger"], L["sad"]] and ds.subjects.tolist() == ["S010", "S011"]
    assert ds.missing_classes == ("neutral",) and "no neutral class" in describe(ds)
    assert class_counts(ds)[L["neutral"]] == 0
    assert load("ckplus", root=tmp_path / "CK+48", keep_contempt=True).labels.tolist() == [1, 7, 5]


# ----------------------------------------------------------------------------- JAFFE
def test_jaffe_names_subjects_and_errors(tmp_path):
    folder = tmp_path / "jaffe"
    for i, name in enumerate(["KA.AN1.39.tiff", "KA.NE2.27.tiff", "YM.SU3.60.tiff", "NA.DI1.214.tiff"]):
        write_img(folder / name, 30 * i + 20, (16, 16), "L")
    (folder / "README").write_text("not an image")
    ds = load("jaffe", root=tmp_path)
    assert ds.labels.tolist() == [L["anger"], L["neutral"], L["disgust"], L["surprise"]]
    assert ds.subjects.tolist() == ["KA", "KA", "NA", "YM"]
    write_img(folder / "KA.XX1.1.tiff", 1, (16, 16), "L")
    with pytest.raises(ValueError, match="KA.XX1.1.tiff: expression code 'XX'"):
        load("jaffe", root=folder)


# ----------------------------------------------------------------------------- MMI
def test_mmi_sessions(tmp_path):
    s1 = tmp_path / "Sessions" / "1"
    s1.mkdir(parents=True)
    (s1 / "session.xml").write_text('<session><subject id="S001"/><Metatag Name="Emotion" Value="4"/></session>')
    for k in range(7):
        write_img(s1 / f"frame_{k:04d}.png", 10 * k + 5)
    s2 = tmp_path / "Sessions" / "2"
    s2.mkdir()
    (s2 / "session.xml").write_text('<session><subject id="S002"/></session>')  # no emotion: skipped
    ds = load("mmi", root=tmp_path)
    assert ds.labels.tolist() == [L["neutral"], L["happy"], L["happy"], L["happy"]]
    assert ds.subjects.tolist() == ["S001"] * 4
    assert [level(ds[i][0]) for i in range(4)] == [5, 25, 35, 45]  # first + 3 middle frames
    s3 = tmp_path / "Sessions" / "3"
    s3.mkdir()
    (s3 / "session.xml").write_text('<session><Metatag Name="Emotion" Value="2"/></session>')
    (s3 / "S003-001.avi").write_bytes(b"")
    with pytest.raises(DatasetLayoutError, match="no frame images.*ffmpeg -i"):
        load("mmi", root=tmp_path)
    (s3 / "session.xml").write_text('<session><Metatag Name="Emotion" Value="9"/></session>')
    with pytest.raises(ValueError, match="emotion code 9 outside MMI basic range 1..6"):
        load("mmi", root=tmp_path)


def test_mmi_missing_layout_message(tmp_path):
    with pytest.raises(DatasetLayoutError, match="session.xml.*Metatag"):
        load("mmi", root=tmp_path)


# ----------------------------------------------------------------------------- folder
def test_folder_labeled_and_flat(tmp_path):
    write_img(tmp_path / "lab" / "Happiness" / "a.png", 10)
    write_img(tmp_path / "lab" / "angry" / "b.png", 20)
    ds = load("folder", root=tmp_path / "lab")
    assert sorted(ds.labels.tolist()) == [L["anger"], L["happy"]]
    write_img(tmp_path / "pool" / "x.png", 10)
    write_img(tmp_path / "pool" / "y.jpg", 10)
    pool = load("folder", root=tmp_path / "pool")
    assert pool.labels.tolist() == [-1, -1] and "unlabeled" in describe(pool)
    write_img(tmp_path / "ids" / "alice" / "1.png", 10)
    write_img(tmp_path / "ids" / "bob" / "2.png", 10)
    ids = load("folder", root=tmp_path / "ids", recursive=True)
    assert ids.subjects.tolist() == ["alice", "bob"] and (ids.labels == -1).all()
    write_img(tmp_path / "lab" / "bored" / "c.png", 10)
    with pytest.raises(DatasetLayoutError, match="bored is not a known expression"):
        load("folder", root=tmp_path / "lab")


def test_dataloader_over_file_dataset(tmp_path):
    make_rafdb(tmp_path, ["train_00001.jpg 1", "train_00002.jpg 4", "train_00003.jpg 7"])
    ds = load("rafdb", root=tmp_path)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch[0].shape == (3, 3, 10, 12) and batch[1].tolist() == [L["surprise"], L["happy"], L["neutral"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(class_counts(ds), [1, 0, 0, 0, 1, 0, 1])
