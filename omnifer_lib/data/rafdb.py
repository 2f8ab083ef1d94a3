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
from typing import Callable, Optional

import numpy as np

from ._base import DatasetLayoutError, ImageFileDataset, check_split, label_index, require_dir

LAYOUT = """  <root>/basic/EmoLabel/list_patition_label.txt   (lines 'train_00001.jpg 5', codes 1..7)
  <root>/basic/Image/aligned/train_00001_aligned.jpg  (or Image/original/train_00001.jpg)"""

#: RAF-DB basic code -> canonical class name
CODES = {1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad", 6: "anger", 7: "neutral"}


def _basic_dir(root: Path) -> Path:
    for cand in (root / "basic", root):
        if (cand / "EmoLabel" / "list_patition_label.txt").is_file():
            return cand
    if (root / "compound" / "EmoLabel").is_dir() or root.name == "compound":
        raise DatasetLayoutError(f"rafdb: {root} holds RAF-DB's compound set; only the basic "
                                 f"expression set is supported. Expected:\n{LAYOUT}")
    raise DatasetLayoutError(f"rafdb: no basic/EmoLabel/list_patition_label.txt under {root}; "
                             f"expected:\n{LAYOUT}")


def parse_label_file(path: Path):
    """(image names, canonical labels) from ``list_patition_label.txt``; raises ``ValueError``
    naming the file and line for malformed lines and codes outside 1..7."""
    names, labels = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{path}:{lineno}: expected '<name>.jpg <code>', got {line!r}")
        code = int(parts[1])
        if code not in CODES:
            hint = " (codes up to 11 belong to the compound set, which is not supported)" if 7 < code <= 11 else ""
            raise ValueError(f"{path}:{lineno}: label code {code} outside RAF-DB basic range 1..7{hint}")
        names.append(parts[0])
        labels.append(label_index(CODES[code]))
    return names, np.asarray(labels, dtype=np.int64)


class RAFDB(ImageFileDataset):
    """RAF-DB basic set, split ``"train"`` or ``"test"``; ``variant`` ``"aligned"`` (100x100
    crops shipped with the dataset) or ``"original"``."""

    description = "RAF-DB basic (in-the-wild colour, crowd-sourced labels)"

    def __init__(self, root, split: str = "train", transform: Optional[Callable] = None,
                 variant: str = "aligned", skip_corrupt: bool = False):
        check_split("rafdb", split, ("train", "test"))
        if variant not in ("aligned", "original"):
            raise ValueError(f"rafdb: variant must be 'aligned' or 'original', got {variant!r}")
        basic = _basic_dir(require_dir(root, "rafdb", LAYOUT))
        label_file = basic / "EmoLabel" / "list_patition_label.txt"
        names, labels = parse_label_file(label_file)
        keep = np.array([n.startswith(split + "_") for n in names], dtype=bool)
        image_dir = basic / "Image" / variant
        if not image_dir.is_dir():
            raise DatasetLayoutError(f"rafdb: image folder {image_dir} is missing; expected:\n{LAYOUT}")
        paths = []
        for n, k in zip(names, keep):
            if k:
                stem = Path(n).stem
                paths.append(image_dir / (f"{stem}_aligned.jpg" if variant == "aligned" else n))
        super().__init__(paths, labels[keep], None, f"rafdb:{split}", transform,
                         expected="a JPEG named as in " + str(label_file), skip_corrupt=skip_corrupt)
        self.split = split
