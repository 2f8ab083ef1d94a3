"""Face alignment as in the paper's §4.3: MTCNN detection, five-landmark similarity
alignment to a canonical template, crop to ``size`` (224 by default).

MTCNN is facenet-pytorch's implementation (2.5.3; its weights ship inside the wheel, so
this works offline). Its five landmarks are, in image coordinates: left eye, right eye,
nose tip, left mouth corner, right mouth corner ("left" = smaller x). A least-squares
similarity transform (rotation, uniform scale, translation; no reflection) maps them onto
:func:`canonical_template`, which puts the eyes on one horizontal line, so aligned faces
are upright with level eyes.

:func:`align_folder` aligns a folder tree into another, with a progress bar and an
on-disk cache keyed by each source file (relative path, modification time, byte size) and
the output size: a rerun only processes new or changed files. Faces that MTCNN does not
find are reported (count and list, also written to ``not_found.txt``), never silently
dropped.
"""
from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
from PIL import Image

from .._progress import progress
from ..files import atomic_write_bytes, write_json
from ._base import IMAGE_EXTENSIONS, read_image

#: landmark positions as fractions of the crop side (x, y): eyes, nose, mouth corners.
#: Chosen so the whole face (brows to chin) fits with a margin, as in FER crops.
TEMPLATE = np.array([[0.345, 0.400], [0.655, 0.400], [0.500, 0.560], [0.375, 0.715], [0.625, 0.715]])
CACHE_FILE = ".omnifer_align.json"


def canonical_template(size: int = 224) -> np.ndarray:
    """(5, 2) target landmark coordinates in pixels for a ``size`` x ``size`` crop."""
    return TEMPLATE * size


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3) matrix ``M`` of the similarity transform minimising ``sum ||M [p;1] - q||^2``
    over point pairs (src (K, 2), dst (K, 2)); closed form of Umeyama (1991), reflection
    excluded."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two (K, 2) point arrays with K >= 2, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    ps, pd = src - mu_s, dst - mu_d
    var_s = (ps ** 2).sum() / len(src)
    if var_s <= 0:
        raise ValueError("source landmarks coincide; cannot fit a similarity transform")
    cov = pd.T @ ps / len(src)
    u, sing, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    scale = (sing * d).sum() / var_s
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (K, 2) points with a (2, 3) affine matrix."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def warp(img: Image.Image, matrix: np.ndarray, size: int) -> Image.Image:
    """The ``size`` x ``size`` crop whose pixel (x, y) shows ``img`` at ``M^-1 (x, y)``."""
    full = np.vstack([matrix, [0, 0, 1]])
    inv = np.linalg.inv(full)
    # PIL samples pixel centres at half-integer positions in both images, so the same
    # matrix applies unchanged.
    coeffs = tuple(inv[:2].reshape(-1))
    return img.transform((size, size), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)


@dataclass
class Detection:
    """One detected face: box (x1, y1, x2, y2), MTCNN probability, landmarks (5, 2)."""

    box: np.ndarray
    prob: float
    landmarks: np.ndarray


class FaceAligner:
    """MTCNN + similarity alignment. The detector is built on first use.

    ``select``: which face of an image with several: ``"largest"`` (default; FER datasets
    show one main face) or ``"probable"``."""

    def __init__(self, size: int = 224, device=None, min_face_size: int = 20,
                 thresholds=(0.6, 0.7, 0.7), select: str = "largest"):
        if select not in ("largest", "probable"):
            raise ValueError(f"select must be 'largest' or 'probable', got {select!r}")
        self.size = int(size)
        self.device = device
        self.min_face_size = min_face_size
        self.thresholds = list(thresholds)
        self.select = select
        self._mtcnn = None

    def _detector(self):
        if self._mtcnn is None:
            from facenet_pytorch import MTCNN

            from ..device import resolve_device

            self._mtcnn = MTCNN(keep_all=True, device=resolve_device(self.device),
                                min_face_size=self.min_face_size, thresholds=self.thresholds)
        return self._mtcnn

    def detect(self, img: Image.Image) -> List[Detection]:
        """All faces MTCNN finds in ``img`` (possibly none)."""
        boxes, probs, points = self._detector().detect(img.convert("RGB"), landmarks=True)
        if boxes is None:
            return []
        # facenet-pytorch may return object arrays; make them plain floats
        boxes = np.asarray(boxes).astype(float)
        probs = np.asarray(probs).astype(float).reshape(-1)
        points = np.asarray(points).astype(float).reshape(-1, 5, 2)
        return [Detection(b, float(p), pt) for b, p, pt in zip(boxes, probs, points)]

    def choose(self, faces: List[Detection]) -> Optional[Detection]:
        if not faces:
            return None
        if self.select == "probable":
            return max(faces, key=lambda f: f.prob)
        return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))

    def align(self, img: Image.Image) -> Tuple[Optional[Image.Image], Optional[Detection], Optional[np.ndarray]]:
        """(aligned crop or None when no face is found, the detection used, the (2, 3) matrix)."""
        face = self.choose(self.detect(img))
        if face is None:
            return None, None, None
        matrix = similarity_transform(face.landmarks, canonical_template(self.size))
        return warp(img.convert("RGB"), matrix, self.size), face, matrix


def align_image(img: Union[Image.Image, str, os.PathLike], size: int = 224,
                aligner: Optional[FaceAligner] = None) -> Optional[Image.Image]:
    """Aligned ``size`` x ``size`` crop of the most prominent face, or ``None`` if none found."""
    if not isinstance(img, Image.Image):
        img = read_image(img)
    aligner = aligner or FaceAligner(size)
    if aligner.size != size:
        raise ValueError(f"aligner was built for size {aligner.size}, asked for {size}")
    return aligner.align(img)[0]


@dataclass
class AlignReport:
    """Outcome of :func:`align_folder` (paths relative to the source folder)."""

    aligned: List[str] = field(default_factory=list)
    not_found: List[str] = field(default_factory=list)
    unreadable: List[str] = field(default_factory=list)
    from_cache: int = 0

    @property
    def total(self) -> int:
        return len(self.aligned) + len(self.not_found) + len(self.unreadable)

    def summary(self) -> str:
        return (f"{self.total} images: {len(self.aligned)} aligned ({self.from_cache} from cache), "
                f"{len(self.not_found)} without a detected face, {len(self.unreadable)} unreadable")


def _source_key(path: Path) -> Dict[str, int]:
    st = path.stat()
    return {"mtime_ns": st.st_mtime_ns, "bytes": st.st_size}


def align_folder(src: Union[str, os.PathLike], dst: Union[str, os.PathLike], size: int = 224,
                 device=None, aligner: Optional[FaceAligner] = None,
                 show_progress: Optional[bool] = None) -> AlignReport:
    """Align every image under ``src`` into the same relative path under ``dst``.

    Images without a detected face produce no output file; they are listed in the report
    and in ``dst/not_found.txt`` and a warning states their count. Unreadable images are
    listed likewise (``dst/unreadable.txt``). The cache ``dst/.omnifer_align.json`` skips
    files whose (path, mtime, byte size, output size) are unchanged and whose output still
    exists."""
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"align_folder: source {src} is not a folder of images")
    dst.mkdir(parents=True, exist_ok=True)
    cache_path = dst / CACHE_FILE
    cache: Dict[str, Dict] = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                   and dst not in p.parents)
    aligner = aligner or FaceAligner(size, device=device)
    if aligner.size != size:
        raise ValueError(f"align_folder: aligner crops to {aligner.size} px but size={size} was asked for")
    report = AlignReport()
    try:
        for path in progress(files, desc="MTCNN align", enable=show_progress):
            rel = path.relative_to(src).as_posix()
            key = {**_source_key(path), "size": size}
            out = dst / rel
            entry = cache.get(rel)
            if entry is not None and entry.get("key") == key and (entry["status"] != "aligned" or out.is_file()):
                getattr(report, entry["status"]).append(rel)
                report.from_cache += entry["status"] == "aligned"
                continue
            try:
                img = read_image(path)
            except ValueError:
                status = "unreadable"
            else:
                crop = aligner.align(img)[0]
                if crop is None:
                    status = "not_found"
                else:
                    buf = io.BytesIO()
                    fmt = "PNG" if out.suffix.lower() in (".png", ".gif", ".bmp", ".ppm", ".pgm") else None
                    crop.save(buf, format=fmt or Image.registered_extensions().get(out.suffix.lower(), "PNG"),
                              **({"quality": 95} if out.suffix.lower() in (".jpg", ".jpeg") else {}))
                    atomic_write_bytes(out, buf.getvalue())
                    status = "aligned"
            getattr(report, status).append(rel)
            cache[rel] = {"key": key, "status": status}
    finally:
        write_json(cache_path, cache, indent=0, sort_keys=True)
    listing = "".join(f"{rel}\n" for rel in report.not_found)
    atomic_write_bytes(dst / "not_found.txt", listing.encode())
    if report.unreadable:
        atomic_write_bytes(dst / "unreadable.txt", ("\n".join(report.unreadable) + "\n").encode())
    if report.not_found or report.unreadable:
        warnings.warn(f"align_folder({src}): {report.summary()}; lists in {dst}/not_found.txt"
                      + (" and unreadable.txt" if report.unreadable else ""), stacklevel=2)
    return report


def align_dataset(dataset, size: int, *, aligner: Optional[FaceAligner] = None, device=None,
                  show_progress: Optional[bool] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Every image of ``dataset`` aligned to a ``size`` x ``size`` crop (:class:`FaceAligner`), e.g. to
    give a cross-dataset target (CK+'s 640 x 490 frames, JAFFE's whole heads) the tight framing of the
    anchor's crops before testing.

    ``dataset``: a FER dataset whose items are ``(PIL image, label)`` (load it with
    ``transform=lambda im: im``). Returns ``images`` (N, size, size, 3) uint8 and ``found`` (N,) bool.
    An image in which MTCNN finds no face is kept, resized whole as it would be without alignment
    (``found`` False), never dropped: every test image still counts."""
    aligner = aligner or FaceAligner(size, device=device)
    if aligner.size != size:
        raise ValueError(f"align_dataset: aligner crops to {aligner.size} px but size={size} was asked for")
    images = np.zeros((len(dataset), size, size, 3), dtype=np.uint8)
    found = np.zeros(len(dataset), dtype=bool)
    for i in progress(range(len(dataset)), desc=f"MTCNN align {getattr(dataset, 'name', '')}".strip(),
                      enable=show_progress):
        img = dataset[i][0]
        if not isinstance(img, Image.Image):
            raise TypeError("align_dataset needs a dataset that yields PIL images (load it with "
                            f"transform=lambda im: im); got {type(img).__name__}")
        crop = aligner.align(img)[0]
        found[i] = crop is not None
        whole = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        images[i] = np.asarray(crop.convert("RGB") if crop is not None else whole)
    return images, found
