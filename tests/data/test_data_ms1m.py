"""MS1M insightface RecordIO: byte layout, split records, streaming, identities."""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from omnifer_lib.data import DatasetLayoutError, load
from omnifer_lib.data.ms1m import (MAGIC, encode_record, pack_payload, read_record, unpack_payload,
                                   write_insightface_rec)

MAGIC_BYTES = struct.pack("<I", MAGIC)


def jpeg(value: int, trailer: bytes = b"") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (value, value, value)).save(buf, format="JPEG", quality=95)
    return buf.getvalue() + trailer  # decoders ignore bytes after the JPEG end marker


def test_encode_record_byte_layout_whole_record():
    payload = pack_payload(3.0, b"abcde")  # 24 + 5 = 29 bytes -> 3 padding bytes
    rec = encode_record(payload)
    magic, lrec = struct.unpack("<II", rec[:8])
    assert magic == 0xCED7230A and lrec >> 29 == 0 and lrec & ((1 << 29) - 1) == 29
    assert rec[8:8 + 29] == payload and rec[37:] == b"\0\0\0" and len(rec) % 4 == 0
    flag, label, id1, id2, img = unpack_payload(payload)
    assert (flag, label, img) == (0, 3.0, b"abcde")


def test_split_record_continuation_flags_and_join():
    # magic at two 4-byte aligned positions of the payload -> a 3-part record (flags 1, 2, 3)
    body = b"A" * 8 + MAGIC_BYTES + b"B" * 4 + MAGIC_BYTES + b"tail!"
    payload = pack_payload([1.0, 2.0], body)  # flag=2 header (24) + 8 bytes of labels
    rec = encode_record(payload)
    flags, pos = [], 0
    while pos < len(rec):
        magic, lrec = struct.unpack("<II", rec[pos:pos + 8])
        assert magic == MAGIC
        n = lrec & ((1 << 29) - 1)
        flags.append(lrec >> 29)
        pos += 8 + n + (-n) % 4
    assert flags == [1, 2, 3]
    joined = read_record(io.BytesIO(rec), 0)
    assert joined == payload
    flag, labels, *_, img = unpack_payload(joined)
    assert flag == 2 and labels.tolist() == [1.0, 2.0] and img == body


def test_bad_magic_is_reported():
    with pytest.raises(ValueError, match="no RecordIO magic 0xCED7230A at byte 0"):
        read_record(io.BytesIO(b"\0" * 16), 0, "x.rec")


@pytest.fixture()
def ms1m_root(tmp_path):
    # identity 1's second image carries the magic word at an aligned position of its
    # payload, so the .rec holds a genuinely split record
    ids = [[jpeg(10), jpeg(20)], [jpeg(30)], [jpeg(40), None, jpeg(60)]]
    p = pack_payload(0.0, jpeg(50))
    pad = (-len(p)) % 4
    ids[2][1] = jpeg(50, b"\0" * pad + MAGIC_BYTES + b"xyz")
    counts = write_insightface_rec(tmp_path, ids, image_size=(16, 16))
    assert counts == {"images": 6, "identities": 3}
    return tmp_path


def test_ms1m_dataset_streams_images_and_identities(ms1m_root):
    raw = (ms1m_root / "train.rec").read_bytes()
    n_split = sum(1 for i in range(0, len(raw) - 8, 4)
                  if raw[i:i + 4] == MAGIC_BYTES and (struct.unpack("<I", raw[i + 4:i + 8])[0] >> 29) == 1)
    assert n_split == 1
    ds = load("ms1m", root=ms1m_root)
    assert len(ds) == 6 and (ds.labels == -1).all() and ds.property == (3, 16, 16)
    assert ds.subjects.tolist() == [0, 0, 1, 2, 2, 2]
    levels = [int(round(float(ds[i][0].mean()) * 255)) for i in range(6)]
    assert all(abs(a - b) <= 2 for a, b in zip(levels, [10, 20, 30, 40, 50, 60]))
    assert ds[4][1] == -1
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=0)
    assert next(iter(loader))[0].shape == (3, 3, 16, 16)


def test_ms1m_subjects_from_headers_without_identity_records(ms1m_root, tmp_path):
    # drop record 0 and the identity records: identities then come from the image headers
    lines = (ms1m_root / "train.idx").read_text().splitlines()
    kept = [ln for ln in lines if 1 <= int(ln.split()[0]) <= 6]
    (ms1m_root / "train.idx").write_text("\n".join(kept) + "\n")
    ds = load("ms1m", root=ms1m_root)
    assert ds.subjects.tolist() == [0, 0, 1, 2, 2, 2]
    assert ds.image_keys.tolist() == [1, 2, 3, 4, 5, 6]


def test_ms1m_errors(tmp_path, ms1m_root):
    other = tmp_path / "other"
    other.mkdir()
    (other / "README").write_text("not a RecordIO pack")
    with pytest.raises(DatasetLayoutError, match="(?s)has no train.rec.*property"):
        load("ms1m", root=other)
    (ms1m_root / "train.idx").write_text("0\t3\n")
    with pytest.raises(ValueError, match="no RecordIO magic"):
        load("ms1m", root=ms1m_root)


def test_ms1m_max_images_streams_a_prefix(ms1m_root):
    ds = load("ms1m", root=ms1m_root, max_images=2)
    assert len(ds) == 2 and np.array_equal(ds.subjects, [0, 0])
