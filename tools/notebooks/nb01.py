import sys; sys.path.insert(0, "tools")
from nbgen import write_notebook

write_notebook("notebooks/01_datasets.ipynb", [
("md", r"""
# Datasets (Fig. 2)

The paper trains on **RAF-DB** (the labeled *anchor*), selects auxiliary samples from the
unlabeled **MS-Celeb-1M** pool, and tests inside RAF-DB, FER-2013 and CK+ and across to
CK+, JAFFE, MMI and FER-2013 (§4.1). Every dataset's own label codes are mapped to one
canonical order used everywhere in this book: neutral, anger, disgust, fear, happy, sad,
surprise (`omnifer_lib.data.LABELS`).

With `data_source = "real"` (the `paper` profile) this chapter reads your licensed copies in their
published layouts (set `rafdb_root`, `fer2013_root`, `mmi_root`, `ckplus_root`, `jaffe_root` and
`ms1m_root`; each loader's docstring gives the exact layout). With `data_source = "synthetic"` (the
`demo` and `smoke` profiles) each dataset's **role** is played by a domain of the embedded synthetic
faces (`omnifer_lib.data.synthetic`): rendered faces whose expressions are built from facial action
units after the EMFACS prototypes, with identities, poses, lighting and occluders drawn at random. The
synthetic domains carry the paper's dataset names only to say which role they play — their numbers are
never real-data numbers.
"""),
("params", """
profile = "demo"   # parameter profile: smoke, demo or paper
overrides = {}     # any other profile parameter, e.g. {"n_pool": 40000}
data_source = "synthetic"
image_size = 32
seed = 0
"""),
("hide", """
import matplotlib.pyplot as plt
import pandas as pd

from omnifer_lib import config, pipeline
from omnifer_lib.data import describe
from omnifer_lib.data.figures import DISPLAY, FIG2_ORDER, class_table, example_grid

params = config.notebook_params(profile, overrides, data_source=data_source, image_size=image_size, seed=seed)
pipeline.preflight(params)
"""),
("code", """
# The datasets exactly as the later chapters use them (pipeline.dataset).
splits = {"rafdb": ("train", "test"), "fer2013": ("train", "test"), "mmi": ("test",), "ckplus": ("train", "test"),
          "jaffe": ("test",), "ms1m": ("train",)}
if params["data_source"] == "real":
    splits.update({"mmi": ("all",), "ckplus": ("all",), "jaffe": ("all",)})
datasets = {name: {split: pipeline.dataset(params, name, split) for split in s} for name, s in splits.items()}
pd.DataFrame([{"dataset": DISPLAY[name], "split": split, "role": pipeline.role_description(params, name),
               "what it is": describe(ds)}
              for name, parts in datasets.items() for split, ds in parts.items()])
"""),
("md", """
## Fig. 2: one example per expression

Rows from top to bottom: neutral, anger, disgust, fear, happy, sad, surprise; columns in
the paper's order RAF-DB, FER-2013, MMI, CK+, JAFFE. As the paper notes (§4.2), the
datasets differ in pose (frontal lab faces in CK+ and JAFFE), colour (little in FER-2013,
CK+ and JAFFE) and in *how* an expression is posed — the synthetic lab domains pose some
expressions with other action units than the anchor, which is why cross-dataset accuracy
is lower than inner-dataset accuracy. An empty cell marks a class the dataset lacks
(CK+48, for instance, has no neutral).
"""),
("code", """
suffix = "\\n(synthetic role)" if params["data_source"] == "synthetic" else ""
first_split = {name: next(iter(datasets[name].values())) for name in FIG2_ORDER}
fig = example_grid(first_split, seed=params["seed"], titles={n: DISPLAY[n] + suffix for n in first_split})
plt.show()
"""),
("md", """
## Images per class and split

Counts of the canonical classes in every split. The unlabeled pool's labels are hidden
from the method (`-1`, column *unlabeled*); for the synthetic pool the rendered
expressions are known and shown in the *hidden labels* row — they are used only to
measure pseudo-label precision later, never for training.
"""),
("code", """
class_table(datasets, include_hidden=True)
"""),
("md", """
## Try it
- A bigger unlabeled pool to select from: `omnifer run notebooks/01_datasets.ipynb -p overrides '{"n_pool": 40000}'`
  (pass the same override to `omnifer reproduce` so that every chapter uses it).
- Your own copies of the datasets: `omnifer reproduce --profile paper -p rafdb_root /data/RAF-DB ...`;
  a missing root stops the run with the layout that was expected.
- Look at how the same expression is posed in the different columns of Fig. 2: that difference is what
  the cross-dataset tables measure.
"""),
])
