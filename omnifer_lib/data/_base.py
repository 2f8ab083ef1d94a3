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

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ..names import CONTEMPT, LABELS  # noqa: F401  (re-exported: the labels live in omnifer_lib.names)

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


def decode_failure(exc: BaseException) -> str:
    """Why PIL could not decode an image, on one line (whitespace collapsed; a garbage or empty
    file, or another file type, gets a plain description rather than PIL's "cannot identify
    image file <name>")."""
    if isinstance(exc, UnidentifiedImageError):
        return "not in an image format PIL recognises (empty, garbage or another file type)"
    return " ".join(str(exc).split()) or type(exc).__name__


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """A ``(3, H, W)`` (or ``(1, H, W)``) float tensor in [0, 1] -> an 8-bit RGB (or L) PIL image,
    values clipped and rounded: the one conversion of images the library writes to files."""
    arr = (image.detach().cpu().float().clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)


def read_image(path: PathLike, expected: str = "an image file readable by PIL", advice: str = "") -> Image.Image:
    """Open ``path`` as an RGB PIL image, or raise ``ValueError`` naming the file and the
    expected form on one line, ``advice`` (what to do) appended (missing files raise
    ``FileNotFoundError``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist (expected {expected})")
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except Exception as exc:  # any decoder failure (truncated data, bad header, ...)  # noqa: BLE001
        reason = decode_failure(exc)
    raise ValueError(f"cannot read image {path}: {reason} (expected {expected})"
                     + (f"; {advice}" if advice else ""))


def read_text(path: PathLike, expected: str) -> str:
    """The text of ``path``, or ``ValueError`` naming the file when it is not UTF-8 text."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text file ({exc.reason} at byte {exc.start}); expected {expected}") from None


def integer_code(text: Union[str, float]) -> Optional[int]:
    """The integer written in ``text`` (``"3"``, ``"3.0000000e+00"``, or a number), or ``None``
    when it is not a finite whole number."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return int(value) if math.isfinite(value) and value == int(value) else None


def is_readable_image(path: PathLike) -> bool:
    """Whether PIL can decode ``path`` completely (used by ``skip_corrupt``)."""
    try:
        with Image.open(path) as img:
            img.load()
        return True
    except Exception:  # any decoder failure means "corrupt" here  # noqa: BLE001
        return False


def layout_error(dataset: str, problem: str, layout: str) -> DatasetLayoutError:
    """The error every loader raises for a root it cannot use: one first line
    ``"<dataset>: <problem>; expected a folder laid out as:"`` then the layout."""
    return DatasetLayoutError(f"{dataset}: {problem}; expected a folder laid out as:\n{layout}")


def require_dir(path: PathLike, dataset: str, layout: str, what: str = "root") -> Path:
    """``path`` as a Path if it is a folder holding something, else a
    :class:`DatasetLayoutError` saying whether it is unset, missing, a file or empty."""
    if path is None:
        raise layout_error(dataset, f"no {what} given (pass root=)", layout)
    p = Path(path).expanduser()
    if not p.exists():
        raise layout_error(dataset, f"{what} {p} does not exist", layout)
    if not p.is_dir():
        raise layout_error(dataset, f"{what} {p} is a file, not a folder", layout)
    if not any(not c.name.startswith(".") for c in p.iterdir()):
        raise layout_error(dataset, f"{what} {p} is empty", layout)
    return p


def list_images(folder: Path) -> List[Path]:
    """Image files directly in ``folder`` (no recursion), sorted by name, hidden files skipped."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)


def has_image(folder: Path) -> bool:
    """Whether ``folder`` directly holds an image file; stops at the first (for cheap checks)."""
    with os.scandir(folder) as entries:
        return any(e.is_file() and not e.name.startswith(".") and Path(e.name).suffix.lower() in IMAGE_EXTENSIONS
                   for e in entries)


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
        # checked on the local value: a subclass may compute ``subjects`` lazily (MS1M)
        subjects = None if subjects is None else np.asarray(subjects)
        if subjects is not None and len(subjects) != len(labels):
            raise ValueError(f"{name}: {len(subjects)} subjects for {len(labels)} labels")
        self.subjects = subjects
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
        return read_image(self.paths[index], self.expected,
                          advice="replace the file, or load with skip_corrupt=True to drop unreadable files")


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


@dataclass(frozen=True)
class DatasetRecord:
    """What the library knows of one dataset, declared once, as ``RECORD`` in the dataset's own
    module; every list of datasets (:mod:`omnifer_lib.data.registry`, the book's roles and size
    parameters, the display names) is derived from these records.

    ``factory(root, split, transform, **options)`` opens it (no ``root`` when ``layout_check`` is
    ``None``: rendered data); ``default_split`` is what ``load`` opens without a split and
    ``splits`` the published splits :func:`~omnifer_lib.data.protocols.official_splits` returns
    (``("all",)`` for a dataset evaluated by folds), of which a release may lack the
    ``optional_splits``; ``layout_check(root, **options)`` validates a root cheaply;
    ``size_keys`` names the profile parameters that size its synthetic stand-in (empty: the
    synthetic data has no domain of this name)."""
    name: str
    display_name: str
    factory: Callable
    default_split: str
    splits: Tuple[str, ...]
    layout_check: Optional[Callable[..., None]] = None
    optional_splits: Tuple[str, ...] = ()
    size_keys: Tuple[str, ...] = ()

    @property
    def needs_root(self) -> bool:
        return self.layout_check is not None
