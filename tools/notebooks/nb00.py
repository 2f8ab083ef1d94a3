import sys; sys.path.insert(0, "tools")
from nbgen import write_notebook

write_notebook("notebooks/00_pipeline.ipynb", [
("md", r"""
# The pipeline (Fig. 1)

The paper's method has four steps, shown in its Fig. 1 and redrawn below from the library
(`omnifer_lib.plots.draw_pipeline`):

**(a) Primitive learner (§3.2).** A CNN $f(\cdot;\theta)$ with classifier weights $\mathbf{w}_j$ is trained
on the small labeled *anchor* set $\{x^l_i, y^l_i\}_{i=1}^N$ by minimising the cross-entropy of Eq. 1,

$$\min \sum_{i=1}^{N} \sum_{j=1}^{m} \mathcal{L}\big(\mathbf{w}_j^{T} f(x_i;\theta),\, y_i\big).$$

**(b) Auxiliary-sample selection (§3.3).** Class centroids are the mean anchor features (Eq. 3),
$\mathrm{center}_k = \frac{\sum_i \mathbb{1}(y^l_i=k)\, f(x^l_i;\theta)}{\sum_i \mathbb{1}(y^l_i=k)}$.
Each unlabeled sample is compared with every centroid by cosine similarity (Eq. 4) and receives
the pseudo-label $\hat k$ only when its nearest centroid wins by a margin $\delta$ (Eq. 5):
accept $\hat k$ iff $\cos(\mathrm{center}_{\hat k}, f_i) \ge \cos(\mathrm{center}_k, f_i) + \delta$ for every $k \neq \hat k$
(see the notes page for why Eq. 5 reads this way). The accepted samples are the
*vanilla auxiliary samples* (VAS).

**(c) Dataset distillation (§3.4, Algorithm 1).** The VAS are compressed into $n$ synthetic images per
class, the *distilled auxiliary samples* (DAS), learned so that one gradient step on them from a random
initialisation gives low loss on real auxiliary samples.

**(d) Final learner.** The anchor set and the DAS train the final FER learner, which is evaluated inside
and across datasets (Tables 1–7) at nearly the cost of training on the anchor alone (Table 8).
"""),
("params", """
# Parameters (papermill injects the profile's values below this cell)
profile = "demo"   # parameter profile: smoke, demo or paper
overrides = {}     # other profile parameters, e.g. {"seed": 1}
"""),
("code", """
import matplotlib.pyplot as plt
from omnifer_lib.plots import draw_pipeline

fig = draw_pipeline()
plt.show()
"""),
("md", r"""
Each box of the figure is a stage of `omnifer_lib.pipeline`, and each stage's result is cached in the
artifact store under a key that hashes exactly the parameters it depends on. Changing the margin $\delta$,
for example, recomputes the selection and what follows it, but reuses the trained primitive learner.

## Try it
This chapter has no parameters worth changing; the chapters that follow each end with the parameters
to try and the `omnifer run` line that reruns them.
"""),
])
