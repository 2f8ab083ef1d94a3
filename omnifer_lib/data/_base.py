"""Shared machinery of the dataset loaders: the common attributes, image reading, errors.

Every dataset of :mod:`omnifer_lib.data` is a :class:`FERDataset`: a torch ``Dataset``
yielding ``(image, label)`` with

``labels``    numpy int64 array (N,), indices into ``classes``; ``-1`` = unknown;
``subjects``  numpy array (N,) of identities (strings or ints) or ``None`` where the
              dataset has no identity information (RAF-DB, FER-2013);
``classes``   tuple of class names, :data:`LABELS` (an 8th ``"contempt"`` only when a CK+
              loader is asked to keep it);
``name``      short name used in tables, e.g. ``"rafdb:train"`` or ``"synthetic:rafdb"``;
``transform`` callable or ``None``.

Without a transform, ``image`` is a float32 tensor ``3 x H x W`` in ``[0, 1]`` (grayscale
sources repeated to 3 channels). File datasets hand the transform a PIL RGB image.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

LABELS: Tuple[str, ...] = ("neutral", "anger", "disgust", "fear", "happy", "sad", "surprise")
CONTEMPT = "contempt"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".ppm", ".pgm")

PathLike = Union[str, os.PathLike]


class DatasetLayoutError(FileNotFoundError):
    """A dataset root is missing or does not hold the expected layout (message says which)."""


def label_index(name: str) -> int:
    """Index of a canonical class name in :data:`LABELS`."""
    return LABELS.index(name)


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image -> float32 tensor 3 x H x W in [0, 1] (grayscale repeated to 3 channels)."""
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def read_image(path: PathLike, expected: str = "an image file readable by PIL") -> Image.Image:
    """Open ``path`` as an RGB PIL image, or raise ``ValueError`` naming the file and the
    expected form (missing files raise ``FileNotFoundError``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist (expected {expected})")
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot read image {path}: {exc} (expected {expected})") from None


def is_readable_image(path: PathLike) -> bool:
    """Whether PIL can decode ``path`` completely (used by ``skip_corrupt``)."""
    try:
        with Image.open(path) as img:
            img.load()
        return True
    except Exception:  # any decoder failure means "corrupt" here  # noqa: BLE001
        return False


def require_dir(path: PathLike, dataset: str, layout: str) -> Path:
    """``path`` as a Path if it is a directory, else a :class:`DatasetLayoutError` that
    names the layout the loader expected."""
    if path is None:
        raise DatasetLayoutError(f"{dataset}: no root given; expected a folder laid out as:\n{layout}")
    p = Path(path).expanduser()
    if not p.is_dir():
        raise DatasetLayoutError(f"{dataset}: root {p} is not a folder; expected a folder laid out as:\n{layout}")
    return p


def list_images(folder: Path) -> List[Path]:
    """Image files directly in ``folder`` (no recursion), sorted by name, hidden files skipped."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)


def check_split(dataset: str, split: str, allowed: Sequence[str]) -> str:
    if split not in allowed:
        raise ValueError(f"{dataset}: unknown split {split!r}; expected one of {', '.join(map(repr, allowed))}")
    return split


class FERDataset(Dataset):
    """Base class: holds the common attributes; subclasses implement :meth:`_load`.

    ``_load(i)`` returns the raw image of sample ``i`` (a PIL image for file datasets, a
    float tensor for the synthetic data); the base class applies ``transform`` or converts.
    """

    #: canonical classes the dataset cannot contain by construction (CK+48: neutral)
    missing_classes: Tuple[str, ...] = ()
    #: what stands behind the data, for :func:`omnifer_lib.data.describe`
    description: str = ""

    def __init__(self, labels: np.ndarray, subjects: Optional[np.ndarray], name: str,
                 transform: Optional[Callable] = None, classes: Tuple[str, ...] = LABELS):
        labels = np.asarray(labels, dtype=np.int64)
        if labels.ndim != 1:
            raise ValueError(f"labels must be a 1-d array, got shape {labels.shape}")
        if len(labels) and (labels.max() >= len(classes) or labels.min() < -1):
            raise ValueError(f"{name}: labels outside -1..{len(classes) - 1}")
        self.labels = labels
        self.subjects = None if subjects is None else np.asarray(subjects)
        if self.subjects is not None and len(self.subjects) != len(labels):
            raise ValueError(f"{name}: {len(self.subjects)} subjects for {len(labels)} labels")
        self.classes = tuple(classes)
        self.name = name
        self.transform = transform
        self.notes: List[str] = []
        self.skipped: List[str] = []

    def __len__(self) -> int:
        return len(self.labels)

    def _load(self, index: int):
        raise NotImplementedError

    def _finish(self, raw) -> torch.Tensor:
        if self.transform is not None:
            return self.transform(raw)
        if isinstance(raw, Image.Image):
            return pil_to_tensor(raw)
        return raw

    def __getitem__(self, index: int):
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range 0..{len(self) - 1}")
        return self._finish(self._load(index)), int(self.labels[index])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {len(self)} images>"


class ImageFileDataset(FERDataset):
    """Images read from files, one path per sample.

    ``expected`` describes the file form for error messages. With ``skip_corrupt=True``
    every file is decoded once at construction; files PIL cannot decode are dropped with a
    warning, their count and paths kept in ``skipped``. Otherwise an unreadable file
    raises ``ValueError`` (naming it) when it is accessed.
    """

    def __init__(self, paths: Sequence[PathLike], labels, subjects, name: str,
                 transform: Optional[Callable] = None, classes: Tuple[str, ...] = LABELS,
                 expected: str = "an image file readable by PIL", skip_corrupt: bool = False):
        paths = [str(p) for p in paths]
        labels = np.asarray(labels, dtype=np.int64)
        subj = None if subjects is None else np.asarray(subjects)
        skipped: List[str] = []
        keep = np.ones(len(paths), dtype=bool)
        if skip_corrupt:
            keep = np.array([is_readable_image(p) for p in paths], dtype=bool)
            skipped = [p for p, k in zip(paths, keep) if not k]
            if skipped:
                warnings.warn(f"{name}: skipped {len(skipped)} unreadable image(s) of {len(paths)} "
                              f"(first: {skipped[0]}); the list is in dataset.skipped", stacklevel=3)
                paths = [p for p, k in zip(paths, keep) if k]
                labels = labels[keep]
                subj = None if subj is None else subj[keep]
        super().__init__(labels, subj, name, transform, classes)
        self.paths = paths
        self.expected = expected
        self.skipped = skipped
        #: which of the given paths were kept (all unless skip_corrupt dropped some)
        self.kept_mask = keep

    def _load(self, index: int) -> Image.Image:
        return read_image(self.paths[index], self.expected)


class ArrayImageDataset(FERDataset):
    """Images held in memory as a uint8 array N x H x W (grayscale) or N x H x W x 3."""

    def __init__(self, images: np.ndarray, labels, subjects, name: str,
                 transform: Optional[Callable] = None, classes: Tuple[str, ...] = LABELS):
        super().__init__(labels, subjects, name, transform, classes)
        if len(images) != len(self.labels):
            raise ValueError(f"{name}: {len(images)} images for {len(self.labels)} labels")
        self.images = images

    def _load(self, index: int) -> Image.Image:
        return Image.fromarray(self.images[index]).convert("RGB")
