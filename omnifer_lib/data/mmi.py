"""MMI Facial Expression Database: onset-apex-offset sequences recorded in a lab.

MMI is distributed per *session* through its web interface; a download unpacks to::

    <root>/Sessions/<session id>/session.xml      session metadata
    <root>/Sessions/<session id>/S001-001.avi     the recording (onset -> apex -> offset)

This loader expects the frames extracted as images beside the metadata (the videos need
a decoder that is not a dependency of omnifer)::

    <root>/Sessions/<session id>/session.xml
    <root>/Sessions/<session id>/*.jpg|*.png      frames in temporal order (sorted by name)

e.g. ``ffmpeg -i Sessions/1/S001-001.avi Sessions/1/frame_%04d.png``. ``root`` may also be
the ``Sessions`` folder itself.

``session.xml`` is read leniently, since copies differ: the emotion is the ``Value`` of
an element whose ``Name`` attribute is ``Emotion`` (e.g. ``<Metatag Name="Emotion"
Value="4"/>``), or an ``emotion``/``Emotion`` attribute or element; codes 1..6 = anger,
disgust, fear, happy, sadness, surprise. The subject is an element ``<subject id=..>``
or a ``subject``/``Subject`` attribute or metatag, else the ``S###`` prefix of the media file
name. Sessions without an emotion code are not basic-expression labeled and are skipped
(counted in ``notes``; the paper uses the 213 labeled of 326 sequences).

Protocol: the apex of an MMI sequence lies in its middle, so the ``apex_frames`` (3)
middle frames carry the label and, with ``neutral_first=True``, the first frame is a
neutral sample. ``split`` is ``"all"`` (MMI is a cross-dataset test set in the paper).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np

from ._base import DatasetRecord, ImageFileDataset, integer_code, label_index, layout_error, list_images, require_dir

LAYOUT = """  <root>/Sessions/<id>/session.xml  (Metatag Name="Emotion" Value="1..6": anger, disgust,
                                     fear, happy, sadness, surprise)
  <root>/Sessions/<id>/*.png|*.jpg   frames extracted from the session video, in order
                                     (e.g. ffmpeg -i S001-001.avi frame_%04d.png)"""
CODES = {1: "anger", 2: "disgust", 3: "fear", 4: "happy", 5: "sad", 6: "surprise"}
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mov", ".mpg", ".wmv")


def parse_session_xml(path: Path) -> Tuple[Optional[int], Optional[str]]:
    """(emotion code or None, subject or None) from a session.xml; ``ValueError`` naming the
    file for malformed XML or an emotion code outside 1..6."""
    try:
        tree = ET.parse(path)
    except ET.ParseError as exc:
        raise ValueError(f"mmi: {path} is not valid XML ({exc}); expected MMI session metadata") from None
    emotion, subject, media = None, None, None
    for el in tree.iter():
        attrs = {k.lower(): v for k, v in el.attrib.items()}
        tag = el.tag.lower()
        name = attrs.get("name", "").lower()
        if name == "emotion" and "value" in attrs:
            emotion = attrs["value"]
        elif tag == "emotion":
            emotion = attrs.get("value", (el.text or "").strip()) or emotion
        elif "emotion" in attrs:
            emotion = attrs["emotion"]
        if name == "subject" and "value" in attrs:
            subject = attrs["value"]
        elif tag == "subject" and "id" in attrs:
            subject = attrs["id"]
        elif "subject" in attrs:
            subject = attrs["subject"]
        for key in ("mediafile", "filename", "file"):
            if key in attrs and attrs[key].lower().endswith(VIDEO_EXTENSIONS):
                media = attrs[key]
    if subject is None and media is not None:
        m = re.match(r"(S\d+)", Path(media).name)
        subject = m.group(1) if m else None
    if emotion is None or str(emotion).strip() == "":
        return None, subject
    code = integer_code(str(emotion).strip())
    if code is None:
        raise ValueError(f"mmi: {path}: emotion {emotion!r} is not a whole number; expected a code 1..6 "
                         "(anger, disgust, fear, happy, sadness, surprise)")
    if code not in CODES:
        raise ValueError(f"mmi: {path}: emotion code {code} outside MMI basic range 1..6")
    return code, subject


def sessions(root) -> Tuple[Path, Path]:
    """(Sessions folder, its first ``<id>/session.xml``) under ``root`` (``root`` may be the
    Sessions folder itself); :class:`DatasetLayoutError` when there is none."""
    root = require_dir(root, "mmi", LAYOUT)
    sessions_dir = root / "Sessions" if (root / "Sessions").is_dir() else root
    first = next(sessions_dir.glob("*/session.xml"), None)
    if first is None:
        raise layout_error("mmi", f"root {root} has no Sessions/<id>/session.xml", LAYOUT)
    return sessions_dir, first


def session_frames(xml: Path) -> List[Path]:
    """The frame images beside a session.xml, sorted; :class:`DatasetLayoutError` (with the
    ffmpeg command when the session holds only its video) if there are none."""
    frames = list_images(xml.parent)
    if not frames:
        videos = [p.name for p in xml.parent.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS]
        hint = (f"; it holds the video {videos[0]}: extract its frames first, e.g. "
                f"ffmpeg -i {xml.parent / videos[0]} {xml.parent / 'frame_%04d.png'}") if videos else ""
        raise layout_error("mmi", f"session {xml.parent} has no frame images{hint}", LAYOUT)
    return frames


def check_layout(root) -> None:
    """Cheap check of an MMI root: a first session.xml parses and, if labeled, has frames
    beside it (the other sessions are not read)."""
    _, first = sessions(root)
    code, _ = parse_session_xml(first)
    if code is not None:
        session_frames(first)


class MMI(ImageFileDataset):
    """MMI labeled sessions with extracted frames (see module docstring)."""

    description = "MMI (lab, posed onset-apex-offset sequences)"

    def __init__(self, root, split: str = "all", transform: Optional[Callable] = None,
                 apex_frames: int = 3, neutral_first: bool = True, skip_corrupt: bool = False):
        if split != "all":
            raise ValueError(f"mmi: MMI has no {split!r} split; use split='all'")
        sessions_dir, _ = sessions(root)
        xmls = sorted(sessions_dir.glob("*/session.xml"))
        paths, labels, subjects, unlabeled = [], [], [], 0
        for x in xmls:
            code, subject = parse_session_xml(x)
            if code is None:
                unlabeled += 1
                continue
            frames = session_frames(x)
            subject = subject or x.parent.name
            mid = len(frames) // 2
            lo = max(0, mid - apex_frames // 2)
            apex = list(range(lo, min(len(frames), lo + apex_frames)))
            if neutral_first and len(frames) > 1:
                paths.append(frames[0])
                labels.append(label_index("neutral"))
                subjects.append(subject)
                apex = [i for i in apex if i != 0]
            for i in apex:
                paths.append(frames[i])
                labels.append(label_index(CODES[code]))
                subjects.append(subject)
        if not paths:
            raise layout_error("mmi", f"none of the {len(xmls)} sessions under {sessions_dir} carries an "
                                      "emotion code", LAYOUT)
        super().__init__(paths, labels, np.array(subjects), "mmi", transform,
                         expected="an MMI frame image", skip_corrupt=skip_corrupt)
        self.notes.append(f"{len(xmls) - unlabeled} labeled sessions used, {unlabeled} without an "
                          "emotion code skipped")


#: This dataset's entry in :mod:`omnifer_lib.data.registry`.
RECORD = DatasetRecord("mmi", "MMI", MMI, "all", ("all",), check_layout, size_keys=("n_cross_test",))
