"""The real-faces study: its conditions, its archive, and the chapter that renders it."""
import copy
import json
import subprocess
import sys

import pandas as pd
import pytest

from omnifer_lib.engine import provenance
from omnifer_lib.publish import config, real_faces, runner

pytestmark = pytest.mark.xdist_group("real_faces")

TINY = ["-p", "epochs", "1", "-p", "lr_step", "1", "-p", "seeds", "[0]", "-p", "width", "4",
        "-p", "labeled_fraction", "0.3", "-p", "distill_iterations", "2", "-p", "distill_inits", "1",
        "-p", "vas_deltas", "[0.0]", "-p", "delta", "0.0", "-p", "dm_iterations", "2"]


def test_equal_steps_scale_the_epochs():
    params = {"epochs": 12, "lr_step": 8}
    eq = real_faces.equal_step_params(params, n_train=5000, n_anchor=2500)
    assert (eq["epochs"], eq["lr_step"]) == (6, 4)
    assert real_faces.equal_step_params(params, n_train=250000, n_anchor=2500)["epochs"] == 1
    assert params["epochs"] == 12  # the profile is not changed


def _row(condition, seed, accuracy, steps=100):
    return {"condition": condition, "backbone": "resnet_small", "seed": seed, "accuracy": accuracy,
            "mean_class_accuracy": accuracy, "epochs": 1, "steps": steps, "train_images": 10,
            "images_per_step": 32, "seconds_per_epoch": 1.0}


def test_results_table_judges_gains_at_equal_steps():
    archive = {"conditions": [_row("baseline", s, a) for s, a in enumerate((40.0, 41.0, 42.0))]
               + [_row("VAS δ=0.1", s, a, steps=200) for s, a in enumerate((50.0, 51.0, 52.0))]
               + [_row("DAS (Algorithm 1)", s, a) for s, a in enumerate((40.0, 42.0, 41.5))]}
    table = real_faces.results_table(archive).set_index("condition")
    assert pd.isna(table.loc["baseline", "gain"])
    assert table.loc["VAS δ=0.1", "gain"].startswith("+10.0")
    # twice the baseline's steps and no anchor-alone learner at 200 steps: no verdict at equal steps
    assert pd.isna(table.loc["VAS δ=0.1", "gain at equal steps"])
    assert table.loc["DAS (Algorithm 1)", "equal-step anchor"] == "baseline"
    assert not table.loc["DAS (Algorithm 1)", "beyond noise"]
    assert table.loc["VAS δ=0.1", "SGD steps"] == 200
    assert table.loc["baseline", "result"] == "41.0 ± 1.0"
    longer = [_row(real_faces.ANCHOR_ALONE_AT_VAS_STEPS, s, a, steps=205) for s, a in enumerate((43.0, 44.0, 45.0))]
    table = real_faces.results_table({"conditions": archive["conditions"] + longer}).set_index("condition")
    assert table.loc["VAS δ=0.1", "equal-step anchor"] == real_faces.ANCHOR_ALONE_AT_VAS_STEPS
    assert table.loc["VAS δ=0.1", "gain at equal steps"].startswith("+7.0")
    assert table.loc["VAS δ=0.1", "beyond noise"] and table.loc["VAS δ=0.1", "> 2 std"]


def test_round_table_follows_each_round_of_the_curriculum_seed_by_seed():
    def rounds(accuracies, precision):
        return [{"round": r + 1, "selected": 100 * (r + 1), "precision": precision, "counts": [0] * 7,
                 "accuracy": a} for r, a in enumerate(accuracies)]

    curriculum = [dict(_row(real_faces.CURRICULUM, s, a[-1]), reference="baseline", rounds=rounds(a, p))
                  for s, (a, p) in enumerate((((41.0, 43.0), 0.5), ((42.0, 45.0), 0.7), ((40.0, 44.0), 0.6)))]
    archive = {"conditions": [_row("baseline", s, a) for s, a in enumerate((40.0, 41.0, 42.0))] + curriculum}
    table = real_faces.round_table(archive)
    assert table["round"].tolist() == [1, 2] and table["selected"].tolist() == [100, 200]
    assert table["precision (%)"].tolist() == [60.0, 60.0]
    assert table["accuracy"].tolist() == ["41.0 ± 1.0", "44.0 ± 1.0"]
    # per seed: round 1 gains +1, +1, -2 over 40, 41, 42 (mean 0, s.e. 1); round 2 +3, +4, +2
    assert table["gain over the baseline"].tolist() == ["+0.0 ± 1.0", "+3.0 ± 0.6"]
    main = real_faces.results_table(archive).set_index("condition")
    assert main.loc[real_faces.CURRICULUM, "equal-step anchor"] == "baseline"
    assert real_faces.round_table({"conditions": archive["conditions"][:3]}).empty


def test_the_search_says_how_a_recipe_repeated_on_other_seeds_fares():
    def tried(name, seed, accuracy):
        return {"backbone": "resnet_small", "configuration": name, "recipe": {"epochs": 60}, "seed": seed,
                "labeled_fraction": 0.1, "accuracy": accuracy, "mean_class_accuracy": accuracy,
                "seconds_per_epoch": 1.0}

    archive = {"conditions": [_row("baseline", s, a) for s, a in enumerate((40.0, 41.0, 42.0))],
               "search": [tried("short", 0, 39.0)] + [tried("long", s, a) for s, a in enumerate((50.0, 52.0, 51.0))]}
    assert real_faces.search_seeds_note(archive) == (
        "resnet_small, over the labeled splits of several seeds: long 51.0 ± 1.0 over 3 seeds, where the "
        "adopted recipe's baseline has 41.0 ± 1.0 over 3 seeds.")
    assert real_faces.search_seeds_note({"search": archive["search"][:2]}) == ""


def test_a_gain_counts_only_at_equal_steps_and_beyond_two_std():
    def archive(vas_steps):
        return {"conditions": [_row("baseline", s, a) for s, a in enumerate((40.0, 41.0, 42.0))]
                + [_row("VAS", s, a, steps=vas_steps) for s, a in enumerate((50.0, 51.0, 52.0))]
                + [_row("DAS", s, a) for s, a in enumerate((41.0, 41.0, 44.0))]}  # pairs +1, 0, +2
    more_steps = real_faces.results_table(archive(vas_steps=200))
    assert list(real_faces.equal_step_rows(more_steps)["condition"]) == ["DAS"]
    assert "no configuration beats" in real_faces.verdict_on_gain(more_steps)
    assert "closest is DAS" in real_faces.verdict_on_gain(more_steps)
    same_steps = real_faces.results_table(archive(vas_steps=105))
    assert real_faces.verdict_on_gain(same_steps).startswith("At equal SGD steps, VAS")


def test_gains_are_paired_seed_by_seed():
    """A gain that every seed shows (+1 on each) is real even though the seeds' spread (±1) is as
    large as it; an unpaired comparison would call it noise. A reference named on the rows wins over
    the step matching."""
    rows = ([_row("baseline", s, a) for s, a in enumerate((40.0, 41.0, 42.0))]
            + [_row("DAS", s, a + 1.0) for s, a in enumerate((40.0, 41.0, 42.0))]
            + [_row("anchor alone, 2 epochs", s, a) for s, a in enumerate((45.0, 47.0, 46.0))]
            + [_row("VAS", s, a, steps=200) for s, a in enumerate((46.0, 47.0, 47.0))])
    for r in rows:
        r["anchor_alone"] = r["condition"].startswith(("baseline", "anchor alone"))
        r["reference"] = {"DAS": "baseline", "VAS": "anchor alone, 2 epochs"}.get(r["condition"])
    table = real_faces.results_table({"conditions": rows}).set_index("condition")
    assert table.loc["DAS", "gain"] == "+1.0 ± 0.0" and table.loc["DAS", "> 2 std"]
    assert table.loc["VAS", "equal-step anchor"] == "anchor alone, 2 epochs"
    assert table.loc["VAS", "gain at equal steps"] == "+0.7 ± 0.3"  # pairs +1, 0, +1: std 0.58, s.e. 0.33
    assert not table.loc["VAS", "> 2 std"]
    assert pd.isna(table.loc["anchor alone, 2 epochs", "gain"])


def test_the_bar_for_a_real_gain_needs_three_seeds():
    rows = ([_row("baseline", s, 40.0 + s) for s in range(3)] + [_row("DAS", s, 43.0 + s) for s in range(2)]
            + [_row("DAS 3", s, 43.0 + s + 0.1 * s) for s in range(3)])
    for r in rows:
        r["anchor_alone"], r["reference"] = r["condition"] == "baseline", None if r["condition"] == "baseline" \
            else "baseline"
    table = real_faces.results_table({"conditions": rows}).set_index("condition")
    assert table.loc["DAS", "pairs"] == 2 and table.loc["DAS", "beyond noise"] and not table.loc["DAS", "> 2 std"]
    assert table.loc["DAS 3", "pairs"] == 3 and table.loc["DAS 3", "> 2 std"]


def test_each_seed_is_paired_with_its_own_equal_step_anchor():
    """Seeds that redraw the selection keep different numbers of pool images, so each seed's VAS
    learner has its own equal-step anchor; a learner with no reference is not an anchor."""
    rows = ([_row("baseline", s, 40.0) for s in range(3)]
            + [_row("anchor alone, 36 epochs", s, 44.0) for s in (0, 1)] + [_row("anchor alone, 35 epochs", 2, 50.0)]
            + [_row("VAS", s, a) for s, a in enumerate((46.0, 45.5, 44.0))]
            + [_row("oracle, 2 epochs", s, 45.0, steps=700) for s in range(3)])
    for r in rows:
        r["anchor_alone"] = r["condition"].startswith(("baseline", "anchor alone"))
        r["reference"] = None
    for r in rows:
        if r["condition"] == "VAS":
            r["reference"] = "anchor alone, 35 epochs" if r["seed"] == 2 else "anchor alone, 36 epochs"
    table = real_faces.results_table({"conditions": rows}).set_index("condition")
    vas = table.loc["VAS"]
    assert vas["pairs"] == 3 and vas["equal-step anchor"] == "anchor alone, 36 epochs / anchor alone, 35 epochs"
    assert vas["equal-step gain"] == pytest.approx((2.0 + 1.5 - 6.0) / 3)  # seed 2 loses to its own anchor
    assert not vas["> 2 std"] and not vas["beyond noise"]
    oracle = table.loc["oracle, 2 epochs"]
    assert oracle["gain"] == "+5.0 ± 0.0" and pd.isna(oracle["gain at equal steps"])
    assert "closest is VAS" in real_faces.verdict_on_gain(table.reset_index())


def test_part_mixup_pairs_within_itself_and_merges_from_another_machine():
    """Part mixup's learners name their own baseline: its VAS learner's gain is over the mixup anchor alone,
    the mixup anchor alone's gain over the profile's baseline, and its equal-step anchor is its own."""
    m = real_faces.mixup_condition
    rows = ([_row("baseline", s, a) for s, a in enumerate((40.0, 41.0, 42.0))]
            + [_row(m("baseline"), s, a) for s, a in enumerate((41.0, 43.0, 42.5))]
            + [_row(m("anchor alone, 38 epochs"), s, a, steps=120) for s, a in enumerate((42.0, 43.0, 43.0))]
            + [_row(m("VAS δ=0.05"), s, a, steps=120) for s, a in enumerate((45.0, 46.0, 47.0))])
    for r in rows:
        r["anchor_alone"] = "VAS" not in r["condition"]
        r["reference"] = m("anchor alone, 38 epochs") if "VAS" in r["condition"] else None
        if r["condition"] == m("baseline"):
            r["baseline"] = "baseline"
        elif "VAS" in r["condition"]:
            r["baseline"] = m("baseline")
    table = real_faces.results_table({"conditions": rows}).set_index("condition")
    assert table.loc[m("baseline"), "gain"] == "+1.2 ± 0.4"  # pairs +1, +2, +0.5: std 0.76, s.e. 0.44
    assert table.loc[m("VAS δ=0.05"), "gain"] == "+3.8 ± 0.4"  # pairs +4, +3, +4.5 over its own baseline
    assert table.loc[m("VAS δ=0.05"), "equal-step anchor"] == m("anchor alone, 38 epochs")
    assert table.loc[m("VAS δ=0.05"), "gain at equal steps"] == "+3.3 ± 0.3"
    assert pd.isna(table.loc["baseline", "gain"]) and pd.isna(table.loc[m("anchor alone, 38 epochs"), "gain"])
    rows_core = rows + [_row("VAS δ=0.05", s, a, steps=120) for s, a in enumerate((44.0, 44.0, 45.0))] + [
        _row("anchor alone, 38 epochs", s, a, steps=120) for s, a in enumerate((43.0, 43.0, 43.5))]
    for r in rows_core[12:]:
        r["anchor_alone"] = r["condition"].startswith("anchor")
        r["reference"] = None if r["anchor_alone"] else "anchor alone, 38 epochs"
    said = real_faces.mixup_sentence({"conditions": rows_core})
    assert said.startswith(f"Under mixup (α = {real_faces.MIXUP_ALPHA:g}) the anchor alone reaches 42.2 ± 1.0 %")
    assert "+1.2 ± 0.4 points over the plain baseline" in said
    assert "VAS δ=0.05 under mixup reaches 46.0 ± 1.0 %, +3.8 ± 0.4 over the mixup anchor alone and +3.3 ± 0.3" in said
    assert "(beyond seed noise, 3 seeds), against +1.2 ± 0.2 at equal steps without mixup, where the same selection " \
        "reaches 44.3 ± 0.6 %" in said
    verdict = real_faces.verdict_on_gain(real_faces.results_table({"conditions": rows_core}))
    assert "its anchors are trained under mixup too, and without mixup the VAS at this δ reaches 44.3 ± 0.6" in verdict
    assert "no part mixup" in real_faces.mixup_sentence({"conditions": rows[:3]})
    # its rows share nothing with the other parts: merged from another CPU, and the note says so
    base = _archive(["core"], [("baseline", s, a) for s, a in enumerate((40.0, 41.0, 42.0))])
    extra = _archive(["mixup"], [(r["condition"], r["seed"], r["accuracy"]) for r in rows[3:]])
    extra["provenance"]["machine"] = {"cpu": "another CPU"}
    merged = real_faces.merge_archives(base, extra)
    assert merged["parts"] == ["core", "mixup"] and len(merged["conditions"]) == 12
    assert "on another CPU (another CPU)" in real_faces.parts_note(merged)
    assert "no row in common to check" in real_faces.parts_note(merged)
    # run alone, the part's own row of the baseline learner is checked against the archive's baseline
    teacher = _archive(["mixup"], [(real_faces.MIXUP_TEACHER, s, a) for s, a in enumerate((40.0, 41.0, 42.0))])
    assert "3 results both runs hold agree" in real_faces.parts_note(real_faces.merge_archives(base, teacher))
    assert real_faces.teacher_sentence(real_faces.merge_archives(base, teacher)).endswith(
        "agrees with it to the last digit (3 seeds).")
    assert real_faces.teacher_sentence(teacher) == ""  # no baseline rows to set it beside
    teacher["conditions"][1]["accuracy"] = 41.5
    with pytest.raises(ValueError, match="they are one learner.*--other-machine"):
        real_faces.merge_archives(base, teacher)
    # another CPU model ends the same learner elsewhere: declared, the part joins and the difference is kept
    teacher["provenance"]["machine"] = {"cpu": "AMD EPYC", "cpu_id": "AuthenticAMD family 25 model 1, AVX2"}
    joined = real_faces.merge_archives(base, teacher, other_machine=True)
    run = joined["provenance"]["merged"][-1]
    assert run["other_machine"] and run["rows_checked"] == 2
    assert run["differs"] == [{"row": real_faces.MIXUP_TEACHER, "backbone": "resnet_small", "seed": 1,
                               "accuracy": 41.5, "base": 41.0}]
    note = real_faces.parts_note(joined)
    assert "on another machine (AMD EPYC (AuthenticAMD family 25 model 1, AVX2))" in note
    assert "1 of 3 results both runs hold differ, its teacher against this archive's baseline (seed 1: 41.50 " \
        "against 41.00 %), so its rows pair only within themselves" in note
    said = real_faces.teacher_sentence(joined)
    assert "on another machine (AMD EPYC (AuthenticAMD family 25 model 1, AVX2)), with the same parameters, torch, " \
        "torchvision, numpy versions and threads (the training code's fingerprint is not recorded" in said
    assert "; resnet_small: it differs on 1 of 3 seeds (seed 0 40.00 % against 40.00 %, seed 1 41.50 % against " \
        "41.00 %" in said
    assert "mean |difference| 0.17 points, where the baselines' spread between seeds is 1.00 points)" in said
    teachers = [{**_row(real_faces.MIXUP_TEACHER, s, a), "anchor_alone": True} for s, a in enumerate((40, 41.5, 42))]
    mixed = real_faces.mixup_sentence({"conditions": rows + teachers, "provenance": joined["provenance"]})
    assert said in mixed
    unrecorded = real_faces.teacher_sentence({"conditions": joined["conditions"]})
    assert "differ in something this archive does not record" in unrecorded
    # the flag explains a difference only where the machine is all that differs
    for bad, match in [({"parts": ["mixup", "curve"]}, "only a run of part mixup alone"),
                       ({"curve": [{"labeled_fraction": 0.1, "backbone": "resnet_small", "seed": 0}]},
                        "and rows curve"),
                       ({"conditions": teacher["conditions"] + [_row("VAS δ=0.05", 0, 44.0)]}, "rows VAS δ=0.05"),
                       ({"provenance": {**teacher["provenance"], "packages": {"torch": "2.0"}}},
                        r"other versions of torch \(the archive's None, the added run's 2.0\)"),
                       ({"provenance": {**teacher["provenance"],
                                        "machine": {"cpu": "AMD EPYC", "device": "cpu (1 threads)"}}},
                        "not its threads"),
                       ({"provenance": {**teacher["provenance"], "training_code": "f00"}},
                        "training code differs \\(the added run's fingerprint f00, the archive's abc\\)")]:
        with pytest.raises(ValueError, match=match):
            real_faces.merge_archives({**base, "provenance": {**base["provenance"], "training_code": "abc"}},
                                      {**teacher, **bad}, other_machine=True)
    # with one training code recorded for every run, the sentence names the CPU's sums as all that differs
    same = real_faces.merge_archives({**base, "provenance": {**base["provenance"], "training_code": "abc"}},
                                     {**teacher, "provenance": {**teacher["provenance"], "training_code": "abc"}},
                                     other_machine=True)
    assert "threads and training code (one fingerprint): only the machine differs; resnet_small" \
        in real_faces.teacher_sentence(same)
    other_code = copy.deepcopy(same)
    other_code["provenance"]["training_code"] = "0ld"
    assert "threads but other training code (fingerprints 0ld and abc)" in real_faces.teacher_sentence(other_code)
    # a base that names its CPU only: the other machine is as declared
    vague = real_faces.merge_archives({**base, "provenance": {**base["provenance"], "machine": {"cpu": "AMD EPYC"}}},
                                      teacher, other_machine=True)
    assert "AVX2)), declared at the merge (this archive records its own CPU as AMD EPYC only), with the same " \
        "parameters, torch, torchvision, numpy versions and threads" in real_faces.teacher_sentence(vague)
    # the mixup anchor alone over its own teacher, and the plain VAS beside it made by another machine's selection
    own = [{**r, "baseline": real_faces.MIXUP_TEACHER} if r["condition"] == m("baseline") else r for r in rows_core]
    told = real_faces.mixup_sentence({"conditions": own + teachers, "provenance": joined["provenance"]})
    assert "points over its own plain teacher)" in told
    assert "without mixup on the archive's machine, where the plain VAS at this δ, selected by that machine's own " \
        "baseline (other images), reaches 44.3 ± 0.6 %" in told
    base["provenance"]["machine"] = {"cpu": "AMD EPYC", "cpu_id": "AuthenticAMD family 25 model 1, AVX2"}
    with pytest.raises(ValueError, match="recorded on the same CPU"):
        real_faces.merge_archives(base, teacher, other_machine=True)
    # the same name without a family and model on one side is not called another CPU
    base["provenance"]["machine"] = {"cpu": "AMD EPYC"}
    extra["provenance"]["machine"] = {"cpu": "AMD EPYC", "cpu_id": "AuthenticAMD family 25 model 17, AVX-512"}
    assert "another CPU" not in real_faces.parts_note(real_faces.merge_archives(base, extra))
    extra["provenance"]["machine"] = {"cpu": "Intel(R) Xeon(R)"}
    assert "on another CPU (Intel(R) Xeon(R))" in real_faces.parts_note(real_faces.merge_archives(base, extra))


def test_archive_holds_no_absolute_path():
    from omnifer_lib.engine import provenance

    assert provenance.portable_path("/home/me/data/fer2013") == "fer2013"
    assert provenance.portable_path("../shared/data/fer2013-48px") == "../shared/data/fer2013-48px"
    params = provenance.portable_parameters({"fer2013_root": "/data/fer", "vgg_face_weights": "/w/v.pth",
                                             "ckplus_root": None, "seed": 0})
    assert params == {"fer2013_root": "fer", "vgg_face_weights": "v.pth", "ckplus_root": None, "seed": 0}


def test_archive_round_trip_and_format_check(tmp_path):
    path = real_faces.write_archive({"format": real_faces.FORMAT, "conditions": []}, tmp_path / "a.json")
    assert real_faces.read_archive(path)["conditions"] == []
    assert real_faces.read_archive(tmp_path / "none.json") is None
    path.write_text(json.dumps({"format": 99}))
    with pytest.raises(ValueError, match="format 99"):
        real_faces.read_archive(path)


def _archive(parts, rows, **more):
    prov = {"dataset": {"fingerprint": {"sha256": "abc"}}, "parameters": {"seed": 0, "epochs": 30},
            "git": {"commit": "c0ffee"}, "started": "today", "seconds_to_collect": 1.0, "machine": {"cpu": "x"}}
    return {"format": real_faces.FORMAT, "parts": parts, "conditions": [
        {"condition": c, "backbone": "resnet_small", "seed": s, "accuracy": a, "mean_class_accuracy": a - 5}
        for c, s, a in rows], "selection": [], "rules": [], "search": [], "curve": [], "skipped": [],
        "distillation": {}, "sizes": {"anchor": 10}, "provenance": prov, **more}


def test_merging_archives_adds_rows_and_refuses_runs_that_disagree():
    base = _archive(["core", "rules"], [("baseline", 0, 45.0), ("VAS δ=0.05", 0, 49.0)],
                    distillation={"resnet_small": [{"seed": 0, "outer_loss": [1.0], "alone": []}]})
    extra = _archive(["distillation", "curve"], [("baseline", 0, 45.0), ("DAS mean image, 1/class", 0, 44.0)],
                     curve=[{"labeled_fraction": 1.0, "backbone": "resnet_small", "seed": 0, "accuracy": 66.0}],
                     distillation={"resnet_small": [{"seed": 0, "outer_loss": [2.0], "alone": [{"set": "a"}]},
                                                    {"seed": 1, "outer_loss": [3.0], "alone": []}]})
    extra["provenance"]["git"] = {"commit": "beef"}
    merged = real_faces.merge_archives(base, extra)
    assert [r["condition"] for r in merged["conditions"]] == ["baseline", "VAS δ=0.05", "DAS mean image, 1/class"]
    assert merged["parts"] == ["core", "rules", "distillation", "curve"] and len(merged["curve"]) == 1
    seeds = {e["seed"]: e for e in merged["distillation"]["resnet_small"]}
    assert seeds[0]["outer_loss"] == [1.0] and seeds[0]["alone"] == [{"set": "a"}] and 1 in seeds
    assert merged["provenance"]["git"]["commit"] == "c0ffee"
    assert merged["provenance"]["merged"][0]["git"]["commit"] == "beef"
    assert merged["provenance"]["merged"][0]["parts"] == ["distillation", "curve"]
    assert "Added later by commit `beef`" in real_faces.parts_note(merged)
    assert "1 results both runs hold agree" in real_faces.parts_note(merged)
    base["provenance"]["parameters"]["labeled_fraction"] = extra["provenance"]["parameters"]["labeled_fraction"] = 0.1
    point = {"labeled_fraction": 0.1, "backbone": "resnet_small", "seed": 0}
    curve = _archive(["curve"], [], curve=[{**point, "accuracy": 45.0}])  # the baseline of seed 0, again
    curve["provenance"]["parameters"]["labeled_fraction"] = 0.1
    assert "1 results both" in real_faces.parts_note(real_faces.merge_archives(base, curve))
    curve["curve"][0]["accuracy"] = 44.0
    with pytest.raises(ValueError, match="they are one learner"):
        real_faces.merge_archives(base, curve)
    extra["provenance"]["git"] = {"commit": "beef", "dirty": True, "changed": ["omnifer_lib/publish/real_faces.py"]}
    merged = real_faces.merge_archives(base, extra)
    assert "`beef` with uncommitted changes to `omnifer_lib/publish/real_faces.py`" in real_faces.parts_note(merged)
    assert base["conditions"][-1]["condition"] == "VAS δ=0.05"  # the inputs are left as they were
    # a shared row with other numbers: not one pipeline
    other = _archive(["controls"], [("baseline", 0, 45.5)])
    with pytest.raises(ValueError, match="accuracy is 45.0 in the base archive and 45.5"):
        real_faces.merge_archives(base, other)
    other = _archive(["controls"], [("baseline", 0, 45.0)])
    other["provenance"]["parameters"]["epochs"] = 60
    with pytest.raises(ValueError, match=r"different parameters \(epochs\)"):
        real_faces.merge_archives(base, other)
    other["provenance"]["parameters"]["epochs"] = 30
    other["provenance"]["parameters"]["vas_soft_labels"] = True  # a parameter of newer code: listed
    other["provenance"]["parameters"]["seeds"], other["provenance"]["seeds"] = [3], [3]  # seeds may differ
    other["conditions"][0]["seed"] = 3
    both = real_faces.merge_archives({**base, "provenance": {**base["provenance"], "seeds": [0]}}, other)
    assert len(both["conditions"]) == 3 and both["provenance"]["seeds"] == [0, 3]
    assert both["provenance"]["merged"][0]["new_parameters"] == {"vas_soft_labels": True}
    assert "no row in common to check" in real_faces.parts_note(both)
    other["provenance"]["dataset"]["fingerprint"]["sha256"] = "def"
    with pytest.raises(ValueError, match="different data"):
        real_faces.merge_archives(base, other)
    with pytest.raises(ValueError, match="format 1"):
        real_faces.merge_archives({**base, "format": 1}, extra)


def test_the_search_log_moves_to_an_archive_of_another_recipe():
    """Part search's recipes are whole configurations: a run of it alone joins an archive made with another
    recipe, and its row of that archive's recipe is checked against the baseline (one learner)."""
    base = _archive(["core"], [("baseline", 0, 45.0)])
    base["provenance"]["parameters"].update(epochs=45, batch_size=32, delta=0.15, labeled_fraction=0.1)
    recipe = {"epochs": 45, "batch_size": 32}
    search = _archive(["search"], [], search=[
        {"configuration": "+ 45 × 32", "recipe": recipe, "backbone": "resnet_small", "seed": 0,
         "labeled_fraction": 0.1, "accuracy": 45.0},
        {"configuration": "+ 60 epochs", "recipe": {**recipe, "epochs": 60, "batch_size": 64},
         "backbone": "resnet_small", "seed": 0, "labeled_fraction": 0.1, "accuracy": 47.0}])
    search["provenance"]["parameters"].update(epochs=30, batch_size=64, delta=0.05, labeled_fraction=0.1)
    merged = real_faces.merge_archives(base, search)
    assert len(merged["search"]) == 2 and merged["parts"] == ["core", "search"]
    assert "1 results both runs hold agree" in real_faces.parts_note(merged)
    assert merged["provenance"]["merged"][-1]["other_recipe"] == {"batch_size": 64, "delta": 0.05, "epochs": 30}
    # a parameter some recipes leave to the profile is read by the search: it must agree
    flipped = {**search, "provenance": {**search["provenance"], "parameters": {
        **search["provenance"]["parameters"], "test_flip_average": True}}}
    base["provenance"]["parameters"]["test_flip_average"] = False
    with pytest.raises(ValueError, match=r"different parameters \(test_flip_average\)"):
        real_faces.merge_archives(base, flipped)
    # only the search log moves: an archive that says "search" but holds other rows is refused
    with pytest.raises(ValueError, match="names part search alone but holds rows of conditions"):
        real_faces.merge_archives(base, {**search, "conditions": [dict(base["conditions"][0], seed=1)]})
    search["search"][0]["accuracy"] = 44.0
    with pytest.raises(ValueError, match="the search's recipe '\\+ 45 × 32' \\(seed 0\\) is 44.0"):
        real_faces.merge_archives(base, search)
    search["provenance"]["parameters"]["labeled_fraction"] = 0.2  # the study itself differs: refused
    with pytest.raises(ValueError, match=r"different parameters \(labeled_fraction\).*may differ in batch_size"):
        real_faces.merge_archives(base, search)
    other = _archive(["controls"], [("baseline", 0, 45.0)])  # any other part must share the recipe
    with pytest.raises(ValueError, match=r"different parameters \(epochs\)"):
        real_faces.merge_archives(base, other)


def test_rule_conditions_are_checked_and_a_partial_run_needs_out_or_merge(tmp_path):
    params = config.load_profile("fer2013", {"fer2013_root": "/data/fer"})
    with pytest.raises(ValueError, match="unknown rule conditions.*soft labels"):
        real_faces.collect(params, parts=["rules"], rule_conditions=["VAS nonsense"])
    with pytest.raises(ValueError, match="distill_sizes must be positive"):
        real_faces.collect(params, parts=["distillation"], distill_sizes=[0])
    with pytest.raises(ValueError, match="unknown search recipes.*flip-averaged test"):
        real_faces.collect(params, parts=["search"], search_recipes=["+ nonsense"])
    with pytest.raises(ValueError, match="search_recipes choose within part search.*add 'search' to parts"):
        real_faces.collect(params, parts=["curve"], search_recipes=["+ flip-averaged test"])
    omnifer = [sys.executable, "-m", "omnifer_lib", "archive-real-faces", "--profile", "fer2013", "-p",
               "fer2013_root", str(tmp_path)]
    done = subprocess.run(omnifer + ["--rule-conditions", "VAS margin rule, soft labels"], capture_output=True,
                          text=True)
    assert done.returncode != 0 and "--merge" in done.stderr
    done = subprocess.run(omnifer + ["--parts", "search", "--search-recipes", "+ flip-averaged test"],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "make an archive of some of the study only" in done.stderr
    done = subprocess.run(omnifer + ["--parts", "curve", "--merge", "--out", str(tmp_path / "none.json")],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "does not exist" in done.stderr
    done = subprocess.run(omnifer + ["--parts", "core", "--merge", "--other-machine"], capture_output=True, text=True)
    assert done.returncode != 0 and "--other-machine goes with --merge --parts mixup only" in done.stderr


def test_the_study_needs_real_data_and_a_hidden_label_pool():
    assert not real_faces.applies(config.load_profile("demo"))
    assert not real_faces.applies(config.load_profile("fer2013"))  # no root given
    assert real_faces.applies(config.load_profile("fer2013", {"fer2013_root": "/data/fer"}))
    with pytest.raises(ValueError, match="data_source real, pool anchor_rest"):
        real_faces.collect(config.load_profile("demo"))


def test_archive_parts_are_named_once_and_checked():
    from omnifer_lib.publish import cli

    assert cli.ARCHIVE_PARTS == real_faces.PARTS
    with pytest.raises(ValueError, match="part mixup .* mixup_alpha 0, not 0.2"):
        real_faces.collect(config.load_profile("fer2013", {"fer2013_root": "/data/fer", "mixup_alpha": 0.2}),
                           parts=["mixup"])
    with pytest.raises(ValueError, match="unknown parts"):
        real_faces.collect(config.load_profile("fer2013", {"fer2013_root": "/data/fer"}), parts=["core", "all"])


def test_paper_gains_come_from_the_papers_tables():
    gains = real_faces.paper_gains("vgg_small").set_index(["paper's table", "setting"])["gain (paper)"]
    assert gains[(1, "VAS")] == pytest.approx(85.84 - 85.15)
    assert gains[(1, "DAS")] == pytest.approx(86.55 - 85.15)


@pytest.mark.slow
def test_archive_command_and_chapter_on_written_fer2013(book_copy, tmp_path):
    """The whole study through the CLI on synthetic faces written in FER-2013's CSV layout, then the
    chapter recomputing it under the fer2013 profile, and a paper-roles chapter saying it does not run."""
    omnifer = [sys.executable, "-m", "omnifer_lib"]
    subprocess.run(omnifer + ["write-layouts", str(tmp_path / "layouts")], check=True, capture_output=True)
    root = ["-p", "fer2013_root", str(tmp_path / "layouts" / "fer2013")]
    cross = ["-p", "cross_targets", "[ckplus, jaffe]", "-p", "ckplus_root", str(tmp_path / "layouts" / "ckplus"),
             "-p", "jaffe_root", str(tmp_path / "layouts" / "jaffe")]
    out = tmp_path / "archive.json"
    parts = [p for p in real_faces.PARTS if p != "search"]  # the search's real recipes train for minutes: below
    done = subprocess.run(omnifer + ["archive-real-faces", "--profile", "fer2013", "--out", str(out), "--parts", *parts]
                          + root + cross + TINY, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    archive = real_faces.read_archive(out)
    assert archive["format"] == real_faces.FORMAT and archive["parts"] == parts
    assert archive["rules_matched"] == real_faces.RULES_MATCHED
    conditions = pd.DataFrame(archive["conditions"])
    assert set(conditions["seed"]) == {0}
    named = list(dict.fromkeys(conditions["condition"]))
    assert named[0] == "baseline" and "VAS δ=0" in named and "DAS (Algorithm 1)" in named
    mixed = conditions[conditions.condition.str.startswith(real_faces.mixup_condition(""))]
    mixed_vas = mixed[mixed.condition == real_faces.mixup_condition("VAS δ=0")].iloc[0]
    assert mixed_vas["baseline"] == real_faces.mixup_condition("baseline")
    assert mixed_vas["reference"] in set(mixed["condition"])  # its equal-step anchor is trained under mixup too
    own = mixed[mixed.condition == real_faces.mixup_condition("baseline")].iloc[0]
    assert own["anchor_alone"] and own["baseline"] == "baseline"  # run with core: paired with its baseline
    assert real_faces.MIXUP_TEACHER not in named
    assert {c for c, _ in real_faces.RULE_CONDITIONS} <= set(named)
    assert {"random real", "mean image", "oracle, equal steps", real_faces.SEARCH[1][0]} <= set(named)
    # every learner that is not the anchor alone names its equal-step reference, a learner of the archive
    refs = conditions.loc[~conditions["anchor_alone"], "reference"]
    assert refs.notna().sum() >= len(refs) - 1 and set(refs.dropna()) <= set(conditions["condition"])
    vas = conditions[conditions.condition == "VAS δ=0"].iloc[0]
    assert vas["reference"] in set(conditions.loc[conditions["anchor_alone"], "condition"])
    assert vas["selected"] == vas["train_images"] - archive["sizes"]["anchor"] and 0 <= vas["precision"] <= 1
    assert conditions["accuracy"].between(0, 100).all()
    # the oracle trains on the whole pool, its epochs cut toward the baseline's number of steps
    oracle = conditions[conditions.condition == "oracle, equal steps"].iloc[0]
    assert oracle["train_images"] == archive["sizes"]["anchor"] + archive["sizes"]["pool"]
    assert oracle["epochs"] == 1  # one epoch of the tiny profile is already the least there is
    assert archive["search"] == [] and "not search" in real_faces.parts_note(archive)
    curve = real_faces.learning_curve(archive)
    assert list(curve["labeled_fraction"]) == list(real_faces.LEARNING_CURVE)
    assert curve["labeled"].is_monotonic_increasing and curve["accuracy"].between(0, 100).all()
    table = real_faces.results_table(archive)
    distillers = real_faces.distiller_table(table)
    assert list(distillers["distiller"]) == [label for label, _ in real_faces.DISTILLERS]
    assert distillers["1/class"].notna().all()
    # the tiny pool has classes with fewer than 10 selected images: those sets are skipped, and say why
    skipped = {r["condition"]: r["reason"] for r in archive["skipped"]}
    for label, _ in real_faces.DISTILLERS:
        name = real_faces.distiller_condition(label, 10)
        assert (name in set(conditions["condition"])) != (name in skipped)
    assert all("fewer than images_per_class=10" in reason for reason in skipped.values())
    assert not real_faces.main_rows(table)["condition"].map(real_faces.is_distiller_row).any()
    for _, ten in conditions[conditions.condition.str.endswith(", 10/class")].iterrows():
        assert ten["images_per_step"] == int(config.load_profile("fer2013")["batch_size"]) + 70
    table = table.set_index("condition")
    assert table.loc["VAS δ=0", "equal-step anchor"] == vas["reference"]
    sel = pd.DataFrame(archive["selection"])
    assert sel["precision"].dropna().between(0, 1).all()
    assert set(sel["delta"]) == set(config.load_profile("fer2013")["deltas"])
    assert "distribution_alignment" in set(pd.DataFrame(archive["rules"])["rule"])
    assert archive["provenance"]["dataset"]["fingerprint"]["files"] == 1
    assert str(tmp_path) not in json.dumps(archive)  # no absolute path of this machine
    # every learner was also tested on the two cross-dataset targets, aligned to the anchor's framing
    assert all(set(r["cross"]) == {"ckplus", "jaffe"} for r in archive["conditions"])
    cross_rows = real_faces.cross_table(archive)
    assert set(cross_rows["target"]) == {"ckplus", "jaffe"} and cross_rows["result"].str.len().gt(0).all()
    alone = pd.DataFrame(archive["distillation"]["resnet_small"][0]["alone"])
    assert list(alone["set"]) == ["Algorithm 1 (DAS)", "uniform noise, DAS's η", "random real, DAS's η",
                                  "mean image, DAS's η"]
    assert alone["accuracy"].between(0, 100).all() and (alone["inits"] == 5).all()
    assert "pixels" not in json.dumps(archive)  # numbers only

    paths = runner.Paths(book_copy)
    overrides = config.parse_overrides([TINY[i + 1:i + 3] for i in range(0, len(TINY), 3)] + [root[1:]])
    res = runner.run_notebook(paths.notebooks / "11_real_faces.md", profile="fer2013", overrides=overrides,
                              paths=paths)
    import nbformat

    text = json.dumps(nbformat.read(str(res.output), as_version=4).cells)
    assert "computed in this run" in text and "Traceback" not in text
    skipped = runner.run_notebook(paths.notebooks / "05_inner_dataset.md", profile="fer2013", overrides=overrides,
                                  paths=paths)
    assert skipped.not_applicable and skipped.record["status"] == "not applicable"
    cells = nbformat.read(str(skipped.output), as_version=4).cells
    assert len(cells) == 1 and "is not run here" in cells[0].source


@pytest.mark.slow
def test_recipe_search_logs_every_recipe_tried(tmp_path, monkeypatch):
    """Part ``search`` on synthetic faces in FER-2013's layout, with two tiny recipes in place of the real
    ones: one row per recipe, losing ones included, each recipe's settings beside its accuracy."""
    from omnifer_lib.engine import pipeline
    from omnifer_lib.data.published_layouts import write_published_layouts

    monkeypatch.setenv("OMNIFER_CACHE", str(tmp_path / "cache"))
    pipeline.clear_memory_caches()
    write_published_layouts(tmp_path / "layouts", datasets=["fer2013"])
    tiny = {"epochs": 1, "width": 4, "batch_size": 32}
    two_views = {**tiny, "crop_pad": 0, "test_flip_average": True}
    monkeypatch.setattr(real_faces, "RECIPE_SEARCH", (("flip only", {**tiny, "crop_pad": 0}),
                                                      ("pad-and-crop 2 px", {**tiny, "crop_pad": 2}),
                                                      ("tested on two views", two_views)))
    params = config.load_profile("fer2013", {"fer2013_root": str(tmp_path / "layouts" / "fer2013"),
                                             "labeled_fraction": 0.3, "seeds": [0]})
    archive = real_faces.collect(params, parts=["search"])
    assert archive["conditions"] == [] and archive["parts"] == ["search"]
    log = real_faces.search_log(archive)
    assert list(log["configuration"]) == ["flip only", "pad-and-crop 2 px", "tested on two views"]
    assert list(log["crop_pad"]) == [0, 2, 0] and log["accuracy"].between(0, 100).all()
    assert list(log["test_flip_average"]) == [False, False, True]  # rows without the setting ran without it
    # a recipe added later runs alone (and merge_archives adds its row)
    later = real_faces.collect(params, parts=["search"], search_recipes=["tested on two views"])
    assert [r["configuration"] for r in later["search"]] == ["tested on two views"]
    assert later["search"][0]["accuracy"] == archive["search"][2]["accuracy"]


@pytest.mark.slow
def test_part_core_holds_the_first_margin_and_part_margins_the_rest(tmp_path, monkeypatch):
    """One seed of the core comparison trains one margin's learners; part margins adds the further δ of
    vas_deltas, and the two runs merge into the archive a run of both parts gives."""
    from omnifer_lib.engine import pipeline
    from omnifer_lib.data.published_layouts import write_published_layouts

    monkeypatch.setenv("OMNIFER_CACHE", str(tmp_path / "cache"))
    pipeline.clear_memory_caches()
    write_published_layouts(tmp_path / "layouts", datasets=["fer2013"])
    tiny = config.parse_overrides([TINY[i + 1:i + 3] for i in range(0, len(TINY), 3)])
    params = config.load_profile("fer2013", {**tiny, "vas_deltas": [0.0, 0.005],
                                             "fer2013_root": str(tmp_path / "layouts" / "fer2013")})
    core = real_faces.collect(params, parts=["core"])
    named = [r["condition"] for r in core["conditions"]]
    assert "VAS δ=0" in named and "VAS δ=0.005" not in named and real_faces.DAS in named
    margins = real_faces.collect(params, parts=["margins"])
    named = {r["condition"] for r in margins["conditions"]}
    assert "VAS δ=0.005" in named and not {"VAS δ=0", real_faces.DAS} & named and real_faces.BASELINE in named
    assert {r["delta"] for r in margins["selection"]} == set(params["deltas"])  # the δ sweep, as core has it
    both = real_faces.collect(params, parts=["core", "margins"])
    merged = real_faces.merge_archives(core, margins)
    assert merged["parts"] == ["core", "margins"] and merged["provenance"]["merged"][0]["rows_checked"] > 0
    key = lambda rows: sorted((r["condition"], r["accuracy"]) for r in rows)  # noqa: E731
    assert key(merged["conditions"]) == key(both["conditions"])
    # every learner was trained here, on the processor the run records: nothing to say
    here = provenance.cpu_text(provenance.machine())
    assert core["provenance"]["learners_made_on"] == {here: len(core["conditions"])}
    assert real_faces.made_on_text(core["provenance"]) == ""
    assert merged["provenance"]["merged"][0]["learners_made_on"] == {here: len(margins["conditions"])}


def test_an_archive_names_the_processors_its_learners_were_trained_on():
    """A resumed run reuses whatever its cache holds: learners trained on another CPU model are counted and said."""
    def made(machine, device="cpu (2 threads)"):
        return {"created_by": {"commit": "c0ffee", "machine": machine}, "summary": {"device": device}}
    zen3 = {"cpu": "AMD EPYC", "cpu_id": "AuthenticAMD family 25 model 1, AVX2", "device": "cpu (2 threads)"}
    here = "AMD EPYC (AuthenticAMD family 25 model 1, AVX2)"
    zen4 = "AMD EPYC (AuthenticAMD family 25 model 17, AVX-512)"
    assert real_faces.trained_on(made(zen3)) == here
    assert real_faces.trained_on(made({"cpu": "AMD EPYC"})) == "AMD EPYC"  # cached before cpu_id was recorded
    assert real_faces.trained_on(made({**zen3, "gpu": "NVIDIA H100"}, "cuda (NVIDIA H100)")) == "NVIDIA H100"
    assert real_faces.trained_on(made({**zen3, "gpu": "NVIDIA H100"})) == here  # a GPU machine's CPU learner
    assert real_faces.trained_on({}) == "not recorded"
    prov = {"machine": zen3, "learners_made_on": {here: 12}}
    assert real_faces.made_on_text(prov) == "" and real_faces.made_on_text({"machine": zen3}) == ""
    gpu = {"machine": zen3, "learners_made_on": {"NVIDIA H100": 12}, "learners_here": "NVIDIA H100"}
    assert real_faces.made_on_text(gpu) == ""  # trained here on the GPU the run used
    two = real_faces.made_on_text({**prov, "learners_made_on": {here: 12, zen4: 1}})
    assert two == (f"Its learners were trained on 2 processors as their cache records them ({here}: 12 results; "
                   f"{zen4}: 1 result): another CPU model ends the same learner at other numbers, so its comparisons "
                   "may cross machines.")
    elsewhere = real_faces.made_on_text({**prov, "learners_made_on": {zen4: 3}})
    assert f"({zen4}: 3 results), not on the processor of the run that collected them ({here})" in elsewhere
    vague = real_faces.made_on_text({**prov, "learners_made_on": {here: 9, "AMD EPYC": 2, "not recorded": 1}})
    assert vague == ("3 of its results come from learners whose cache does not record their processor's family and "
                     f"model (only 'AMD EPYC'): whether they were trained on this run's {here} cannot be told.")
    archive = _archive(["core"], [("baseline", 0, 45.0)], sizes={"anchor": 10, "pool": 90, "test": 20})
    archive["provenance"].update(prov, learners_made_on={zen4: 3}, seeds=[0],
                                 parameters={"test_split": "val"}, dataset={"name": "fer2013", "fingerprint": {}})
    assert elsewhere in real_faces.provenance_note(archive)
    extra = _archive(["curve"], [("baseline", 0, 45.0)])
    extra["provenance"].update(machine=zen3, learners_made_on={here: 1, zen4: 2})
    archive["provenance"]["dataset"]["fingerprint"] = extra["provenance"]["dataset"]["fingerprint"]
    note = real_faces.parts_note(real_faces.merge_archives(archive, extra))
    assert note.endswith(f"Its learners were trained on 2 processors as their cache records them ({here}: 1 result; "
                         f"{zen4}: 2 results): another CPU model ends the same learner at other numbers, so its "
                         "comparisons may cross machines.")


def test_a_format_2_archive_reads_as_format_3_with_part_margins(tmp_path):
    """Format 2's part core computed every margin: read (or merged) now, it holds part margins too."""
    old = {**_archive(["core", "rules"], [("baseline", 0, 45.0), ("VAS δ=0.05", 0, 49.0)]), "format": 2}
    path = real_faces.write_archive(old, tmp_path / "old.json")
    read = real_faces.read_archive(path)
    assert read["format"] == real_faces.FORMAT == 3 and read["parts"] == ["core", "margins", "rules"]
    assert "not margins" not in real_faces.parts_note(read) and read["conditions"] == old["conditions"]
    assert old["parts"] == ["core", "rules"]  # upgrade copies
    only_rules = {**old, "parts": ["rules"]}
    assert real_faces.upgrade(only_rules)["parts"] == ["rules"]  # no core, no margins
    extra = _archive(["curve"], [("baseline", 0, 45.0)])
    assert real_faces.merge_archives(old, extra)["parts"] == ["core", "margins", "rules", "curve"]
    assert "margins" in real_faces.parts_note(_archive(["core"], [("baseline", 0, 45.0)]))  # format 3: not held


@pytest.mark.slow
def test_part_mixup_alone_brings_its_own_plain_baseline(tmp_path, monkeypatch):
    """Part mixup without the baseline's parts: a row of the plain baseline learner of its own, which the
    mixup anchor alone pairs with; the VAS is the plain teacher's selection, its learner trained under mixup."""
    from omnifer_lib.engine import pipeline
    from omnifer_lib.data.published_layouts import write_published_layouts

    monkeypatch.setenv("OMNIFER_CACHE", str(tmp_path / "cache"))
    pipeline.clear_memory_caches()
    write_published_layouts(tmp_path / "layouts", datasets=["fer2013"])
    tiny = config.parse_overrides([TINY[i + 1:i + 3] for i in range(0, len(TINY), 3)])
    params = config.load_profile("fer2013", {**tiny, "fer2013_root": str(tmp_path / "layouts" / "fer2013")})
    archive = real_faces.collect(params, parts=["mixup"])
    rows = {r["condition"]: r for r in archive["conditions"]}
    m = real_faces.mixup_condition
    assert list(rows)[:2] == [real_faces.MIXUP_TEACHER, m("baseline")] and "baseline" not in rows
    assert rows[m("baseline")]["baseline"] == real_faces.MIXUP_TEACHER
    assert rows[m("VAS δ=0")]["baseline"] == m("baseline") and rows[m("VAS δ=0")]["reference"] in rows
    plain = pipeline.learner(params, "resnet_small", "anchor", seed=0)
    assert rows[real_faces.MIXUP_TEACHER]["accuracy"] == pipeline.evaluation(plain)["fer2013"]["accuracy"]
    assert rows[m("VAS δ=0")]["selected"] == len(pipeline.auxiliary_samples(params, "resnet_small"))
    table = real_faces.results_table(archive).set_index("condition")
    assert pd.isna(table.loc[real_faces.MIXUP_TEACHER, "gain"]) and isinstance(table.loc[m("baseline"), "gain"], str)


@pytest.mark.parametrize("path", [real_faces.ARCHIVE, real_faces.EARLIER_ARCHIVE], ids=lambda p: p.stem)
def test_committed_archive_carries_its_provenance_and_no_image(path):
    archive = real_faces.read_archive(path)
    assert archive is not None, f"{path.name} is not committed (omnifer archive-real-faces writes it)"
    prov = archive["provenance"]
    assert len(prov["seeds"]) >= 3 and prov["git"].get("commit")
    assert prov["dataset"]["fingerprint"].get("sha256") and prov["machine"]["cpu"]
    runs = pd.DataFrame(archive["conditions"])
    # the core comparison over every seed, any other condition over two at least (an added part may have
    # fewer); an equal-step anchor only in the seeds whose selection asked for it
    compared = runs[~runs["anchor_alone"].astype(bool)] if "anchor_alone" in runs else runs
    seeds = compared.groupby("condition")["seed"].nunique()
    assert (seeds >= 2).all() and seeds[real_faces.DAS] == len(prov["seeds"])
    assert real_faces.BASELINE in set(runs["condition"])
    if "controls" in archive.get("parts", ["controls"]):
        assert real_faces.ORACLE in set(runs["condition"])
    assert path.stat().st_size < 1_000_000

    def strings(node):
        if isinstance(node, dict):
            for v in node.values():
                yield from strings(v)
        elif isinstance(node, list):
            for v in node:
                yield from strings(v)
        elif isinstance(node, str):
            yield node
    assert not [s for s in strings(archive) if s.startswith(("/", "~"))]  # no path of the machine that made it
    table = real_faces.results_table(archive)
    several = table[table["n"] > 1]  # an equal-step anchor of one seed has no spread
    assert len(several) >= 3 and several["result"].str.contains("±").all()


def test_distillation_verdict_pairs_algorithm_1_with_the_best_undistilled_set():
    rows = []
    for seed, (base, alg, real, mean) in enumerate([(40.0, 43.0, 41.0, 40.5), (42.0, 45.1, 43.0, 42.0),
                                                     (41.0, 44.0, 42.1, 41.0)]):
        rows += [("baseline", seed, base), (real_faces.distiller_condition("Algorithm 1", 10), seed, alg),
                 (real_faces.distiller_condition("random real", 10), seed, real),
                 (real_faces.distiller_condition("mean image", 10), seed, mean)]
    archive = _archive(["distillation"], rows)
    for r in archive["conditions"]:
        r.update(steps=100, anchor_alone=r["condition"] == "baseline", reference="baseline",
                 seconds_per_epoch=1.0)
        if r["condition"].startswith("DAS Algorithm 1"):
            r["distill_seconds"] = 120.0
    text = real_faces.distillation_verdict(archive)
    assert text.startswith("resnet_small: at 10/class (3 seeds) Algorithm 1 gains +3.0 ± 0.0 points over the baseline")
    assert "more than random real of the same size (+2.0 ± 0.1)" in text and "2.0 min of distillation" in text
    assert real_faces.distillation_verdict(_archive(["core"], [("baseline", 0, 40.0)])) == \
        "This archive has no distiller comparison."


def _chapter_archive():
    """Two conditions over three seeds, one learning-curve point, a skipped set, the provenance of a run."""
    rows = [_row("baseline", s, a) for s, a in enumerate((40.0, 41.0, 42.0))]
    rows += [_row("DAS (Algorithm 1)", s, a) for s, a in enumerate((44.0, 45.0, 46.5))]
    for r in rows:
        r["seconds_per_epoch"] = 2.0 if r["condition"] == "baseline" else 3.0
    prov = {"dataset": {"name": "fer2013", "fingerprint": {"sha256": "0123456789abcdef0123", "files": 1}},
            "parameters": {"test_split": "val"}, "git": {"commit": "c0ffee"}, "started": "2024-05-01T10:00",
            "machine": {"cpu": "a CPU", "device": "cpu"}, "seeds": [0, 1, 2]}
    return {"format": real_faces.FORMAT, "parts": ["core"], "conditions": rows, "selection": [], "rules": [],
            "search": [], "skipped": [{"condition": "DAS random real, 10/class", "reason": "too few images"}],
            "curve": [{"backbone": "resnet_small", "labeled_fraction": 0.1, "labeled": 100, "seed": 0,
                       "accuracy": 30.0, "mean_class_accuracy": 28.0}],
            "distillation": {}, "sizes": {"anchor": 100, "pool": 900, "test": 50}, "provenance": prov}


def test_the_core_comparison_is_set_beside_a_stronger_recipe_on_the_same_data(tmp_path, monkeypatch):
    def recipe(epochs, batch, baseline, vas, anchor, selected, precision, whole, deltas=(0.05,), delta=None):
        archive = _chapter_archive()
        archive["provenance"] = {**archive["provenance"], "parameters": {
            "test_split": "val", "seeds": [0, 1, 2], "epochs": epochs, "batch_size": batch,
            "vas_deltas": list(deltas), "delta": delta}}
        archive["conditions"] = [
            *[_row("baseline", s, a) for s, a in enumerate(baseline)],
            *[dict(_row(f"VAS δ={d}", s, a - 60 * (d - 0.05), steps=120), reference="anchor alone, 9 epochs",
                   selected=selected, precision=precision) for s, a in enumerate(vas) for d in deltas],
            *[dict(_row("anchor alone, 9 epochs", s, a, steps=120), anchor_alone=True) for s, a in enumerate(anchor)],
            *[dict(_row("VAS softmax (matched count)", s, 99.0, steps=120), reference="baseline") for s in range(3)]]
        archive["curve"] = [{"backbone": "resnet_small", "labeled_fraction": f, "labeled": int(1000 * f), "seed": 0,
                             "accuracy": a, "mean_class_accuracy": a} for f, a in ((0.1, baseline[0]), (1.0, whole))]
        return archive

    weak = recipe(30, 64, (40.0, 41.0, 42.0), (44.0, 45.0, 46.0), (42.0, 43.0, 44.0), 600, None, 60.0)
    weak["conditions"] += [dict(_row("random real", s, 43.0), reference="baseline") for s in range(3)]  # a control
    strong = recipe(45, 32, (50.0, 51.0, 52.0), (50.0, 52.0, 52.0), (51.0, 52.0, 51.0), 1800, 0.7, 65.0,
                    deltas=(0.05, 0.15))
    table = real_faces.recipe_comparison([weak, strong])
    assert list(table.columns) == real_faces.RECIPE_COLUMNS
    assert table["recipe"].tolist() == ["30 epochs of minibatches of 64"] * 4 + ["45 epochs of minibatches of 32"] * 4
    # the core, DAS's controls and the rules both recipes ran; no anchor alone
    assert table["condition"].tolist() == ["baseline", "VAS δ=0.05", "VAS softmax (matched count)", "random real",
                                           "baseline", "VAS δ=0.05", "VAS δ=0.15", "VAS softmax (matched count)"]
    # a rule one recipe has not run yet is a row of the other only
    alone = real_faces.recipe_comparison(
        [weak, {**strong, "conditions": [r for r in strong["conditions"] if "softmax" not in r["condition"]]}])
    assert alone.loc[alone["condition"] == "VAS softmax (matched count)", "recipe"].tolist() == [
        "30 epochs of minibatches of 64"]
    # per seed: +2, +2, +2 over the weak anchors; -1, 0, +1 over the strong ones (6 less at δ=0.15)
    assert table["gain at equal steps"].tolist()[1::4] == ["+2.0 ± 0.0", "+0.0 ± 0.6"]
    assert table["gain at equal steps"].tolist()[-2] == "-6.0 ± 0.6"
    assert table["selected"].tolist()[1::4] == [600, 1800]
    weak_recipe, strong_recipe = "30 epochs of minibatches of 64", "45 epochs of minibatches of 32"
    assert real_faces.recipe_sentence([weak, strong]) == (
        f"resnet_small: the baseline reaches 41.0 ± 1.0 with {weak_recipe} (30 × 64 below) and 51.0 ± 1.0 with "
        f"{strong_recipe} (45 × 32 below); the paired gain at equal steps is VAS δ=0.05: +2.0 ± 0.0 (> 2 std) with "
        "30 × 64 against +0.0 ± 0.6 with 45 × 32; random real: +2.0 ± 0.6 with 30 × 64; VAS δ=0.15: -6.0 ± 0.6 with "
        "45 × 32. Against seed noise (2 standard errors of the paired gains): VAS δ=0.05 a gain beyond noise with "
        "30 × 64, within noise with 45 × 32; random real a gain beyond noise with 30 × 64; VAS δ=0.15 a loss beyond "
        "noise with 45 × 32. VAS δ=0.05 selects on average 600 pool images with 30 × 64 and 1,800 pool images "
        "(70.0 % right) with 45 × 32. VAS δ=0.15 selects on average 1,800 pool images (70.0 % right) with 45 × 32. "
        "With the whole train split labeled (the learning curve) it reaches 60.0 % with 30 × 64 and 65.0 % with "
        "45 × 32.")
    assert real_faces.recipe_sentence([weak]) == "" and real_faces.recipe_comparison([]).empty
    assert "whole train split" not in real_faces.recipe_sentence([weak, {**strong, "curve": []}])
    with pytest.raises(ValueError, match="archives with the same recipe"):
        real_faces.recipe_comparison([weak, weak])
    # the margin δ that DAS and the rules start from is part of what the recipe column names
    assert real_faces.recipe_text({**strong, "provenance": {"parameters": {
        **strong["provenance"]["parameters"], "delta": 0.15}}}) == "45 epochs of minibatches of 32, margin δ 0.15"
    again = real_faces.recipe_comparison([strong, {**strong, "provenance": {"parameters": {
        **strong["provenance"]["parameters"], "delta": 0.15}}}])
    assert again["recipe"].unique().tolist() == [strong_recipe, f"{strong_recipe}, margin δ 0.15"]

    path = tmp_path / "earlier.json"
    assert real_faces.recipe_archives(strong, path) == []  # none committed: nothing to compare
    real_faces.write_archive(weak, path)
    assert [a["provenance"]["parameters"]["epochs"] for a in real_faces.recipe_archives(strong, path)] == [30, 45]
    assert real_faces.recipe_archives(weak, path) == []  # the same recipe: nothing to compare
    for other in ({"test_split": "test"}, {"seeds": [0, 1]}):  # another test split or other seeds: another study
        elsewhere = {**strong, "provenance": {**strong["provenance"], "parameters": {
            **strong["provenance"]["parameters"], **other}}}
        assert real_faces.recipe_archives(elsewhere, path) == []

    monkeypatch.setattr(real_faces, "EARLIER_ARCHIVE", path)
    shown, sentence = real_faces.chapter_section(strong, "earlier recipe")
    assert shown.data["condition"].tolist() == table["condition"].tolist()
    assert sentence.data == real_faces.recipe_sentence([weak, strong])
    (verdict,) = real_faces.chapter_section(strong, "verdict")
    mine = real_faces.verdict_on_gain(real_faces.results_table(strong))
    assert mine.startswith("At equal SGD steps, VAS softmax (matched count) (resnet_small: 99.0")
    assert verdict.data == (f"{mine} Judged the same way, the earlier recipe ({weak_recipe}): "
                            f"{real_faces.verdict_on_gain(real_faces.results_table(weak))}")
    # the rules the earlier study ran and this one has not are named under the conditions
    fewer = {**strong, "conditions": [r for r in strong["conditions"] if "softmax" not in r["condition"]]}
    _, note = real_faces.chapter_section(fewer, "conditions")
    assert note.data == (f"Not yet run with this recipe ({strong_recipe}): VAS softmax (matched count). Their rows "
                         f"with the earlier recipe ({weak_recipe}) are in the recipe comparison below.")
    assert real_faces.chapter_section(strong, "conditions")[1].data == ""


def test_a_part_the_archive_lacks_is_shown_from_a_committed_archive_of_the_same_data(tmp_path, monkeypatch):
    m = real_faces.mixup_condition
    rounds = [{"selected": 100, "precision": 0.5, "accuracy": a} for a in (41.0, 43.0)]
    curriculum = [dict(_row(real_faces.CURRICULUM, s, 43.0 + s), rounds=rounds, reference="baseline")
                  for s in range(3)]
    mixup = [dict(_row(m("baseline"), s, 39.0), anchor_alone=True, baseline="baseline") for s in range(3)]

    def study(epochs, batch, conditions=(), **more):
        archive = _chapter_archive()
        archive["conditions"] += [dict(r) for r in conditions]
        archive["provenance"] = {**archive["provenance"], "parameters": {
            "test_split": "val", "epochs": epochs, "batch_size": batch}}
        return {**archive, **more}

    def searched(name, accuracy):
        return [{"configuration": name, "recipe": {"epochs": 30}, "seed": 0, "backbone": "resnet_small",
                 "labeled_fraction": 0.1, "accuracy": accuracy, "mean_class_accuracy": accuracy,
                 "seconds_per_epoch": 1.0}]

    earlier = study(30, 64, curriculum + mixup, search=searched("+ x", 40.0))
    adopted = study(45, 32)
    monkeypatch.setattr(real_faces, "EARLIER_ARCHIVE", tmp_path / "earlier.json")
    monkeypatch.setattr(real_faces, "ARCHIVE", tmp_path / "real_faces.json")
    (none,) = real_faces.chapter_section(adopted, "rounds")  # nothing committed: the archive's own note
    assert none.data.startswith("This archive has no curriculum labelling")
    real_faces.write_archive(earlier, real_faces.EARLIER_ARCHIVE)
    note, table = real_faces.chapter_section(adopted, "rounds")
    assert note.data == ("*Not in the archive this chapter renders; shown: the study with the earlier recipe (30 "
                         "epochs of minibatches of 64), whose primitive learner and selection differ.*")
    assert table.data["round"].tolist() == [1, 2]
    note, said = real_faces.chapter_section(adopted, "mixup")
    assert note.data.startswith("*Not in the archive") and said.data.startswith("Under mixup (α = 0.4) the anchor")
    # an archive that holds the part shows its own: nothing borrowed
    own = study(45, 32, [dict(r, accuracy=50.0, rounds=[dict(x, accuracy=50.0) for x in rounds]) for r in curriculum])
    (table,) = real_faces.chapter_section(own, "rounds")
    assert table.data["accuracy"].tolist() == ["50.0 ± 0.0"] * 2
    (distillers, skipped) = real_faces.chapter_section(adopted, "distillers")  # neither holds it: not borrowed
    assert distillers.data == "This archive has no distiller comparison."

    # a chapter run that computed part core only borrows from the committed archive of its own recipe first,
    # and does not call a rule that archive holds "not yet run"
    committed = study(45, 32, curriculum[:2], search=searched("+ y", 51.0))
    real_faces.write_archive(committed, real_faces.ARCHIVE)
    note, table, _ = real_faces.chapter_section(adopted, "recipe search")
    assert note.data == "*Not in the archive this chapter renders; shown: the committed archive of this study and " \
                        "recipe (`real_faces.json`).*"
    assert table.data["configuration"].tolist() == ["+ y"]
    note, _ = real_faces.chapter_section(adopted, "rounds")
    assert "committed archive of this study and recipe" in note.data
    assert "earlier recipe" in real_faces.chapter_section(adopted, "mixup")[0].data  # only the earlier holds it
    assert real_faces.not_yet_run_note(adopted) == ""  # curriculum: held by the committed archive of the recipe
    real_faces.write_archive(study(45, 32), real_faces.ARCHIVE)
    assert real_faces.not_yet_run_note(adopted).startswith(f"Not yet run with this recipe (45 epochs of minibatches "
                                                           f"of 32): {real_faces.CURRICULUM}.")


def test_the_committed_archives_are_one_study_with_two_recipes():
    archive = real_faces.read_archive()
    assert archive is not None and real_faces.read_archive(real_faces.EARLIER_ARCHIVE) is not None
    weak, strong = real_faces.recipe_archives(archive)  # else the chapter would say none is committed
    assert real_faces.recipe_text(weak) == "30 epochs of minibatches of 64, margin δ 0.05"
    assert set(weak["parts"]) == set(real_faces.PARTS)  # it fills in any part the adopted study lacks
    # the committed archive is what the fer2013 profile computes (but where the data lies)
    profile = config.load_profile("fer2013", {"test_split": "val"})
    made = archive["provenance"]["parameters"]
    assert {k: made[k] for k in profile if k in made and made[k] != profile[k]} == {"fer2013_root": "fer2013-48px"}
    table = real_faces.recipe_comparison([weak, strong])
    assert set(table["condition"]) >= {real_faces.BASELINE, real_faces.DAS}
    assert table.groupby("recipe", sort=False)["SGD steps"].min().is_monotonic_increasing  # the stronger trains more


def test_chapter_archive_says_where_its_results_come_from(monkeypatch):
    archive = _chapter_archive()
    assert real_faces.archive_note(None, "anywhere") == real_faces.NO_ARCHIVE
    note = real_faces.archive_note(archive, "read from here")
    assert note.startswith("**Results read from here.** Made by commit `c0ffee` on 2024-05-01 on a a CPU (cpu)")
    assert "Anchor 100 labeled images, pool 900 unlabeled, test 50" in note
    monkeypatch.setattr(real_faces, "applies", lambda params: False)
    monkeypatch.setattr(real_faces, "read_archive", lambda: archive)
    got, shown = real_faces.chapter_archive({}, "demo")
    assert got is archive
    assert shown.data.startswith("**Results read from the committed archive `real_faces.json` (the data is not given")
    monkeypatch.setattr(real_faces, "applies", lambda params: True)
    monkeypatch.setattr(real_faces, "collect", lambda params, parts: {**archive, "parts": list(parts)})
    got, shown = real_faces.chapter_archive({}, "fer2013")
    assert got["parts"] == list(real_faces.CHAPTER_PARTS)
    assert shown.data.startswith("**Results computed in this run (profile 'fer2013').**")
    monkeypatch.setattr(real_faces, "applies", lambda params: False)
    monkeypatch.setattr(real_faces, "read_archive", lambda: None)
    assert real_faces.chapter_archive({}, "demo")[0] is None
    assert real_faces.chapter_archive({}, "demo")[1].data == real_faces.NO_ARCHIVE


def test_chapter_sections_show_a_table_or_say_what_the_archive_lacks():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archive = _chapter_archive()
    with pytest.raises(ValueError, match="no section 'nonsense'; its sections: conditions, seed points"):
        real_faces.chapter_section(archive, "nonsense")
    assert all(real_faces.chapter_section(None, name) == () for name in real_faces.CHAPTER_SECTIONS)

    main, nothing_missing = real_faces.chapter_section(archive, "conditions")
    assert nothing_missing.data == ""  # no earlier study of these data: nothing to name
    assert list(main.data["condition"]) == ["baseline", "DAS (Algorithm 1)"]
    assert "mean" not in main.data and main.data.set_index("condition").loc["DAS (Algorithm 1)", "gain"] == "+4.2 ± 0.2"
    (gains,) = real_faces.chapter_section(archive, "paper gains")
    assert len(gains.data) == 4 and set(gains.data["setting"]) == {"VAS", "DAS"}
    (costs,) = real_faces.chapter_section(archive, "costs")
    assert costs.data.set_index("condition")["ratio to baseline"].tolist() == [1.0, 1.5]
    for name, sentence in (("cross-dataset", "This run had no cross-dataset target (CK+ and JAFFE cannot ship"),
                           ("rounds", "This archive has no curriculum labelling (rule condition CURRICULUM).")):
        (note,) = real_faces.chapter_section(archive, name)
        assert note.data.startswith(sentence)
    assert "-p cross_targets '[ckplus, jaffe]'" in real_faces.chapter_section(archive, "cross-dataset")[0].data
    table, sentence = real_faces.chapter_section({**archive, "provenance": {
        **archive["provenance"], "dataset": {"name": "fer2013", "fingerprint": {"sha256": "other data"}}}},
        "earlier recipe")
    assert table.data.startswith("No study of these data with an earlier recipe") and sentence.data == ""
    note, seeds = real_faces.chapter_section(archive, "recipe search")
    assert (note.data, seeds.data) == ("This archive has no recipe search.", "")
    table, skipped = real_faces.chapter_section(archive, "distillers")
    assert table.data == "This archive has no distiller comparison."
    assert skipped.data == "Not run on this data: DAS random real, 10/class (too few images)."
    (verdict,) = real_faces.chapter_section(archive, "verdict")
    assert verdict.data == real_faces.verdict_on_gain(real_faces.results_table(archive))
    assert "DAS (Algorithm 1) (resnet_small: 45.2 ± 1.3, +4.2 ± 0.2 over baseline) beat" in verdict.data

    plt.close("all")
    assert real_faces.chapter_section(archive, "seed points") == () and len(plt.get_fignums()) == 1
    (curve,) = real_faces.chapter_section(archive, "learning curve")
    assert curve.data["accuracy"].tolist() == [30.0] and len(plt.get_fignums()) == 2
    plt.close("all")
    (no_curve,) = real_faces.chapter_section({**archive, "curve": []}, "learning curve")
    assert no_curve.data == "This archive has no learning curve." and plt.get_fignums() == []


def test_the_chapter_says_how_its_archive_matched_the_rules_to_a_count():
    """Archives made before the matching moved after the per-class cap say so under the table, with the counts;
    a run of the rules with this code does not merge into them."""
    def rows(condition, counts):
        return [{**_row(condition, s, 50.0), "selected": n} for s, n in enumerate(counts)]
    old = _archive(["core", "rules"], [])
    old["conditions"] = rows("VAS δ=0.15", (680, 762, 800)) + rows("VAS softmax (matched count)", (741, 494, 612)) \
        + rows("VAS class-balanced quantile (matched count)", (1833, 1514, 1823))
    old["provenance"]["parameters"].update(vas_deltas=[0.15], per_class_cap=400)
    assert real_faces.rules_matched(old) == real_faces.RULES_MATCHED_BEFORE
    assert real_faces.matched_note(old) == (
        "The rules matched to a count keep 494–1,833 pool images a seed where the margin rule at δ 0.15 keeps "
        "680–800: in this archive they were matched to its count before the per-class cap of 400, which then "
        "trimmed each rule's classes in its own way, so their gains mix what they select with how much (the "
        "library now matches after the cap: a new archive of the study shows it).")
    new = {**copy.deepcopy(old), "rules_matched": real_faces.RULES_MATCHED}
    for r in new["conditions"]:
        r["selected"] = {0: 680, 1: 762, 2: 800}[r["seed"]]
    assert real_faces.matched_note(new).endswith("keeps 680–800: they were matched to what it keeps after the "
                                                 "per-class cap of 400 and keep at least as many after it where their "
                                                 "candidates allow (the fewest their rule can give), so their gains "
                                                 "compare what they select.")
    assert real_faces.matched_note(_archive(["core"], [("baseline", 0, 40.0)])) == ""
    later = {**new, "conditions": [r for r in new["conditions"] if "matched" in r["condition"]], "parts": ["rules"]}
    with pytest.raises(ValueError, match="matched to the margin rule's count before the per-class cap and the added "
                                         "run's after the per-class cap: their rows cannot share a table; make a new"):
        real_faces.merge_archives(old, later)
    uncapped = copy.deepcopy(old)
    uncapped["provenance"]["parameters"]["per_class_cap"] = None  # before and after the cap are then the same
    later_uncapped = copy.deepcopy(later)
    later_uncapped["provenance"]["parameters"]["per_class_cap"] = None
    assert len(real_faces.merge_archives(uncapped, {**later_uncapped, "conditions": [
        {**r, "seed": r["seed"] + 3} for r in later["conditions"]]})["conditions"]) == 15
    # an archive without matched rows takes the added run's way of matching
    merged = real_faces.merge_archives({**old, "conditions": old["conditions"][:3]},
                                       {**later, "conditions": later["conditions"][3:]})
    assert merged["rules_matched"] == real_faces.RULES_MATCHED


def test_the_chapter_sets_the_core_comparison_of_a_second_processor_beside_the_archive():
    """Both runs' paired gains side by side, and whether the rows that pass the bar on one pass on the other."""
    def study(cpu, base, das):
        a = _archive(["core"], [])
        a["conditions"] = [_row("baseline", s, x) for s, x in enumerate(base)] + \
            [_row("DAS (Algorithm 1)", s, x) for s, x in enumerate(das)]
        a["provenance"].update(machine=cpu, parameters={"vas_deltas": [0.15], "test_split": "val"})
        for r in a["conditions"]:
            r.update(steps=100, reference=None if r["condition"] == "baseline" else "baseline",
                     anchor_alone=r["condition"] == "baseline")
        return a
    zen4 = study({"cpu": "AMD EPYC"}, (40.0, 41.0, 42.0), (41.0, 42.1, 42.9))
    zen3 = study({"cpu": "AMD EPYC", "cpu_id": "AuthenticAMD family 25 model 1, AVX2"}, (41.0, 41.5, 42.0),
                 (41.2, 41.0, 42.5))
    table = real_faces.processor_comparison([zen4, zen3])
    assert list(table.columns) == real_faces.PROCESSOR_COLUMNS and len(table) == 4
    assert list(table["processor"].unique()) == ["AMD EPYC (family and model not recorded)",
                                                  "AMD EPYC (AuthenticAMD family 25 model 1, AVX2)"]
    assert table["> 2 std"].tolist()[1] == True and table["> 2 std"].tolist()[3] == False  # noqa: E712
    sentence = real_faces.processor_sentence(zen4, zen3)
    assert sentence.startswith("On AMD EPYC (AuthenticAMD family 25 model 1, AVX2) the same core comparison")
    assert "moves the baseline learner by 0.50 points on average over 3 seeds (at most 1.00)" in sentence
    assert sentence.endswith("none passes it there (DAS (Algorithm 1): +0.1 ± 0.3 at equal steps): over three "
                             "seeds, the bar does not hold against the machine.")
    twin = study({"cpu": "another CPU"}, (40.0, 41.0, 42.0), (41.0, 42.1, 42.9))
    assert real_faces.processor_sentence(zen4, twin).endswith("DAS (Algorithm 1) passes it there too.")
    assert real_faces.processor_sentence(zen4, None) == ""


def test_the_committed_second_processor_run_is_the_archives_study_on_another_cpu():
    archive = real_faces.read_archive()
    other = real_faces.second_processor(archive)
    assert other is not None and other["parts"] == ["core"]
    assert other["provenance"]["machine"]["cpu_id"] and real_faces.SECOND_PROCESSOR_ARCHIVE.stat().st_size < 1_000_000
    table, sentence = real_faces.chapter_section(archive, "second processor")
    assert len(table.data) == 6 and sentence.data.startswith("On AMD EPYC (AuthenticAMD family 25 model 1")
