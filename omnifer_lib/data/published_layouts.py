"""Write the synthetic domains to disk in the real datasets' published layouts.

Why: the real-data path (``data_source: real``, the ``paper`` profile) reads files laid out
the way RAF-DB, FER-2013, CK+, JAFFE, MMI and MS1M are distributed. With no licensed face
data on a machine, that path could only be checked piecemeal. Writing each synthetic domain
into its real counterpart's layout lets the tests run the whole pipeline through the real
loaders, and lets a user check a set-up (paths, parameters, GPU) before pointing it at
licensed copies. The files hold synthetic faces: no number measured on them is a real-data
number.

::

    roots = write_published_layouts("/tmp/layouts", image_size=48)
    # {"rafdb_root": "/tmp/layouts/rafdb", ..., "ms1m_root": "/tmp/layouts/ms1m"}

    omnifer reproduce --profile smoke -p data_source real -p rafdb_root /tmp/layouts/rafdb ...

What is written (``<root>/<name>/``, in each loader's ``LAYOUT``):

* ``rafdb``: ``basic/EmoLabel/list_patition_label.txt`` and ``basic/Image/aligned/*_aligned.jpg``;
* ``fer2013``: ``fer2013.csv`` (48 x 48 grayscale, ``Training`` / ``PublicTest`` / ``PrivateTest``);
* ``ckplus``: ``cohn-kanade-images/S###/###/*.png`` and ``Emotion/.../*_emotion.txt``, sequences
  of a neutral first frame and three apex frames;
* ``jaffe``: ``<SUBJ>.<EXPR><n>.<idx>.tiff``;
* ``mmi``: ``Sessions/<id>/session.xml`` and seven frames, neutral at the start and the ends,
  the expression in the three middle frames;
* ``ms1m``: insightface RecordIO (``train.rec``, ``train.idx``, ``property``), grouped by identity.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np
from PIL import Image

from . import ckplus as _ckplus
from . import fer2013 as _fer2013
from . import jaffe as _jaffe
from . import mmi as _mmi
from . import rafdb as _rafdb
from ._base import LABELS, tensor_to_pil
from .ms1m import write_insightface_rec
from .synthetic import SyntheticFER

NEUTRAL = LABELS.index("neutral")

#: images rendered per dataset and split (before they are arranged into sequences or sessions)
DEFAULT_SIZES: Dict[str, int] = {"rafdb_train": 210, "rafdb_test": 105, "fer2013_train": 140,
                                 "fer2013_test": 70, "ckplus": 280, "jaffe": 70, "mmi": 210, "ms1m": 400}

DATASETS = ("rafdb", "fer2013", "ckplus", "jaffe", "mmi", "ms1m")


def _codes(mapping: Mapping) -> Dict[int, object]:
    """Inverse of a loader's ``CODES`` table: canonical label -> the dataset's own code (classes
    outside the canonical seven, such as CK+'s contempt, are left out)."""
    return {LABELS.index(cls): code for code, cls in mapping.items() if cls in LABELS}


def _render(domain: str, split: str, size: int, image_size: int, seed: int):
    ds = SyntheticFER(split=split, domain=domain, size=size, image_size=image_size, seed=seed)
    # rendered() gives uint8 (N, 3, S, S); items are float in [0, 1]
    images = ds.rendered().float() / 255 if ds.caches_images else [ds[i][0] for i in range(len(ds))]
    true = getattr(ds, "true_labels", None)
    labels = np.asarray(true if true is not None and (ds.labels < 0).all() else ds.labels)
    subjects = np.asarray(ds.subjects) if ds.subjects is not None else np.arange(len(ds))
    return images, labels, subjects


# Single files are written in place: the whole dataset folder is renamed into place at the end.
def _save(img: Image.Image, path: Path, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_rafdb(root: Path, sizes: Mapping[str, int], image_size: int, seed: int) -> None:
    code = _codes(_rafdb.CODES)
    lines = []
    for split in ("train", "test"):
        images, labels, _ = _render("rafdb", split, sizes[f"rafdb_{split}"], image_size, seed)
        for i, (img, y) in enumerate(zip(images, labels), 1):
            stem = f"{split}_{i:05d}"
            _save(tensor_to_pil(img), root / "basic" / "Image" / "aligned" / f"{stem}_aligned.jpg",
                         format="JPEG", quality=95)
            lines.append(f"{stem}.jpg {code[int(y)]}")
    _write_text(root / "basic" / "EmoLabel" / "list_patition_label.txt", "\n".join(lines) + "\n")


def write_fer2013(root: Path, sizes: Mapping[str, int], image_size: int, seed: int) -> None:
    # FER-2013's CSV release holds 48 x 48 grayscale faces, whatever size the learners use.
    del image_size
    code = _codes(_fer2013.CODES)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["emotion", "pixels", "Usage"])
    train = _render("fer2013", "train", sizes["fer2013_train"], 48, seed)
    test = _render("fer2013", "test", sizes["fer2013_test"], 48, seed)
    n_public = len(test[0]) // 2
    for usage, (images, labels, _) in (("Training", train), ("PublicTest", tuple(x[:n_public] for x in test)),
                                       ("PrivateTest", tuple(x[n_public:] for x in test))):
        for img, y in zip(images, labels):
            gray = np.asarray(tensor_to_pil(img).convert("L"), dtype=np.uint8)
            writer.writerow([code[int(y)], " ".join(map(str, gray.ravel().tolist())), usage])
    _write_text(root / "fer2013.csv", buf.getvalue())


def _sequences(labels: np.ndarray, subjects: np.ndarray):
    """Arrange single rendered faces into labeled sequences: (subject, label, neutral frame,
    three apex frames). Apex frames of one sequence share a label and are taken in subject
    order, so a sequence mostly keeps one subject; the neutral frame is the subject's own where
    it has one left, else a shared one. Labels take turns, so that when neutral faces run out
    every expression already has sequences."""
    order = np.lexsort((np.arange(len(labels)), subjects))
    neutral_by_subject: Dict[object, list] = defaultdict(list)
    for i in order[labels[order] == NEUTRAL].tolist():
        neutral_by_subject[subjects[i].item()].append(i)
    chunks = []
    for y in range(len(LABELS)):
        if y != NEUTRAL:
            apex = order[labels[order] == y].tolist()
            chunks.append([(y, apex[k:k + 3]) for k in range(0, len(apex) - 2, 3)])
    used = set()
    for turn in range(max(map(len, chunks), default=0)):
        for y, frames in (c[turn] for c in chunks if turn < len(c)):
            subject = subjects[frames[0]].item()
            free = [i for i in neutral_by_subject[subject] if i not in used] or \
                   [i for idx in neutral_by_subject.values() for i in idx if i not in used]
            if not free:
                return
            used.add(free[0])
            yield subject, y, free[0], frames


def write_ckplus(root: Path, sizes: Mapping[str, int], image_size: int, seed: int) -> None:
    code = _codes(_ckplus.CODES)
    images, labels, subjects = _render("ckplus", "train", sizes["ckplus"], image_size, seed)
    names = {s: f"S{k + 5:03d}" for k, s in enumerate(sorted(set(subjects.tolist())))}
    seq_count: Dict[str, int] = defaultdict(int)
    for subject, y, neutral, apex in _sequences(labels, subjects):
        subj = names[subject]
        seq_count[subj] += 1
        seq = f"{seq_count[subj]:03d}"
        frames = [neutral] + apex
        folder = root / "cohn-kanade-images" / subj / seq
        for f, i in enumerate(frames, 1):
            _save(tensor_to_pil(images[i]), folder / f"{subj}_{seq}_{f:08d}.png", format="PNG")
        _write_text(root / "Emotion" / subj / seq / f"{subj}_{seq}_{len(frames):08d}_emotion.txt",
                    f"   {float(code[y]):.7e}\n")


def write_jaffe(root: Path, sizes: Mapping[str, int], image_size: int, seed: int) -> None:
    code = _codes(_jaffe.CODES)
    images, labels, subjects = _render("jaffe", "test", sizes["jaffe"], image_size, seed)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    counters: Dict[tuple, int] = defaultdict(int)
    names = {s: letters[k // 26 % 26] + letters[k % 26] for k, s in enumerate(sorted(set(subjects.tolist())))}
    for i, (img, y, s) in enumerate(zip(images, labels.tolist(), subjects.tolist()), 1):
        counters[(s, y)] += 1
        name = f"{names[s]}.{code[int(y)]}{counters[(s, y)]}.{i}.tiff"
        _save(tensor_to_pil(img).convert("L"), root / name, format="TIFF")


def write_mmi(root: Path, sizes: Mapping[str, int], image_size: int, seed: int) -> None:
    code = _codes(_mmi.CODES)
    images, labels, subjects = _render("mmi", "test", sizes["mmi"], image_size, seed)
    names = {s: f"S{k + 1:03d}" for k, s in enumerate(sorted(set(subjects.tolist())))}
    for session, (subject, y, neutral, apex) in enumerate(_sequences(labels, subjects), 1):
        folder = root / "Sessions" / str(session)
        # MMI's apex lies mid-sequence: the neutral face before and after the three labeled frames
        frames = [neutral, neutral] + apex + [neutral, neutral]
        for f, i in enumerate(frames):
            _save(tensor_to_pil(images[i]), folder / f"frame_{f:04d}.png", format="PNG")
        _write_text(folder / "session.xml", f'<session><subject id="{names[subject]}"/>'
                                            f'<Metatag Name="Emotion" Value="{code[y]}"/></session>\n')


def write_ms1m(root: Path, sizes: Mapping[str, int], image_size: int, seed: int) -> None:
    images, _, subjects = _render("ms1m", "train", sizes["ms1m"], image_size, seed)
    groups: Dict[object, list] = defaultdict(list)
    for img, s in zip(images, subjects.tolist()):
        buf = io.BytesIO()
        tensor_to_pil(img).save(buf, format="JPEG", quality=95)
        groups[s].append(buf.getvalue())
    write_insightface_rec(root, [groups[s] for s in sorted(groups)], image_size=(image_size, image_size))


WRITERS = {"rafdb": write_rafdb, "fer2013": write_fer2013, "ckplus": write_ckplus, "jaffe": write_jaffe,
           "mmi": write_mmi, "ms1m": write_ms1m}


def write_published_layouts(root: Union[str, os.PathLike], *, datasets: Sequence[str] = DATASETS,
                            sizes: Optional[Mapping[str, int]] = None, image_size: int = 48,
                            seed: int = 0) -> Dict[str, str]:
    """Write each synthetic domain under ``root/<name>/`` in ``name``'s published layout.

    ``sizes`` overrides entries of :data:`DEFAULT_SIZES` (images rendered per dataset and
    split); ``image_size`` is the side in pixels of the written images (FER-2013 is always
    48). Returns the profile parameters that point at the folders, e.g.
    ``{"rafdb_root": "<root>/rafdb", ...}``. A folder that already exists is refused rather
    than mixed with new files.
    """
    unknown = sorted(set(datasets) - set(WRITERS))
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; expected some of {', '.join(DATASETS)}")
    bad = sorted(set(sizes or {}) - set(DEFAULT_SIZES))
    if bad:
        raise ValueError(f"unknown size key(s) {bad}; expected some of {', '.join(DEFAULT_SIZES)}")
    all_sizes = {**DEFAULT_SIZES, **dict(sizes or {})}
    root = Path(root)
    roots = {}
    for name in datasets:
        target = root / name
        if target.exists():
            raise FileExistsError(f"{target} exists; write the layouts into an empty folder")
        partial = root / f".{name}.partial{os.getpid()}"
        try:
            WRITERS[name](partial, all_sizes, image_size, seed)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        os.replace(partial, target)  # a half-written dataset never carries the dataset's name
        roots[f"{name}_root"] = str(target)
    return roots
