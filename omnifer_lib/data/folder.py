"""A folder of face images: labeled by class subfolders, or flat as an unlabeled pool.

Expected layouts::

    <root>/<class>/*.jpg       labeled; class folder names as in ALIASES below
    <root>/*.jpg               flat: an unlabeled pool (labels -1)

With ``split`` other than ``"all"``, ``<root>/<split>/`` is used as the root (so
``train/<class>/`` and ``test/<class>/`` releases work). Class folder names are matched
case-insensitively against the canonical names and common synonyms (``angry``,
``happiness``, ``sadness``, ``surprised``, ...); an unknown folder name is an error that
lists the accepted names. With ``recursive=True`` a flat pool also takes images in
sub-folders (their first path component becomes ``subjects``, e.g. one folder per
identity of an aligned face corpus).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional, Tuple

from ._base import (DatasetRecord, IMAGE_EXTENSIONS, LABELS, ImageFileDataset, has_image, label_index, layout_error,
                    list_images, require_dir)

LAYOUT = "  <root>/<class>/*.jpg (class in neutral, anger, disgust, fear, happy, sad, surprise)  or  <root>/*.jpg"
ALIASES = {
    "neutral": "neutral", "anger": "anger", "angry": "anger", "disgust": "disgust",
    "disgusted": "disgust", "fear": "fear", "fearful": "fear", "happy": "happy",
    "happiness": "happy", "sad": "sad", "sadness": "sad", "surprise": "surprise",
    "surprised": "surprise",
}


def locate(root, split: str = "all") -> Path:
    """The folder that holds the images: ``root``, or ``root/<split>`` for a split other than
    ``"all"``; :class:`DatasetLayoutError` when it is missing or empty."""
    base = require_dir(root, "folder", LAYOUT)
    if split != "all":
        base = require_dir(base / split, "folder", f"  <root>/{split}/<class>/*.jpg", what="split folder")
    return base


def class_folders(base: Path) -> List[Tuple[Path, int]]:
    """(class folder, canonical label) of the sub-folders of ``base``; :class:`DatasetLayoutError`
    for a folder whose name is not a known expression."""
    out = []
    for sub in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        key = sub.name.lower()
        if key not in ALIASES:
            raise layout_error("folder", f"class folder {sub} is not a known expression (accepted: "
                                         f"{', '.join(sorted(ALIASES))}; or use a flat folder of images "
                                         "for an unlabeled pool)", LAYOUT)
        out.append((sub, label_index(ALIASES[key])))
    return out


def _labeled(base: Path, recursive: bool) -> bool:
    """Whether ``base`` is read as class folders (sub-folders and no images of its own)."""
    return not recursive and not list_images(base) and any(p.is_dir() and not p.name.startswith(".")
                                                           for p in base.iterdir())


def _no_images(base: Path):
    return layout_error("folder", f"no images found in {base}", LAYOUT)


def check_layout(root, split: str = "all", recursive: bool = False) -> None:
    """Cheap check of an image folder: class folders with known names and some image in
    them, or images of its own (nothing is decoded; ``recursive`` pools are not walked)."""
    base = locate(root, split)
    if _labeled(base, recursive):
        has_images = any(has_image(sub) for sub, _ in class_folders(base))
    else:  # a recursive pool is not walked here: that would list every file
        has_images = recursive or has_image(base)
    if not has_images:
        raise _no_images(base)


class ImageFolder(ImageFileDataset):
    """See module docstring."""

    description = "image folder"

    def __init__(self, root, split: str = "all", transform: Optional[Callable] = None,
                 recursive: bool = False, skip_corrupt: bool = False):
        base = locate(root, split)
        paths, labels, subjects = [], [], None
        if _labeled(base, recursive):
            for sub, label in class_folders(base):
                files = list_images(sub)
                paths += files
                labels += [label] * len(files)
        else:
            if recursive:
                files = sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")
                               and p.suffix.lower() in IMAGE_EXTENSIONS)
                subjects = [p.relative_to(base).parts[0] if len(p.relative_to(base).parts) > 1 else ""
                            for p in files]
            else:
                files = list_images(base)
            paths = files
            labels = [-1] * len(files)
        if not paths:
            raise _no_images(base)
        super().__init__(paths, labels, subjects, f"folder:{base.name}", transform, LABELS,
                         skip_corrupt=skip_corrupt)


#: This dataset's entry in :mod:`omnifer_lib.data.registry`.
RECORD = DatasetRecord("folder", "image folder", ImageFolder, "all", ("all",), check_layout)
