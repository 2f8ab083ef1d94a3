"""CK+ (Extended Cohn-Kanade): posed expression sequences from 123 subjects in a lab.

Two layouts, detected from ``root`` (or forced with ``variant=``):

1. the official release (``variant="official"``)::

       <root>/cohn-kanade-images/S005/001/S005_001_00000001.png ... S005_001_00000011.png
       <root>/Emotion/S005/001/S005_001_00000011_emotion.txt     e.g. "   3.0000000e+00"

   Emotion codes 0..7 = neutral, anger, contempt, disgust, fear, happy, sadness, surprise.
   Only the 327 labeled sequences are used, following the paper's protocol (§4.1, after
   its ref. [20]): the **first frame** of each labeled sequence is a neutral sample and
   the **last three frames** carry the sequence's label (327 x 4 = 1,308 images).

2. the CK+48 folder variant (``variant="ck+48"``)::

       <root>/CK+48/<anger|contempt|disgust|fear|happy|sadness|surprise>/S010_004_00000017.png

   (``root`` may also be the ``CK+48`` folder itself.) CK+48 holds **no neutral** class:
   ``missing_classes == ("neutral",)`` and a note says so, so tables never present its
   accuracy as 7-class.

Contempt is not one of the seven canonical classes. By default (``keep_contempt=False``)
contempt frames are dropped; in the official layout the first (neutral) frame of a
contempt sequence is kept, since it is a valid neutral face and it keeps the neutral
count at one per labeled sequence as in the paper's 1,308. With ``keep_contempt=True``
contempt is an **8th class appended after the canonical seven**: ``classes ==
LABELS + ("contempt",)`` and its label is ``7``, so labels 0..6 keep their meaning; a
7-way model cannot be trained on such a dataset without remapping.

CK+ has no official split: ``split`` is ``"all"``; use
:func:`omnifer_lib.data.protocols.subject_kfold` for the 10-fold subject-independent
protocol. ``subjects`` holds the ``S###`` field; ``sequences`` holds ``S###_###``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, List, Optional, Tuple, Union

import numpy as np

from ._base import (CONTEMPT, LABELS, DatasetRecord, ImageFileDataset, has_image, integer_code, label_index,
                    layout_error, list_images, read_text, require_dir)

LAYOUT = """  official: <root>/cohn-kanade-images/S005/001/S005_001_00000011.png
            <root>/Emotion/S005/001/S005_001_00000011_emotion.txt  (one float code 0..7)
  CK+48:    <root>/CK+48/<anger|contempt|disgust|fear|happy|sadness|surprise>/S010_004_00000017.png"""

#: official emotion code -> class name (contempt handled separately)
CODES = {0: "neutral", 1: "anger", 2: CONTEMPT, 3: "disgust", 4: "fear", 5: "happy", 6: "sad", 7: "surprise"}
CK48_FOLDERS = {"anger": "anger", "contempt": CONTEMPT, "disgust": "disgust", "fear": "fear",
                "happy": "happy", "sadness": "sad", "surprise": "surprise"}
_NAME_RE = re.compile(r"^(S\d+)_(\d+)_(\d+)")
EMOTION_FILES = "S*/*/*_emotion.txt"
VARIANTS = ("auto", "official", "ck+48")


def _class_index(name: str, keep_contempt: bool) -> int:
    if name == CONTEMPT:
        return len(LABELS) if keep_contempt else -2  # -2: drop
    return label_index(name)


def read_emotion_file(path: Path) -> int:
    """The integer emotion code in a CK+ ``*_emotion.txt`` file; ``ValueError`` naming the
    file when it is not one float 0..7."""
    expected = "one number (emotion code 0..7, e.g. '3.0000000e+00')"
    text = read_text(path, expected).strip()
    code = integer_code(text)
    if code is None:
        raise ValueError(f"{path}: expected {expected}, got {text[:40]!r}")
    if code not in CODES:
        raise ValueError(f"{path}: emotion code {text} outside CK+ range 0..7")
    return code


def _find_official(root: Path):
    for base in (root, root / "CK+", root / "extended-cohn-kanade-images"):
        imgs, emo = base / "cohn-kanade-images", base / "Emotion"
        if imgs.is_dir() and emo.is_dir():
            return imgs, emo
        if imgs.is_dir() and (root / "Emotion").is_dir():
            return imgs, root / "Emotion"
    return None


def _find_ck48(root: Path) -> Optional[Path]:
    for cand in (root / "CK+48", root):
        if cand.is_dir() and any((cand / f).is_dir() for f in CK48_FOLDERS):
            return cand
    return None


def ck48_class_folders(folder: Path) -> List[Tuple[Path, str]]:
    """(class folder, class name) of a CK+48 folder; :class:`DatasetLayoutError` for a
    folder that is not one of CK+48's seven."""
    out = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name.lower() not in CK48_FOLDERS:
            raise layout_error("ckplus", f"unexpected CK+48 class folder {sub} (class folders are "
                                         f"{', '.join(CK48_FOLDERS)})", LAYOUT)
        out.append((sub, CK48_FOLDERS[sub.name.lower()]))
    return out


def locate(root, variant: str = "auto") -> Tuple[str, Union[Tuple[Path, Path], Path]]:
    """``("official", (images dir, Emotion dir))`` or ``("ck+48", CK+48 folder)``: the layout
    ``root`` holds (``variant`` auto/official/ck+48); :class:`DatasetLayoutError` otherwise."""
    if variant not in VARIANTS:
        raise ValueError(f"ckplus: variant must be 'auto', 'official' or 'ck+48', got {variant!r}")
    root = require_dir(root, "ckplus", LAYOUT)
    found = _find_official(root) if variant in ("auto", "official") else None
    if found is not None:
        return "official", found
    folder = _find_ck48(root) if variant in ("auto", "ck+48") else None
    if folder is not None:
        return "ck+48", folder
    wanted = {"auto": "neither the official CK+ release (cohn-kanade-images/ + Emotion/) nor CK+48 (CK+48/<class>/)",
              "official": "no official CK+ release (cohn-kanade-images/ + Emotion/)",
              "ck+48": "no CK+48 class folders (CK+48/<class>/)"}[variant]
    raise layout_error("ckplus", f"root {root} holds {wanted}", LAYOUT)


def _no_labels(emotion_dir: Path):
    """The error for an Emotion folder without label files."""
    return layout_error("ckplus", f"no Emotion/S###/###/*_emotion.txt files under {emotion_dir}", LAYOUT)


def _no_ck48_images(folder: Path):
    """The error for CK+48 class folders without images."""
    return layout_error("ckplus", f"no images in the CK+48 class folders of {folder}", LAYOUT)


def _sequence_frames(images_dir: Path, label_file: Path) -> List[Path]:
    """The frames of the sequence labeled by ``label_file``; :class:`DatasetLayoutError` if none."""
    frame_dir = images_dir / label_file.parent.parent.name / label_file.parent.name
    frames = list_images(frame_dir) if frame_dir.is_dir() else []
    if not frames:
        raise layout_error("ckplus", f"labeled sequence {label_file} has no frames in {frame_dir}", LAYOUT)
    return frames


def check_layout(root, variant: str = "auto") -> None:
    """Cheap check of a CK+ root: the official folders with a first readable emotion file
    whose sequence has frames, or CK+48 class folders holding some image (nothing decoded)."""
    kind, found = locate(root, variant)
    if kind == "official":
        images_dir, emotion_dir = found
        first = next(emotion_dir.glob(EMOTION_FILES), None)
        if first is None:
            raise _no_labels(emotion_dir)
        read_emotion_file(first)
        _sequence_frames(images_dir, first)
    elif not any(has_image(sub) for sub, _ in ck48_class_folders(found)):
        raise _no_ck48_images(found)


class CKPlus(ImageFileDataset):
    """CK+ official release with the paper's protocol (see module docstring)."""

    description = "CK+ (lab, posed, frontal grayscale; first frame neutral + last 3 peak frames)"

    def __init__(self, images_dir: Path, emotion_dir: Path, transform: Optional[Callable] = None,
                 keep_contempt: bool = False, peak_frames: int = 3, neutral_first: bool = True,
                 skip_corrupt: bool = False):
        paths: List[Path] = []
        labels: List[int] = []
        seqs: List[str] = []
        short = 0
        label_files = sorted(emotion_dir.glob(EMOTION_FILES))
        if not label_files:
            raise _no_labels(emotion_dir)
        for lf in label_files:
            subj, seq = lf.parent.parent.name, lf.parent.name
            code = read_emotion_file(lf)
            frames = _sequence_frames(images_dir, lf)
            peak_idx = list(range(max(0, len(frames) - peak_frames), len(frames)))
            if neutral_first and len(frames) > 1:
                peak_idx = [i for i in peak_idx if i != 0]
            if len(peak_idx) < peak_frames:
                short += 1
            cls = _class_index(CODES[code], keep_contempt)
            if neutral_first:
                paths.append(frames[0])
                labels.append(label_index("neutral"))
                seqs.append(f"{subj}_{seq}")
            if cls != -2:
                for i in peak_idx:
                    paths.append(frames[i])
                    labels.append(cls)
                    seqs.append(f"{subj}_{seq}")
        classes = LABELS + ((CONTEMPT,) if keep_contempt else ())
        subjects = np.array([s.split("_")[0] for s in seqs])
        super().__init__(paths, labels, subjects, "ckplus", transform, classes,
                         expected="a CK+ PNG frame", skip_corrupt=skip_corrupt)
        self.sequences = np.array(seqs)[self.kept_mask]
        self.notes.append(f"{len(label_files)} labeled sequences; contempt "
                          + ("kept as class 7" if keep_contempt else "peak frames dropped"))
        if short:
            self.notes.append(f"{short} sequence(s) had fewer than {peak_frames} peak frames besides the first")


class CK48(ImageFileDataset):
    """CK+48 folder variant (no neutral class; see module docstring)."""

    description = "CK+48 (lab, posed, 48x48 grayscale; no neutral class)"
    missing_classes = ("neutral",)

    def __init__(self, folder: Path, transform: Optional[Callable] = None, keep_contempt: bool = False,
                 skip_corrupt: bool = False):
        paths, labels, subjects = [], [], []
        for sub, name in ck48_class_folders(folder):
            cls = _class_index(name, keep_contempt)
            if cls == -2:
                continue
            for f in list_images(sub):
                m = _NAME_RE.match(f.name)
                if not m:
                    raise ValueError(f"ckplus: file {f} is not named like 'S010_004_00000017.png' "
                                     "(subject_sequence_frame)")
                paths.append(f)
                labels.append(cls)
                subjects.append(m.group(1))
        if not paths:
            raise _no_ck48_images(folder)
        classes = LABELS + ((CONTEMPT,) if keep_contempt else ())
        super().__init__(paths, labels, subjects, "ckplus48", transform, classes,
                         expected="a CK+48 PNG", skip_corrupt=skip_corrupt)
        self.notes.append("CK+48 has no neutral class: neutral is missing from every split and "
                          "its accuracy is over the remaining classes only")


def load_ckplus(root, split: str = "all", transform: Optional[Callable] = None, variant: str = "auto",
                keep_contempt: bool = False, peak_frames: int = 3, skip_corrupt: bool = False):
    """Open CK+ in the official or the CK+48 layout (see module docstring)."""
    if split != "all":
        raise ValueError(f"ckplus: CK+ has no official {split!r} split; use split='all' and "
                         "omnifer_lib.data.protocols.subject_kfold(dataset, k=10) for the paper's "
                         "10-fold subject-independent protocol")
    kind, found = locate(root, variant)
    if kind == "official":
        return CKPlus(found[0], found[1], transform, keep_contempt=keep_contempt,
                      peak_frames=peak_frames, skip_corrupt=skip_corrupt)
    return CK48(found, transform, keep_contempt=keep_contempt, skip_corrupt=skip_corrupt)


#: This dataset's entry in :mod:`omnifer_lib.data.registry`.
RECORD = DatasetRecord("ckplus", "CK+", load_ckplus, "all", ("all",), check_layout, size_keys=("n_cross_test",))
