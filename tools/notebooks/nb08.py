import sys; sys.path.insert(0, "tools")
from nbgen import write_notebook

write_notebook("notebooks/08_discussion.ipynb", [
("md", r"""
# Discussion: do distilled images hold class patterns? (§4.5, Fig. 5)

The distilled auxiliary samples do not look like faces (Fig. 4 in the distillation chapter; the paper: "it is
difficult to find any semantic meaning in them. All of the distilled images are full of specific texture
patterns"). Section 4.5 asks whether they nevertheless carry class-related patterns, with a simple experiment:

1. keep the distilled images $\tilde{\mathbf x}$ at regular points of Algorithm 1 — the paper saves them "in every
   ten epochs, resulting in 42 distilled images (the distillation process takes six epochs, each epoch saves 7
   images)": 6 snapshots of the 7 images, **42 images**;
2. split them **5 : 1** into a training and a test part;
3. train a simple CNN on the training part and record its accuracy on the test part after every epoch — the
   paper's Fig. 5, "prediction curve of test set in distilled auxiliary samples".

A high test accuracy is read as: the images of a class share a pattern that a network can learn. The paper does
not describe the CNN or its training (its sentence breaks off after "feed the split training set and testing set
to"), so this project uses its own small network
(`omnifer_lib.distill.discussion.SimpleCNN`: three 3×3 convolution layers, global average pooling, a linear
classifier) trained with Adam, and repeats the experiment over several random splits, each with a fresh CNN.

**What the test can and cannot show.** The snapshots of one run are successive states of the *same* seven
images, so a held-out snapshot of a class is a near-copy of the training snapshots of that class. Classifying it
correctly may only mean that the network can match near-duplicates. This chapter therefore adds three controls:

- a **1-nearest-neighbour lookup on raw pixels** on the same split, a classifier that learns nothing;
- the **same protocol on real images** (as many random labeled anchor images per class as there are snapshots),
  where every image is a different face;
- two stricter tests of the CNN trained on the snapshots: the **distilled images of another run** (the one
  distilled from the anchor's training set instead of the auxiliary samples) and the **real test faces** of the
  anchor's test split.
"""),
("params", """
profile = "demo"   # parameter profile: smoke, demo or paper
overrides = {}     # any other profile parameter, e.g. {"backbones": ["resnet_small"]}
distill_iterations = 100   # outer iterations of Algorithm 1
snapshot_every = 16        # keep the distilled images every this many iterations
discussion_epochs = 30     # epochs of the simple CNN
discussion_repeats = 5     # random 5:1 splits, each with a fresh CNN
"""),
("hide", """
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from myst_nb import glue

from omnifer_lib import config, pipeline
from omnifer_lib.data import LABELS
from omnifer_lib.distill import random_real
from omnifer_lib.distill.discussion import (PAPER_TEST_FRACTION, load_snapshots, pixel_distances,
                                            prediction_curves, snapshot_set, stack_dataset)
from omnifer_lib.distill.plots import plot_prediction_curves, show_image_rows
from omnifer_lib.reporting import show

params = config.notebook_params(profile, overrides, distill_iterations=distill_iterations,
                                snapshot_every=snapshot_every, discussion_epochs=discussion_epochs,
                                discussion_repeats=discussion_repeats)
backbone = params["backbones"][0]
chance = 1 / len(LABELS)
glue("backbone", pipeline.display_backbone(backbone), display=False)
glue("chance", 100 * chance, display=False)
glue("epochs", int(params["discussion_epochs"]), display=False)
glue("repeats", int(params["discussion_repeats"]), display=False)
"""),
("md", """
## The snapshots
The distilled images of the distillation chapter (learner **{glue:text}`backbone`**, distilled from the
auxiliary samples) were kept every `snapshot_every` outer iterations:
"""),
("code", """
das_art = pipeline.distilled(params, backbone, "algorithm1", "vas")
das = pipeline.load_distilled(das_art)
snapshots = load_snapshots(das, das_art.path)
n_snap = len(snapshots)
enough = n_snap >= 2
if enough:
    fig = show_image_rows({f"iteration {s['iteration']}": torch.as_tensor(s["images"]) for s in snapshots},
                          column_names=LABELS, cell=1.5)
    plt.show()
else:
    print(f"This run kept {n_snap} snapshot(s); the experiment needs at least two per class. "
          "Rerun with a smaller snapshot_every (e.g. -p snapshot_every 10).")
"""),
("md", """
Each row is one snapshot, each column one class. How similar the rows are decides how hard the test below is.
"""),
("code", """
if enough:
    x_snap, y_snap, _ = snapshot_set(snapshots, das.labels)
    per_class = n_snap * params["images_per_class"]
    n_test = max(1, int(round(per_class * PAPER_TEST_FRACTION)))
    n_train_c = per_class - n_test
    display(show(pd.DataFrame([
        {"": "snapshots × images per snapshot", "paper": "6 × 7", "this run": f"{n_snap} × {len(das.labels)}"},
        {"": "images", "paper": "42", "this run": str(len(y_snap))},
        {"": "training : test part", "paper": "5 : 1 (35 : 7)",
         "this run": f"{n_train_c} : {n_test} per class ({len(LABELS) * n_train_c} : {len(LABELS) * n_test})"},
    ])))
"""),
("md", """
## Fig. 5: the prediction curve
The CNN is trained on the training part for {glue:text}`epochs` epochs; its accuracy is measured before training
(epoch 0) and after every epoch, over {glue:text}`repeats` random splits (band: ± one standard deviation).
The control runs the identical protocol on real anchor images.
"""),
("code", """
if enough:
    test_x, test_y = stack_dataset(pipeline.dataset(params, "rafdb", "test"))
    anchor_das = pipeline.load_distilled(pipeline.distilled(params, backbone, "algorithm1", "anchor"))
    settings = dict(repeats=params["discussion_repeats"], epochs=params["discussion_epochs"], seed=params["seed"],
                    num_classes=len(LABELS), final_tests={"real test faces": (test_x, test_y)})
    snap = prediction_curves(x_snap, y_snap, extra_tests={"other run": (anchor_das.images, anchor_das.labels)},
                             **settings)
    real = random_real(pipeline.dataset(params, "rafdb", "train"), images_per_class=per_class, seed=params["seed"])
    ctrl = prediction_curves(real.images, real.labels, **settings)
    fig = plot_prediction_curves({"held-out snapshots (the paper's test)": snap.accuracy["test"],
                                  "distilled images of the other run": snap.accuracy["other run"],
                                  "control: held-out real images": ctrl.accuracy["test"]},
                                 chance=chance,
                                 title=f"Simple CNN trained on {snap.n_train} of {len(y_snap)} images")
    plt.show()
"""),
("code", """
def row(name, pc, images, labels, other):
    m, s = pc.final("test")
    f, fs = pc.final("real test faces")
    return {"trained on": name, "held-out part (%)": 100 * m, "± std": 100 * s,
            "1-NN on pixels, same split (%)": 100 * float(pc.nearest_neighbour.mean()),
            "pixel distance within / between classes": pixel_distances(images, labels)["within / between"],
            "other run's distilled images (%)": other, "real test faces (%)": 100 * f, "± std ": 100 * fs}

if enough:
    o, o_std = snap.final("other run")
    summary = pd.DataFrame([row("snapshots of the distilled images", snap, x_snap, y_snap, 100 * o),
                            row("real anchor images (control)", ctrl, real.images, real.labels, np.nan)])
    display(show(summary, digits=2))
    s_acc, c_acc = 100 * snap.final("test")[0], 100 * ctrl.final("test")[0]
    s_nn, c_nn = 100 * float(snap.nearest_neighbour.mean()), 100 * float(ctrl.nearest_neighbour.mean())
    ratio = pixel_distances(x_snap, y_snap)["within / between"]
    values = dict(snap_acc=s_acc, ctrl_acc=c_acc, snap_nn=s_nn, ctrl_nn=c_nn, ratio=ratio, other=100 * o,
                  other_std=100 * o_std, n_train=snap.n_train,
                  faces=100 * snap.final("real test faces")[0], ctrl_faces=100 * ctrl.final("real test faces")[0])
    easy = s_nn >= s_acc - 5
    verdict = ("the lookup does as well as the CNN or better, so the held-out snapshots are passed by matching "
               "near-copies; the paper's test cannot tell class patterns from repetition here" if easy else
               "the CNN beats the lookup, so it learned something beyond matching near-copies")
else:
    values = dict.fromkeys(["snap_acc", "ctrl_acc", "snap_nn", "ctrl_nn", "ratio", "other", "other_std", "n_train",
                            "faces", "ctrl_faces"],
                           float("nan"))
    verdict = "not measured (too few snapshots)"
for k, v in values.items():
    glue(k, float(v), display=False)
glue("verdict", verdict, display=False)
"""),
("md", """
## What it shows
On the held-out snapshots the CNN reaches {glue:text}`snap_acc:.1f` % (chance {glue:text}`chance:.1f` %) — the kind
of curve the paper's Fig. 5 shows. But a 1-nearest-neighbour lookup on raw pixels, which learns nothing, reaches
{glue:text}`snap_nn:.1f` % on the same splits: {glue:text}`verdict`. The reason is visible in the pixel distances:
two snapshots of the same class differ by {glue:text}`ratio:.2f` times as much as two images of different classes
(a ratio of 1 means a class's images are no closer to each other than to the rest). One run of Algorithm 1
changes its images gradually, so its snapshots of a class are close to one another.

The control makes the contrast: with as many *real* anchor images per class, each a different face, the same CNN
reaches {glue:text}`ctrl_acc:.1f` % on the held-out real images and the pixel lookup {glue:text}`ctrl_nn:.1f` %.

The stricter tests ask whether what the CNN learned from the snapshots carries over to other images. On the
seven distilled images of the *other* run (distilled from the anchor's training set, started from other real
images) it reaches {glue:text}`other:.1f` % (± {glue:text}`other_std:.1f` over the splits; with seven images one
image is 14 points), and on the real test faces {glue:text}`faces:.1f` %. The control CNN, trained on real anchor
images, reaches {glue:text}`ctrl_faces:.1f` % on the same real faces: when it, too, stays near chance,
{glue:text}`n_train:.0f` images are too few to learn faces with a CNN from scratch on this data, and the real-face
test cannot tell the two training sets apart. Accuracy near chance on the other run's images means that what
the snapshots share is largely specific to their run.

The experiment of §4.5 is thus a necessary check — distilled images whose classes could not be told apart would
be useless — but with snapshots of a single run it is not a sufficient one. The direct measure of what distilled
images teach is the evaluation in the distillation chapter: networks of the learner's own family, trained on the
distilled images alone, tested on real faces.

## Try it
- The paper's count of snapshots, six: `omnifer run notebooks/08_discussion.ipynb -p distill_iterations 120
  -p snapshot_every 20` (this recomputes the distillation).
- Longer training of the CNN: `-p discussion_epochs 60`; more splits for tighter bands: `-p discussion_repeats 10`.
- Snapshots further apart are less alike: `-p distill_iterations 300 -p snapshot_every 50`. Watch whether the
  gap between the CNN and the pixel lookup opens, and whether the other-run and real-face accuracies leave chance.
"""),
])
