"""Bad input to the real-dataset loaders: each is refused with an error whose first line
names the problem, the file (or root) and the expected form; ``check_root`` validates a
root's layout without decoding images."""
from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omnifer_lib import data
from omnifer_lib.data import DatasetLayoutError, check_root, load
from omnifer_lib.data.ms1m import RecordWriter, pack_payload, write_insightface_rec
from omnifer_lib.data.published_layouts import DATASETS, write_published_layouts

SIZES = {"rafdb_train": 21, "rafdb_test": 14, "fer2013_train": 14, "fer2013_test": 14, "ckplus": 42,
         "jaffe": 14, "mmi": 42, "ms1m": 20}
REAL_FER2013 = Path("/work/shared/data/fer2013-48px")
LOADER_MODULES = {"rafdb": data.rafdb, "fer2013": data.fer2013, "ckplus": data.ckplus, "jaffe": data.jaffe,
                  "mmi": data.mmi, "ms1m": data.ms1m, "folder": data.folder}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """Every dataset's published layout (synthetic faces), written once; tests copy before editing."""
    roots = write_published_layouts(tmp_path_factory.mktemp("layouts"), sizes=SIZES, image_size=16)
    return {key[:-len("_root")]: Path(path) for key, path in roots.items()}


def copy_of(layouts, name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(layouts[name], tmp_path / name))


def first_line(excinfo) -> str:
    return str(excinfo.value).splitlines()[0]


def write_gray(path: Path, value: int = 100, size: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (size, size), value).save(path)
    return path


# ----------------------------------------------------------------------------- 1. corrupt images
def fer2013_folder(root: Path) -> Path:
    for k, cls in enumerate(("angry", "happy", "sad")):
        write_gray(root / "train" / cls / f"{k}.jpg", 40 * k + 20)
    return root


def image_folder(root: Path) -> Path:
    for k, cls in enumerate(("anger", "happy")):
        write_gray(root / cls / f"{k}.png", 40 * k + 20)
    return root


def corrupt(path: Path, how: str) -> None:
    data_ = path.read_bytes()
    path.write_bytes({"garbage": b"\x89not an image at all" * 8, "truncated": data_[:len(data_) // 2],
                      "empty": b""}[how])


FILE_LOADERS = ("rafdb", "fer2013", "ckplus", "jaffe", "mmi", "folder")


@pytest.mark.parametrize("how", ["garbage", "truncated", "empty"])
@pytest.mark.parametrize("name", FILE_LOADERS)
def test_corrupt_image_names_the_file_on_one_line(layouts, tmp_path, name, how):
    if name == "fer2013":
        root = fer2013_folder(tmp_path / "fer")
    elif name == "folder":
        root = image_folder(tmp_path / "folder")
    else:
        root = copy_of(layouts, name, tmp_path)
    ds = load(name, root=root)
    i = len(ds) - 1
    bad = Path(ds.paths[i])
    corrupt(bad, how)
    assert ds[0][0].shape[0] == 3  # the other files still read
    with pytest.raises(ValueError) as excinfo:
        ds[i]
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(f"cannot read image {bad}: ") and "(expected " in message
    assert "skip_corrupt=True" in message


# ----------------------------------------------------------------------------- 2. FER-2013 CSV
PIXELS = " ".join(["7"] * 2304)
GOOD_ROW = f"3,{PIXELS},Training"
HEADER = "emotion,pixels,Usage"


@pytest.mark.parametrize("rows, expected", [
    ([HEADER, GOOD_ROW, "0,Training"], r"row 3 has 2 field\(s\) but the header has 3; expected the columns "
                                       "'emotion,pixels,Usage'"),
    ([HEADER, GOOD_ROW, f"0,{PIXELS},PublicTest,extra"], "row 3 has 4 field"),
    ([HEADER, GOOD_ROW, "0,1 2 3,Training"], "row 3: 'pixels' must hold 2304 values 0..255 \\(48x48\\), got 3"),
    ([HEADER, GOOD_ROW, "0," + " ".join(["1"] * 9 + ["x"] + ["1"] * 2294) + ",Training"],
     "row 3: 'pixels' value 'x' \\(position 10\\) is not an integer 0..255"),
    ([HEADER, GOOD_ROW, "0," + " ".join(["300"] + ["1"] * 2303) + ",Training"],
     "row 3: 'pixels' value '300' \\(position 1\\) is not an integer 0..255"),
    ([HEADER, GOOD_ROW, "0," + " ".join(["1.5"] * 2304) + ",Training"], "row 3: 'pixels' value '1.5'"),
    ([HEADER, GOOD_ROW, f"7,{PIXELS},Training"], "row 3: emotion '7' outside FER-2013 range 0..6"),
    ([HEADER, GOOD_ROW, f"-1,{PIXELS},Training"], "row 3: emotion '-1' outside FER-2013 range 0..6"),
    ([HEADER, GOOD_ROW, f"3.5,{PIXELS},Training"], "row 3: emotion '3.5' is not an integer code; expected 0..6"),
    ([HEADER, GOOD_ROW, f"happy,{PIXELS},Training"], "row 3: emotion 'happy' is not an integer code"),
    ([HEADER, GOOD_ROW, f"3,{PIXELS},Train"], "row 3: Usage 'Train' is not one of Training, PublicTest, "
                                              "PrivateTest"),
    ([GOOD_ROW, GOOD_ROW], "header row 1 is missing \\(row 1 holds values such as '3'\\); expected a first row "
                           "'emotion,pixels,Usage'"),
    (["emotion,pixels", "3,1 2"], "header row 1 is missing column\\(s\\) Usage \\(found 'emotion', 'pixels'\\)"),
    ([], "empty file; expected a header row 'emotion,pixels,Usage'"),
    ([HEADER], "no data rows after the header"),
])
def test_fer2013_csv_bad_rows_name_file_row_and_form(tmp_path, rows, expected):
    csv_file = tmp_path / "fer2013.csv"
    csv_file.write_text("".join(r + "\n" for r in rows))
    with pytest.raises(ValueError) as excinfo:
        load("fer2013", root=tmp_path)
    assert not isinstance(excinfo.value, DatasetLayoutError)
    assert first_line(excinfo).startswith(f"{csv_file}: ")
    excinfo.match(expected)


def test_fer2013_csv_that_is_not_text(tmp_path):
    (tmp_path / "fer2013.csv").write_bytes(HEADER.encode() + b"\n3,\xff\xfe\x00garbage,Training\n")
    with pytest.raises(ValueError, match=r"fer2013.csv: (not UTF-8 text|row 2: not valid CSV)"):
        load("fer2013", root=tmp_path)


def test_check_root_reads_only_the_csv_header_and_first_row(tmp_path):
    csv_file = tmp_path / "fer2013.csv"
    csv_file.write_text(f"{HEADER}\n{GOOD_ROW}\n0,1 2 3,Training\n")
    check_root("fer2013", tmp_path)  # row 3 is not read
    csv_file.write_text(f"{HEADER}\n0,1 2 3,Training\n")
    with pytest.raises(ValueError, match="row 2: 'pixels' must hold 2304 values"):
        check_root("fer2013", tmp_path)
    csv_file.write_text(f"{GOOD_ROW}\n")
    with pytest.raises(ValueError, match="header row 1 is missing"):
        check_root("fer2013", tmp_path)


def test_ferplus_bad_votes_name_file_and_row(tmp_path):
    (tmp_path / "fer2013.csv").write_text(f"{HEADER}\n{GOOD_ROW}\n{GOOD_ROW}\n")
    head = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
    fp = tmp_path / "fer2013new.csv"
    fp.write_text(f"{head}\nTraining,a.png,0,8,1,0,0,1,0,0,0,0\nTraining,b.png,0,eight,1,0,0,1,0,0,0,0\n")
    with pytest.raises(ValueError, match=r"fer2013new.csv: row 3: vote counts .*'eight'.* are not all numbers"):
        load("fer2013", root=tmp_path, ferplus=True)
    fp.write_text(f"{head}\nTraining,a.png,0,8,1,0,0,1,0,0,0,0\nTraining,b.png,0,8\n")
    with pytest.raises(ValueError, match=r"fer2013new.csv: row 3 has 4 field\(s\) but the header has 12"):
        load("fer2013", root=tmp_path, ferplus=True)


# ----------------------------------------------------------------------------- 3. MS1M RecordIO
def jpeg(value: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (value,) * 3).save(buf, format="JPEG")
    return buf.getvalue()


def write_pack(folder: Path, header, identities=((1, 3), (3, 4)), image_labels=(0.0, 0.0, 1.0),
               images=None, prop: str = None) -> Path:
    """A hand-built pack: record 0 = ``header`` (a payload, or None for no record 0), images
    1..n with ``image_labels``, then one identity record per ``identities`` entry (a label
    range, or a single float for a malformed record)."""
    folder.mkdir(parents=True, exist_ok=True)
    images = images or [jpeg(30 * k + 30) for k in range(len(image_labels))]
    with RecordWriter(folder / "train.rec", folder / "train.idx") as w:
        if header is not None:
            w.write(0, header)
        for k, (label, img) in enumerate(zip(image_labels, images), 1):
            w.write(k, pack_payload(label, img, id1=k))
        for i, ident in enumerate(identities):
            w.write(len(images) + 1 + i, pack_payload(ident if np.ndim(ident) == 0 else list(ident)))
    if prop is not None:
        (folder / "property").write_text(prop)
    return folder


def test_hand_built_pack_is_valid(tmp_path):
    root = write_pack(tmp_path, pack_payload([4, 6]), prop="2,16,16")
    check_root("ms1m", root)
    ds = load("ms1m", root=root)
    assert len(ds) == 3 and ds.subjects.tolist() == [0, 0, 1] and ds.property == (2, 16, 16)


@pytest.mark.parametrize("header, expected", [
    (pack_payload(4.0), "header record \\(key 0\\) holds the single label 4.0 and no image; expected flag 2 "
                        "with labels \\(first identity key a, end key b\\)"),
    (pack_payload([4.0]), "header record \\(key 0\\) holds the label\\(s\\) \\[4.0\\]; expected flag 2"),
    (pack_payload([3.5, 6]), "header record \\(key 0\\) holds the label\\(s\\) \\[3.5, 6.0\\]"),
    (pack_payload([6, 4]), "header record \\(key 0\\) holds the label\\(s\\) \\[6.0, 4.0\\].*1 < a <= b"),
    (pack_payload([4, 9]), "the header record \\(key 0\\) announces identity records at keys 4..8, but "
                           ".*train.idx has 2 of those 5 keys \\(first missing: 6"),
    (pack_payload([10, 12]), "announces image records at keys 1..9, but .*train.idx has 5 of those 9 keys "
                             "\\(first missing: 6"),
    (pack_payload([4, 6])[:10], "header record \\(key 0\\): payload of 10 bytes is shorter than the 24-byte"),
])
def test_ms1m_header_that_does_not_match_the_records(tmp_path, header, expected):
    root = write_pack(tmp_path, header)
    with pytest.raises(ValueError) as excinfo:
        load("ms1m", root=root)
    assert first_line(excinfo).startswith(str(root / "train.rec"))
    excinfo.match(expected)


@pytest.mark.parametrize("identities, expected", [
    ((0.0, 1.0), "identity record key 4 holds the label\\(s\\) 0.0; expected flag 2 with labels \\(start, end\\)"),
    (((1, 3), (3, 99)), "identity record key 5 holds the label\\(s\\) \\[3.0, 99.0\\]; .*1 <= start <= end <= 4"),
    (((1, 3), (2.5, 4)), "identity record key 5 holds the label\\(s\\) \\[2.5, 4.0\\]"),
])
def test_ms1m_malformed_identity_record_is_a_named_value_error(tmp_path, identities, expected):
    # before: TypeError: 'float' object is not subscriptable
    ds = load("ms1m", root=write_pack(tmp_path, pack_payload([4, 6]), identities=identities))
    with pytest.raises(ValueError, match=expected):
        _ = ds.subjects


def test_ms1m_image_records_that_cannot_be_read(tmp_path):
    ds = load("ms1m", root=write_pack(tmp_path / "nan", None, identities=(), image_labels=(0.0, float("nan"), 1.0)))
    with pytest.raises(ValueError, match="train.rec: image record key 2 has the identity label nan; expected a "
                                         "whole number >= 0"):
        _ = ds.subjects
    ds = load("ms1m", root=write_pack(tmp_path / "jpeg", pack_payload([4, 6]), images=[jpeg(), b"garbage", jpeg()]))
    with pytest.raises(ValueError, match="ms1m: record key 2 in .*train.rec does not hold a decodable image"):
        ds[1]


def idx_lines(root: Path):
    return (root / "train.idx").read_text().splitlines()


@pytest.mark.parametrize("edit, expected", [
    (lambda lines: lines[:-1] + [lines[-1].split()[0] + "\t999999"],
     "train.idx: key 5 points at byte 999999, past the end of .*train.rec \\(\\d+ bytes\\)"),
    (lambda lines: lines[:1] + ["1 2 3"] + lines[2:], "train.idx:2: expected 'key<TAB>offset' \\(two integers\\)"),
    (lambda lines: lines[:1] + ["1\t-8"] + lines[2:], "train.idx:2: expected 'key<TAB>offset'"),
    (lambda lines: [], "train.idx: no records; expected one line 'key<TAB>offset' per record"),
    (lambda lines: lines + lines[-1:], "train.idx: key 5 is listed more than once"),
])
def test_ms1m_index_that_does_not_match_the_rec(tmp_path, edit, expected):
    root = write_pack(tmp_path, pack_payload([4, 6]))
    (root / "train.idx").write_text("".join(line + "\n" for line in edit(idx_lines(root))))
    with pytest.raises(ValueError) as excinfo:
        load("ms1m", root=root)
    assert first_line(excinfo).startswith(str(root / "train.idx"))
    excinfo.match(expected)


def test_ms1m_property_file(tmp_path):
    root = write_pack(tmp_path, pack_payload([4, 6]), prop="5,16,16")
    for check in (lambda: load("ms1m", root=root), lambda: check_root("ms1m", root)):
        with pytest.raises(ValueError, match="property: 5 identities, but the header record \\(key 0\\) of "
                                             ".*train.rec announces 2 identity records \\(keys 4..5\\)"):
            check()
    (root / "property").write_text("85742;112;112")
    with pytest.raises(ValueError, match="property: expected 'num_identities,height,width'"):
        load("ms1m", root=root)
    (root / "property").write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="property: not a text file"):
        check_root("ms1m", root)
    (root / "property").unlink()  # optional: the loader does not need it
    assert load("ms1m", root=root).property is None


def test_ms1m_missing_index_and_check_root_on_the_first_record(tmp_path):
    root = tmp_path / "ok"
    write_insightface_rec(root, [[jpeg()], [jpeg(), jpeg()]], image_size=(16, 16))
    check_root("ms1m", root)
    (root / "train.idx").write_text("0\t4\n")
    with pytest.raises(ValueError, match="no RecordIO magic"):
        check_root("ms1m", root)
    (root / "train.idx").write_bytes(b"0\t0\n\xff\xfe\n")
    with pytest.raises(ValueError, match="train.idx: not text .*; expected lines 'key<TAB>offset'"):
        load("ms1m", root=root)
    (root / "train.idx").unlink()
    with pytest.raises(DatasetLayoutError, match=f"^ms1m: root {re.escape(str(root))} has no train.idx; expected"):
        check_root("ms1m", root)


# ----------------------------------------------------------------------------- 4./5. roots
def other_layout(layouts, name: str) -> Path:
    return layouts["ckplus" if name == "rafdb" else "rafdb"]


ROOT_CASES = {
    "missing": (lambda layouts, name, tmp: tmp / "nowhere", "root {root} does not exist"),
    "file": (lambda layouts, name, tmp: (tmp / "x.txt").write_text("x") and tmp / "x.txt",
             "root {root} is a file"),
    "empty": (lambda layouts, name, tmp: (tmp / "empty").mkdir() or tmp / "empty", "root {root} is empty"),
    "other layout": (lambda layouts, name, tmp: other_layout(layouts, name), "{root}"),
}


@pytest.mark.parametrize("entry", ["load", "check_root"])
@pytest.mark.parametrize("case", list(ROOT_CASES))
@pytest.mark.parametrize("name", list(LOADER_MODULES))
def test_bad_root_names_dataset_root_and_layout(layouts, tmp_path, name, case, entry):
    make, problem = ROOT_CASES[case]
    root = make(layouts, name, tmp_path)
    with pytest.raises(DatasetLayoutError) as excinfo:
        load(name, root=root) if entry == "load" else check_root(name, root)
    first = first_line(excinfo)
    assert first.startswith(f"{name}: ") and problem.format(root=root) in first
    assert first.endswith("expected a folder laid out as:")
    assert LOADER_MODULES[name].LAYOUT in str(excinfo.value)


def test_root_in_another_layout_names_what_it_holds(layouts):
    for entry in (load, check_root):
        with pytest.raises(DatasetLayoutError) as excinfo:
            entry("rafdb", layouts["ckplus"])
        assert first_line(excinfo) == (f"rafdb: root {layouts['ckplus']} has no basic/EmoLabel/"
                                       "list_patition_label.txt; expected a folder laid out as:")
        assert str(excinfo.value).splitlines()[-1] == (f"(root {layouts['ckplus']} is laid out as ckplus: was the "
                                                       "ckplus root given for rafdb?)")


def test_check_root_passes_on_every_published_layout(layouts):
    assert set(layouts) == set(DATASETS)
    for name, root in layouts.items():
        check_root(name, root)
        check_root(name, str(root))


def test_check_root_decodes_no_image(layouts, tmp_path):
    for name in ("rafdb", "ckplus", "jaffe", "mmi"):
        root = copy_of(layouts, name, tmp_path)
        for image in (p for p in root.rglob("*") if p.suffix in (".jpg", ".png", ".tiff")):
            image.write_bytes(b"garbage")
        check_root(name, root)
    check_root("fer2013", fer2013_folder(tmp_path / "fer"))
    check_root("folder", image_folder(tmp_path / "folder"))


def test_check_root_finds_layout_problems_the_loader_would(layouts, tmp_path):
    root = copy_of(layouts, "rafdb", tmp_path)
    shutil.rmtree(root / "basic" / "Image" / "aligned")
    with pytest.raises(DatasetLayoutError, match="^rafdb: image folder .*aligned is missing"):
        check_root("rafdb", root)
    check_root("rafdb", layouts["rafdb"], variant="aligned")
    (tmp_path / "fer" / "train" / "contempt").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="^fer2013: unexpected class folder .*contempt"):
        check_root("fer2013", tmp_path / "fer")
    mmi = copy_of(layouts, "mmi", tmp_path)
    for frame in mmi.glob("Sessions/*/*.png"):
        frame.unlink()
    with pytest.raises(DatasetLayoutError, match="^mmi: session .* has no frame images"):
        check_root("mmi", mmi)


def test_check_root_arguments():
    with pytest.raises(ValueError, match="unknown dataset 'affectnet'"):
        check_root("affectnet", "/tmp")
    with pytest.raises(ValueError, match="synthetic data is rendered"):
        check_root("synthetic", None)
    with pytest.raises(ValueError, match="unknown option.*colour.*accepted: variant"):
        check_root("rafdb", "/tmp", colour=True)
    with pytest.raises(DatasetLayoutError, match="^ckplus: no root given"):
        check_root("ckplus", None)


@pytest.mark.skipif(not REAL_FER2013.is_dir(), reason="real FER-2013 folder release not on this machine")
def test_check_root_on_real_fer2013():
    check_root("fer2013", REAL_FER2013)


# ----------------------------------------------------------------------------- label files
def test_label_files_with_non_numbers_name_the_file(tmp_path):
    emo = tmp_path / "S005" / "001" / "S005_001_00000004_emotion.txt"
    emo.parent.mkdir(parents=True)
    from omnifer_lib.data.ckplus import read_emotion_file
    from omnifer_lib.data.mmi import parse_session_xml
    for text in ("inf", "nan", "3.5"):
        emo.write_text(text)
        with pytest.raises(ValueError, match=f"^{re.escape(str(emo))}: expected one number \\(emotion code 0..7"):
            read_emotion_file(emo)
    emo.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match=f"^{re.escape(str(emo))}: not a text file"):
        read_emotion_file(emo)
    xml = tmp_path / "session.xml"
    for value in ("inf", "2.5"):
        xml.write_text(f'<session><Metatag Name="Emotion" Value="{value}"/></session>')
        with pytest.raises(ValueError, match=f"^mmi: {re.escape(str(xml))}: emotion '{value}' is not a whole number"):
            parse_session_xml(xml)
    label = tmp_path / "basic" / "EmoLabel" / "list_patition_label.txt"
    label.parent.mkdir(parents=True)
    (tmp_path / "basic" / "Image" / "aligned").mkdir(parents=True)
    for text, expected in (("\n\n", "no labeled lines; expected lines"), ("train_1.jpg 4\n", "no 'test_' lines")):
        label.write_text(text)
        with pytest.raises(ValueError, match=f"^{re.escape(str(label))}: {expected}"):
            load("rafdb", root=tmp_path, split="test")
