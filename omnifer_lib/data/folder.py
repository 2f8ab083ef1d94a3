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

from typing import Callable, Optional

from ._base import (IMAGE_EXTENSIONS, LABELS, DatasetLayoutError, ImageFileDataset, label_index,
                    list_images, require_dir)

LAYOUT = "  <root>/<class>/*.jpg (class in neutral, anger, disgust, fear, happy, sad, surprise)  or  <root>/*.jpg"
ALIASES = {
    "neutral": "neutral", "anger": "anger", "angry": "anger", "disgust": "disgust",
    "disgusted": "disgust", "fear": "fear", "fearful": "fear", "happy": "happy",
    "happiness": "happy", "sad": "sad", "sadness": "sad", "surprise": "surprise",
    "surprised": "surprise",
}


class ImageFolder(ImageFileDataset):
    """See module docstring."""

    description = "image folder"

    def __init__(self, root, split: str = "all", transform: Optional[Callable] = None,
                 recursive: bool = False, skip_corrupt: bool = False):
        base = require_dir(root, "folder", LAYOUT)
        if split != "all":
            base = require_dir(base / split, "folder", f"  <root>/{split}/<class>/*.jpg")
        subdirs = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
        flat = list_images(base)
        paths, labels, subjects = [], [], None
        if subdirs and not flat and not recursive:
            for sub in subdirs:
                key = sub.name.lower()
                if key not in ALIASES:
                    raise DatasetLayoutError(
                        f"folder: class folder {sub} is not a known expression; expected one of "
                        f"{', '.join(sorted(ALIASES))} (or a flat folder of images for an unlabeled pool)")
                files = list_images(sub)
                paths += files
                labels += [label_index(ALIASES[key])] * len(files)
        else:
            if recursive:
                files = sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")
                               and p.suffix.lower() in IMAGE_EXTENSIONS)
                subjects = [p.relative_to(base).parts[0] if len(p.relative_to(base).parts) > 1 else ""
                            for p in files]
            else:
                files = flat
            paths = files
            labels = [-1] * len(files)
        if not paths:
            raise DatasetLayoutError(f"folder: no images found in {base}; expected:\n{LAYOUT}")
        super().__init__(paths, labels, subjects, f"folder:{base.name}", transform, LABELS,
                         skip_corrupt=skip_corrupt)
