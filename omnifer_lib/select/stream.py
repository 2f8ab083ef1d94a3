"""Streaming auxiliary-sample selection over pools of any size (§3.3).

:func:`select_auxiliary` runs the primitive learner over the anchor (class centroids, Eq. 3)
and over the unlabeled pool, scores each pool batch against the centroids as soon as it
is computed (Eq. 2 and 4), and writes the scores chunk by chunk into a manifest
(:mod:`omnifer_lib.select.manifest`). Features are never accumulated: memory is that of
one batch plus one chunk of scores (``chunk_size x 2K`` floats), whatever the pool size.
A killed run resumes from its last complete chunk; the result does not depend on whether
or where it was interrupted.

Running under ``torchrun`` (one process per GPU)::

    rank, world = dist.get_rank(), dist.get_world_size()
    centroids = compute_centroids(model, anchor, batch_size=256, device=dev)  # or once + broadcast
    select_auxiliary(model, None, pool, delta, manifest_dir=d, centroids=centroids,
                     shard=(rank, world), device=dev)
    dist.barrier()
    if rank == 0:
        merge_manifests(d)
        vas = reselect(d, rule="margin", delta=delta)

Each rank scores a contiguous index range into its own shard folder; the merge checks that
the shards tile the pool and share model, anchor and centroids.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .._progress import progress as progress_bar
from .._progress import report
from ..device import resolve_device
from ..files import lock_or_fail
from ..names import class_names
from . import manifest as mf
from .reselect import PoolSelection, decide, reselect, save_selection, selection_path
from .rules import CentroidAccumulator

ChunkCallback = Callable[[int, int, int], None]


# ----------------------------------------------------------------------------- batches
class ChunkBatches:
    """Batch sampler over consecutive indices that never lets a batch cross a chunk boundary.

    ``chunks`` is a list of ``(chunk_id, start, stop)``; batches hold ``batch_size`` indices
    (fewer at the end of a chunk). Lazy: memory is one batch, however large the pool.
    """

    def __init__(self, chunks: Sequence[Tuple[int, int, int]], batch_size: int):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.chunks = list(chunks)
        self.batch_size = int(batch_size)

    def plan(self) -> Iterator[Tuple[int, int, int]]:
        """``(chunk_id, start, stop)`` of each batch, in order."""
        for cid, a, b in self.chunks:
            for s in range(a, b, self.batch_size):
                yield cid, s, min(s + self.batch_size, b)

    def __iter__(self) -> Iterator[List[int]]:
        for _, s, e in self.plan():
            yield list(range(s, e))

    def __len__(self) -> int:
        return sum(math.ceil((b - a) / self.batch_size) for _, a, b in self.chunks)


def _forward(model: torch.nn.Module, images: torch.Tensor, device: torch.device
             ) -> Tuple[np.ndarray, np.ndarray]:
    """Features (B, D) and logits (B, K) of one batch, as float32 numpy arrays.

    The model runs in eval mode (no dropout, frozen BatchNorm) under ``torch.inference_mode``
    for this batch only: its previous mode is restored before returning, so code that runs
    between batches (the caller of a generator) sees neither eval mode nor inference mode.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            feats = model.features(images.to(device, non_blocking=True))
            logits = model.classify(feats)
            return feats.float().cpu().numpy(), logits.float().cpu().numpy()
    finally:
        model.train(was_training)


def iter_features(model: torch.nn.Module, dataset: Dataset, *, batch_size: int = 256,
                  device: Any = None, start: int = 0, stop: Optional[int] = None,
                  num_workers: int = 0, progress: Optional[bool] = None, desc: str = "features"
                  ) -> Iterator[Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Features and logits of ``dataset[start:stop]`` in batches of consecutive indices.

    Yields ``(index (B,) int64, features (B, D) float32, logits (B, K) float32, labels (B,) int64)``.
    Each batch runs in eval mode under ``torch.inference_mode`` (see :func:`_forward`); the
    model is moved to ``device``.
    """
    dev = resolve_device(device)
    stop = len(dataset) if stop is None else stop
    sampler = ChunkBatches([(0, start, stop)], batch_size)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                        pin_memory=dev.type == "cuda")
    bar = progress_bar(total=stop - start, desc=desc, unit="img", enable=progress)
    model.to(dev)
    try:
        for (_, a, b), batch in zip(sampler.plan(), loader):
            images, labels = batch[0], batch[1]
            f, z = _forward(model, images, dev)
            bar.update(b - a)
            yield np.arange(a, b, dtype=np.int64), f, z, np.asarray(labels, dtype=np.int64).reshape(-1)
    finally:
        bar.close()


def resolve_num_classes(model: torch.nn.Module, num_classes: Optional[int]) -> int:
    if num_classes is not None:
        return int(num_classes)
    k = getattr(model, "num_classes", None)
    if k is None:
        raise ValueError("cannot tell the number of classes: pass num_classes= or give the model "
                         "a num_classes attribute (omnifer models have one)")
    return int(k)


def compute_anchor_statistics(model: torch.nn.Module, anchor: Dataset, num_classes: Optional[int] = None, *,
                              batch_size: int = 256, device: Any = None, num_workers: int = 0,
                              progress: Optional[bool] = None, label_names: Optional[Sequence[str]] = None
                              ) -> Tuple[np.ndarray, np.ndarray]:
    """One streamed pass over a labelled anchor dataset: the ``(K, D)`` float64 centroids (Eq. 3)
    and the ``(K,)`` int64 labelled samples per class (the class prior of the
    ``distribution_alignment`` rule). Labels ``-1`` are ignored; a class without anchor samples
    raises ``ValueError``."""
    k = resolve_num_classes(model, num_classes)
    acc = CentroidAccumulator(k)
    for _, f, _, y in iter_features(model, anchor, batch_size=batch_size, device=device,
                                    num_workers=num_workers, progress=progress,
                                    desc="select: anchor centroids"):
        acc.update(f, y)
    return acc.centroids(label_names or list(class_names(k))), acc.counts.copy()


def compute_centroids(model: torch.nn.Module, anchor: Dataset, num_classes: Optional[int] = None, *,
                      batch_size: int = 256, device: Any = None, num_workers: int = 0,
                      progress: Optional[bool] = None,
                      label_names: Optional[Sequence[str]] = None) -> np.ndarray:
    """Eq. 3 over a labelled anchor dataset, streamed in batches: ``(K, D)`` float64 centroids.
    Labels ``-1`` are ignored; a class without anchor samples raises ``ValueError``."""
    return compute_anchor_statistics(model, anchor, num_classes, batch_size=batch_size, device=device,
                                     num_workers=num_workers, progress=progress, label_names=label_names)[0]


# ----------------------------------------------------------------------------- identity
def _sha(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def model_fingerprint(model: torch.nn.Module) -> str:
    """Hash of the model's class and every tensor of its state dict (weights and buffers)."""
    h = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"|{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _item_bytes(item: Any) -> bytes:
    image = item[0] if isinstance(item, (tuple, list)) else item
    if hasattr(image, "detach"):
        return image.detach().cpu().contiguous().numpy().tobytes()
    try:
        return np.asarray(image).tobytes()
    except Exception:  # an exotic sample type: fall back to its description
        return repr(image).encode()


def dataset_fingerprint(dataset: Dataset, probes: int = 3) -> str:
    """Cheap identity of a dataset: its type, length, ``labels`` attribute (if any) and the
    bytes of a few samples (first, middle, last). Two pools of the same size drawn with other
    seeds differ in their samples, so a resume never mixes them. Assumes deterministic
    samples (no random transform on the pool)."""
    n = len(dataset)
    h = hashlib.sha256(f"{type(dataset).__module__}.{type(dataset).__qualname__}|{n}".encode())
    labels = getattr(dataset, "labels", None)
    if labels is not None:
        h.update(np.ascontiguousarray(np.asarray(labels, dtype=np.int64)).tobytes())
    if n:
        for i in sorted({0, n // 2, n - 1} if probes >= 3 else {0}):
            h.update(_item_bytes(dataset[i]))
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- summary
@dataclass
class SelectionSummary:
    """What :func:`select_auxiliary` did.

    ``selection`` (the VAS) and ``selection_file`` are set when the manifest is complete and
    merged (single-process runs); a shard of a multi-process run leaves them ``None``.
    ``images_per_second`` counts the pool images scored by this call (NaN if none were).
    """

    manifest_dir: Path
    run_tag: str
    shard: Tuple[int, int]
    n_pool: int
    shard_range: Tuple[int, int]
    n_chunks: int
    computed_chunks: int
    resumed_chunks: int
    seconds: float
    images_per_second: float
    selection: Optional[PoolSelection] = None
    selection_file: Optional[Path] = None

    @property
    def n_selected(self) -> Optional[int]:
        return None if self.selection is None else len(self.selection)

    @property
    def counts(self) -> Optional[Dict[str, int]]:
        """Selected samples per class name (None before the merge)."""
        if self.selection is None:
            return None
        return dict(zip(self.selection.label_names, self.selection.counts().tolist()))

    def to_dict(self) -> Dict[str, Any]:
        """JSON-able summary (for the artifact store's meta.json)."""
        out = {
            "manifest_dir": str(self.manifest_dir), "run_tag": self.run_tag, "shard": list(self.shard),
            "n_pool": self.n_pool, "shard_range": list(self.shard_range), "n_chunks": self.n_chunks,
            "computed_chunks": self.computed_chunks, "resumed_chunks": self.resumed_chunks,
            "seconds": round(self.seconds, 3),
            "images_per_second": None if math.isnan(self.images_per_second) else round(self.images_per_second, 1),
        }
        if self.selection is not None:
            out.update(rule=self.selection.rule, params=self.selection.params,
                       n_selected=len(self.selection), counts=self.counts,
                       # relative: the manifest folder may be renamed (artifact store)
                       selection_file=str(Path(self.selection_file).relative_to(self.manifest_dir)))
        return out


# ----------------------------------------------------------------------------- driver
def _exclusive(shard_dir: Path):
    """Hold an exclusive lock on a shard folder: two processes never write the same shard."""
    return lock_or_fail(shard_dir / ".lock", RuntimeError(
        f"{shard_dir} is being written by another process; give each process its own shard=(rank, world_size)"))


def _clear_manifest(root: Path, shard_dir: Path) -> None:
    """Remove the files a previous selection wrote (only names this module creates)."""
    for f in list(shard_dir.glob("chunk-*.npz")) + [shard_dir / n for n in
                                                   (mf.META_FILE, mf.STATE_FILE, mf.CENTROIDS_FILE)]:
        f.unlink(missing_ok=True)
    # Several ranks may clear the shared top-level files at once: tolerate a file gone meanwhile.
    for n in (mf.MANIFEST_FILE, mf.CENTROIDS_FILE):
        (root / n).unlink(missing_ok=True)
    for f in (root / "selections").glob("*"):
        f.unlink(missing_ok=True)


def _check_identity(root: Path, shard_dir: Path, run_tag: str, identity: Dict[str, Any],
                    overwrite: bool) -> None:
    old_tags = {}
    if (shard_dir / mf.META_FILE).is_file():
        old = mf.read_json(shard_dir / mf.META_FILE)
        old_tags[str(shard_dir / mf.META_FILE)] = (old["run_tag"], old.get("identity", {}))
    if (root / mf.MANIFEST_FILE).is_file():
        old = mf.read_json(root / mf.MANIFEST_FILE)
        ident = dict(old.get("identity", {}))
        old_tags[str(root / mf.MANIFEST_FILE)] = (old["run_tag"], ident)
    stale = {p: v for p, v in old_tags.items() if v[0] != run_tag}
    if not stale:
        return
    if overwrite:
        _clear_manifest(root, shard_dir)
        return
    path, (tag, old_ident) = next(iter(stale.items()))
    changed = sorted(k for k in set(identity) | set(old_ident)
                     if k != "rank" and identity.get(k) != old_ident.get(k))
    raise mf.ManifestError(
        f"{root} holds a selection manifest of another model, anchor, pool or layout "
        f"(tag {tag} in {path}, this run {run_tag}; differing: {', '.join(changed) or 'rank'}). "
        "Use another manifest_dir, or overwrite=True to discard it")


def _prepare_shard(model, anchor, shard_dir: Path, run_tag: str, identity: Dict[str, Any],
                   centroids: Optional[np.ndarray], anchor_counts: Optional[Sequence[int]],
                   meta: Dict[str, Any], *, batch_size: int, device, num_workers: int, progress,
                   label_names) -> np.ndarray:
    """Centroids of this shard: stored ones on resume, else given or computed from the anchor
    (then written with the shard's meta.json, beside the anchor's samples per class)."""
    if (shard_dir / mf.META_FILE).is_file() and (shard_dir / mf.CENTROIDS_FILE).is_file():
        return np.load(shard_dir / mf.CENTROIDS_FILE)
    if centroids is None:
        if anchor is None:
            raise ValueError("pass an anchor dataset or precomputed centroids=")
        centroids, anchor_counts = compute_anchor_statistics(
            model, anchor, meta["num_classes"], batch_size=batch_size, device=device,
            num_workers=num_workers, progress=progress, label_names=label_names)
    counts = None if anchor_counts is None else [int(c) for c in np.asarray(anchor_counts).reshape(-1)]
    if counts is not None and len(counts) != meta["num_classes"]:
        raise ValueError(f"anchor_counts has {len(counts)} entries, expected num_classes={meta['num_classes']}")
    centroids = np.asarray(centroids, dtype=np.float64)
    if centroids.shape[0] != meta["num_classes"]:
        raise ValueError(f"centroids have {centroids.shape[0]} rows, expected num_classes={meta['num_classes']}")
    mf.write_npy(shard_dir / mf.CENTROIDS_FILE, centroids)
    mf.write_json(shard_dir / mf.META_FILE, {**meta, "feature_dim": int(centroids.shape[1]),
                                             "anchor_counts": counts, "run_tag": run_tag, "identity": identity})
    return centroids


def _score_chunks(model, pool, centroids: np.ndarray, todo: List[Tuple[int, int, int]],
                  shard_dir: Path, done: set, n_chunks: int, *, run_tag: str, batch_size: int,
                  device: torch.device, num_workers: int, progress, on_chunk: Optional[ChunkCallback],
                  total: int, initial: int) -> int:
    """Score the chunks ``todo`` and write each as soon as it is complete; returns samples scored."""
    sampler = ChunkBatches(todo, batch_size)
    ends = {cid: b for cid, _, b in todo}
    loader = DataLoader(pool, batch_sampler=sampler, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    bar = progress_bar(total=total, initial=initial, desc="select: pool scores", unit="img", enable=progress)
    parts: List[Dict[str, np.ndarray]] = []
    scored = 0
    model.to(device)
    try:
        for (cid, a, b), batch in zip(sampler.plan(), loader):
            images = batch[0]
            if images.shape[0] != b - a:
                raise ValueError(f"the pool returned {images.shape[0]} images for a batch of {b - a} indices")
            f, z = _forward(model, images, device)
            cols = mf.score_batch(f, z, centroids)
            cols["pool_index"] = np.arange(a, b, dtype=np.int64)
            parts.append(cols)
            scored += b - a
            bar.update(b - a)
            if b == ends[cid]:
                chunk = {k: np.concatenate([p[k] for p in parts]) for k in mf.CHUNK_COLUMNS}
                parts = []
                mf.write_chunk(shard_dir / mf.chunk_filename(cid), chunk)
                done.add(cid)
                mf.write_json(shard_dir / mf.STATE_FILE, {"run_tag": run_tag, "completed": sorted(done)})
                report(f"selection chunk {len(done)}/{n_chunks} scored ({b} of the pool's images)")
                if on_chunk is not None:
                    on_chunk(cid, len(done), n_chunks)
    finally:
        bar.close()
    return scored


def _rule_args(rule: str, **params) -> Dict[str, Any]:
    """Check the rule and its parameters before the long pass (dry run on an empty pool)."""
    empty = {"pool_index": np.zeros(0, np.int64), "nearest": np.zeros(0, np.int64),
             "margin": np.zeros(0), "softmax_label": np.zeros(0, np.int64),
             "softmax_confidence": np.zeros(0, np.float32), "softmax_margin": np.zeros(0),
             "softmax": np.zeros((0, 2), np.float32)}
    decide(empty, rule, 2, anchor_counts=[1, 1], **params)
    return params


def select_auxiliary(model: torch.nn.Module, anchor: Optional[Dataset], pool: Dataset,
                     delta: Optional[float] = None, *, manifest_dir: Union[str, os.PathLike],
                     batch_size: int = 256, rule: str = "margin",
                     softmax_threshold: Optional[float] = None, per_class_k: Optional[int] = None,
                     class_quantile: Optional[float] = None, per_class_cap: Optional[int] = None,
                     num_classes: Optional[int] = None, label_names: Optional[Sequence[str]] = None,
                     centroids: Optional[np.ndarray] = None, anchor_counts: Optional[Sequence[int]] = None,
                     device: Any = None,
                     num_workers: int = 0, chunk_size: int = 8192,
                     shard: Optional[Tuple[int, int]] = None, identity: Optional[str] = None,
                     overwrite: bool = False, progress: Optional[bool] = None,
                     on_chunk: Optional[ChunkCallback] = None,
                     curriculum_share: Optional[float] = None) -> SelectionSummary:
    """Select auxiliary samples from ``pool`` with the primitive learner ``model`` (§3.3).

    Args:
        model: an ``nn.Module`` with ``features(x) -> (B, D)`` and ``classify(f) -> (B, K)``.
            It is moved to ``device`` and run in eval mode (its mode is restored after).
        anchor: labelled dataset yielding ``(image, label)``; its per-class mean features are
            the centroids (Eq. 3), and its samples per class are stored in the manifest (the
            class prior of ``distribution_alignment``). May be ``None`` when ``centroids`` is given.
        pool: dataset yielding ``(image, anything)``; deterministic (no random transform).
        delta: the margin δ ≥ 0 of Eq. 5 (rule ``margin``; the matching target of the others).
        manifest_dir: folder of the manifest (see :mod:`omnifer_lib.select.manifest`).
        rule, softmax_threshold, per_class_k, class_quantile, per_class_cap, curriculum_share: the selection
            rule applied to the finished manifest (see :func:`omnifer_lib.select.reselect`).
        centroids, anchor_counts: precomputed ``(K, D)`` centroids and ``(K,)`` anchor samples
            per class (:func:`compute_anchor_statistics`) instead of a pass over ``anchor``;
            without ``anchor_counts`` the manifest holds no class prior.
        chunk_size: pool samples per chunk file (resume granularity).
        shard: ``(rank, world_size)`` for multi-process runs; each rank scores its contiguous
            index range. Default ``(0, 1)``.
        identity: extra string mixed into the manifest's tag (e.g. upstream artifact keys).
        overwrite: discard a manifest of another identity in ``manifest_dir`` instead of failing.
        on_chunk: called as ``on_chunk(chunk_id, completed, total)`` after each chunk is stored.

    Returns a :class:`SelectionSummary`; with ``world_size == 1`` the manifest is merged and
    the selection is made, saved under ``selections/`` and returned in ``summary.selection``.

    Resuming: rerun the same call; completed chunks are kept and the rest is computed. A rerun
    with another model, anchor, pool, chunk size or world size raises
    :class:`~omnifer_lib.select.manifest.ManifestError` (δ and the rule may change freely: they
    only re-threshold the stored scores).
    """
    started = time.time()
    rule_params = _rule_args(rule, delta=delta, softmax_threshold=softmax_threshold,
                             per_class_k=per_class_k, class_quantile=class_quantile,
                             per_class_cap=per_class_cap, curriculum_share=curriculum_share)
    if rule == "distribution_alignment" and centroids is not None and anchor_counts is None:
        raise ValueError("rule 'distribution_alignment' needs the anchor's samples per class: pass anchor_counts= "
                         "with centroids= (compute_anchor_statistics gives both), or the anchor instead")
    rank, world = shard if shard is not None else (0, 1)
    dev = resolve_device(device)
    k = resolve_num_classes(model, num_classes)
    names = list(label_names) if label_names is not None else list(class_names(k))
    if len(names) != k:
        raise ValueError(f"label_names has {len(names)} names for {k} classes")
    n_pool = len(pool)
    start, stop = mf.shard_range(n_pool, rank, world)
    chunks = mf.chunk_ranges(start, stop, chunk_size)
    ident: Dict[str, Any] = {
        "format_version": mf.VERSION, "model": model_fingerprint(model),
        "anchor": dataset_fingerprint(anchor) if (anchor is not None and centroids is None) else None,
        "centroids": (hashlib.sha256(np.ascontiguousarray(centroids, dtype=np.float64).tobytes()).hexdigest()[:16]
                      if centroids is not None else None),
        "pool": dataset_fingerprint(pool), "n_pool": n_pool, "num_classes": k,
        "chunk_size": int(chunk_size), "world_size": int(world), "extra": identity,
    }
    run_tag = _sha(ident)
    meta = {"format": mf.FORMAT, "version": mf.VERSION, "n_pool": n_pool, "num_classes": k,
            "label_names": names, "shard": [rank, world], "range": [start, stop],
            "chunk_size": int(chunk_size), "n_chunks": len(chunks)}
    root = Path(manifest_dir)
    shard_dir = root / mf.shard_dirname(rank, world)
    shard_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(shard_dir):
        _check_identity(root, shard_dir, run_tag, {**ident, "rank": rank}, overwrite)
        for leftover in shard_dir.glob(".*.tmp"):  # half-written files of a killed run
            leftover.unlink(missing_ok=True)
        cents = _prepare_shard(model, anchor, shard_dir, run_tag, ident, centroids, anchor_counts, meta,
                               batch_size=batch_size, device=dev, num_workers=num_workers,
                               progress=progress, label_names=names)
        done = set(mf.completed_chunks(shard_dir))
        resumed = len(done)
        todo = [(cid, a, b) for cid, (a, b) in enumerate(chunks) if cid not in done]
        initial = sum(b - a for cid, (a, b) in enumerate(chunks) if cid in done)
        t_scoring = time.time()
        scored = 0
        if todo:
            scored = _score_chunks(model, pool, cents, todo, shard_dir, done, len(chunks),
                                   run_tag=run_tag, batch_size=batch_size, device=dev,
                                   num_workers=num_workers, progress=progress, on_chunk=on_chunk,
                                   total=stop - start, initial=initial)
        scoring_seconds = time.time() - t_scoring
    summary = SelectionSummary(
        manifest_dir=root, run_tag=run_tag, shard=(rank, world), n_pool=n_pool,
        shard_range=(start, stop), n_chunks=len(chunks), computed_chunks=len(todo),
        resumed_chunks=resumed, seconds=0.0,
        images_per_second=scored / scoring_seconds if scored and scoring_seconds > 0 else math.nan)
    if world == 1:
        manifest = mf.merge_manifests(root, world_size=1)
        selection = reselect(manifest, rule=rule, **rule_params)
        summary.selection = selection
        summary.selection_file = save_selection(selection, selection_path(root, selection))
    summary.seconds = time.time() - started
    return summary
