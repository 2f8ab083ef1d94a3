import sys; sys.path.insert(0, "tools")
from nbgen import write_notebook

write_notebook("notebooks/02_primitive_learner.ipynb", [
("md", r"""
# The primitive learner (§3.2)

The first step of the method trains a CNN $f(\cdot;\theta)$ with a linear classifier $\mathbf w_j$ per
expression on the labeled *anchor* data $\{x^l_i, y^l_i\}_{i=1}^N$, by minimising the cross-entropy of Eq. 1,

$$\min_{\theta, \mathbf w} \sum_{i=1}^{N} \mathcal{L}\big(\mathbf{W}^{T} f(x_i;\theta),\, y_i\big),$$

with stochastic gradient descent. The paper calls it the *primitive learner*: its features $f(x;\theta)$,
the layer before the softmax output, are what the next step uses to select auxiliary samples, and
trained the same way it is also the *baseline* of Tables 1 and 2.

The paper trains two backbones (§4.3): **VGG-Face** (VGG-16 trained to recognise celebrities, so its
features already know faces) and **ResNet-34** (trained on ImageNet), both at 224×224 with SGD
(momentum 0.9, learning rate 0.001 divided by 10 every 10 epochs, 25 epochs) and random horizontal
flips. On the demo profile the two families are played by small CPU networks: a plain VGG-style net
without BatchNorm, first trained to recognise the identities of the synthetic celebrity pool (the
stand-in for VGG-Face's face training), and a ResNet-style net with BatchNorm trained from scratch
(ImageNet weights have no synthetic stand-in). They train for fewer epochs at a larger learning rate;
the parameters below say exactly what ran.
"""),
("params", """
profile = "demo"   # parameter profile: smoke, demo or paper
overrides = {}     # any other profile parameter, e.g. {"width": 16}
backbones = ["vgg_small", "resnet_small"]
seed = 0
seeds = [0, 1, 2]
epochs = 10
lr = 0.02
"""),
("hide", """
import matplotlib.pyplot as plt
import pandas as pd
from myst_nb import glue

from omnifer_lib import config, paper, pipeline
from omnifer_lib.data import LABELS
from omnifer_lib.plots import confusion_heatmap, learning_curves
from omnifer_lib.reporting import fmt, seed_stats, show

params = config.notebook_params(profile, overrides, backbones=backbones, seed=seed, seeds=seeds,
                                epochs=epochs, lr=lr)
"""),
("md", """
## What plays which role
"""),
("code", """
pd.DataFrame({"role": ["anchor (training and inner test)", "second inner-dataset table"],
              "dataset": [pipeline.role_description(params, "rafdb"), pipeline.role_description(params, "fer2013")]})
"""),
("md", """
## Face pretraining of the VGG-style learner
VGG-Face's weights come from classifying 2,622 celebrities. On the demo profile the VGG-style learner is
first trained to classify the identities of the synthetic celebrity pool (the same faces later searched
for auxiliary samples, without their expressions); its identity classifier is then replaced by a fresh
7-way expression classifier. With the real VGG-Face weights (`paper` profile) this step is skipped.
"""),
("code", """
pre_rows = []
for b in params["backbones"]:
    pre = pipeline.face_pretraining(params, b)
    if pre is not None:
        s = pre.meta["summary"]
        pre_rows.append({"backbone": b, "identities": s["identities"], "images": s["images"],
                         "epochs": params["pretrain_epochs"], "final identity accuracy (%)": round(s["identity_accuracy"], 1)})
pd.DataFrame(pre_rows) if pre_rows else "no backbone of this profile is face-pretrained here"
"""),
("md", """
## Training the primitive learners
Each learner below is trained once and cached; the later chapters reuse them. The curves show accuracy
on the anchor's training images (dashed) and on its test split (solid) after every epoch.
"""),
("code", """
prims = {b: pipeline.primitive_learner(params, b) for b in params["backbones"]}
fig = learning_curves({pipeline.display_backbone(b): pipeline.history(a) for b, a in prims.items()},
                      title="primitive learners on the anchor")
plt.show()
"""),
("code", """
fig, axes = plt.subplots(1, len(prims), figsize=(4.8 * len(prims), 4.2), squeeze=False)
for ax, (b, art) in zip(axes[0], prims.items()):
    ev = pipeline.evaluation(art)["rafdb"]
    confusion_heatmap(ev["confusion"], LABELS, ax=ax,
                      title=f"{pipeline.display_backbone(b)}: {ev['accuracy']:.1f} % on the anchor's test split")
fig.tight_layout()
plt.show()
"""),
("md", """
Rows are the true expressions, columns the predicted ones, each row normalised to 100 %. The paper
reports no confusion matrix; the diagonal shows which expressions the primitive learner already
separates, and so which auxiliary samples it can be trusted to pick.

## The baselines of Tables 1 and 2
The baseline rows of the paper's Tables 1 and 2 are learners trained on the labeled training set alone.
Here each is trained with several seeds (mean ± standard deviation over the seeds below). The learner with
the master seed on the anchor is the primitive learner above.
"""),
("code", """
rows = []
for table, train_on in ((1, "rafdb"), (2, "fer2013")):
    res = pipeline.results_table(params, params["backbones"], modes=("anchor",), train_on=train_on)
    stats = seed_stats(res[res["target"] == train_on], ["backbone", "family"])
    for r in stats.itertuples():
        rows.append({"table": f"Table {table}", "dataset": pipeline.role_description(params, train_on),
                     "learner": pipeline.display_backbone(r.backbone),
                     "paper (%)": paper.reproduced_value(table, r.family, "anchor"),
                     "this run (%)": fmt(r.mean, r.std), "seeds": r.n})
baselines = pd.DataFrame(rows)
prim_acc = {b: pipeline.evaluation(a)["rafdb"]["accuracy"] for b, a in prims.items()}
for b, acc in prim_acc.items():
    glue(f"prim_{pipeline.family(b)}", acc, display=False)
show(baselines)
"""),
("md", r"""
The paper's numbers are for VGG-Face and ResNet-34 on the real RAF-DB and FER-2013 at 224×224; this run's
are for the learners and data named in the table, so only the *pattern* can be compared: the paper's
face-pretrained VGG beats the ImageNet ResNet (85.15 vs 84.63 on RAF-DB). Here the primitive learners
reach {glue:text}`prim_vgg:.1f` % (VGG family) and {glue:text}`prim_resnet:.1f` % (ResNet family) on the
anchor's test split.

## Try it
- Train longer or with another rate: `omnifer run notebooks/02_primitive_learner.ipynb -p epochs 20 -p lr 0.01`.
  Every later chapter picks up the new primitive learner (the old one stays cached under its own key).
- Widen the small networks: `-p overrides '{"width": 16}'` (about twice the training time).
- Watch the gap between the dashed (train) and solid (test) curves: the small anchor overfits quickly,
  which is the situation the paper's auxiliary samples are meant to help.
"""),
])
