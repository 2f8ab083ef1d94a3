"""One record per selection rule: the lists of rules are derived from the records, and adding a rule
is what CONTRIBUTING's recipe says (a decision function and its record in select/rules.py, and a
choice of ``selection_rule`` in the profile parameters)."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import changed_files

from omnifer_lib.engine import pipeline
from omnifer_lib.publish.selection_plots import RULE_NAMES
from omnifer_lib.select import RULES, decide, rule_parameters
from omnifer_lib.select.rules import RULE_PARAMETERS, SELECTION_RULES

LIB = Path(__file__).resolve().parents[2] / "omnifer_lib"


def test_the_lists_of_rules_come_from_the_records():
    assert RULES == ("margin", "softmax", "balanced_topk", "balanced_quantile", "adaptive_threshold",
                     "distribution_alignment", "curriculum")
    assert RULE_PARAMETERS == ("softmax_threshold", "per_class_k", "class_quantile", "curriculum_share")
    assert pipeline.SELECT_KEYS == ("selection_rule", "delta", *RULE_PARAMETERS, "per_class_cap")
    assert set(RULE_NAMES) == set(RULES) and RULE_NAMES["margin"] == "centroid margin (paper)"
    assert all(SELECTION_RULES[r].name == r for r in RULES)
    assert rule_parameters("softmax", delta=0.1, softmax_threshold=0.9, per_class_cap=None) == \
        {"softmax_threshold": 0.9, "per_class_cap": None}
    assert rule_parameters("softmax", delta=0.1, softmax_threshold=None) == \
        {"softmax_threshold": None, "delta": 0.1, "per_class_cap": None}
    assert rule_parameters("margin", delta=0.1, softmax_threshold=0.9) == {"delta": 0.1, "per_class_cap": None}


def test_decide_records_the_parameters_in_the_order_it_used_them():
    cols = {"pool_index": np.arange(6), "nearest": np.array([0, 1, 1, 2, -1, 0]),
            "margin": np.array([0.3, 0.05, 0.2, 0.15, 0.0, 0.01])}
    labels, score, params = decide(cols, "balanced_topk", 3, delta=0.1, per_class_cap=1)
    assert list(params) == ["delta", "matched_count", "per_class_k", "per_class_cap"]
    assert params["matched_count"] == 3 and params["per_class_k"] == 1
    assert labels.tolist() == [0, -1, 1, 2, -1, -1] and score.tolist() == cols["margin"].tolist()


TOY_DECISION = '''def _decide_above_median(cols, num_classes, params, **_):
    """Toy rule of the recipe test: the nearest class of each sample whose margin is above the median."""
    score = cols["margin"].astype(np.float64)
    cut = float(np.median(score))
    params["median_margin"] = cut
    return np.where((score > cut) & (cols["nearest"] >= 0), cols["nearest"], -1).astype(np.int64), score


'''
TOY_RECORD = '    SelectionRule("above_median", "above the median margin", _decide_above_median),\n'

CHECK = '''
import numpy as np
from omnifer_lib.publish import config
from omnifer_lib.engine.pipeline._common import selection_config
from omnifer_lib.publish.selection_plots import RULE_NAMES
from omnifer_lib.select import decide, rule_parameters
cols = {"pool_index": np.arange(5), "nearest": np.array([0, 1, 2, 0, 1]),
        "margin": np.array([0.5, 0.1, 0.3, 0.2, 0.4])}
labels, score, params = decide(cols, "above_median", 3, per_class_cap=1)
assert labels.tolist() == [0, -1, -1, -1, 1], labels
assert params == {"median_margin": 0.3, "per_class_cap": 1}, params
assert rule_parameters("above_median", delta=0.1, per_class_cap=None) == {"per_class_cap": None}
assert RULE_NAMES["above_median"] == "above the median margin"
profile = config.load_profile("smoke", {"selection_rule": "above_median"})
assert selection_config(profile) == {"selection_rule": "above_median", "per_class_cap": profile["per_class_cap"]}
print("ok")
'''


def test_adding_a_rule_follows_the_recipe(tmp_path):
    copy = tmp_path / "omnifer_lib"
    shutil.copytree(LIB, copy, ignore=shutil.ignore_patterns("__pycache__"))
    # the recipe: the decision and its record in select/rules.py, a choice of selection_rule
    rules = copy / "select" / "rules.py"
    text = rules.read_text()
    anchor = "@dataclass(frozen=True)\nclass SelectionRule:"
    end = '"curriculum_share",\n                  columns=_SOFTMAX_COLUMNS),\n)}'
    assert anchor in text and end in text
    rules.write_text(text.replace(anchor, TOY_DECISION + anchor).replace(end, end[:-2] + TOY_RECORD + ")}"))
    spec = copy / "publish" / "profiles" / "parameters.yaml"
    text = spec.read_text()
    choices = ("  choices: [margin, softmax, balanced_topk, balanced_quantile, adaptive_threshold, "
               "distribution_alignment, curriculum]\n")
    assert choices in text
    spec.write_text(text.replace(choices, choices.replace("]\n", ", above_median]\n")))
    changed = changed_files(LIB, copy)
    assert changed == {"select/rules.py", "publish/profiles/parameters.yaml"}, changed
    proc = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
