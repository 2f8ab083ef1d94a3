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
from array import array
from pathlib import Path
from typing import BinaryIO, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from ._base import DatasetRecord, FERDataset, decode_failure, integer_code, layout_error, read_text, require_dir

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LEN_MASK = (1 << 29) - 1
_HEADER = struct.Struct("<IfQQ")
LAYOUT = """  <root>/train.rec  (insightface RecordIO)
  <root>/train.idx  (lines 'key<TAB>offset')
  <root>/property   ('num_identities,height,width'; optional)"""
HEADER_FORM = "flag 2 with labels (first identity key a, end key b): images 1..a-1, identities a..b-1"


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


Payload = Tuple[int, Union[float, np.ndarray], int, int, bytes]


def unpack_payload(payload: bytes, source: str = "record") -> Payload:
    """(flag, label, id, id2, image bytes); ``label`` is a float32 array when ``flag > 0``.
    ``ValueError`` starting with ``source`` for a payload shorter than its header says."""
    if len(payload) < _HEADER.size:
        raise ValueError(f"{source}: payload of {len(payload)} bytes is shorter than the 24-byte "
                         "'<IfQQ' header (flag, label, id, id2)")
    flag, label, id1, id2 = _HEADER.unpack_from(payload)
    rest = payload[_HEADER.size:]
    if flag > 0:
        if len(rest) < 4 * flag:
            raise ValueError(f"{source}: header announces {flag} float labels but only {len(rest)} bytes follow")
        labels = np.frombuffer(rest[:4 * flag], dtype="<f4").copy()
        return flag, labels, id1, id2, rest[4 * flag:]
    return flag, label, id1, id2, rest


def _index_lines(path: Path) -> Iterator[Tuple[int, int]]:
    """(key, offset) of each line of a ``.idx`` file; ``ValueError`` naming the file and line
    for a malformed line or bytes that are not text, or a file with no line at all."""
    lineno, found = 0, False
    try:
        with open(path, "r", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 2 or not (parts[0].isdigit() and parts[1].isdigit()):
                    raise ValueError(f"{path}:{lineno}: expected 'key<TAB>offset' (two integers), "
                                     f"got {line.strip()[:80]!r}")
                found = True
                yield int(parts[0]), int(parts[1])
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not text ({exc.reason}, near line {lineno + 1}); expected lines "
                         "'key<TAB>offset'") from None
    if not found:
        raise ValueError(f"{path}: no records; expected one line 'key<TAB>offset' per record of the .rec file")


def read_index(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """(keys, offsets) of a ``.idx`` file, sorted by key; ``ValueError`` naming the file for a
    malformed line, an empty file or a key listed twice."""
    keys, offsets = array("q"), array("q")  # 8 bytes an entry: MS1MV2's index has 5.8 million
    for key, offset in _index_lines(path):
        keys.append(key)
        offsets.append(offset)
    k, o = np.frombuffer(keys, dtype=np.int64), np.frombuffer(offsets, dtype=np.int64)
    order = np.argsort(k, kind="stable")
    k, o = k[order], o[order]
    dup = np.flatnonzero(np.diff(k) == 0)
    if dup.size:
        raise ValueError(f"{path}: key {k[dup[0]]} is listed more than once; expected one line per key")
    return k, o


def header_ranges(payload: bytes, source: str) -> Optional[Tuple[int, int]]:
    """The key ranges ``(a, b)`` announced by record 0's payload, or ``None`` when record 0 is an
    image record (flag 0 with image bytes); ``ValueError`` naming ``source`` when the header
    is neither."""
    flag, label, _, _, image = unpack_payload(payload, f"{source}: header record (key 0)")
    if flag == 0:
        if image:
            return None
        raise ValueError(f"{source}: header record (key 0) holds the single label {label!r} and no image; "
                         f"expected {HEADER_FORM}")
    a, b = (integer_code(v) for v in (label.tolist() + [None])[:2])
    if flag < 2 or a is None or b is None or not 1 < a <= b:
        raise ValueError(f"{source}: header record (key 0) holds the label(s) {label.tolist()}; expected "
                         f"{HEADER_FORM}, whole numbers with 1 < a <= b")
    return a, b


def read_property(path: Path) -> Optional[Tuple[int, int, int]]:
    """``(num_identities, height, width)`` from a ``property`` file, ``None`` if it is absent."""
    if not path.is_file():
        return None
    expected = "'num_identities,height,width', e.g. '85742,112,112'"
    text = read_text(path, expected)
    parts = text.strip().split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"{path}: expected {expected}, got {text[:40]!r}")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def locate(root, prefix: str = "train") -> Tuple[Path, Path, Path]:
    """(``.rec``, ``.idx``, ``property``) paths of an MS1M root; :class:`DatasetLayoutError`
    when the root, the ``.rec`` or the ``.idx`` is missing."""
    root = require_dir(root, "ms1m", LAYOUT)
    rec, idx = root / f"{prefix}.rec", root / f"{prefix}.idx"
    for p in (rec, idx):
        if not p.is_file():
            raise layout_error("ms1m", f"root {root} has no {p.name}", LAYOUT)
    return rec, idx, root / "property"


def _check_offset(idx: Path, key: int, offset: int, rec: Path, rec_size: int) -> None:
    if offset + 8 > rec_size:
        raise ValueError(f"{idx}: key {key} points at byte {offset}, past the end of {rec} ({rec_size} bytes); "
                         "expected offsets of records inside the .rec (is the .idx from another .rec?)")


def _check_property(prop: Path, identities: Optional[Tuple[int, int, int]], rec: Path,
                    ranges: Optional[Tuple[int, int]]) -> None:
    if identities is not None and ranges is not None and identities[0] != ranges[1] - ranges[0]:
        raise ValueError(f"{prop}: {identities[0]} identities, but the header record (key 0) of {rec} announces "
                         f"{ranges[1] - ranges[0]} identity records (keys {ranges[0]}..{ranges[1] - 1}); "
                         "expected the two to agree (is the property file from another pack?)")


def check_layout(root, prefix: str = "train") -> None:
    """Cheap check of an MS1M root: ``.rec`` and ``.idx`` exist, ``property`` parses, and the
    first ``.idx`` line points at a readable record (a valid header record if it is key 0).
    The rest of the index is not read (MS1MV2's holds 5.8 million lines)."""
    rec, idx, prop = locate(root, prefix)
    identities = read_property(prop)
    key, offset = next(_index_lines(idx))
    _check_offset(idx, key, offset, rec, rec.stat().st_size)
    with open(rec, "rb") as fh:
        payload = read_record(fh, offset, str(rec))
    if key == 0:
        _check_property(prop, identities, rec, header_ranges(payload, str(rec)))


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
    """Streamed insightface RecordIO (see module docstring); ``labels`` all -1.

    A header record that does not match the index (key ranges outside it, a property file
    with another identity count, offsets past the end of the ``.rec``) raises ``ValueError``
    at construction; a malformed identity or image record raises ``ValueError`` naming its
    key when it is read."""

    description = "MS-Celeb-1M (insightface MS1M-ArcFace, unlabeled celebrity faces)"

    def __init__(self, root, split: str = "train", transform: Optional[Callable] = None,
                 prefix: str = "train", max_images: Optional[int] = None):
        if split not in ("train", "all"):
            raise ValueError(f"ms1m: only split 'train' (the whole pool) exists, got {split!r}")
        if max_images is not None and (not isinstance(max_images, (int, np.integer)) or max_images < 0):
            raise ValueError(f"ms1m: max_images must be a whole number >= 0 or None, got {max_images!r}")
        self.rec_path, self.idx_path, prop = locate(root, prefix)
        self.property = read_property(prop)
        keys, offsets = read_index(self.idx_path)
        last = int(np.argmax(offsets))
        _check_offset(self.idx_path, int(keys[last]), int(offsets[last]), self.rec_path,
                      self.rec_path.stat().st_size)
        self._keys, self._offsets = keys, offsets
        self._fh: Optional[BinaryIO] = None
        self._fh_pid: Optional[int] = None
        self._id_range: Optional[Tuple[int, int]] = None
        ranges = header_ranges(self._read_key(0), str(self.rec_path)) if keys[0] == 0 else None
        if ranges is not None:
            a, b = ranges
            self._require_keys(1, a, "image records")
            self._require_keys(a, b, "identity records")
            _check_property(prop, self.property, self.rec_path, ranges)
            self.image_keys = np.arange(1, a, dtype=np.int64)
            self._id_range = ranges
        else:
            self.image_keys = keys.copy()
        if max_images is not None:
            self.image_keys = self.image_keys[:max_images]
        self._subjects: Optional[np.ndarray] = None
        super().__init__(np.full(len(self.image_keys), -1, dtype=np.int64), None, "ms1m", transform)

    def _require_keys(self, lo: int, hi: int, what: str) -> None:
        """``ValueError`` unless every key ``lo .. hi-1`` that record 0 announces is in the index."""
        left, right = np.searchsorted(self._keys, [lo, hi])
        if right - left == hi - lo:
            return
        present = self._keys[left:right]
        gaps = np.flatnonzero(present != np.arange(lo, lo + len(present)))
        first = lo + (int(gaps[0]) if gaps.size else len(present))
        raise ValueError(f"{self.rec_path}: the header record (key 0) announces {what} at keys {lo}..{hi - 1}, "
                         f"but {self.idx_path} has {right - left} of those {hi - lo} keys (first missing: {first}; "
                         f"its keys run {self._keys[0]}..{self._keys[-1]}); expected {HEADER_FORM}")

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
            raise ValueError(f"ms1m: key {key} is not in {self.idx_path}; expected every record key "
                             "that the header record (key 0) announces")
        return int(self._offsets[pos])

    def _read_key(self, key: int) -> bytes:
        return read_record(self._file(), self._offset(key), str(self.rec_path))

    def _record(self, key: int) -> Payload:
        return unpack_payload(self._read_key(key), f"{self.rec_path}: record key {key}")

    def _identity_range(self, key: int) -> Tuple[int, int]:
        """The ``[start, end)`` image keys of identity record ``key``, checked against the
        image keys ``1 .. a-1`` that record 0 announces."""
        flag, lab, *_ = self._record(key)
        a = self._id_range[0]
        s, e = (integer_code(v) for v in (np.atleast_1d(lab).tolist() + [None])[:2])
        if flag < 2 or s is None or e is None or not 1 <= s <= e <= a:
            shown = lab.tolist() if flag > 0 else lab
            raise ValueError(f"{self.rec_path}: identity record key {key} holds the label(s) {shown}; expected "
                             f"flag 2 with labels (start, end), whole image keys with 1 <= start <= end <= {a}")
        return s, e

    def _identity_of(self, key: int) -> int:
        """The identity an image record carries in its label (first float label if flag > 0)."""
        flag, lab, *_ = self._record(key)
        value = float(lab[0]) if flag > 0 else lab
        ident = integer_code(value)
        if ident is None or ident < 0:
            raise ValueError(f"{self.rec_path}: image record key {key} has the identity label {value}; "
                             "expected a whole number >= 0")
        return ident

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
                s, e = self._identity_range(key)
                out[max(s - first, 0):max(min(e - first, len(out)), 0)] = ident
            if (out >= 0).all():
                return out
        for i, key in enumerate(self.image_keys):
            out[i] = self._identity_of(int(key))
        return out

    def _load(self, index: int) -> Image.Image:
        key = int(self.image_keys[index])
        _, _, _, _, jpeg = self._record(key)
        try:
            with Image.open(io.BytesIO(jpeg)) as img:
                img.load()
                return img.convert("RGB")
        except Exception as exc:  # noqa: BLE001 - any decoder error means a broken record
            raise ValueError(f"ms1m: record key {key} in {self.rec_path} does not hold a decodable "
                             f"image ({decode_failure(exc)}); expected '<IfQQ' header + JPEG bytes") from None


#: This dataset's entry in :mod:`omnifer_lib.data.registry`.
RECORD = DatasetRecord("ms1m", "MS-Celeb-1M", MS1M, "train", ("all",), check_layout, size_keys=("n_pool",))
