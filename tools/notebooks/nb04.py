import sys; sys.path.insert(0, "tools")
from nbgen import write_notebook

write_notebook("notebooks/04_distillation.ipynb", [
("md", r"""
# Dataset distillation (§3.4, Algorithm 1)

The selection step leaves many auxiliary samples — the paper reports 117,369 (§4.4.3; §3.3 says 137,769) —
and training on all of them costs ten times the baseline's time per epoch (Table 8). Section 3.4 compresses
them with *dataset distillation* (Wang et al., 2018, the paper's reference [19]): instead of a model, the
*data* is distilled, into $n$ synthetic images per class, the **distilled auxiliary samples** (DAS). The
paper uses $n = 1$: seven images stand in for the whole selection.

The images are learned so that a network that starts from random weights and takes a gradient step on
them alone does well on real auxiliary samples. Write $\tilde{\mathbf x} = \{\tilde x_i\}$ for the distilled
images with their fixed labels $\tilde y_i$ (one class each), $\eta$ for a learned step size, $\ell$ for the
cross-entropy and $p(\theta_0)$ for the distribution of initial weights. Each outer iteration
$t = 1, \dots, T$ of Algorithm 1

1. fetches a batch $\mathbf x_t = \{x_{t,j}\}_{j=1}^{M}$ of real auxiliary samples (with their pseudo-labels);
2. samples a batch of initial weights $\theta_0^j \sim p(\theta_0)$;
3. takes, for each $\theta_0^j$, one gradient step on the distilled images,
   $$\theta_1^j = \theta_0^j - \eta \, \nabla_{\theta_0^j}\, \ell(\tilde{\mathbf x}, \theta_0^j);$$
4. measures the result on the real batch — the line Algorithm 1 leaves blank (lines 7–8):
   $$L^j = \ell(\mathbf x_t, \theta_1^j);$$
5. updates the images and the step size through the step of line 6:
   $$\tilde{\mathbf x} \leftarrow \tilde{\mathbf x} - \alpha \nabla_{\tilde{\mathbf x}} \textstyle\sum_j L^j, \qquad
     \eta \leftarrow \eta - \alpha \nabla_{\eta} \textstyle\sum_j L^j .$$

$L^j$ depends on $\tilde{\mathbf x}$ only through $\theta_1^j$, so its gradient flows back *through the inner
gradient step*: a second-order derivative, which autograd computes when the inner step is built with
`create_graph=True`.

**How the library implements it** (`omnifer_lib.distill`; names of the profile parameters in brackets):

| Algorithm 1 | `omnifer_lib.distill` |
|---|---|
| line 1: $\tilde{\mathbf x}$, $\eta = \eta_0$ | $\tilde{\mathbf x}$ starts as one random real auxiliary sample per class [`images_per_class`]; $\eta_0$ [`eta0`] |
| line 3: real batch $\mathbf x_t$ of size $M$ | `RealSamples.random_batch` [`distill_real_batch`] |
| line 4: $\theta_0^j \sim p(\theta_0)$ | `InitSampler(model, scope=...).sample(seed)`, $K$ per iteration [`distill_inits`, `distill_init_scope`] |
| line 6: inner step | `inner_steps` — $S$ steps $\theta_{s+1} = \theta_s - \eta_s \nabla \ell(\tilde{\mathbf x}, \theta_s)$, each with its own $\eta_s$ [`distill_inner_steps`; Algorithm 1: $S = 1$] |
| line 7 (missing): $L^j = \ell(\mathbf x_t, \theta_S^j)$ | `unrolled_loss(model, θ0, x̃, ỹ, η, x_t, y_t)` |
| line 9: update | Adam on $\tilde{\mathbf x}$ [`distill_lr`] and on $\log\eta$ [`distill_eta_lr`] (so $\eta$ stays positive); $\tilde{\mathbf x}$ clipped to $[0, 1]$ |

The mean over $j$ replaces the sum (Adam does not care about the scale) and $T$ is `distill_iterations`.
"""),
("params", """
profile = "demo"   # parameter profile: smoke, demo or paper
overrides = {}     # any other profile parameter, e.g. {"backbones": ["resnet_small"]}
distill_iterations = 100       # T, outer iterations of Algorithm 1
distill_inits = 2              # K, initial weights θ0^j sampled per outer iteration
distill_inner_steps = 3        # S, inner gradient steps on the distilled images (Algorithm 1: 1)
eta0 = 0.1                     # η0, initial step size of every inner step
distill_init_scope = "head"    # what p(θ0) draws: "all" weights or only the classifier "head"
distill_eval_inits = 5         # fresh initialisations per evaluation (mean ± std)
distill_sgd_epochs = 100       # epochs of the plain-SGD evaluation
"""),
("hide", """
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from myst_nb import glue

from omnifer_lib import config, paper, pipeline
from omnifer_lib.data import LABELS
from omnifer_lib.distill import DistillConfig, InitSampler, evaluate_learned, evaluate_sgd, unrolled_loss
from omnifer_lib.distill.discussion import stack_dataset
from omnifer_lib.distill.plots import (evaluations_table, plot_distill_history, plot_evaluations,
                                       plot_image_gradients, show_image_rows)
from omnifer_lib.reporting import show

params = config.notebook_params(profile, overrides, distill_iterations=distill_iterations,
                                distill_inits=distill_inits, distill_inner_steps=distill_inner_steps, eta0=eta0,
                                distill_init_scope=distill_init_scope, distill_eval_inits=distill_eval_inits,
                                distill_sgd_epochs=distill_sgd_epochs)
backbone = params["backbones"][0]
cfg = DistillConfig.from_params(params)
dev = pipeline.device_of(params)
glue("backbone", pipeline.display_backbone(backbone), display=False)
glue("scope", cfg.init_scope, display=False)
glue("bn_mode", cfg.bn_mode, display=False)
glue("iterations", int(cfg.iterations), display=False)
glue("inits", int(cfg.inits), display=False)
glue("inner_steps", int(cfg.inner_steps), display=False)
glue("eta0_value", float(params["eta0"]), display=False)
"""),
("md", """
## The data
The DAS are distilled for one learner, here the profile's first backbone, **{glue:text}`backbone`**, from the
auxiliary samples its primitive learner selected (previous chapter). Each class keeps its pseudo-label;
a class the selection left empty has no real sample to distil from.
"""),
("code", """
vas = pipeline.auxiliary_samples(params, backbone)
counts = np.bincount(np.asarray(vas.labels, dtype=int), minlength=len(LABELS))
print("anchor:", pipeline.role_description(params, "rafdb"))
print("unlabeled pool:", pipeline.role_description(params, "ms1m"))
n_das = params["images_per_class"] * len(LABELS)
n_paper = paper.counts()["selected_auxiliary_samples_sec_4_4_3"]
display(show(pd.DataFrame([
    {"": "selected auxiliary samples (VAS)", "paper": f"{n_paper:,} (§4.4.3)", "this run": f"{len(vas):,}"},
    {"": "distilled auxiliary samples (DAS)", "paper": "7", "this run": str(n_das)},
    {"": "compression", "paper": f"{n_paper / 7:,.0f} : 1",
     "this run": f"{len(vas) / n_das:,.0f} : 1"},
])))
display(show(pd.DataFrame([{"": "auxiliary samples per class", **dict(zip(LABELS, counts.tolist()))}])))
empty = [LABELS[k] for k in range(len(LABELS)) if counts[k] == 0]
glue("empty_note", (f"Classes without auxiliary samples in this run: {', '.join(empty)}. The distilled image of "
                   "such a class is never pulled towards any real sample: it keeps the uniform noise it starts "
                   "from, and a learner trained on the DAS learns that this noise means that class (Fig. 4 below "
                   "shows it).") if empty else "Every class has auxiliary samples in this run.", display=False)
glue("largest_class", LABELS[int(counts.argmax())], display=False)
glue("largest_share", float(100 * counts.max() / max(1, counts.sum())), display=False)
"""),
("md", r"""
{glue:text}`empty_note` The outer loss is measured on batches of
auxiliary samples, so the DAS also learn the proportions of their pseudo-labels: the largest class,
{glue:text}`largest_class`, holds {glue:text}`largest_share:.0f` % of them.

## What $p(\theta_0)$ draws
Algorithm 1 samples *all* weights of the network from the family's initialiser ($p(\theta_0)$ with
`distill_init_scope = "all"`), as Wang et al. do: the distilled images must then teach a network from
scratch in $S$ steps. The profile can instead keep the primitive learner's trained backbone and draw only
the classifier head afresh (`"head"`): the DAS then teach a *head* on the primitive learner's features,
which is how a few images can help a pretrained learner. This run distils with scope
**{glue:text}`scope`**. The demo profile uses `"head"` because on its synthetic faces small networks started
from random weights learn essentially nothing from seven images, however they are made — the table at the end
of this chapter measures it, for the distilled images and for real ones.

BatchNorm (ResNet-34 has it; the demo's VGG-style net does not) is handled in
`omnifer_lib.distill.functional`: with a sampled backbone the inner steps normalise $\tilde{\mathbf x}$ with
its own batch statistics and the outer step normalises the real batch with those same statistics, as the
trained learner would at test time; with the primitive learner's backbone its running statistics of real
faces are kept. Here: **{glue:text}`bn_mode`** statistics.

## One step of Algorithm 1, by hand
Everything Algorithm 1 does in one outer iteration for one $\theta_0^j$ is one call of `unrolled_loss`. Below,
$\tilde{\mathbf x}$ and $\eta$ are the distilled images and step sizes this run ended with, $\theta_0$ a fresh draw
from $p(\theta_0)$ and $\mathbf x_t$ a batch of $M$ auxiliary samples.
"""),
("code", """
prim = pipeline.primitive_learner(params, backbone)
model = pipeline.load_model(prim, device=dev)
das_art = pipeline.distilled(params, backbone, "algorithm1", "vas")
das = pipeline.load_distilled(das_art)

theta0, buffers = InitSampler(model, scope=cfg.init_scope).sample(seed=2024)
pick = torch.randperm(len(vas), generator=torch.Generator().manual_seed(params["seed"]))[:cfg.real_batch]
x_t = torch.stack([vas[int(i)][0] for i in pick]).to(dev)
y_t = torch.as_tensor(np.asarray(vas.labels)[pick.numpy()]).to(dev)

x_syn = das.images.clone().to(dev).requires_grad_(True)      # x̃  (n·C, 3, H, W), a copy to differentiate
eta = das.step_sizes.clone().to(dev).requires_grad_(True)    # η  (S,)
L = unrolled_loss(model, theta0, x_syn, das.labels.to(dev), eta, x_t, y_t, buffers=buffers, bn_stats=cfg.bn_mode)
grad_x, grad_eta = torch.autograd.grad(L, [x_syn, eta])
with torch.no_grad():  # η = 0: no inner step, the loss of θ0 itself
    L0 = unrolled_loss(model, theta0, x_syn, das.labels.to(dev), torch.zeros_like(eta), x_t, y_t,
                       buffers=buffers, bn_stats=cfg.bn_mode)
print(f"outer loss on the real batch: before the inner steps {L0.item():.3f}, after them L = {L.item():.3f}")
print("∂L/∂η per inner step:", [f"{float(g):+.4f}" for g in grad_eta])
glue("L0", float(L0), display=False)
glue("L1", L.item(), display=False)
"""),
("md", r"""
Taking the {glue:text}`inner_steps` inner steps on the seven images lowers the loss of this $\theta_0$ on the
real batch from {glue:text}`L0:.3f` to {glue:text}`L1:.3f`. The gradient with respect to the step sizes is
checked below against central finite differences, $\big(L(\eta + \epsilon e_s) - L(\eta - \epsilon e_s)\big) / 2\epsilon$,
in double precision (the library's tests do the same for every pixel on tiny networks). ReLU and max-pooling
make $L$ only *piecewise* smooth: a difference quotient whose $\epsilon$ straddles a kink measures a mixture of
two slopes. With $\epsilon = 10^{-7}$ the kinks are rarely crossed; the column for $\epsilon = 10^{-4}$ shows
what a careless check would report.
"""),
("code", """
m64 = pipeline.load_model(prim, device=dev).double()
th64 = {k: v.double() for k, v in theta0.items()}
bf64 = {k: (v.double() if v.is_floating_point() else v) for k, v in buffers.items()}
xs64, xt64, eta64 = x_syn.detach().double(), x_t.double(), das.step_sizes.to(dev).double()

def loss64(e):
    return unrolled_loss(m64, th64, xs64, das.labels.to(dev), e, xt64, y_t, buffers=bf64, bn_stats=cfg.bn_mode)

def central(s, eps):
    step = torch.zeros_like(eta64)
    step[s] = eps
    return ((loss64(eta64 + step) - loss64(eta64 - step)) / (2 * eps)).item()

e_leaf = eta64.clone().requires_grad_(True)
auto = torch.autograd.grad(loss64(e_leaf), e_leaf)[0].detach()
rows = []
for s in range(eta64.numel()):
    fd, a = central(s, 1e-7), auto[s].item()
    rows.append({"inner step s": s + 1, "η_s": eta64[s].item(), "∂L/∂η_s (autograd)": a,
                 "central difference, ε = 1e-7": fd, "relative error": abs(a - fd) / max(abs(fd), 1e-12),
                 "central difference, ε = 1e-4": central(s, 1e-4)})
fd_table = pd.DataFrame(rows)
glue("fd_max_err", float(fd_table["relative error"].max()), display=False)
show(fd_table.assign(**{"relative error": [f"{e:.1e}" for e in fd_table["relative error"]]}), digits=5)
"""),
("md", r"""
The largest relative error is {glue:text}`fd_max_err:.1e`. The gradient with respect to the images tells which
pixels of each distilled image would change the outer loss most (summed over colour channels):
"""),
("code", """
fig = plot_image_gradients(grad_x, column_names=LABELS)
plt.show()
"""),
("md", r"""
## Training curves
The outer loss $\frac1K\sum_j L^j$ is measured on a new real batch with new $\theta_0^j$ at every iteration, so it
is noisy; the moving average shows the trend. This run: $T$ = {glue:text}`iterations` outer iterations,
$K$ = {glue:text}`inits` initialisations each, $S$ = {glue:text}`inner_steps` inner steps.
"""),
("code", """
fig = plot_distill_history(das)
plt.show()
hist = np.asarray(das.loss_history)
w = max(1, min(10, len(hist) // 2))
glue("loss_first", float(hist[:w].mean()), display=False)
glue("loss_last", float(hist[-w:].mean()), display=False)
glue("eta_final", ", ".join(f"{float(e):.3f}" for e in das.step_sizes), display=False)
"""),
("md", """
The mean outer loss of the first iterations is {glue:text}`loss_first:.3f` and of the last ones
{glue:text}`loss_last:.3f`; the learned step sizes end at {glue:text}`eta_final` (from η0 =
{glue:text}`eta0_value`).

## Fig. 4: the distilled images
The paper's Fig. 4 shows seven distilled images from RAF-DB's training set and seven from the samples selected
from MS1M. The same two runs of Algorithm 1 are shown below (the anchor's training set in place of RAF-DB's,
the auxiliary samples of this run in place of MS1M's), with the real sample each VAS image started from.
"""),
("code", """
anchor_das = pipeline.load_distilled(pipeline.distilled(params, backbone, "algorithm1", "anchor"))
start = pipeline.load_distilled(pipeline.distilled(params, backbone, "random_real", "vas"))
fig = show_image_rows({"DAS from the\\nanchor training set\\n(RAF-DB's role)": anchor_das,
                       "DAS from the\\nauxiliary samples\\n(MS1M's role)": das,
                       "start of that run:\\na random auxiliary\\nsample per class": start},
                      column_names=LABELS, cell=1.9, missing="no auxiliary\\nsample")
plt.show()
present = torch.isin(das.labels, start.labels)
change = (das.images[present] - start.images).abs().mean()
glue("pixel_change", float(change), display=False)
"""),
("md", r"""
Pixel values lie in $[0, 1]$; the distilled images of classes with auxiliary samples differ from their real
starting images by {glue:text}`pixel_change:.3f` on average per pixel. The paper's distilled images are "full of
specific texture patterns" without visible semantics (§4.5); how far this run's images move from real faces
depends on the number of iterations, the learning rate `distill_lr` and on what $p(\theta_0)$ draws.

## Do the distilled images teach? Two ways to train on them
A distilled set is tied to the procedure it was learned for: networks drawn from $p(\theta_0)$, $S$ steps with
the learned $\eta_s$, all images in one batch. `evaluate_learned` trains fresh networks *exactly that way*
(initialisations never seen during distillation) and tests them on the anchor's test split;
`evaluate_sgd` trains the same initial networks the ordinary way — minibatch SGD with momentum for
`distill_sgd_epochs` epochs at a fixed learning rate — which is how the images are used once they are mixed
into a training set. Beside Algorithm 1, three sets of the same size that need no bi-level optimisation:
one random real auxiliary sample per class (Algorithm 1's starting point), the per-class mean image, and
Distribution Matching (Zhao & Bilen), which matches mean features under random networks. The random real set
is also evaluated with Algorithm 1's learned step sizes, which separates the effect of learning $\eta$ from that
of learning the images. For reference, the DAS distilled from the anchor's training set (Fig. 4, top row).
"""),
("code", """
test_x, test_y = stack_dataset(pipeline.dataset(params, "rafdb", "test"))
sets = {name: pipeline.load_distilled(pipeline.distilled(params, backbone, method, "vas"))
        for name, method in [("random real", "random_real"), ("mean image", "mean_image"),
                             ("distribution matching", "distribution_matching")]}
protocol = dict(inits=params["distill_eval_inits"], seed=params["seed"], init_scope=cfg.init_scope,
                fixed_init=cfg.fixed_init, device=dev)
sgd = dict(epochs=params["distill_sgd_epochs"], lr=params["distill_sgd_lr"])

def both(result):
    return (evaluate_learned(result, model, test_x, test_y, **protocol),
            evaluate_sgd(result, model, test_x, test_y, **protocol, **sgd))

evals = []
for name, result in [("Algorithm 1 (DAS)", das), *sets.items()]:
    learned, plain = both(result)
    evals += [(name, learned), (name, plain)]
rr_eta = dataclasses.replace(sets["random real"], step_sizes=das.step_sizes.clone())
evals.append(("random real, DAS's η", evaluate_learned(rr_eta, model, test_x, test_y, **protocol)))
evals += [("DAS from the anchor", ev) for ev in both(anchor_das)]
table = evaluations_table(evals)
fig = plot_evaluations(table, title="Trained on seven images only, tested on the anchor's test split")
plt.xticks(rotation=12)
plt.show()
show(table, digits=1)
"""),
("hide", """
acc = {(r["set"], r["trained with"]): r["accuracy (%)"] for _, r in table.iterrows()}
glue("das_learned", float(acc[("Algorithm 1 (DAS)", "learned η and steps")]), display=False)
glue("das_sgd", float(acc[("Algorithm 1 (DAS)", "plain SGD")]), display=False)
glue("rr_learned", float(acc[("random real", "learned η and steps")]), display=False)
glue("rr_sgd", float(acc[("random real", "plain SGD")]), display=False)
glue("rr_eta", float(acc[("random real, DAS's η", "learned η and steps")]), display=False)
glue("fixed_step", ", ".join(f"{float(e):g}" for e in sets["random real"].step_sizes), display=False)
glue("anchor_learned", float(acc[("DAS from the anchor", "learned η and steps")]), display=False)
glue("chance", float(100 / len(LABELS)), display=False)
glue("prim_acc", float(pipeline.evaluation(prim)["rafdb"]["accuracy"]), display=False)
"""),
("md", """
Chance is {glue:text}`chance:.1f` %; the primitive learner itself, trained on the whole anchor training set,
reaches {glue:text}`prim_acc:.1f` % on the same test split. In this run, networks trained the learned way on
the DAS alone reach {glue:text}`das_learned:.1f` % and with plain SGD {glue:text}`das_sgd:.1f` %; one random
real sample per class gives {glue:text}`rr_learned:.1f` % (one step of the fixed size
{glue:text}`fixed_step` that sets without learned steps carry) and {glue:text}`rr_sgd:.1f` % (plain
SGD), and {glue:text}`rr_eta:.1f` % with the DAS's learned step sizes. The DAS distilled from the labeled anchor
reach {glue:text}`anchor_learned:.1f` %. The ± columns are the spread over fresh initialisations: differences
smaller than them say nothing. Read the DAS rows against the random-real rows — Algorithm 1 starts from exactly
those images. Where the selection leaves a class empty (see *The data* above), the VAS-based sets cannot teach
it, while the anchor-based DAS always have every class.

## What $p(\\theta_0)$ draws, measured
The same distillation with the other scope, evaluated the way it was learned, beside one random real sample per
class trained with plain SGD under the same scope:
"""),
("code", """
rows = []
for scope in dict.fromkeys([cfg.init_scope, "all", "head"]):
    p = {**params, "distill_init_scope": scope}
    d = pipeline.load_distilled(pipeline.distilled(p, backbone, "algorithm1", "vas"))
    proto = {**protocol, "init_scope": scope}
    learned = evaluate_learned(d, model, test_x, test_y, **proto)
    plain = evaluate_sgd(sets["random real"], model, test_x, test_y, **proto, **sgd)
    rows.append({"distill_init_scope": scope,
                 "θ0 drawn from p(θ0)": "every weight, family initialiser" if scope == "all" else
                 "classifier head on the primitive learner's backbone",
                 "DAS, learned η and steps (%)": 100 * learned.mean, "± std": 100 * learned.std,
                 "random real, plain SGD (%)": 100 * plain.mean, "± std ": 100 * plain.std,
                 "chance (%)": 100 / len(LABELS)})
scopes = pd.DataFrame(rows)
by_scope = scopes.set_index("distill_init_scope")
glue("all_das", float(by_scope.loc["all", "DAS, learned η and steps (%)"]), display=False)
glue("all_rr", float(by_scope.loc["all", "random real, plain SGD (%)"]), display=False)
show(scopes, digits=1)
"""),
("md", """
With every weight drawn afresh, networks trained on the DAS reach {glue:text}`all_das:.1f` % and networks
trained on real images with plain SGD {glue:text}`all_rr:.1f` % (chance {glue:text}`chance:.1f` %). When both
stay near chance the limitation lies in learning a face classifier from scratch out of seven images of this
data, not in the distiller; that is why the demo distils for the primitive learner's backbone. The paper's
setting, VGG-Face and ResNet-34 starting from pretrained weights, is closer to `"head"` than to `"all"`.

## Exporting a distilled set
Every distilled set in the artifact store is already exported: `das.pt` (images, labels, learned step sizes,
configuration, loss and step-size history; load it with `omnifer_lib.distill.load_das`) and one PNG per image.
To write one to a folder of your choice, from the command line

```
omnifer export-das OUT_DIR --profile demo --method algorithm1 --source vas
```

or from Python `omnifer_lib.distill.export_das(result, out_dir)`. The PNGs are 8-bit and clipped to
$[0, 1]$; the tensors in `das.pt` are the exact values.
"""),
("code", """
print(das_art.path)
print(sorted(p.name for p in (das_art.path / "images").iterdir()))
"""),
("md", """
## Try it
- More outer iterations let the images move further from their real starting points:
  `omnifer run notebooks/04_distillation.ipynb -p distill_iterations 300`.
- Algorithm 1 as printed, one inner step: `-p distill_inner_steps 1`; the literal $p(\\theta_0)$ over all
  weights: `-p distill_init_scope all`.
- More initialisations per iteration average the outer gradient over more networks: `-p distill_inits 4`
  (cost grows linearly).
- Another learner family (with BatchNorm): `-p backbones '["resnet_small"]'`.
- Watch the gap between the learned-way and plain-SGD rows, and whether the DAS rows beat the random-real
  rows by more than their ± — that is the question distillation has to answer.
"""),
])
