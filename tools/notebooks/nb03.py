import sys; sys.path.insert(0, "tools")
from nbgen import write_notebook

write_notebook("notebooks/03_auxiliary_selection.ipynb", [
("md", r"""
# Selecting auxiliary samples (§3.3, Fig. 3)

The primitive learner of the previous chapter knows expressions only from the small labeled anchor.
The paper's second step uses it to pick, from a huge *unlabeled* pool of faces (5.8 million
MS-Celeb-1M images), the samples it can label reliably: the *auxiliary samples*. This chapter
explains the rule, reproduces the paper's Fig. 3 and its counts, and then measures what the paper could
not: how often the pseudo-labels are right, how that depends on the margin $\delta$, whether the rule
beats softmax confidence, and what one global $\delta$ does to the balance of the classes.

## The rule: Eq. 2–5
Let $f(x;\theta)$ be the primitive learner's features (the layer before the softmax output) and
$\mathbf w_j$ its classifier weights for the $m = 7$ expressions. The usual way to pseudo-label an
unlabeled sample $x^{ul}_i$ is its **softmax confidence** (Eq. 2),

$$P(y_i \mid f(x^{ul}_i;\theta)) = \frac{\exp\big(\mathbf w_{y_i}^{T} f(x^{ul}_i;\theta)\big)}{\sum_{j=1}^{m} \exp\big(\mathbf w_j^{T} f(x^{ul}_i;\theta)\big)},$$

keeping the samples whose largest probability exceeds a threshold. The paper argues against it: the
pool comes from another environment than the labeled data, and under such a *domain shift* the
probabilities, and the pseudo-labels made from them, are error-prone. It compares **features**
instead. The **class centroids** are the mean anchor features of each expression (Eq. 3),

$$\mathrm{center}_k = \frac{\sum_i \mathbb 1(y^l_i = k)\, f(x^l_i;\theta)}{\sum_i \mathbb 1(y^l_i = k)},$$

each pool sample is compared with every centroid by cosine similarity (Eq. 4),

$$d(\mathrm{center}_k, f_i) = \cos\big(\mathrm{center}_k, f(x^{ul}_i;\theta)\big),$$

and it receives the pseudo-label $\hat k$ only if its nearest centroid wins by a **margin** $\delta$. The
paper prints Eq. 5 as

$$y^{ul}_i = \hat k \quad \text{if}\quad d(\mathrm{center}_{\hat k}, f_i) \le d(\mathrm{center}_k, f_i) - \delta \quad \forall k \ne \hat k,$$

which, with $d$ a cosine *similarity*, would pick the *least* similar class. The text calls $d$ a cosine
*distance* and sorts Fig. 3 by the distance "to the nearest class centroid", so the inequality is meant
for the distance $1 - \cos$ (see the *Notes on the paper* page). In similarity terms, as implemented in
`omnifer_lib.select.margin_select`:

$$\text{accept } \hat k \iff \cos(\mathrm{center}_{\hat k}, f_i) \ge \cos(\mathrm{center}_k, f_i) + \delta \quad \forall k \ne \hat k,$$

that is, the best similarity minus the second best — the sample's *margin* — is at least $\delta$.
$\delta = 0$ is plain nearest-centroid labelling (a tie between the two best centroids is always
rejected); a larger $\delta$ keeps fewer, less ambiguous samples. The paper gives no value of $\delta$.

The accepted samples with their pseudo-labels are the *vanilla auxiliary samples* (VAS) used in §4.4
and distilled in the next chapter.
"""),
("params", """
profile = "demo"              # parameter profile: smoke, demo or paper
overrides = {}                # any other profile parameter, e.g. {"backbones": ["vgg_small"]}
delta = 0.1                  # the margin δ of Eq. 5
deltas = [0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2]   # margins of the δ sweep
selection_rule = "margin"     # margin (paper), softmax, balanced_topk or balanced_quantile
softmax_threshold = 0.9       # confidence threshold of the softmax rule (null: matched to the margin rule's count)
per_class_k = None            # balanced_topk: samples per class (null: matched)
class_quantile = None         # balanced_quantile: per-class margin quantile (null: matched)
per_class_cap = 400           # at most this many auxiliary samples per class, after any rule (null: no cap)
"""),
("hide", """
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from myst_nb import glue

from omnifer_lib import config, paper, pipeline
from omnifer_lib.reporting import show
from omnifer_lib.select import CHUNK_COLUMNS, compare_rules, delta_sweep, reselect, selection_report
from omnifer_lib.select.plots import (fig3_cells, plot_delta_sweep, plot_precision_vs_count,
                                      plot_rule_comparison, selected_samples_grid)
from omnifer_lib.select.report import counts_table, paper_counts_table, per_class_wide, rule_summary

params = config.notebook_params(profile, overrides, delta=delta, deltas=deltas, selection_rule=selection_rule,
                                softmax_threshold=softmax_threshold, per_class_k=per_class_k,
                                class_quantile=class_quantile, per_class_cap=per_class_cap)
backbones = params["backbones"]
default = backbones[0]          # the learner of Fig. 3 and of the per-class comparisons
name = pipeline.display_backbone
pct = lambda x: float(100 * x) if x == x else float("nan")  # NaN-safe percentage
pct_text = lambda p: f"{p:.1f} %" if p == p else "n/a (no hidden labels)"  # for the prose
pool = pipeline.dataset(params, pipeline.POOL, "train")
anchor = pipeline.dataset(params, pipeline.ANCHOR, "train")
true_labels = getattr(pool, "true_labels", None)  # the synthetic pool keeps its rendered expressions
has_truth = true_labels is not None
glue("delta", float(params["delta"]), display=False)
glue("default_name", name(default), display=False)
"""),
("md", """
## Which data plays which role
The centroids come from the anchor's training split; the pool is searched without its labels.
"""),
("code", """
show(pd.DataFrame({"role": ["labeled anchor (primitive learner, centroids)", "unlabeled pool (auxiliary samples)"],
                   "dataset": [pipeline.role_description(params, pipeline.ANCHOR),
                               pipeline.role_description(params, pipeline.POOL)],
                   "images": [len(anchor), len(pool)]}))
"""),
("md", """
## Scoring the pool once
`pipeline.selection` runs the primitive learner over the pool in batches and writes a *manifest*: for
every pool sample a few numbers, never its features or image. Memory stays constant however large the
pool is, and an interrupted run resumes where it stopped. The margin $\\delta$ and the rule are applied
afterwards, to the stored numbers, so changing them costs no feature extraction. Each row of the
manifest holds:
"""),
("code", """
show(pd.DataFrame(list(CHUNK_COLUMNS.items()), columns=["column", "meaning"]))
"""),
("code", """
manifests = {b: pipeline.manifest_dir(params, b) for b in backbones}
vas = {b: pipeline.auxiliary_samples(params, b) for b in backbones}
accuracy = {b: pipeline.evaluation(pipeline.primitive_learner(params, b))[pipeline.ANCHOR]["accuracy"]
            for b in backbones}
show(pd.DataFrame([{"learner": name(b), "primitive learner's accuracy on the anchor test split (%)": accuracy[b],
                    "pool scored": len(pool), "rule": vas[b].selection.rule,
                    "rule parameters": str(vas[b].selection.params), "auxiliary samples": len(vas[b])}
                   for b in backbones]), digits=1)
"""),
("md", """
## Fig. 3: the selected auxiliary samples
The paper's Fig. 3 shows selected samples of each expression sorted by their distance to the class
centroid. Below, for the {glue:text}`default_name` learner, each row is an expression and shows its
selected auxiliary samples most similar to the class centroid first (the number over each image is the
cosine similarity; the number under the expression's name, how many were selected for it).

The paper could not say whether a pseudo-label was *right*: MS-Celeb-1M has no expression labels. The
synthetic pool does — each face was rendered with a known expression, hidden from the method — so here a
**red frame** marks a sample whose pseudo-label disagrees with the expression it was rendered with.
"""),
("code", """
sel = vas[default].selection
fig = selected_samples_grid(pool, sel, 8, true_labels=true_labels,
                            title=f"{name(default)}: rule {sel.rule} {sel.params}")
plt.show()
cells = fig3_cells(sel, 8, true_labels)
shown = sum(len(row) for row in cells)
wrong = sum(bool(c.wrong) for row in cells for c in row)
empty = [n for n, row in zip(sel.label_names, cells) if not row]
sentence = (f"Of the {shown} samples shown, {wrong} ({100 * wrong / max(1, shown):.0f} %) carry a pseudo-label "
            "that differs from their hidden expression." if has_truth else
            "This pool has no hidden labels, so no frame can be drawn.")
if empty:
    listed = ", ".join(empty[:-1]) + (" and " if len(empty) > 1 else "") + empty[-1]
    sentence += f" No sample was selected for {listed} at this setting."
glue("fig3_sentence", sentence, display=False)
"""),
("md", """
{glue:text}`fig3_sentence` Being the closest to a centroid is no guarantee of being right: the
centroids summarise what the primitive learner learned from the anchor, including its confusions, and a
face can sit firmly inside the region of the wrong class.

## How many were selected, and how many are right
The paper reports only a total. The table gives, per expression and learner, the selected auxiliary
samples, their share of the pool and — with the hidden labels — their **precision** (the share of the
samples selected as class $k$ that truly show $k$) and **recall** (the share of the pool's true-$k$
samples that were selected as $k$). The first column is the pool's own class distribution, which the
method never sees; a rare class in the pool can only give few correct samples, so its precision is low
even for a good learner.
"""),
("code", """
show(counts_table({name(b): vas[b].selection for b in backbones}, true_labels).reset_index(), digits=1)
"""),
("code", """
counts = paper_counts_table({f"this run, {name(b)}": (len(vas[b]), len(pool)) for b in backbones}, paper.counts())
share = {b: 100 * len(vas[b]) / max(1, len(pool)) for b in backbones}
glue("paper_share", float(counts["share of pool (%)"].iloc[0]), display=False)
glue("this_share", float(share[default]), display=False)
glue("this_selected", int(len(vas[default])), display=False)
glue("this_pool", int(len(pool)), display=False)
prec = {b: selection_report(vas[b].selection, true_labels).set_index("name").loc["all", "precision"]
        for b in backbones}
glue("this_precision", pct_text(pct(prec[default])), display=False)
paper_n = paper.counts()
glue("paper_33", int(paper_n["selected_auxiliary_samples_sec_3_3"]), display=False)
glue("paper_443", int(paper_n["selected_auxiliary_samples_sec_4_4_3"]), display=False)
glue("paper_pool", int(paper_n["ms1m_images"]), display=False)
show(counts)
"""),
("md", """
The paper selected {glue:text}`paper_33:,d` auxiliary samples from the {glue:text}`paper_pool:,d` images of
MS-Celeb-1M in §3.3 and names {glue:text}`paper_443:,d` in §4.4.3 (the *Notes on the paper* page discusses
the two counts): about
{glue:text}`paper_share:.1f` % of the pool. The {glue:text}`default_name` learner here keeps
{glue:text}`this_selected:,d` of {glue:text}`this_pool:,d` pool images ({glue:text}`this_share:.1f` %) at
$\\delta =$ {glue:text}`delta:.2f`, with an overall pseudo-label precision of
{glue:text}`this_precision`. The shares are not comparable as such: the paper's $\\delta$ is unknown,
its pool is a real celebrity collection, and its learners are far stronger; the shape of the trade-off
below is what transfers.

## Beyond the paper: the margin δ trades count for precision
Because the manifest stores every sample's margin, the whole range of $\\delta$ costs one pass over a few
numbers per sample. For each learner, left: selected auxiliary samples per expression (log scale; the total
in black); right: their pseudo-label precision (overall in black, dashed). A curve that stops has no
sample left at larger $\\delta$.
"""),
("code", """
sweeps = {b: delta_sweep(manifests[b], params["deltas"], true_labels, rules=("margin", "softmax"))
          for b in backbones}  # the rule alone: no per-class cap, whatever the profile sets
fig, axes = plt.subplots(len(backbones), 2, figsize=(10.5, 3.5 * len(backbones)), squeeze=False)
for row, b in zip(axes, backbones):
    plot_delta_sweep(sweeps[b], "margin", axes=row, title=name(b))
plt.show()
"""),
("code", """
by_delta = pd.concat([rule_summary(sweeps[b][sweeps[b]["rule"] == "margin"], by="delta").assign(learner=name(b))
                      for b in backbones])
by_delta = by_delta.set_index(["learner", "delta"])[["selected", "smallest class", "largest class", "precision",
                                                     "mean class precision"]]
by_delta[["precision", "mean class precision"]] *= 100
by_delta = by_delta.rename(columns={"precision": "precision (%)", "mean class precision": "mean class precision (%)"})
d_tab = by_delta.loc[name(default)]
d_lo = float(d_tab.index.min())
d_hi = float(d_tab[d_tab["selected"] > 0].index.max()) if (d_tab["selected"] > 0).any() else d_lo
glue("d_lo", d_lo, display=False)
glue("d_hi", d_hi, display=False)
glue("n_lo", int(d_tab.loc[d_lo, "selected"]), display=False)
glue("n_hi", int(d_tab.loc[d_hi, "selected"]), display=False)
glue("p_lo", pct_text(float(d_tab.loc[d_lo, "precision (%)"])), display=False)
glue("p_hi", pct_text(float(d_tab.loc[d_hi, "precision (%)"])), display=False)
show(by_delta.reset_index().astype({"delta": str}).rename(columns={"delta": "margin δ"}), digits=1)
"""),
("md", """
For {glue:text}`default_name`, raising $\\delta$ from {glue:text}`d_lo:.2f` to {glue:text}`d_hi:.2f`
(the largest swept margin that still selects anything) shrinks the auxiliary samples from
{glue:text}`n_lo:,d` to {glue:text}`n_hi:,d` and moves their overall precision from
{glue:text}`p_lo` to {glue:text}`p_hi`. Precision need not rise with $\\delta$, and the classes do
not shrink alike: a class whose centroid stands apart from the others keeps large margins — whether or not
its samples truly show that expression, as the precision panel tells — while the classes with nearby
centroids lose their samples first. So a single $\\delta$ also sets the class balance of the auxiliary
samples (the columns *smallest class* and *largest class*; more on this below).

## Beyond the paper: centroid margin vs softmax confidence at matched counts
The paper prefers the centroid margin to softmax confidence but shows no comparison. A fair one compares
the two rules at the *same number* of selected samples: for every $\\delta$ of the sweep, the softmax rule
keeps the samples with the highest softmax confidence, as many as the margin rule keeps. Each point below
is one $\\delta$; higher is better.
"""),
("code", """
fig = plot_precision_vs_count({name(b): sweeps[b] for b in backbones}, rules=("margin", "softmax"),
                              n_pool={name(b): len(pool) for b in backbones})
plt.show()
"""),
("code", """
parts = []
for b in backbones if has_truth else []:
    totals = sweeps[b][sweeps[b]["class"] < 0].pivot_table(index="delta", columns="rule", values="precision")
    valid = totals.dropna()
    wins = int((valid["margin"] > valid["softmax"]).sum())
    losses = int((valid["margin"] < valid["softmax"]).sum())
    parts.append(f"for {name(b)} the centroid margin is more precise at {wins} and the softmax confidence at "
                 f"{losses} of the {len(valid)} margins δ that select anything" if len(valid) else
                 f"for {name(b)} no swept δ selects any sample with a known label")
if not has_truth:
    parts = ["the pool has no hidden labels, so the two rules cannot be compared by precision"]
    print("The pool has no hidden labels: precision cannot be measured, only counts are shown.")
glue("margin_vs_softmax", "; ".join(parts) + ".", display=False)

compare = {b: compare_rules(manifests[b], params["delta"], true_labels, per_class_cap=params["per_class_cap"])
           for b in backbones}
tables = []
for b in backbones:
    tidy = compare[b][compare[b]["rule"].isin(["margin", "softmax"])]
    if params["softmax_threshold"] is not None:  # the softmax rule at its own fixed threshold, for reference
        fixed = reselect(manifests[b], rule="softmax", softmax_threshold=params["softmax_threshold"],
                         per_class_cap=params["per_class_cap"])
        tidy = pd.concat([tidy, selection_report(fixed, true_labels).assign(
            rule=f"softmax ≥ {params['softmax_threshold']:g}")])
    wide = pd.concat({"selected": per_class_wide(tidy, "selected"),
                      "precision (%)": 100 * per_class_wide(tidy, "precision")}, axis=1)
    tables.append(pd.concat({name(b): wide}, axis=1))
at_delta = {b: compare[b][compare[b]["class"] < 0].set_index("rule")["precision"] for b in backbones}
glue("m_prec", pct_text(pct(at_delta[default]["margin"])), display=False)
glue("s_prec", pct_text(pct(at_delta[default]["softmax"])), display=False)
show(pd.concat(tables, axis=1).reset_index(), digits=1)
"""),
("md", """
At $\\delta =$ {glue:text}`delta:.2f` and the same count, the {glue:text}`default_name` learner's auxiliary
samples are {glue:text}`m_prec` correct by centroid margin and {glue:text}`s_prec` by softmax
confidence. Over the whole sweep, {glue:text}`margin_vs_softmax` The columns *softmax ≥ …* show the softmax rule
at its fixed threshold (the parameter `softmax_threshold`), as it is usually applied: its count is then
whatever the threshold gives, which is why thresholds are compared here at matched counts.

Whether the paper's argument holds depends on how strong the domain shift between anchor and pool is and
on the learner; on this data the measurement above, not the argument, is the answer.

## Beyond the paper: one δ for all classes vs class-balanced selection
The paper names class imbalance as a problem (it motivates distillation with it) but its rule does not
address it: one global $\\delta$ keeps many samples of the expressions the learner is sure about and few of
the others. Two class-balanced variants, each matched to the margin rule's total count at $\\delta$:

- **balanced top-$k$**: per class, the $k = \\lceil \\text{count} / 7 \\rceil$ samples with the largest margins
  (a class with fewer candidates keeps all of them, so the total can be smaller);
- **balanced quantile**: per class, the samples whose margin lies above that class's own quantile, so that
  every class keeps the same *share* of its candidates.

Below, for {glue:text}`default_name`, the selected samples and precision per expression under each rule
(softmax confidence at the matched count included for reference), then a summary for every learner.
"""),
("code", """
fig = plot_rule_comparison(compare[default], rules=["margin", "balanced_topk", "balanced_quantile", "softmax"],
                           title=f"{name(default)}, matched to the margin rule at δ = {params['delta']:g}")
plt.show()
"""),
("code", """
summary = pd.concat([rule_summary(compare[b]).assign(learner=name(b)) for b in backbones])
summary = summary.set_index(["learner", "rule"])
summary[["precision", "mean class precision"]] *= 100
summary = summary.rename(columns={"precision": "precision (%)", "mean class precision": "mean class precision (%)"})
s = summary.loc[name(default)]
ratio = lambda r: (f"{r:.1f}" if np.isfinite(r) else "unbounded (a class got nothing)")
glue("ratio_margin", ratio(s.loc["margin", "largest / smallest"]), display=False)
glue("ratio_topk", ratio(s.loc["balanced_topk", "largest / smallest"]), display=False)
glue("ratio_quantile", ratio(s.loc["balanced_quantile", "largest / smallest"]), display=False)
glue("mcp_margin", pct_text(float(s.loc["margin", "mean class precision (%)"])), display=False)
glue("mcp_topk", pct_text(float(s.loc["balanced_topk", "mean class precision (%)"])), display=False)
glue("mcp_quantile", pct_text(float(s.loc["balanced_quantile", "mean class precision (%)"])), display=False)
glue("p_topk", pct_text(float(s.loc["balanced_topk", "precision (%)"])), display=False)
glue("p_quantile", pct_text(float(s.loc["balanced_quantile", "precision (%)"])), display=False)
show(summary.reset_index(), digits=1)
"""),
("md", """
*largest / smallest* is the ratio of the largest to the smallest class (inf: a class got nothing);
*precision* pools all selected samples, *mean class precision* averages the classes, so that a rare
expression counts as much as a frequent one. For {glue:text}`default_name` the paper's rule gives a
largest/smallest ratio of {glue:text}`ratio_margin`, balanced top-$k$ {glue:text}`ratio_topk` and
the balanced quantile {glue:text}`ratio_quantile`; overall precision is {glue:text}`m_prec`,
{glue:text}`p_topk` and {glue:text}`p_quantile`, mean class precision
{glue:text}`mcp_margin`, {glue:text}`mcp_topk` and {glue:text}`mcp_quantile`. A balanced
rule gives every expression its share of the auxiliary samples, which the later training needs, but it
asks a rare or poorly separated expression for as many samples as a frequent, well separated one: the
pool may hold few of them (first column of the counts table) and the learner may find them poorly.
Whether balance costs or gains precision is therefore read off the bars, class by class.

## Try it
- **A larger margin** keeps fewer, cleaner auxiliary samples:
  `omnifer run notebooks/03_auxiliary_selection.ipynb -p delta 0.2`.
  This reruns in seconds: the primitive learners and the pool's manifest are cached and reused, and $\\delta$
  only re-thresholds the stored margins. Watch Fig. 3's red frames and the counts table.
- **Another rule** for Fig. 3 and the counts table: `-p selection_rule balanced_quantile` (or
  `balanced_topk`, `softmax`), optionally with `-p per_class_k 500`, `-p class_quantile 0.8` or
  `-p softmax_threshold 0.95`; `-p per_class_cap 1000` caps every class after any rule.
- **A finer sweep**: `-p deltas '[0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.3]'`.
- The rule and $\\delta$ chosen here are the ones the later chapters distil and train with when run with the
  same `-p` values; there, unlike here, a new $\\delta$ means new distilled samples and new final learners.
"""),
])
