"""RAF-DB (Real-world Affective Faces), basic expression set — the paper's anchor dataset.

Expected layout (as distributed; ``root`` may be the folder holding ``basic/`` or
``basic/`` itself)::

    <root>/basic/EmoLabel/list_patition_label.txt     lines "train_00001.jpg 5"
    <root>/basic/Image/aligned/train_00001_aligned.jpg  (variant="aligned", default)
    <root>/basic/Image/original/train_00001.jpg         (variant="original")

Label codes 1..7 = Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral, mapped to
:data:`~omnifer_lib.data.LABELS`. The split comes from the name prefix (``train_`` /
``test_``): 12,271 training and 3,068 test images in the official release. RAF-DB has no
identity information, so ``subjects`` is ``None``. The compound set's label file
(codes up to 11) is rejected.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Optional, Tuple

import numpy as np

from ._base import DatasetRecord, ImageFileDataset, check_split, label_index, layout_error, read_text, require_dir

LAYOUT = """  <root>/basic/EmoLabel/list_patition_label.txt   (lines 'train_00001.jpg 5', codes 1..7)
  <root>/basic/Image/aligned/train_00001_aligned.jpg  (or Image/original/train_00001.jpg)"""
LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
LINE_FORM = "lines '<train|test>_00001.jpg <code 1..7>'"
VARIANTS = ("aligned", "original")

#: RAF-DB basic code -> canonical class name
CODES = {1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad", 6: "anger", 7: "neutral"}


def _basic_dir(root: Path) -> Path:
    for cand in (root / "basic", root):
        if (cand / LABEL_FILE).is_file():
            return cand
    if (root / "compound" / "EmoLabel").is_dir() or root.name == "compound":
        raise layout_error("rafdb", f"root {root} holds RAF-DB's compound set; only the basic expression set "
                                    "is supported", LAYOUT)
    raise layout_error("rafdb", f"root {root} has no basic/{LABEL_FILE.as_posix()}", LAYOUT)


def locate(root, variant: str = "aligned") -> Tuple[Path, Path]:
    """(label file, image folder of ``variant``) under ``root``; :class:`DatasetLayoutError`
    naming what is missing."""
    if variant not in VARIANTS:
        raise ValueError(f"rafdb: variant must be 'aligned' or 'original', got {variant!r}")
    basic = _basic_dir(require_dir(root, "rafdb", LAYOUT))
    image_dir = basic / "Image" / variant
    if not image_dir.is_dir():
        raise layout_error("rafdb", f"image folder {image_dir} is missing", LAYOUT)
    return basic / LABEL_FILE, image_dir


def _lines(path: Path) -> Iterator[Tuple[int, str]]:
    """(1-based line number, line) of the non-empty lines of the label file; ``ValueError``
    naming the file when it has none."""
    found = False
    for lineno, line in enumerate(read_text(path, LINE_FORM).splitlines(), 1):
        if line.strip():
            found = True
            yield lineno, line
    if not found:
        raise ValueError(f"{path}: no labeled lines; expected {LINE_FORM}")


def parse_line(path: Path, lineno: int, line: str) -> Tuple[str, int]:
    """(image name, canonical label) of one label-file line; ``ValueError`` naming the file
    and line for a malformed line or a code outside 1..7."""
    parts = line.split()
    if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
        raise ValueError(f"{path}:{lineno}: expected '<name>.jpg <code>', got {line[:80]!r}")
    code = int(parts[1])
    if code not in CODES:
        hint = " (codes up to 11 belong to the compound set, which is not supported)" if 7 < code <= 11 else ""
        raise ValueError(f"{path}:{lineno}: label code {code} outside RAF-DB basic range 1..7{hint}")
    return parts[0], label_index(CODES[code])


def parse_label_file(path: Path):
    """(image names, canonical labels) from ``list_patition_label.txt``; raises ``ValueError``
    naming the file and line for malformed lines and codes outside 1..7, or an empty file."""
    parsed = [parse_line(path, lineno, line) for lineno, line in _lines(path)]
    return [n for n, _ in parsed], np.asarray([y for _, y in parsed], dtype=np.int64)


def check_layout(root, variant: str = "aligned") -> None:
    """Cheap check of a RAF-DB root: the label file and image folder exist and the label
    file's first line parses (no image is read)."""
    label_file, _ = locate(root, variant)
    parse_line(label_file, *next(_lines(label_file)))


class RAFDB(ImageFileDataset):
    """RAF-DB basic set, split ``"train"`` or ``"test"``; ``variant`` ``"aligned"`` (100x100
    crops shipped with the dataset) or ``"original"``."""

    description = "RAF-DB basic (in-the-wild colour, crowd-sourced labels)"

    def __init__(self, root, split: str = "train", transform: Optional[Callable] = None,
                 variant: str = "aligned", skip_corrupt: bool = False):
        check_split("rafdb", split, ("train", "test"))
        label_file, image_dir = locate(root, variant)
        names, labels = parse_label_file(label_file)
        keep = np.array([n.startswith(split + "_") for n in names], dtype=bool)
        if not keep.any():
            raise ValueError(f"{label_file}: no '{split}_' lines for split {split!r}; expected {LINE_FORM}")
        paths = []
        for n, k in zip(names, keep):
            if k:
                stem = Path(n).stem
                paths.append(image_dir / (f"{stem}_aligned.jpg" if variant == "aligned" else n))
        super().__init__(paths, labels[keep], None, f"rafdb:{split}", transform,
                         expected="a JPEG named as in " + str(label_file), skip_corrupt=skip_corrupt)
        self.split = split


#: This dataset's entry in :mod:`omnifer_lib.data.registry`.
RECORD = DatasetRecord("rafdb", "RAF-DB", RAFDB, "train", ("train", "test"), check_layout,
                       size_keys=("n_anchor_train", "n_anchor_test"))
