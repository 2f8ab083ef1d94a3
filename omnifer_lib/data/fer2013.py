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
from typing import Callable, List, Optional

import numpy as np

from ._base import (ArrayImageDataset, DatasetLayoutError, ImageFileDataset, check_split,
                    label_index, list_images)

LAYOUT = """  CSV release:    <root>/fer2013.csv  (columns emotion,pixels,Usage; emotion 0..6)
  folder release: <root>/train/<class>/*.jpg, <root>/test/<class>/*.jpg [, <root>/val/...]
                  classes: angry, disgust, fear, happy, neutral, sad, surprise"""

#: FER-2013 code -> canonical class name
CODES = {0: "anger", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise", 6: "neutral"}
USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
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


def read_csv_release(path: Path):
    """Parse the CSV release -> (images uint8 N x 48 x 48, labels (canonical), usage strings).

    Column names are stripped of surrounding spaces (the icml_face_data.csv release has
    leading spaces). Raises ``ValueError`` naming the file and row for a missing column, a
    code outside 0..6 or a pixel string that is not 2304 values."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ValueError(f"{path}: empty file; expected a header 'emotion,pixels,Usage'") from None
        missing = [c for c in ("emotion", "pixels", "Usage") if c not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; found {header}, expected "
                             "'emotion,pixels,Usage' (leading spaces in names are accepted)")
        ie, ip, iu = header.index("emotion"), header.index("pixels"), header.index("Usage")
        images: List[np.ndarray] = []
        labels: List[int] = []
        usage: List[str] = []
        for rowno, row in enumerate(reader, 2):
            if not row:
                continue
            code_s = row[ie].strip()
            if not code_s.lstrip("-").isdigit() or int(code_s) not in CODES:
                raise ValueError(f"{path}: row {rowno}: emotion {code_s!r} outside FER-2013 range 0..6")
            px = np.array(row[ip].split(), dtype=np.int64)
            if px.size != 48 * 48 or px.min(initial=0) < 0 or px.max(initial=0) > 255:
                raise ValueError(f"{path}: row {rowno}: 'pixels' must hold 2304 values 0..255 "
                                 f"(48x48), got {px.size} values")
            images.append(px.astype(np.uint8).reshape(48, 48))
            labels.append(label_index(CODES[int(code_s)]))
            usage.append(row[iu].strip())
    if not images:
        raise ValueError(f"{path}: no data rows")
    return np.stack(images), np.asarray(labels, dtype=np.int64), np.asarray(usage)


def read_ferplus(path: Path, n_rows: int):
    """FER+ majority labels for the ``n_rows`` rows of fer2013.csv -> (labels with -2 for
    skipped rows, dict of skip counts by reason)."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader)]
        missing = [c for c in ("Usage", "Image name", *FERPLUS_COLUMNS) if c not in header]
        if missing:
            raise ValueError(f"{path}: missing FER+ column(s) {missing}; expected 'Usage,Image name,"
                             + ",".join(FERPLUS_COLUMNS) + "'")
        iname = header.index("Image name")
        icols = [header.index(c) for c in FERPLUS_COLUMNS]
        rows = [r for r in reader if r]
    if len(rows) != n_rows:
        raise ValueError(f"{path}: {len(rows)} FER+ rows but fer2013.csv has {n_rows}; the two files "
                         "must list the same images in the same order")
    out = np.full(n_rows, -2, dtype=np.int64)
    skipped = {"no face / no image name": 0, "unknown": 0, "contempt": 0, "tie": 0}
    for i, r in enumerate(rows):
        votes = np.array([float(r[j] or 0) for j in icols])
        best = votes.max()
        winners = np.flatnonzero(votes == best)
        col = FERPLUS_COLUMNS[winners[0]]
        if not r[iname].strip() or col == "NF" or best <= 0:
            skipped["no face / no image name"] += 1
        elif len(winners) > 1:
            skipped["tie"] += 1
        elif col in ("unknown", "contempt"):
            skipped[col] += 1
        else:
            out[i] = label_index(FERPLUS_TO_CANONICAL[col])
    return out, skipped


class FER2013(ArrayImageDataset):
    """FER-2013 from the CSV release (see module docstring)."""

    description = "FER-2013 (in-the-wild, 48x48 grayscale)"

    def __init__(self, csv_path: Path, split: str = "train", transform: Optional[Callable] = None,
                 ferplus: bool = False, ferplus_file=None):
        check_split("fer2013", split, tuple(USAGE))
        images, labels, usage = read_csv_release(csv_path)
        unknown = sorted(set(usage) - set(USAGE.values()))
        if unknown:
            raise ValueError(f"{csv_path}: unknown Usage value(s) {unknown}; expected Training, "
                             "PublicTest or PrivateTest")
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


class FER2013Folder(ImageFileDataset):
    """FER-2013 from the image-folder release (see module docstring)."""

    description = "FER-2013 (in-the-wild, 48x48 grayscale)"

    def __init__(self, root: Path, split: str = "train", transform: Optional[Callable] = None,
                 skip_corrupt: bool = False):
        check_split("fer2013", split, tuple(USAGE))
        folder = root / split
        if not folder.is_dir():
            raise DatasetLayoutError(f"fer2013: split folder {folder} not found (the folder release "
                                     f"has train/ and test/, val/ only in some copies); expected:\n{LAYOUT}")
        paths, labels = [], []
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if sub.name.lower() not in FOLDER_CLASSES:
                raise DatasetLayoutError(f"fer2013: unexpected class folder {sub}; expected class folders "
                                         f"{', '.join(FOLDER_CLASSES)}")
            files = list_images(sub)
            paths += files
            labels += [label_index(FOLDER_CLASSES[sub.name.lower()])] * len(files)
        if not paths:
            raise DatasetLayoutError(f"fer2013: no images under {folder}/<class>/; expected:\n{LAYOUT}")
        super().__init__(paths, labels, None, f"fer2013:{split}", transform,
                         expected="a 48x48 grayscale image", skip_corrupt=skip_corrupt)
        self.split = split


def load_fer2013(root, split: str = "train", transform: Optional[Callable] = None,
                 source: str = "auto", ferplus: bool = False, ferplus_file=None,
                 skip_corrupt: bool = False):
    """Open FER-2013 in whichever release ``root`` holds (``source`` = auto/csv/folder)."""
    if root is None:
        raise DatasetLayoutError(f"fer2013: no root given; expected:\n{LAYOUT}")
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetLayoutError(f"fer2013: root {root} does not exist; expected:\n{LAYOUT}")
    if source not in ("auto", "csv", "folder"):
        raise ValueError(f"fer2013: source must be 'auto', 'csv' or 'folder', got {source!r}")
    csv_path = find_csv(root) if source in ("auto", "csv") else None
    if csv_path is not None:
        return FER2013(csv_path, split, transform, ferplus=ferplus, ferplus_file=ferplus_file)
    if source == "csv":
        raise DatasetLayoutError(f"fer2013: no fer2013.csv in {root}; expected:\n{LAYOUT}")
    if ferplus:
        raise DatasetLayoutError(f"fer2013: FER+ labels need the CSV release (fer2013.csv + "
                                 f"fer2013new.csv) but {root} has none")
    if root.is_dir() and any((root / s).is_dir() for s in USAGE):
        return FER2013Folder(root, split, transform, skip_corrupt=skip_corrupt)
    raise DatasetLayoutError(f"fer2013: {root} holds neither fer2013.csv nor train/ test/ class "
                             f"folders; expected one of:\n{LAYOUT}")
