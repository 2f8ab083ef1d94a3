import sys; sys.path.insert(0, "tools")
from nbgen import write_notebook

write_notebook("notebooks/10_claims.ipynb", [
("md", r"""
# The paper's claims, checked

Every claim below is one the paper makes in its text or tables, written as a comparison of two measured
quantities (or of a cost ratio with a bound). The verdict is computed from this run's results, never
written by hand:

- **reproduced** — the difference has the claimed sign and exceeds the seed-to-seed noise: more than twice
  its standard error over seeds (folds for CK+);
- **inconclusive** — the claimed sign, but within the noise: more seeds are needed to tell;
- **not reproduced** — the opposite sign (or outside the stated bound);
- **not measured** — this run has no numbers for it.

On the demo profile the verdicts describe the *demo* (synthetic data, small CPU networks): they test
whether the mechanisms the paper describes show up under a controlled domain shift, not whether the
paper's RAF-DB numbers hold. With the `paper` profile the same page checks the claims on real data.
"""),
("params", """
profile = "demo"   # parameter profile: smoke, demo or paper
overrides = {}     # any other profile parameter
backbones = ["vgg_small", "resnet_small"]
seeds = [0, 1, 2]
delta = 0.1
"""),
("hide", """
import pandas as pd
from myst_nb import glue

from omnifer_lib import claims, config, pipeline

params = config.notebook_params(profile, overrides, backbones=backbones, seeds=seeds, delta=delta)
results = claims.collect_results(params)
verdicts = claims.check_all(claims.paper_claims(), results)
counts = verdicts["verdict"].value_counts()
for v in (claims.REPRODUCED, claims.INCONCLUSIVE, claims.NOT_REPRODUCED, claims.NOT_MEASURED):
    glue(f"n_{v.replace(' ', '_')}", int(counts.get(v, 0)), display=False)
glue("n_claims", len(verdicts), display=False)
print("Data:", pipeline.role_description(params, "rafdb"), "| pool:", pipeline.role_description(params, "ms1m"))
print("Learners:", ", ".join(pipeline.display_backbone(b) for b in params["backbones"]), "| seeds:", params["seeds"])
"""),
("md", """
Of {glue:text}`n_claims` claims, this run reproduces {glue:text}`n_reproduced`, finds
{glue:text}`n_inconclusive` inconclusive, does not reproduce {glue:text}`n_not_reproduced`, and did not
measure {glue:text}`n_not_measured`.
"""),
("code", """
def colour(v):
    return {"reproduced": "background-color: #d9f2d9", "inconclusive": "background-color: #fff2cc",
            "not reproduced": "background-color: #f8d7da"}.get(v, "")

verdicts.style.map(colour, subset=["verdict"]).hide(axis="index")
"""),
("md", """
"paper" gives the paper's numbers (accuracy in %, or the cost ratio); "this run" gives mean ± standard
deviation and the number of seeds (folds for CK+). The selection claims compare the pseudo-label precision
(%) of the two rules at the same number of selected samples, measured against the synthetic pool's hidden
labels; the paper could not measure precision on MS-Celeb-1M, which has no expression labels.

## Try it
- More seeds turn inconclusive verdicts into decided ones: `omnifer reproduce -p seeds '[0, 1, 2, 3, 4]'`.
- Longer training changes every learner: `omnifer reproduce -p epochs 20`, then read this page again.
"""),
])
