"""FER-2013 (ICML 2013 representation-learning challenge): 48x48 grayscale faces.

Two releases are read, detected from what is in ``root`` (or forced with ``source=``):

1. the CSV release (``source="csv"``)::

       <root>/fer2013.csv        columns emotion,pixels,Usage  (or <root> = the csv file;
                                 icml_face_data.csv, whose columns read "emotion", " Usage",
                                 " pixels" with leading spaces, is accepted too)

   ``emotion`` 0..6 = Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral; ``pixels`` 2304
   space-separated gray values (48x48, row-major); ``Usage`` Training / PublicTest /
   PrivateTest = split ``"train"`` / ``"val"`` / ``"test"`` (28,709 / 3,589 / 3,589).

   FER+ relabelling (``ferplus=True``): ``<root>/fer2013new.csv`` (or ``ferplus_file=``),
   one row per fer2013.csv row, columns ``Usage,Image name,neutral,happiness,surprise,
   sadness,anger,disgust,fear,contempt,unknown,NF`` holding 10 annotator vote counts. The
   label is the majority vote; rows are skipped (and counted in ``notes``) when the image
   name is empty or the winner is ``NF`` (no face), ``unknown`` or ``contempt`` (not one of
   the 7 canonical classes), or when two classes tie for the most votes.

2. the image-folder release (``source="folder"``)::

       <root>/train/<class>/*.jpg   <root>/test/<class>/*.jpg   [<root>/val/<class>/*.jpg]

   with class folders angry, disgust, fear, happy, neutral, sad, surprise.

FER-2013 has no identity information: ``subjects`` is ``None``.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ._base import (ArrayImageDataset, DatasetLayoutError, DatasetRecord, ImageFileDataset, check_split, has_image,
                    label_index, layout_error, list_images, require_dir)

LAYOUT = """  CSV release:    <root>/fer2013.csv  (columns emotion,pixels,Usage; emotion 0..6)
  folder release: <root>/train/<class>/*.jpg, <root>/test/<class>/*.jpg [, <root>/val/...]
                  classes: angry, disgust, fear, happy, neutral, sad, surprise"""

#: FER-2013 code -> canonical class name
CODES = {0: "anger", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise", 6: "neutral"}
USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
CSV_COLUMNS = ("emotion", "pixels", "Usage")
N_PIXELS = 48 * 48
FOLDER_CLASSES = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happy",
                  "neutral": "neutral", "sad": "sad", "surprise": "surprise"}
#: FER+ vote columns in file order; None = not a canonical class (row skipped if it wins)
FERPLUS_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                   "contempt", "unknown", "NF")
FERPLUS_TO_CANONICAL = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise",
                        "sadness": "sad", "anger": "anger", "disgust": "disgust", "fear": "fear"}
CSV_NAMES = ("fer2013.csv", "icml_face_data.csv", "fer2013/fer2013.csv")


def find_csv(root: Path) -> Optional[Path]:
    if root.is_file() and root.suffix.lower() == ".csv":
        return root
    for name in CSV_NAMES:
        if (root / name).is_file():
            return root / name
    return None


# ----------------------------------------------------------------------------- CSV rows
def _short(value: str, n: int = 20) -> str:
    return repr(value if len(value) <= n else value[:n] + "...")


def _header_indices(path: Path, header: Optional[List[str]], columns: Sequence[str]) -> List[int]:
    """Positions of ``columns`` in the header row; ``ValueError`` naming the file when the
    file is empty, the first row is data rather than a header, or a column is missing."""
    expected = ",".join(columns)
    if header is None:
        raise ValueError(f"{path}: empty file; expected a header row '{expected}' then one row per image")
    names = [h.strip() for h in header]
    missing = [c for c in columns if c not in names]
    if not missing:
        return [names.index(c) for c in columns]
    if any(n.replace(" ", "").lstrip("-").replace(".", "", 1).isdigit() for n in names):
        raise ValueError(f"{path}: header row 1 is missing (row 1 holds values such as {_short(names[0])}); "
                         f"expected a first row '{expected}'")
    found = ", ".join(_short(n) for n in names[:12]) + (", ..." if len(names) > 12 else "")
    raise ValueError(f"{path}: header row 1 is missing column(s) {', '.join(missing)} (found {found}); expected "
                     f"'{expected}' (leading spaces in names are accepted)")


def iter_csv(path: Path, columns: Sequence[str]) -> Iterator[Tuple[int, List[str]]]:
    """Yield ``(row number, [value of each of columns])`` for the data rows of a CSV file
    (row 1 = the header; blank rows skipped). ``ValueError`` naming the file and row for a
    missing header, a row whose field count differs from the header's, or bytes that are
    not CSV text, or no data row at all."""
    expected = ",".join(columns)
    rowno, found = 1, False
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            idx = _header_indices(path, header, columns)
            for rowno, row in enumerate(reader, 2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise ValueError(f"{path}: row {rowno} has {len(row)} field(s) but the header has "
                                     f"{len(header)}; expected the columns '{expected}' in every row")
                yield rowno, [row[i] for i in idx]
                found = True
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason}, near row {rowno + 1}); expected a CSV file "
                         f"with columns '{expected}'") from None
    except csv.Error as exc:
        raise ValueError(f"{path}: row {rowno + 1}: not valid CSV ({exc}); expected columns '{expected}'") from None
    if not found:
        raise ValueError(f"{path}: no data rows after the header; expected one row per image with '{expected}'")


def parse_row(path: Path, rowno: int, code: str, pixels: str, usage: str) -> Tuple[np.ndarray, int, str]:
    """(48 x 48 uint8 image, canonical label, Usage) of one CSV row; ``ValueError`` naming
    the file and row for an emotion that is not an integer 0..6, a ``pixels`` field that is
    not 2304 integers 0..255, or an unknown ``Usage``."""
    where = f"{path}: row {rowno}"
    code = code.strip()
    if not code.lstrip("-").isdigit():
        raise ValueError(f"{where}: emotion {code!r} is not an integer code; expected 0..6 "
                         "(angry, disgust, fear, happy, sad, surprise, neutral)")
    if int(code) not in CODES:
        raise ValueError(f"{where}: emotion {code!r} outside FER-2013 range 0..6")
    values = pixels.split()
    if len(values) != N_PIXELS:
        raise ValueError(f"{where}: 'pixels' must hold 2304 values 0..255 (48x48), got {len(values)} values")
    image = _gray_values(where, values).reshape(48, 48)
    usage = usage.strip()
    if usage not in USAGE.values():
        raise ValueError(f"{where}: Usage {_short(usage)} is not one of {', '.join(USAGE.values())}")
    return image, label_index(CODES[int(code)]), usage


def _gray_values(where: str, values: List[str]) -> np.ndarray:
    """``values`` as uint8, or ``ValueError`` naming the first one that is not an integer 0..255."""
    try:
        px = np.array(values, dtype=np.int64)
    except (ValueError, OverflowError):
        px = None
    if px is None or px.min() < 0 or px.max() > 255:
        pos, bad = next(((i, v) for i, v in enumerate(values)
                         if not (v.isascii() and v.isdigit()) or int(v) > 255), (0, values[0]))
        raise ValueError(f"{where}: 'pixels' value {_short(bad)} (position {pos + 1}) is not an integer "
                         "0..255; expected 2304 space-separated gray values")
    return px.astype(np.uint8)


def read_csv_release(path: Path):
    """Parse the CSV release -> (images uint8 N x 48 x 48, labels (canonical), usage strings).

    Column names are stripped of surrounding spaces (the icml_face_data.csv release has
    leading spaces). Raises ``ValueError`` naming the file and row (see :func:`iter_csv`,
    :func:`parse_row`)."""
    rows = [parse_row(path, rowno, *values) for rowno, values in iter_csv(path, CSV_COLUMNS)]
    images, labels, usage = zip(*rows)
    return np.stack(images), np.asarray(labels, dtype=np.int64), np.asarray(usage)


def _votes(path: Path, rowno: int, values: Sequence[str]) -> np.ndarray:
    try:
        return np.array([float(v.strip() or 0) for v in values])
    except ValueError:
        raise ValueError(f"{path}: row {rowno}: vote counts {', '.join(map(_short, values))} are not all numbers; "
                         f"expected counts in columns {','.join(FERPLUS_COLUMNS)}") from None


def read_ferplus(path: Path, n_rows: int):
    """FER+ majority labels for the ``n_rows`` rows of fer2013.csv -> (labels with -2 for
    skipped rows, dict of skip counts by reason)."""
    rows = list(iter_csv(path, ("Usage", "Image name", *FERPLUS_COLUMNS)))
    if len(rows) != n_rows:
        raise ValueError(f"{path}: {len(rows)} FER+ rows but fer2013.csv has {n_rows}; the two files "
                         "must list the same images in the same order")
    out = np.full(n_rows, -2, dtype=np.int64)
    skipped = {"no face / no image name": 0, "unknown": 0, "contempt": 0, "tie": 0}
    for i, (rowno, (_, name, *counts)) in enumerate(rows):
        votes = _votes(path, rowno, counts)
        best = votes.max()
        winners = np.flatnonzero(votes == best)
        col = FERPLUS_COLUMNS[winners[0]]
        if not name.strip() or col == "NF" or best <= 0:
            skipped["no face / no image name"] += 1
        elif len(winners) > 1:
            skipped["tie"] += 1
        elif col in ("unknown", "contempt"):
            skipped[col] += 1
        else:
            out[i] = label_index(FERPLUS_TO_CANONICAL[col])
    return out, skipped


# ----------------------------------------------------------------------------- datasets
class FER2013(ArrayImageDataset):
    """FER-2013 from the CSV release (see module docstring)."""

    description = "FER-2013 (in-the-wild, 48x48 grayscale)"

    def __init__(self, csv_path: Path, split: str = "train", transform: Optional[Callable] = None,
                 ferplus: bool = False, ferplus_file=None):
        check_split("fer2013", split, tuple(USAGE))
        images, labels, usage = read_csv_release(csv_path)
        notes = []
        if ferplus:
            fp = Path(ferplus_file) if ferplus_file else csv_path.parent / "fer2013new.csv"
            if not fp.is_file():
                raise DatasetLayoutError(f"fer2013: FER+ labels {fp} not found; expected fer2013new.csv "
                                         "beside fer2013.csv (or pass ferplus_file=)")
            labels, skipped = read_ferplus(fp, len(labels))
            sel = usage == USAGE[split]
            notes.append("FER+ majority labels; rows skipped (all splits): "
                         + ", ".join(f"{k} {v}" for k, v in skipped.items()))
            keep = sel & (labels >= 0)
        else:
            keep = usage == USAGE[split]
        name = f"{'ferplus' if ferplus else 'fer2013'}:{split}"
        super().__init__(images[keep], labels[keep], None, name, transform)
        self.notes.extend(notes)
        self.split = split


def class_folders(split_dir: Path) -> List[Tuple[Path, int]]:
    """(class folder, canonical label) of a folder-release split; :class:`DatasetLayoutError`
    for a folder that is not one of the seven FER-2013 classes."""
    out = []
    for sub in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name.lower() not in FOLDER_CLASSES:
            raise layout_error("fer2013", f"unexpected class folder {sub} (class folders are "
                                          f"{', '.join(FOLDER_CLASSES)})", LAYOUT)
        out.append((sub, label_index(FOLDER_CLASSES[sub.name.lower()])))
    return out


def _no_images(split_dir: Path):
    """The error for a folder-release split without images."""
    return layout_error("fer2013", f"no images under {split_dir}/<class>/", LAYOUT)


class FER2013Folder(ImageFileDataset):
    """FER-2013 from the image-folder release (see module docstring)."""

    description = "FER-2013 (in-the-wild, 48x48 grayscale)"

    def __init__(self, root: Path, split: str = "train", transform: Optional[Callable] = None,
                 skip_corrupt: bool = False):
        check_split("fer2013", split, tuple(USAGE))
        folder = root / split
        if not folder.is_dir():
            present = [s for s in USAGE if (root / s).is_dir()]
            raise layout_error("fer2013", f"split folder {folder} not found (root {root} has "
                                          f"{', '.join(p + '/' for p in present) or 'none'}; the folder release has "
                                          "train/ and test/, val/ only in some copies)", LAYOUT)
        paths, labels = [], []
        for sub, label in class_folders(folder):
            files = list_images(sub)
            paths += files
            labels += [label] * len(files)
        if not paths:
            raise _no_images(folder)
        super().__init__(paths, labels, None, f"fer2013:{split}", transform,
                         expected="a 48x48 grayscale image", skip_corrupt=skip_corrupt)
        self.split = split


# ----------------------------------------------------------------------------- root
def locate(root, source: str = "auto") -> Tuple[str, Path]:
    """``("csv", csv file)`` or ``("folder", root)``: the release ``root`` holds (``source`` =
    auto/csv/folder); :class:`DatasetLayoutError` naming what is missing."""
    if source not in ("auto", "csv", "folder"):
        raise ValueError(f"fer2013: source must be 'auto', 'csv' or 'folder', got {source!r}")
    if root is not None and Path(root).expanduser().is_file():
        path = Path(root).expanduser()
        if source != "folder" and path.suffix.lower() == ".csv":
            return "csv", path
        raise layout_error("fer2013", f"root {path} is a file, not a folder or a .csv file", LAYOUT)
    root = require_dir(root, "fer2013", LAYOUT)
    csv_path = find_csv(root) if source in ("auto", "csv") else None
    if csv_path is not None:
        return "csv", csv_path
    if source == "csv":
        raise layout_error("fer2013", f"root {root} has no fer2013.csv", LAYOUT)
    if any((root / s).is_dir() for s in USAGE):
        return "folder", root
    if source == "folder":
        raise layout_error("fer2013", f"root {root} has no train/, test/ or val/ split folder", LAYOUT)
    raise layout_error("fer2013", f"root {root} holds neither fer2013.csv nor train/ test/ class folders", LAYOUT)


def check_layout(root, source: str = "auto") -> None:
    """Cheap check of a FER-2013 root: the CSV's header and first row parse, or the split
    folders hold only the seven class folders and some image (no image is decoded)."""
    kind, path = locate(root, source)
    if kind == "csv":
        rowno, values = next(iter_csv(path, CSV_COLUMNS))
        parse_row(path, rowno, *values)
        return
    for split_dir in (path / s for s in USAGE if (path / s).is_dir()):
        if not any(has_image(sub) for sub, _ in class_folders(split_dir)):
            raise _no_images(split_dir)


def load_fer2013(root, split: str = "train", transform: Optional[Callable] = None,
                 source: str = "auto", ferplus: bool = False, ferplus_file=None,
                 skip_corrupt: bool = False):
    """Open FER-2013 in whichever release ``root`` holds (``source`` = auto/csv/folder)."""
    kind, path = locate(root, source)
    if kind == "csv":
        return FER2013(path, split, transform, ferplus=ferplus, ferplus_file=ferplus_file)
    if ferplus:
        raise layout_error("fer2013", f"FER+ labels need the CSV release (fer2013.csv + fer2013new.csv) but "
                                      f"root {path} has none", LAYOUT)
    return FER2013Folder(path, split, transform, skip_corrupt=skip_corrupt)


#: This dataset's entry in :mod:`omnifer_lib.data.registry`.
RECORD = DatasetRecord("fer2013", "FER-2013", load_fer2013, "train", ("train", "val", "test"), check_layout,
                       optional_splits=("val",),  # the image-folder release often has no val/
                       size_keys=("n_fer2013_train", "n_anchor_test"))
