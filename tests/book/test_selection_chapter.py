"""The selection chapter's assembly (omnifer_lib.publish.selection_chapter) on a hand-made run: six pool
samples scored against three centroids (the pool of tests/select/test_report.py), two learners."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from omnifer_lib.engine import pipeline  # noqa: E402
from omnifer_lib.publish import config, paper  # noqa: E402
from omnifer_lib.publish import selection_chapter as C  # noqa: E402
from omnifer_lib.select import ScoreTable, reselect  # noqa: E402
from omnifer_lib.select.report import ratio_text  # noqa: E402

NAMES = ["a", "b", "c"]
FEATURES = np.array([[1, 0, 0], [1, .5, 0], [0, 1, 0], [.5, 1, 0], [1, 1, 0], [0, .9, 1]], float)
LOGITS = np.array([[10, 0, 0], [3, 2.9, 0], [0, 10, 0], [5, 10, 0], [10, 10, 0], [0, 0, 10]], float)
TRUE = np.array([0, 1, 1, 1, 2, 2])  # s1 is selected as a but shows b; s4 is a tie, never selected
VGG, RESNET = pipeline.display_backbone("vgg_small"), pipeline.display_backbone("resnet_small")


class Pool:
    """Six 3 x 4 x 4 images with hidden expressions ``true_labels`` (None: a pool without them)."""

    def __init__(self, true_labels=TRUE, n=6):
        self.true_labels = true_labels
        self.images = torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], -1


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def params(**over):
    base = config.load_profile("smoke", {"backbones": ["vgg_small", "resnet_small"]})
    return {**base, "delta": 0.1, "deltas": [0.0, 0.1, 0.5, 2.0], "softmax_threshold": 0.999, "per_class_cap": None,
            **over}


def hand_run(pool=None, **over) -> C.SelectionRun:
    scores = ScoreTable.from_arrays(FEATURES, LOGITS, np.eye(3), label_names=NAMES)
    sel = reselect(scores, delta=0.1)  # s0, s1 as a; s2, s3 as b
    return C.SelectionRun(params(**over), pool or Pool(), Pool(n=4), {"vgg_small": scores, "resnet_small": scores},
                          {"vgg_small": sel, "resnet_small": reselect(scores, delta=0.5)},
                          {"vgg_small": 61.5, "resnet_small": 58.0})


def test_the_run_names_its_learners_and_the_texts_first_values():
    run = hand_run()
    assert run.backbones == ["vgg_small", "resnet_small"] and run.default == "vgg_small"
    assert run.names == {"vgg_small": VGG, "resnet_small": RESNET} and run.default_name == VGG
    assert run.has_truth and not hand_run(Pool(true_labels=None)).has_truth
    assert run.values == {"delta": 0.1, "default_name": VGG} and isinstance(run.values["delta"], float)


def test_load_reads_every_backbones_stages_from_the_pipeline(monkeypatch):
    scores = ScoreTable.from_arrays(FEATURES, LOGITS, np.eye(3), label_names=NAMES)
    pool, anchor = Pool(), Pool(n=4)

    class Aux:
        selection = reselect(scores, delta=0.1)

    monkeypatch.setattr(pipeline, "dataset", lambda p, role, split: pool if role == pipeline.pool_of(p) else anchor)
    monkeypatch.setattr(pipeline, "manifest_dir", lambda p, b: f"/manifests/{b}")
    monkeypatch.setattr(pipeline, "auxiliary_samples", lambda p, b: Aux())
    monkeypatch.setattr(pipeline, "primitive_learner", lambda p, b: b)
    monkeypatch.setattr(pipeline, "evaluation", lambda b: {"rafdb": {"accuracy": {"vgg_small": 61.5}.get(b, 58.0)}})
    run = C.load(params())
    assert run.pool is pool and run.anchor is anchor
    assert run.manifests == {"vgg_small": "/manifests/vgg_small", "resnet_small": "/manifests/resnet_small"}
    assert run.selections["resnet_small"] is Aux.selection and run.accuracy == {"vgg_small": 61.5, "resnet_small": 58.0}
    with pytest.raises(ValueError, match="at least one backbone"):
        C.load(params(backbones=[]))


def test_roles_learners_and_counts_tables():
    run = hand_run()
    roles = C.roles_table(run)
    assert roles["images"].tolist() == [4, 6]
    assert roles["dataset"].tolist() == [pipeline.role_description(run.params, pipeline.anchor_of(run.params)),
                                         pipeline.role_description(run.params, pipeline.pool_of(run.params))]
    learners = C.learners_table(run).set_index("learner")
    assert learners.index.tolist() == [VGG, RESNET]
    assert learners.loc[VGG, "primitive learner's accuracy on the anchor test split (%)"] == 61.5
    assert learners["auxiliary samples"].tolist() == [4, 2] and learners["pool scored"].tolist() == [6, 6]
    assert learners.loc[VGG, "rule"] == "margin" and "0.1" in learners.loc[VGG, "rule parameters"]
    counts = C.selection_counts(run).set_index("expression")
    assert counts[(VGG, "selected")].tolist() == [2, 2, 0, 4] and counts[(RESNET, "selected")].tolist() == [1, 1, 0, 2]
    assert counts[("pool (hidden labels)", "images")].tolist() == [1, 3, 2, 6]


def test_fig3_and_its_sentence():
    run = hand_run()
    fig = C.fig3(run)
    assert len(fig.axes) == 3 * C.FIG3_PER_CLASS and fig._suptitle.get_text().startswith(f"{VGG}: rule margin")
    assert C.fig3(hand_run(data_source="real", show_real_images=False)) is None
    assert C.fig3_values(run) == {"fig3_sentence": "Of the 4 samples shown, 1 (25 %) carry a pseudo-label that "
                                                   "differs from their hidden expression. No sample was selected "
                                                   "for c at this setting."}


def test_paper_counts_and_their_values():
    table, values = C.paper_counts(hand_run())
    counts = paper.counts()
    assert table["source"].tolist() == ["paper, §3.3", "paper, §4.4.3", f"this run, {VGG}", f"this run, {RESNET}"]
    assert values["this_selected"] == 4 and values["this_pool"] == 6
    assert values["this_share"] == pytest.approx(100 * 4 / 6) and values["this_precision"] == "75.0 %"
    assert values["paper_33"] == counts["selected_auxiliary_samples_sec_3_3"]
    assert values["paper_share"] == pytest.approx(100 * counts["selected_auxiliary_samples_sec_3_3"]
                                                  / counts["ms1m_images"])
    assert C.paper_counts(hand_run(Pool(true_labels=None)))[1]["this_precision"] == C.NO_PRECISION


def test_delta_sweeps_table_and_values():
    sweep = C.delta_sweeps(hand_run())
    assert list(sweep.sweeps) == [VGG, RESNET] and sweep.n_pool == {VGG: 6, RESNET: 6}
    assert set(sweep.sweeps[VGG]["rule"]) == {"margin", "softmax"}
    assert sweep.table.columns[:2].tolist() == ["learner", "margin δ"]
    assert sweep.table["margin δ"].tolist()[:4] == ["0.0", "0.1", "0.5", "2.0"]
    assert sweep.values == {"d_lo": 0.0, "d_hi": 0.5, "n_lo": 5, "n_hi": 2, "p_lo": "80.0 %", "p_hi": "100.0 %",
                            "margin_vs_softmax": f"for {VGG} the centroid margin is more precise at 0 and the softmax "
                                                 "confidence at 1 of the 3 margins δ that select anything; for "
                                                 f"{RESNET} the centroid margin is more precise at 0 and the softmax "
                                                 "confidence at 1 of the 3 margins δ that select anything."}
    blind = C.delta_sweeps(hand_run(Pool(true_labels=None))).values
    assert blind["p_lo"] == C.NO_PRECISION and "no hidden labels" in blind["margin_vs_softmax"]


def test_rule_comparison_tables_and_values():
    comparison = C.rule_comparison(hand_run())
    assert list(comparison.compare) == [VGG, RESNET]
    table = comparison.table.set_index("expression")
    assert table[(VGG, "selected", "margin")].tolist() == [2, 2, 0, 4]
    assert table[(RESNET, "selected", "softmax ≥ 0.999")].tolist() == [1, 1, 1, 3]
    summary = comparison.summary.set_index(["learner", "rule"])
    assert summary.loc[(VGG, "margin"), "precision (%)"] == pytest.approx(75.0)
    values = comparison.values
    assert values["m_prec"] == "75.0 %" and values["s_prec"] == "100.0 %"
    assert values["ratio_margin"] == "unbounded (a class got nothing)"
    assert values["mcp_margin"] == "75.0 %"  # a: 1 of 2 right, b: 2 of 2
    assert set(values) == {"m_prec", "s_prec", "p_topk", "p_quantile", "ratio_margin", "ratio_topk", "ratio_quantile",
                           "mcp_margin", "mcp_topk", "mcp_quantile"}
    top_k = summary.loc[(VGG, "balanced_topk")]
    assert values["p_topk"] == f"{top_k['precision (%)']:.1f} %"
    assert values["ratio_topk"] == ratio_text(top_k["largest / smallest"])
