import sys; sys.path.insert(0, "tools")
from nbgen import write_notebook

write_notebook("notebooks/05_inner_dataset.ipynb", [
("md", r"""
# Inner-dataset evaluation (Tables 1–3)

Inner-dataset evaluation trains and tests on the same dataset (§4.1). For every backbone the paper
trains three final learners and compares them (§4.4.1):

- **baseline** — the labeled training set alone (the primitive learner's recipe);
- **VAS** — the labeled training set together with the *vanilla auxiliary samples*, the pool images
  selected by the margin rule of Eq. 5 with their pseudo-labels;
- **DAS** — the labeled training set together with the *distilled auxiliary samples*, the seven images
  Algorithm 1 distilled from the VAS.

The auxiliary samples are always those selected with the RAF-DB anchor's primitive learner; Table 2
adds them to FER-2013's training set, and Table 3 adds the DAS to CK+'s folds. Every learner here is
trained with each seed of the profile and reported as mean ± standard deviation over the seeds, beside
the paper's single number. Rows the paper cites from other work are listed with their numbers and
marked "cited only": they are not rerun here.
"""),
("params", """
profile = "demo"   # parameter profile: smoke, demo or paper
overrides = {}     # any other profile parameter, e.g. {"epochs": 20}
backbones = ["vgg_small", "resnet_small"]
seeds = [0, 1, 2]
delta = 0.1
das_strategy = "minibatch"
das_weight = 1.0
"""),
("hide", """
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from myst_nb import glue

from omnifer_lib import config, paper, pipeline
from omnifer_lib.data import LABELS
from omnifer_lib.plots import bar_with_errors
from omnifer_lib.reporting import MODE_NAMES, fmt, mode_table, paper_comparison, seed_stats, show

params = config.notebook_params(profile, overrides, backbones=backbones, seeds=seeds, delta=delta,
                                das_strategy=das_strategy, das_weight=das_weight)
families = {pipeline.family(b): b for b in params["backbones"]}
names = {f: pipeline.display_backbone(b) for f, b in families.items()}
glue("das_strategy", params["das_strategy"], display=False)
glue("das_weight", params["das_weight"], display=False)
glue("n_seeds", len(params["seeds"]), display=False)
"""),
("md", """
How the DAS join the training here: strategy **{glue:text}`das_strategy`** with loss weight
λ = {glue:text}`das_weight` (the paper does not say; see *Notes on the paper* and the chapter *Beyond the
paper*, which measures both strategies).

## Table 1 — RAF-DB
"""),
("code", """
t1 = pipeline.results_table(params, params["backbones"], train_on="rafdb")
print("Trained on and tested on:", pipeline.role_description(params, "rafdb"))
print("Backbones:", "; ".join(f"{names[f]} for the paper's {'VGG-F' if f == 'vgg' else 'ResNet-34'}" for f in names))
show(paper_comparison(1, t1, "rafdb", backbone_names=names))
"""),
("code", """
stats = seed_stats(t1[t1["target"] == "rafdb"], ["backbone", "mode"])
stats["mode"] = stats["mode"].map(MODE_NAMES)
stats["backbone"] = stats["backbone"].map(pipeline.display_backbone)
fig = bar_with_errors(stats, x="mode", group="backbone", reference=100 / 7, reference_label="chance")
plt.title("Table 1 setting: accuracy on the anchor's test split (mean ± std over seeds)", fontsize=9)
plt.show()
"""),
("hide", """
def gains(results, target):
    s = seed_stats(results[results["target"] == target], ["family", "mode"]).set_index(["family", "mode"])["mean"]
    out = {}
    for fam in names:
        for mode in ("anchor+VAS", "anchor+DAS"):
            if (fam, mode) in s and (fam, "anchor") in s:
                out[(fam, mode)] = s[(fam, mode)] - s[(fam, "anchor")]
    return out

g1 = gains(t1, "rafdb")
for (fam, mode), v in g1.items():
    glue(f"t1_{fam}_{MODE_NAMES[mode]}", float(v), display=False)
"""),
("md", """
In the paper both kinds of auxiliary samples raise both backbones above their baselines on RAF-DB
(VGG-F: +0.69 with VAS, +1.40 with DAS; ResNet-34: +1.21 with VAS, +0.61 with DAS). In this run the change
over the baseline is {glue:text}`t1_vgg_VAS:+.2f` (VAS) and {glue:text}`t1_vgg_DAS:+.2f` (DAS) points for the
VGG family and {glue:text}`t1_resnet_VAS:+.2f` / {glue:text}`t1_resnet_DAS:+.2f` for the ResNet family; the
*Claims* chapter says, claim by claim, whether these differences exceed the seed-to-seed noise.

## Table 2 — FER-2013
"""),
("code", """
t2 = pipeline.results_table(params, params["backbones"], train_on="fer2013")
print("Trained on and tested on:", pipeline.role_description(params, "fer2013"))
print("Auxiliary samples: selected from", pipeline.role_description(params, "ms1m"), "with the RAF-DB anchor's primitive learners")
show(paper_comparison(2, t2, "fer2013", backbone_names=names))
"""),
("code", """
mode_table(t2, "fer2013").rename(index=pipeline.display_backbone)
"""),
("md", """
### What the VAS add
The same auxiliary samples join Tables 1 and 2. Their class balance matters as much as their number: a
selection that covers few expressions adds mostly one or two classes to the training set and tilts the
learner toward them, the more so the smaller the labeled set it joins (FER-2013's role here). The VAS per
expression, for each learner:
"""),
("code", """
vas_counts = pd.DataFrame({pipeline.display_backbone(b): np.bincount(pipeline.auxiliary_samples(params, b).labels,
                                                                      minlength=len(LABELS))
                           for b in params["backbones"]}, index=list(LABELS))
vas_counts.index.name = "expression"
glue("vas_coverage", "; ".join(f"{n}: {int((c > 0).sum())} of {len(LABELS)} expressions, {int(c.sum()):,d} images"
                               for n, c in vas_counts.items()), display=False)
show(vas_counts.reset_index())
"""),
("md", """
Expressions the VAS cover — {glue:text}`vas_coverage`. The chapter *Selecting auxiliary samples* shows how one
global margin δ concentrates a selection on the expressions a learner is surest of, and *Beyond the paper*
carries class-balanced rules through to final accuracy.
"""),
("md", """
## Table 3 — CK+ (subject-independent folds)
The paper runs CK+ with VGG-F only, without VAS (CK+ is tiny next to the auxiliary samples): the baseline
and DAS, with 10-fold cross-validation in which no subject appears in both the training and the test folds.
"""),
("code", """
vgg = families.get("vgg")
if vgg is None:
    t3 = None
    print("no VGG-family backbone in this profile; Table 3 is skipped")
else:
    folds = pipeline.kfold_table(params, vgg)
    print("Data:", pipeline.role_description(params, "ckplus"), f"— {params['ckplus_folds']} subject-independent folds")
    t3 = folds.assign(target="ckplus", seed=folds["fold"])
    display(show(paper_comparison(3, t3, "ckplus", backbone_names=names)))
"""),
("code", """
if t3 is not None:
    pooled = folds.groupby("mode")[["correct", "n"]].sum()
    pooled["accuracy over all folds (%)"] = 100 * pooled["correct"] / pooled["n"]
    display(pooled.rename(index=MODE_NAMES))
"""),
("md", """
The ± here is the standard deviation over the folds, not over seeds: each fold holds different subjects, so
it mostly measures how hard the subjects are. The pooled accuracy counts every test image once.

## Try it
- The number of seeds decides how much a difference of a point means:
  `omnifer run notebooks/05_inner_dataset.ipynb -p seeds '[0, 1, 2, 3, 4]'`.
- How the DAS enter training: `-p das_strategy samples` or a heavier `-p das_weight 2.0`.
- A stricter margin gives fewer, cleaner auxiliary samples: `-p delta 0.1` (the primitive learners are
  reused; the selection, distillation and final learners are recomputed).
- Watch whether VAS and DAS move the accuracy by more than the ± of the baseline.
"""),
])
