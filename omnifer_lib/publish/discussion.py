"""The §4.5 discussion (chapter 08) on the cached stages: the snapshots of one run of Algorithm 1,
the paper's test on them (Fig. 5), a control on real anchor images, and the numbers the chapter
states. The experiment itself is :mod:`omnifer_lib.distill.discussion`; this module feeds it the
pipeline's distilled sets and datasets and puts its results in the chapter's table and words."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from omnifer_lib.engine import pipeline
from omnifer_lib.data import LABELS, to_tensors
from omnifer_lib.distill import random_real
from omnifer_lib.distill.discussion import (PAPER_TEST_FRACTION, PredictionCurves, load_snapshots, pixel_distances,
                                            prediction_curves, snapshot_set)

#: The numbers the chapter's text states (glued under these names): held-out accuracy of the CNN on the
#: snapshots and on the control (%), 1-NN pixel accuracy of each (%), the within / between pixel-distance ratio,
#: accuracy on the other run's distilled images (% and its std), the training part's size, and accuracy on
#: real test faces of the snapshot CNN and of the control CNN (%).
VALUE_NAMES = ("snap_acc", "ctrl_acc", "snap_nn", "ctrl_nn", "ratio", "other", "other_std", "n_train", "faces",
               "ctrl_faces")


@dataclass
class Snapshots:
    """The snapshots of the master seed's Algorithm 1 run over the auxiliary samples: ``snapshots``
    as :func:`~omnifer_lib.distill.discussion.load_snapshots` returns them, ``images (N, 3, H, W)``
    and ``labels (N,)`` of all of them together, and ``labels_per_snapshot`` (the distilled set's)."""

    snapshots: List[Dict[str, Any]]
    images: Tensor
    labels: Tensor
    labels_per_snapshot: Tensor

    @property
    def enough(self) -> bool:
        """At least two snapshots: the paper's test needs two or more images per class to split."""
        return len(self.snapshots) >= 2


def snapshots(params: Mapping[str, Any], backbone: str) -> Snapshots:
    """The snapshots kept every ``snapshot_every`` iterations of Algorithm 1 (``backbone``'s VAS)."""
    art = pipeline.distilled(params, backbone, "algorithm1", "vas")
    das = pipeline.load_distilled(art)
    kept = load_snapshots(das, art.path)
    images, labels, _ = snapshot_set(kept, das.labels) if kept else (None, None, None)
    return Snapshots(kept, images, labels, das.labels)


def split_table(snaps: Snapshots, images_per_class: int) -> pd.DataFrame:
    """The sizes of the paper's split (§4.5: 6 snapshots × 7 images, 5 : 1) beside this run's."""
    n = len(snaps.snapshots)
    per_class = n * images_per_class
    n_test = max(1, int(round(per_class * PAPER_TEST_FRACTION)))
    n_train = per_class - n_test
    classes = len(LABELS)
    return pd.DataFrame([
        {"": "snapshots × images per snapshot", "paper": "6 × 7",
         "this run": f"{n} × {len(snaps.labels_per_snapshot)}"},
        {"": "images", "paper": "42", "this run": str(len(snaps.labels))},
        {"": "training : test part", "paper": "5 : 1 (35 : 7)",
         "this run": f"{n_train} : {n_test} per class ({classes * n_train} : {classes * n_test})"}])


@dataclass
class Experiment:
    """The paper's test on the snapshots (``snap``, with the other run's distilled images as an extra
    test set) and the same protocol on as many real anchor images per class (``control``, on
    ``real_images``/``real_labels``); both also scored on the anchor's real test faces."""

    snap: PredictionCurves
    control: PredictionCurves
    real_images: Tensor
    real_labels: Tensor


def run(params: Mapping[str, Any], backbone: str, snaps: Snapshots) -> Experiment:
    """Fig. 5's curves: ``discussion_repeats`` random splits, a simple CNN trained for
    ``discussion_epochs`` on each, for the snapshots and for the real-image control."""
    anchor = pipeline.anchor_of(params)
    test = to_tensors(pipeline.dataset(params, anchor, "test"))
    other = pipeline.load_distilled(pipeline.distilled(params, backbone, "algorithm1", "anchor"))
    settings = dict(repeats=params["discussion_repeats"], epochs=params["discussion_epochs"], seed=params["seed"],
                    num_classes=len(LABELS), final_tests={"real test faces": test})
    snap = prediction_curves(snaps.images, snaps.labels, extra_tests={"other run": (other.images, other.labels)},
                             **settings)
    per_class = len(snaps.snapshots) * params["images_per_class"]
    real = random_real(pipeline.dataset(params, anchor, "train"), images_per_class=per_class, seed=params["seed"])
    return Experiment(snap, prediction_curves(real.images, real.labels, **settings), real.images, real.labels)


def _row(name: str, curves: PredictionCurves, images: Tensor, labels: Tensor, other: float) -> Dict[str, Any]:
    held_out, held_out_std = curves.final("test")
    faces, faces_std = curves.final("real test faces")
    return {"trained on": name, "held-out part (%)": 100 * held_out, "± std": 100 * held_out_std,
            "1-NN on pixels, same split (%)": 100 * float(curves.nearest_neighbour.mean()),
            "pixel distance within / between classes": pixel_distances(images, labels)["within / between"],
            "other run's distilled images (%)": other, "real test faces (%)": 100 * faces, "± std ": 100 * faces_std}


def summary(snaps: Snapshots, exp: Optional[Experiment]) -> Tuple[Optional[pd.DataFrame], Dict[str, float], str]:
    """The chapter's summary table (snapshots against the control), the numbers it states
    (:data:`VALUE_NAMES`, nan without an experiment) and its verdict in words: whether a pixel lookup
    explains the CNN's accuracy on the held-out snapshots."""
    if exp is None:
        return None, dict.fromkeys(VALUE_NAMES, float("nan")), "not measured (too few snapshots)"
    snap, ctrl = exp.snap, exp.control
    other, other_std = snap.final("other run")
    s = _row("snapshots of the distilled images", snap, snaps.images, snaps.labels, 100 * other)
    c = _row("real anchor images (control)", ctrl, exp.real_images, exp.real_labels, np.nan)
    table = pd.DataFrame([s, c])
    values = {"snap_acc": s["held-out part (%)"], "ctrl_acc": c["held-out part (%)"],
              "snap_nn": s["1-NN on pixels, same split (%)"], "ctrl_nn": c["1-NN on pixels, same split (%)"],
              "ratio": s["pixel distance within / between classes"], "other": 100 * other,
              "other_std": 100 * other_std, "n_train": snap.n_train,
              "faces": s["real test faces (%)"], "ctrl_faces": c["real test faces (%)"]}
    verdict = ("the lookup does as well as the CNN or better, so the held-out snapshots are passed by matching "
               "near-copies; the paper's test cannot tell class patterns from repetition here"
               if snap.lookup_explains() else
               "the CNN beats the lookup, so it learned something beyond matching near-copies")
    return table, {k: float(v) for k, v in values.items()}, verdict


def chapter_values(params: Mapping[str, Any], backbone: str) -> Dict[str, Any]:
    """The settings the chapter's text names: the learner, chance (%), the CNN's epochs and repeats."""
    return {"backbone": pipeline.display_backbone(backbone), "chance": 100 * (1 / len(LABELS)),
            "epochs": int(params["discussion_epochs"]), "repeats": int(params["discussion_repeats"])}


def snapshot_rows(params: Mapping[str, Any], snaps: Snapshots) -> Tuple[Optional[Dict[str, Tensor]], str]:
    """The snapshots as rows of images for the chapter's figure (``{"iteration k": images}``) and
    ``""``; or ``None`` and the sentence to print instead: too few snapshots (how to keep more), or
    images this run may not show (real faces)."""
    if not snaps.enough:
        return None, (f"This run kept {len(snaps.snapshots)} snapshot(s); the experiment needs at least two per "
                      "class. Rerun with a smaller snapshot_every (e.g. -p snapshot_every 10).")
    if not pipeline.images_may_be_shown(params):
        return None, pipeline.IMAGES_WITHHELD
    return {f"iteration {s['iteration']}": torch.as_tensor(s["images"]) for s in snaps.snapshots}, ""


def fig5_curves(exp: Experiment) -> Dict[str, np.ndarray]:
    """Fig. 5's curves (accuracy per epoch, repeats × epochs): the held-out snapshots (the paper's
    test), the other run's distilled images, and the control's held-out real images."""
    return {"held-out snapshots (the paper's test)": exp.snap.accuracy["test"],
            "distilled images of the other run": exp.snap.accuracy["other run"],
            "control: held-out real images": exp.control.accuracy["test"]}


def plot_fig5(exp: Optional[Experiment], snaps: Snapshots):
    """Fig. 5 of this run (:func:`~omnifer_lib.publish.distill_plots.plot_prediction_curves` of
    :func:`fig5_curves`), or ``None`` without an experiment."""
    from omnifer_lib.publish.distill_plots import plot_prediction_curves

    if exp is None:
        return None
    return plot_prediction_curves(fig5_curves(exp), chance=1 / len(LABELS),
                                  title=f"Simple CNN trained on {exp.snap.n_train} of {len(snaps.labels)} images")
