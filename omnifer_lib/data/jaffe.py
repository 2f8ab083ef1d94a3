"""JAFFE (Japanese Female Facial Expression): 213 posed images of 10 subjects.

Expected layout (``root`` is the folder holding the images, or its parent with a
``jaffe/`` or ``jaffedbase/`` folder)::

    <root>/KA.AN1.39.tiff   <root>/KA.NE2.27.tiff   ...   <SUBJ>.<EXPR><n>.<idx>.tiff

The subject is the first dot-separated field (KA, KL, KM, KR, MK, NA, NM, TM, UY, YM);
the expression code is the first two letters of the second field: AN, DI, FE, HA, NE, SA,
SU = anger, disgust, fear, happy, neutral, sad, surprise. Files that are not images
(README) are ignored; an image whose name does not follow the pattern is an error.
JAFFE has no split (``split="all"``); the paper evaluates leave-one-subject-out, see
:func:`omnifer_lib.data.protocols.leave_one_subject_out`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from ._base import DatasetLayoutError, ImageFileDataset, label_index, list_images, require_dir

LAYOUT = "  <root>/<SUBJ>.<EXPR><n>.<idx>.tiff  e.g. KA.AN1.39.tiff (EXPR in AN DI FE HA NE SA SU)"
CODES = {"AN": "anger", "DI": "disgust", "FE": "fear", "HA": "happy", "NE": "neutral",
         "SA": "sad", "SU": "surprise"}


def parse_name(path: Path):
    """(subject, canonical label) from a JAFFE file name; ``ValueError`` naming the file."""
    parts = path.name.split(".")
    if len(parts) < 3 or len(parts[1]) < 2:
        raise ValueError(f"jaffe: file {path} is not named '<SUBJ>.<EXPR><n>.<idx>.tiff' "
                         "(e.g. KA.AN1.39.tiff)")
    code = parts[1][:2].upper()
    if code not in CODES:
        raise ValueError(f"jaffe: file {path}: expression code {code!r} is not one of "
                         f"{', '.join(CODES)}")
    return parts[0], label_index(CODES[code])


class JAFFE(ImageFileDataset):
    """JAFFE, all 213 images (see module docstring)."""

    description = "JAFFE (lab, posed, 10 Japanese female subjects, grayscale)"

    def __init__(self, root, split: str = "all", transform: Optional[Callable] = None,
                 skip_corrupt: bool = False):
        if split != "all":
            raise ValueError(f"jaffe: JAFFE has no {split!r} split; use split='all' and "
                             "omnifer_lib.data.protocols.leave_one_subject_out(dataset)")
        root = require_dir(root, "jaffe", LAYOUT)
        folder = next((c for c in (root, root / "jaffe", root / "jaffedbase") if c.is_dir() and list_images(c)),
                      None)
        if folder is None:
            raise DatasetLayoutError(f"jaffe: no images in {root}; expected:\n{LAYOUT}")
        paths = list_images(folder)
        parsed = [parse_name(p) for p in paths]
        super().__init__(paths, [lab for _, lab in parsed], [s for s, _ in parsed], "jaffe", transform,
                         expected="a JAFFE TIFF image", skip_corrupt=skip_corrupt)
