"""MS-Celeb-1M as packed by insightface (MS1M-ArcFace / MS1MV2), read without mxnet.

Expected layout::

    <root>/train.rec     RecordIO records (below)
    <root>/train.idx     text, one "key<TAB>byte offset" line per record
    <root>/property      text "num_identities,height,width", e.g. "85742,112,112"

RecordIO byte format (all integers little-endian uint32)::

    record  = magic 0xCED7230A | lrec | data | zero padding to a multiple of 4 bytes
    lrec    = length (low 29 bits) | continuation flag cflag (high 3 bits)
    cflag   = 0 whole record; 1 / 2 / 3 first / middle / last part of a split record

A writer splits a payload wherever the magic word occurs at a 4-byte aligned position
inside it (and drops that occurrence); a reader joins the parts with the magic bytes
between them. A joined payload is::

    header  = struct "<IfQQ" (24 bytes): flag, label, id, id2
    [flag float32 labels when flag > 0]
    JPEG bytes

Record 0 is a header record with ``flag > 0`` whose labels ``(a, b)`` give the key
ranges: images are keys ``1 .. a-1``, identity records ``a .. b-1`` (each holding the
``[start, end)`` image-key range of one identity in its labels). Image records carry the
identity in ``label`` (or in their first float label when ``flag > 0``). Without such a
record 0, every key of ``train.idx`` is an image.

The dataset is streamed: only the index (keys and offsets) is held in memory; each access
seeks and decodes one JPEG. ``subjects`` (identity per image) is computed on first access
from the identity records (or, lacking those, by reading every image header). Expression
labels are unknown: ``labels`` is all ``-1``.
"""
from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import BinaryIO, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from ._base import DatasetLayoutError, FERDataset, require_dir

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LEN_MASK = (1 << 29) - 1
_HEADER = struct.Struct("<IfQQ")
LAYOUT = """  <root>/train.rec  (insightface RecordIO)
  <root>/train.idx  (lines 'key<TAB>offset')
  <root>/property   ('num_identities,height,width')"""


# ----------------------------------------------------------------------------- reading
def read_record(fh: BinaryIO, offset: int, source: str = "RecordIO file") -> bytes:
    """The payload of the record starting at byte ``offset`` (split records joined)."""
    fh.seek(offset)
    parts: List[bytes] = []
    while True:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError(f"{source}: truncated record at byte {fh.tell() - len(head)} "
                             f"(expected an 8-byte header: magic 0x{MAGIC:08X}, lrec)")
        magic, lrec = struct.unpack("<II", head)
        if magic != MAGIC:
            raise ValueError(f"{source}: no RecordIO magic 0x{MAGIC:08X} at byte {fh.tell() - 8} "
                             f"(found 0x{magic:08X}); the .idx offsets do not match the .rec file")
        cflag, length = lrec >> 29, lrec & _LEN_MASK
        data = fh.read(length)
        if len(data) < length:
            raise ValueError(f"{source}: record at byte {offset} is truncated ({len(data)} of {length} bytes)")
        fh.seek((-length) % 4, os.SEEK_CUR)
        expected = (0, 1) if not parts else (2, 3)
        if cflag not in expected:
            raise ValueError(f"{source}: record at byte {offset}: continuation flag {cflag} where "
                             f"{' or '.join(map(str, expected))} was expected")
        if parts:
            parts.append(_MAGIC_BYTES)
        parts.append(data)
        if cflag in (0, 3):
            return b"".join(parts)


def unpack_payload(payload: bytes) -> Tuple[int, Union[float, np.ndarray], int, int, bytes]:
    """(flag, label, id, id2, image bytes); ``label`` is a float32 array when ``flag > 0``."""
    if len(payload) < _HEADER.size:
        raise ValueError(f"record payload of {len(payload)} bytes is shorter than the 24-byte header")
    flag, label, id1, id2 = _HEADER.unpack_from(payload)
    rest = payload[_HEADER.size:]
    if flag > 0:
        if len(rest) < 4 * flag:
            raise ValueError(f"record header announces {flag} float labels but only {len(rest)} bytes follow")
        labels = np.frombuffer(rest[:4 * flag], dtype="<f4").copy()
        return flag, labels, id1, id2, rest[4 * flag:]
    return flag, label, id1, id2, rest


def read_index(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """(keys, offsets) of a ``.idx`` file, sorted by key."""
    keys: List[int] = []
    offsets: List[int] = []
    with open(path, "r") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not (parts[0].isdigit() and parts[1].isdigit()):
                raise ValueError(f"{path}:{lineno}: expected 'key<TAB>offset', got {line.strip()!r}")
            keys.append(int(parts[0]))
            offsets.append(int(parts[1]))
    k = np.asarray(keys, dtype=np.int64)
    o = np.asarray(offsets, dtype=np.int64)
    order = np.argsort(k, kind="stable")
    return k[order], o[order]


# ----------------------------------------------------------------------------- writing
def pack_payload(label: Union[float, Sequence[float]], image: bytes = b"", id1: int = 0, id2: int = 0) -> bytes:
    """An insightface record payload: ``<IfQQ`` header (+ float labels if a sequence) + bytes."""
    if np.ndim(label) == 0:
        return _HEADER.pack(0, float(label), id1, id2) + image
    arr = np.asarray(label, dtype="<f4")
    return _HEADER.pack(arr.size, 0.0, id1, id2) + arr.tobytes() + image


def encode_record(payload: bytes) -> bytes:
    """RecordIO bytes of one payload: split at every 4-byte aligned occurrence of the magic."""
    out = bytearray()
    start = 0
    for i in range(0, (len(payload) // 4) * 4, 4):
        if payload[i:i + 4] == _MAGIC_BYTES:
            out += _MAGIC_BYTES + struct.pack("<I", ((1 if start == 0 else 2) << 29) | (i - start))
            out += payload[start:i]
            start = i + 4
    rest = len(payload) - start
    out += _MAGIC_BYTES + struct.pack("<I", ((3 if start else 0) << 29) | rest)
    out += payload[start:]
    out += b"\0" * ((-rest) % 4)
    return bytes(out)


class RecordWriter:
    """Write ``<prefix>.rec`` and ``<prefix>.idx`` (keys in call order)."""

    def __init__(self, rec_path: Union[str, os.PathLike], idx_path: Union[str, os.PathLike]):
        self._rec = open(rec_path, "wb")
        self._idx = open(idx_path, "w")

    def write(self, key: int, payload: bytes) -> int:
        offset = self._rec.tell()
        self._rec.write(encode_record(payload))
        self._idx.write(f"{key}\t{offset}\n")
        return offset

    def close(self) -> None:
        self._rec.close()
        self._idx.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_insightface_rec(folder: Union[str, os.PathLike], identities: Iterable[Sequence[bytes]],
                          image_size: Tuple[int, int] = (112, 112)) -> Dict[str, int]:
    """Pack JPEG bytes grouped by identity into insightface's layout (record 0, image
    records, identity records, ``property``). Used by the tests; also handy to pack a face
    folder for :class:`MS1M`. Returns counts."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    groups = [list(g) for g in identities]
    n_images = sum(len(g) for g in groups)
    first_id_key = n_images + 1
    with RecordWriter(folder / "train.rec", folder / "train.idx") as w:
        w.write(0, pack_payload([first_id_key, first_id_key + len(groups)]))
        key = 1
        ranges = []
        for ident, group in enumerate(groups):
            start = key
            for jpeg in group:
                w.write(key, pack_payload(float(ident), jpeg, id1=key))
                key += 1
            ranges.append((start, key))
        for ident, (start, end) in enumerate(ranges):
            w.write(first_id_key + ident, pack_payload([start, end]))
    (folder / "property").write_text(f"{len(groups)},{image_size[0]},{image_size[1]}")
    return {"images": n_images, "identities": len(groups)}


# ----------------------------------------------------------------------------- dataset
class MS1M(FERDataset):
    """Streamed insightface RecordIO (see module docstring); ``labels`` all -1."""

    description = "MS-Celeb-1M (insightface MS1M-ArcFace, unlabeled celebrity faces)"

    def __init__(self, root, split: str = "train", transform: Optional[Callable] = None,
                 prefix: str = "train", max_images: Optional[int] = None):
        if split not in ("train", "all"):
            raise ValueError(f"ms1m: only split 'train' (the whole pool) exists, got {split!r}")
        root = require_dir(root, "ms1m", LAYOUT)
        self.rec_path = root / f"{prefix}.rec"
        idx_path = root / f"{prefix}.idx"
        for p in (self.rec_path, idx_path):
            if not p.is_file():
                raise DatasetLayoutError(f"ms1m: {p} not found; expected:\n{LAYOUT}")
        self.property = self._read_property(root / "property")
        keys, offsets = read_index(idx_path)
        self._keys, self._offsets = keys, offsets
        self._fh: Optional[BinaryIO] = None
        self._fh_pid: Optional[int] = None
        self._id_range: Optional[Tuple[int, int]] = None
        head = unpack_payload(self._read_key(0)) if 0 in set(keys[:1].tolist()) else None
        if head is not None and head[0] > 0:
            a, b = int(head[1][0]), int(head[1][1])
            self.image_keys = np.arange(1, a, dtype=np.int64)
            self._id_range = (a, b)
        else:
            self.image_keys = keys.copy()
        if max_images is not None:
            self.image_keys = self.image_keys[:max_images]
        self._subjects: Optional[np.ndarray] = None
        super().__init__(np.full(len(self.image_keys), -1, dtype=np.int64), None, "ms1m", transform)

    @staticmethod
    def _read_property(path: Path) -> Optional[Tuple[int, int, int]]:
        if not path.is_file():
            return None
        parts = path.read_text().strip().split(",")
        if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"{path}: expected 'num_identities,height,width', got {path.read_text()[:40]!r}")
        return tuple(int(p) for p in parts)  # type: ignore[return-value]

    # file handles cannot cross process boundaries (DataLoader workers): reopen per process
    def _file(self) -> BinaryIO:
        if self._fh is None or self._fh_pid != os.getpid():
            self._fh = open(self.rec_path, "rb")
            self._fh_pid = os.getpid()
        return self._fh

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_fh"] = None
        return state

    def _offset(self, key: int) -> int:
        pos = np.searchsorted(self._keys, key)
        if pos >= len(self._keys) or self._keys[pos] != key:
            raise KeyError(f"ms1m: key {key} is not in {self.rec_path.with_suffix('.idx')}")
        return int(self._offsets[pos])

    def _read_key(self, key: int) -> bytes:
        return read_record(self._file(), self._offset(key), str(self.rec_path))

    @property
    def subjects(self) -> np.ndarray:
        if self._subjects is None:
            self._subjects = self._read_subjects()
        return self._subjects

    @subjects.setter
    def subjects(self, value) -> None:
        self._subjects = value

    def _read_subjects(self) -> np.ndarray:
        out = np.full(len(self.image_keys), -1, dtype=np.int64)
        if self._id_range is not None and self._id_range[1] > self._id_range[0]:
            first = int(self.image_keys[0]) if len(self.image_keys) else 1
            for ident, key in enumerate(range(*self._id_range)):
                _, lab, *_ = unpack_payload(self._read_key(key))
                s, e = int(lab[0]) - first, int(lab[1]) - first
                out[max(s, 0):max(min(e, len(out)), 0)] = ident
            if (out >= 0).all():
                return out
        for i, key in enumerate(self.image_keys):
            flag, lab, *_ = unpack_payload(self._read_key(int(key)))
            out[i] = int(lab[0] if flag > 0 else lab)
        return out

    def _load(self, index: int) -> Image.Image:
        key = int(self.image_keys[index])
        _, _, _, _, jpeg = unpack_payload(self._read_key(key))
        try:
            with Image.open(io.BytesIO(jpeg)) as img:
                img.load()
                return img.convert("RGB")
        except Exception as exc:  # noqa: BLE001 - any decoder error means a broken record
            raise ValueError(f"ms1m: record key {key} in {self.rec_path} does not hold a decodable "
                             f"image ({exc}); expected '<IfQQ' header + JPEG bytes") from None
