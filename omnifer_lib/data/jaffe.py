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
from typing import Callable, List, Optional, Tuple

from ._base import DatasetRecord, ImageFileDataset, label_index, layout_error, list_images, require_dir

LAYOUT = "  <root>/<SUBJ>.<EXPR><n>.<idx>.tiff  e.g. KA.AN1.39.tiff (EXPR in AN DI FE HA NE SA SU)"
CODES = {"AN": "anger", "DI": "disgust", "FE": "fear", "HA": "happy", "NE": "neutral",
         "SA": "sad", "SU": "surprise"}
NAME_FORM = "'<SUBJ>.<EXPR><n>.<idx>.tiff' (e.g. KA.AN1.39.tiff)"


def _code(path: Path) -> Optional[str]:
    """The expression code field of a JAFFE-style name, or ``None`` if the name has no such field."""
    parts = path.name.split(".")
    return parts[1][:2].upper() if len(parts) >= 3 and len(parts[1]) >= 2 else None


def parse_name(path: Path):
    """(subject, canonical label) from a JAFFE file name; ``ValueError`` naming the file."""
    code = _code(path)
    if code is None:
        raise ValueError(f"jaffe: file {path} is not named {NAME_FORM}")
    if code not in CODES:
        raise ValueError(f"jaffe: file {path}: expression code {code!r} is not one of "
                         f"{', '.join(CODES)}")
    return path.name.split(".")[0], label_index(CODES[code])


def locate(root) -> List[Path]:
    """The image files of a JAFFE root (``root``, ``root/jaffe`` or ``root/jaffedbase``);
    :class:`DatasetLayoutError` when none of them holds JAFFE-named images."""
    root = require_dir(root, "jaffe", LAYOUT)
    for folder in (root, root / "jaffe", root / "jaffedbase"):
        paths = list_images(folder) if folder.is_dir() else []
        if any(_code(p) in CODES for p in paths):
            return paths
    others = list_images(root)
    found = f" (its images, e.g. {others[0].name}, are not named {NAME_FORM})" if others else ""
    raise layout_error("jaffe", f"root {root} holds no JAFFE images (looked in it and in jaffe/, jaffedbase/)"
                                + found, LAYOUT)


def check_layout(root) -> None:
    """Check a JAFFE root: JAFFE images are present and every image name parses (the 213
    names are listed, no image is read)."""
    for path in locate(root):
        parse_name(path)


class JAFFE(ImageFileDataset):
    """JAFFE, all 213 images (see module docstring)."""

    description = "JAFFE (lab, posed, 10 Japanese female subjects, grayscale)"

    def __init__(self, root, split: str = "all", transform: Optional[Callable] = None,
                 skip_corrupt: bool = False):
        if split != "all":
            raise ValueError(f"jaffe: JAFFE has no {split!r} split; use split='all' and "
                             "omnifer_lib.data.protocols.leave_one_subject_out(dataset)")
        paths = locate(root)
        parsed: List[Tuple[str, int]] = [parse_name(p) for p in paths]
        super().__init__(paths, [lab for _, lab in parsed], [s for s, _ in parsed], "jaffe", transform,
                         expected="a JAFFE TIFF image", skip_corrupt=skip_corrupt)


#: This dataset's entry in :mod:`omnifer_lib.data.registry`.
RECORD = DatasetRecord("jaffe", "JAFFE", JAFFE, "all", ("all",), check_layout, size_keys=("n_cross_test",))
