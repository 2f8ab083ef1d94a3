"""The on-disk selection manifest: per-sample scores of a pool, written in chunks, per shard.

A manifest stores, for every pool sample, what any selection rule needs — the cosine
similarity to all K class centroids and the K softmax probabilities — plus columns derived
from them. It does *not* depend on the margin δ or on the rule: changing δ, the rule or the
per-class cap is a re-threshold of the manifest (:func:`omnifer_lib.select.reselect`), never
a new pass over the images. A manifest is tied to one primitive learner, one anchor (hence
one set of centroids) and one pool; that identity is hashed into a tag and a resume with
another identity is refused.

Layout::

    <manifest_dir>/
      manifest.json                 written by merge_manifests once every shard is complete
      centroids.npy                 (K, D) float64 class centroids (Eq. 3)
      shard-00000-of-00002/         one folder per shard (torchrun rank) of a contiguous index range
        meta.json                   identity, tag, index range, chunk size, anchor_counts
        centroids.npy
        state.json                  ids of completed chunks (rewritten atomically after each chunk)
        chunk-000000.npz            one file per chunk of ``chunk_size`` consecutive samples
        ...
      selections/<rule>-<hash>.npz  selections (VAS) made from this manifest, with a .json beside

Chunk files are ``numpy.savez`` archives, written to a temporary name and renamed, with the
columns of :data:`CHUNK_COLUMNS`. ``anchor_counts`` (in meta.json and manifest.json) is the
labelled anchor's samples per class, counted with the centroids — the class prior of the
``distribution_alignment`` rule; manifests written before it was stored lack it (``null``).
"""
from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .. import files
from ..files import atomic_write_bytes
from ..names import class_names
from .rules import cosine_similarity, softmax_probabilities, top_two

FORMAT = "omnifer-selection-manifest"
VERSION = 1
MANIFEST_FILE = "manifest.json"
CENTROIDS_FILE = "centroids.npy"
META_FILE = "meta.json"
STATE_FILE = "state.json"

#: Columns of a chunk file, with their meaning. ``K`` = number of classes.
CHUNK_COLUMNS: Dict[str, str] = {
    "pool_index": "(n,) int64 index of the sample in the pool dataset",
    "cosine": "(n, K) float32 cosine similarity to each class centroid (Eq. 4)",
    "softmax": "(n, K) float32 softmax probability of each class (Eq. 2)",
    "nearest": "(n,) int64 class of the most similar centroid; -1 when the top two tie",
    "similarity": "(n,) float32 cosine similarity to the most similar centroid",
    "margin": "(n,) float64 best minus second-best cosine similarity (compared with δ, Eq. 5)",
    "softmax_label": "(n,) int64 arg-max class of the softmax; -1 when the top two tie",
    "softmax_confidence": "(n,) float32 highest softmax probability",
    "softmax_margin": "(n,) float64 highest minus second-highest softmax probability",
}
_LABEL_COLUMNS = ("nearest", "softmax_label")


class ManifestError(ValueError):
    """A manifest folder is incomplete, inconsistent, or belongs to another identity."""


def score_batch(features: Any, logits: Any, centroids: np.ndarray) -> Dict[str, np.ndarray]:
    """All per-sample manifest columns (except ``pool_index``) for a batch.

    ``features`` (B, D), ``logits`` (B, K), ``centroids`` (K, D). Row-independent: scoring rows
    in any grouping gives identical values (see :mod:`omnifer_lib.select.rules`).
    """
    cos = cosine_similarity(features, centroids)
    probs = softmax_probabilities(logits)
    if probs.shape[1] != cos.shape[1]:
        raise ValueError(f"the model gives {probs.shape[1]} logits per sample but there are "
                         f"{cos.shape[1]} centroids; both must equal num_classes")
    nearest, best, margin = top_two(cos)
    s_label, s_best, s_margin = top_two(probs)
    return {"cosine": cos, "softmax": probs, "nearest": nearest, "similarity": best,
            "margin": margin, "softmax_label": s_label, "softmax_confidence": s_best,
            "softmax_margin": s_margin}


def write_chunk(path: Path, columns: Mapping[str, np.ndarray]) -> None:
    """Write one chunk atomically (temporary file, fsync, rename)."""
    missing = set(CHUNK_COLUMNS) - set(columns)
    if missing:
        raise ValueError(f"chunk is missing columns {sorted(missing)}")
    stored = {k: (np.asarray(v).astype(np.int16) if k in _LABEL_COLUMNS else np.asarray(v))
              for k, v in columns.items() if k in CHUNK_COLUMNS}
    buf = io.BytesIO()
    np.savez(buf, **stored)
    atomic_write_bytes(path, buf.getvalue())


def read_chunk(path: Path, columns: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
    """Read the named columns (all by default) of one chunk file; label columns as int64."""
    names = list(columns) if columns is not None else list(CHUNK_COLUMNS)
    unknown = [c for c in names if c not in CHUNK_COLUMNS]
    if unknown:
        raise ValueError(f"unknown manifest columns {unknown}; valid: {list(CHUNK_COLUMNS)}")
    with np.load(path) as data:
        return {c: (data[c].astype(np.int64) if c in _LABEL_COLUMNS else data[c]) for c in names}


def write_json(path: Path, obj: Any) -> None:
    """A manifest's JSON files: :func:`omnifer_lib.files.write_json`, sorted keys, indent 2."""
    files.write_json(path, obj, indent=2, sort_keys=True, newline=True, default=str)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def write_npy(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array))
    atomic_write_bytes(path, buf.getvalue())


def shard_dirname(rank: int, world_size: int) -> str:
    return f"shard-{rank:05d}-of-{world_size:05d}"


def chunk_filename(chunk_id: int) -> str:
    return f"chunk-{chunk_id:06d}.npz"


def shard_range(n: int, rank: int, world_size: int) -> Tuple[int, int]:
    """Contiguous index range ``[start, stop)`` of shard ``rank`` of ``world_size`` over ``n`` samples."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"shard must be (rank, world_size) with 0 <= rank < world_size, "
                         f"got ({rank}, {world_size})")
    return n * rank // world_size, n * (rank + 1) // world_size


def chunk_ranges(start: int, stop: int, chunk_size: int) -> List[Tuple[int, int]]:
    """The chunks ``[(a, b), ...]`` of ``chunk_size`` consecutive indices covering ``[start, stop)``."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return [(a, min(a + chunk_size, stop)) for a in range(start, stop, chunk_size)]


def completed_chunks(shard_dir: Path) -> List[int]:
    """Ids of chunks recorded as complete in the shard's state file whose file exists."""
    state_file = shard_dir / STATE_FILE
    if not state_file.is_file():
        return []
    done = read_json(state_file).get("completed", [])
    return sorted(c for c in done if (shard_dir / chunk_filename(c)).is_file())


def shard_is_complete(shard_dir: Path) -> bool:
    meta_file = shard_dir / META_FILE
    if not meta_file.is_file():
        return False
    meta = read_json(meta_file)
    return len(completed_chunks(shard_dir)) == meta["n_chunks"]


_SHARD_RE = re.compile(r"^shard-(\d{5})-of-(\d{5})$")


def merge_manifests(manifest_dir: Union[str, os.PathLike], world_size: Optional[int] = None,
                    centroid_tolerance: float = 1e-5) -> "Manifest":
    """Check that every shard of a sharded selection is complete and consistent, and write the
    top-level ``manifest.json`` that lists them in pool order (no chunk data is copied).

    Call it once, after all ranks finished (e.g. on rank 0 after ``torch.distributed.barrier()``).
    ``world_size`` picks the shard set when folders of several world sizes exist. Shards must
    share the identity tag and have centroids equal within ``centroid_tolerance`` (absolute;
    ranks that computed centroids on different GPUs may differ in the last bits — pass the
    same ``centroids=`` to every rank to avoid that). Idempotent. Returns the opened manifest.
    """
    root = Path(manifest_dir)
    found: Dict[int, Dict[int, Path]] = {}
    for entry in sorted(root.glob("shard-*-of-*")):
        m = _SHARD_RE.match(entry.name)
        if m and entry.is_dir():
            found.setdefault(int(m.group(2)), {})[int(m.group(1))] = entry
    if not found:
        raise ManifestError(f"no shard folders (shard-RRRRR-of-WWWWW) in {root}; run select_auxiliary first")
    if world_size is None:
        if len(found) > 1:
            raise ManifestError(f"{root} holds shards of several world sizes {sorted(found)}; "
                                "pass world_size=")
        world_size = next(iter(found))
    shards = found.get(world_size, {})
    missing = [r for r in range(world_size) if r not in shards]
    if missing:
        raise ManifestError(f"shards {missing} of {world_size} are missing in {root}")
    metas = []
    for rank in range(world_size):
        d = shards[rank]
        if not shard_is_complete(d):
            raise ManifestError(f"shard {d.name} is not complete "
                                f"({len(completed_chunks(d))} chunks done); resume it first")
        metas.append(read_json(d / META_FILE))
    run_tags = {m["run_tag"] for m in metas}
    if len(run_tags) != 1:
        raise ManifestError(f"shards in {root} come from different models, anchors or pools "
                            f"(tags {sorted(run_tags)}); they cannot be merged")
    stops = [metas[0]["range"][0]] + [m["range"][1] for m in metas]
    for m, prev_stop in zip(metas, stops[:-1]):
        if m["range"][0] != prev_stop:
            raise ManifestError(f"shard ranges do not tile the pool: {[m['range'] for m in metas]}")
    # The anchor's samples per class: shards that stored them must agree; a shard resumed from an
    # older run may lack them (they belong to the anchor, which the centroid check covers).
    stored_counts = {json.dumps(m["anchor_counts"]) for m in metas if m.get("anchor_counts") is not None}
    if len(stored_counts) > 1:
        raise ManifestError(f"shards in {root} store different anchor class counts {sorted(stored_counts)}; "
                            "compute the centroids once and pass centroids= and anchor_counts= to every rank")
    anchor_counts = json.loads(next(iter(stored_counts))) if stored_counts else None
    centroids = np.load(shards[0] / CENTROIDS_FILE)
    worst = 0.0
    for rank in range(1, world_size):
        other = np.load(shards[rank] / CENTROIDS_FILE)
        worst = max(worst, float(np.abs(other - centroids).max()))
    if worst > centroid_tolerance:
        raise ManifestError(f"shards used different centroids (max difference {worst:.3g} > "
                            f"{centroid_tolerance}); compute centroids once and pass centroids= to every rank")
    first = metas[0]
    manifest = {
        "format": FORMAT, "version": VERSION, "run_tag": first["run_tag"],
        "n_pool": first["n_pool"], "num_classes": first["num_classes"],
        "feature_dim": first["feature_dim"], "label_names": first["label_names"],
        "anchor_counts": anchor_counts,
        "identity": {k: v for k, v in first["identity"].items() if k != "rank"},
        "world_size": world_size, "centroid_max_difference": worst,
        "shards": [{"dir": shards[r].name, "range": metas[r]["range"], "n_chunks": metas[r]["n_chunks"]}
                   for r in range(world_size)],
        "columns": CHUNK_COLUMNS,
    }
    if stops[0] != 0 or stops[-1] != first["n_pool"]:
        raise ManifestError(f"shards cover [{stops[0]}, {stops[-1]}) but the pool has {first['n_pool']} samples")
    write_npy(root / CENTROIDS_FILE, centroids)
    write_json(root / MANIFEST_FILE, manifest)
    return Manifest(root)


class Manifest:
    """A merged, complete manifest opened for reading.

    Attributes: ``path``, ``meta`` (manifest.json), ``n_pool``, ``num_classes``,
    ``label_names``, ``centroids`` ((K, D) float64), ``anchor_counts`` ((K,) int64 labelled
    anchor samples per class, ``None`` in a manifest that stores none). Reading streams chunk files, so
    :meth:`iter_chunks` needs memory of one chunk; :meth:`columns` concatenates the requested
    columns over the pool (pick small columns for big pools).
    """

    def __init__(self, path: Union[str, os.PathLike]):
        self.path = Path(path)
        mf = self.path / MANIFEST_FILE
        if not mf.is_file():
            hint = ""
            if any(self.path.glob("shard-*-of-*")):
                hint = " (it has shard folders: call merge_manifests on it once every shard is complete)"
            raise ManifestError(f"{self.path} is not a merged selection manifest: no {MANIFEST_FILE}{hint}")
        self.meta: Dict[str, Any] = read_json(mf)
        if self.meta.get("format") != FORMAT:
            raise ManifestError(f"{mf} is not an omnifer selection manifest")
        if self.meta.get("version") != VERSION:
            raise ManifestError(f"{mf} has manifest version {self.meta.get('version')}, "
                                f"this omnifer reads version {VERSION}; recompute the selection")
        self.n_pool: int = int(self.meta["n_pool"])
        self.num_classes: int = int(self.meta["num_classes"])
        self.label_names: List[str] = list(self.meta["label_names"])
        counts = self.meta.get("anchor_counts")
        self.anchor_counts: Optional[np.ndarray] = (None if counts is None
                                                    else np.asarray(counts, dtype=np.int64))
        self._centroids: Optional[np.ndarray] = None

    @property
    def centroids(self) -> np.ndarray:
        if self._centroids is None:
            self._centroids = np.load(self.path / CENTROIDS_FILE)
        return self._centroids

    @property
    def tag(self) -> str:
        return str(self.meta["run_tag"])

    def chunk_paths(self) -> Iterator[Path]:
        """Chunk files in pool order."""
        for shard in self.meta["shards"]:
            for c in range(shard["n_chunks"]):
                yield self.path / shard["dir"] / chunk_filename(c)

    def iter_chunks(self, columns: Optional[Sequence[str]] = None) -> Iterator[Dict[str, np.ndarray]]:
        """Chunks in pool order, each a dict of the requested columns (all by default)."""
        for path in self.chunk_paths():
            yield read_chunk(path, columns)

    def columns(self, names: Sequence[str]) -> Dict[str, np.ndarray]:
        """The named columns over the whole pool, concatenated (memory: N x their size)."""
        parts: Dict[str, List[np.ndarray]] = {n: [] for n in names}
        for chunk in self.iter_chunks(names):
            for n in names:
                parts[n].append(chunk[n])
        return {n: np.concatenate(parts[n]) for n in names}

    def __repr__(self) -> str:
        return f"Manifest({str(self.path)!r}, n_pool={self.n_pool}, num_classes={self.num_classes})"


class ScoreTable:
    """In-memory counterpart of :class:`Manifest` (same ``columns``/``iter_chunks`` interface),
    built from features and logits that are already in memory — for small pools, tests and
    analysis. ``pool_index`` defaults to ``0..N-1``; ``anchor_counts`` (K,), the labelled
    anchor's samples per class, is what the ``distribution_alignment`` rule needs."""

    def __init__(self, columns: Mapping[str, np.ndarray], label_names: Sequence[str],
                 centroids: Optional[np.ndarray] = None, anchor_counts: Optional[Sequence[int]] = None):
        missing = set(CHUNK_COLUMNS) - set(columns)
        if missing:
            raise ValueError(f"ScoreTable needs columns {sorted(missing)}")
        self._columns = dict(columns)
        self.n_pool = int(self._columns["pool_index"].shape[0])
        self.num_classes = int(self._columns["cosine"].shape[1])
        self.label_names = list(label_names)
        self.centroids = centroids
        self.anchor_counts = None if anchor_counts is None else np.asarray(anchor_counts, dtype=np.int64)

    @classmethod
    def from_arrays(cls, features: Any, logits: Any, centroids: np.ndarray,
                    label_names: Optional[Sequence[str]] = None,
                    pool_index: Optional[np.ndarray] = None,
                    anchor_counts: Optional[Sequence[int]] = None) -> "ScoreTable":
        """Score ``features`` (N, D) and ``logits`` (N, K) against ``centroids`` (K, D);
        ``anchor_counts`` (K,): the anchor's samples per class (optional)."""
        cols = score_batch(features, logits, centroids)
        n = cols["cosine"].shape[0]
        cols["pool_index"] = (np.arange(n, dtype=np.int64) if pool_index is None
                              else np.asarray(pool_index, dtype=np.int64))
        k = cols["cosine"].shape[1]
        return cls(cols, label_names or list(class_names(k)), np.asarray(centroids, dtype=np.float64),
                   anchor_counts)

    def iter_chunks(self, columns: Optional[Sequence[str]] = None) -> Iterator[Dict[str, np.ndarray]]:
        yield self.columns(columns or list(CHUNK_COLUMNS))

    def columns(self, names: Sequence[str]) -> Dict[str, np.ndarray]:
        return {n: self._columns[n] for n in names}


Source = Union[Manifest, ScoreTable, str, os.PathLike]


def open_manifest(source: Source) -> Union[Manifest, ScoreTable]:
    """A :class:`Manifest` for a folder path; a :class:`Manifest` or :class:`ScoreTable` as is."""
    if isinstance(source, (Manifest, ScoreTable)):
        return source
    return Manifest(source)


def read_manifest(source: Source, *, scores: bool = True, selection: Any = None):
    """The manifest as a pandas DataFrame, one row per pool sample in pool order.

    Columns: ``pool_index``, ``nearest``, ``similarity``, ``margin``, ``softmax_label``,
    ``softmax_confidence``, ``softmax_margin`` and, with ``scores=True``, ``cos_<class>`` and
    ``prob_<class>`` for every class. With ``selection`` (a
    :class:`~omnifer_lib.select.PoolSelection` made from this manifest) a ``pseudo_label``
    column (-1 = not selected) is added. Memory: the whole table (about 80 bytes per sample
    with scores); for big pools use :meth:`Manifest.iter_chunks` or :meth:`Manifest.columns`.
    """
    import pandas as pd

    table = open_manifest(source)
    names = [c for c in CHUNK_COLUMNS if c not in ("cosine", "softmax")]
    if scores:
        names += ["cosine", "softmax"]
    cols = table.columns(names)
    frame: Dict[str, Any] = {n: cols[n] for n in names if n not in ("cosine", "softmax")}
    if scores:
        for k, name in enumerate(table.label_names):
            frame[f"cos_{name}"] = cols["cosine"][:, k]
        for k, name in enumerate(table.label_names):
            frame[f"prob_{name}"] = cols["softmax"][:, k]
    df = pd.DataFrame(frame)
    if selection is not None:
        labels = np.full(len(df), -1, dtype=np.int64)
        pos = np.searchsorted(df["pool_index"].to_numpy(), selection.pool_index)
        labels[pos] = selection.pseudo_labels
        df["pseudo_label"] = labels
    return df
