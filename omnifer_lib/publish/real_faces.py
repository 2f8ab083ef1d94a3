"""The real-faces study (chapter "On real faces"): the omni-supervised pipeline on one labeled
dataset split into a small labeled anchor and an unlabeled pool whose labels are hidden, with
the controls a reviewer asks for, collected into one JSON-able archive.

The data cannot ship with the project, so the chapter renders from an archive committed to the
repository (:data:`ARCHIVE`: numbers, curves and per-class counts; no image) and recomputes
when the profile names the data (:func:`applies`). Every learner is a cached pipeline stage, so
``omnifer reproduce --profile fer2013 -p fer2013_root …`` followed by ``omnifer archive-real-faces
--profile fer2013 -p fer2013_root …`` trains nothing twice.

Conditions, per backbone and seed (with ``seeds_redraw_pipeline`` each seed draws its own labeled
split, primitive learner, selection and distillation), grouped in the :data:`PARTS` of :func:`collect`:

* ``core`` — the core comparison: ``baseline`` (the labeled anchor alone); ``VAS δ=…`` (anchor ∪ VAS of the
  paper's margin rule at the first δ of ``vas_deltas``, the profile's); the anchor alone given the VAS
  learner's number of SGD steps (:func:`anchor_alone_at`, the *equal-step reference*: extra steps must not
  pass for a gain); ``DAS (Algorithm 1)`` (anchor ⊕ the distilled images, which join every minibatch: the
  baseline's steps);
* ``margins`` — the same VAS and equal-step reference at each further δ of ``vas_deltas`` (split from
  ``core`` in format 3, so that one seed of the core comparison costs one margin's learners);
* ``rules`` — :data:`RULE_CONDITIONS`: other offline pseudo-labelling methods, each with its own
  equal-step reference;
* ``controls`` — ``random real`` / ``mean image`` (as many images per class as the DAS, real selected
  images or the per-class mean of the VAS instead of distilled ones); ``oracle, equal steps`` (anchor ∪
  the whole pool under its *true* labels, cut to the baseline's steps: a single epoch when the pool is
  ten times the anchor) and the oracle given two epochs (:data:`SEARCH`);
* ``distillation`` — :data:`DISTILLERS` at :data:`DISTILL_SIZES` images per class;
* ``search`` — every training recipe tried (:data:`RECIPE_SEARCH`); ``curve`` — the learning curve;
* ``mixup`` — the final learners again under mixup (:data:`MIXUP_ALPHA`, :func:`omnifer_lib.train.mixup`;
  the teacher and its selection stay the paper's, as Margin-Mix mixes only while training the student):
  the anchor alone, anchor ∪ VAS at the first δ and its own equal-step anchor (:func:`mixup_condition`),
  each row naming the ``baseline`` its gain is taken over (the mixup anchor alone's: the plain baseline).
  Run alone, it adds its own row of the plain baseline (:data:`MIXUP_TEACHER`) and shares no row with the
  other parts, so it can be merged into an archive made on another machine.
"""
from __future__ import annotations

import json
from collections import Counter
import math
import platform
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

from omnifer_lib.engine import provenance, roles
from omnifer_lib.engine.pipeline._common import EVAL_KEYS, stage_code
from omnifer_lib.engine.pipeline.learners import equal_step_params  # noqa: F401  (part of this module's API)
from omnifer_lib.select.rules import RULE_PARAMETERS
from omnifer_lib.distill import registry as distill_registry
from omnifer_lib.files import write_json
from omnifer_lib.seeds import torch_generator

#: The committed archive of the real-faces study with the recipe the ``fer2013`` profile adopts (45 epochs of
#: minibatches of 32, margin δ 0.15: fixed from ``val``, see the profile), which the chapter renders when the
#: data is absent. Made with ``omnifer archive-real-faces --profile fer2013 -p fer2013_root … -p test_split val``
#: (one part or rule at a time with ``--parts``/``--rule-conditions`` and ``--merge``).
ARCHIVE = Path(__file__).parent / "archives" / "real_faces.json"
#: The same study with the recipe the profile adopted before (30 epochs of minibatches of 64, margin δ 0.05 - the
#: paper gives no value), every part of it: the chapter sets it beside :data:`ARCHIVE` (:func:`recipe_comparison`)
#: to show how the answer moved once the baseline was trained properly, and shows its rows for a part
#: :data:`ARCHIVE` does not hold yet, saying so (:func:`chapter_section`).
EARLIER_ARCHIVE = ARCHIVE.with_name("real_faces_earlier_recipe.json")
#: Part core of the same study (data, seeds, recipe and code) made on another CPU model than :data:`ARCHIVE`, which
#: the chapter sets beside it (:func:`processor_comparison`): the same learner ends at other numbers there.
SECOND_PROCESSOR_ARCHIVE = ARCHIVE.with_name("real_faces_second_processor.json")
#: The archive of the stronger recipe: :data:`ARCHIVE` since the profile adopted that recipe (kept for code
#: written when it was a second archive).
STRONG_ARCHIVE = ARCHIVE
FORMAT = 3
#: Format 1: no rule conditions, search log, learning curve or references; format 2: part ``core`` held every
#: margin of ``vas_deltas`` (read as format 3 with part ``margins``: :func:`upgrade`).
READABLE_FORMATS = (1, 2, 3)

BASELINE, DAS, RANDOM_REAL, MEAN_IMAGE, ORACLE = (
    "baseline", "DAS (Algorithm 1)", "random real", "mean image", "oracle, equal steps")

#: The parts of the study :func:`collect` can run (all by default; every learner is cached, so a part
#: run later reuses what the others trained).
PARTS = ("core", "margins", "rules", "controls", "distillation", "search", "curve", "mixup")
#: Seeds a paired gain needs before it can pass the bar for a real gain (> 2 std of the pairs): the std of
#: two pairs is too unsure to be a bar.
MIN_PAIRS = 3
#: The parts whose rows include the profile's baseline (each condition's seeds are paired with it).
_WITH_BASELINE = ("core", "margins", "rules", "controls", "distillation")
#: Mixup's α in part ``mixup``, fixed before measuring (a common value for small images; not searched).
MIXUP_ALPHA = 0.4
#: Part ``mixup`` run without the baseline's parts: its own row of the baseline learner (the teacher), so
#: that its gains pair with a learner of the same run (of the same machine).
MIXUP_TEACHER = "baseline, no mixup (part mixup's teacher)"
#: What chapter 11 computes itself when it is given the data (the rest takes hours on a CPU:
#: ``omnifer archive-real-faces`` runs every part).
CHAPTER_PARTS = ("core",)

#: The search for a real gain (beyond the paper), each tried over the profile's seeds: (name, learner
#: mode, how its training is budgeted). Cutting the 12-epoch recipe's epochs to equal the baseline's steps
#: left a single epoch when the training set is ten times the anchor (with the step schedule: no decay), so
#: the whole-pool oracle is also given two epochs (a step schedule decays after the first) - with a longer
#: recipe that is fewer steps than the baseline's, no upper bound - beside the anchor alone given the VAS
#: learner's steps (format 1; format 2 names :func:`anchor_alone_at`).
ANCHOR_ALONE_AT_VAS_STEPS = "search: anchor alone at VAS's steps"
SEARCH = (
    (ANCHOR_ALONE_AT_VAS_STEPS, "anchor", "vas_steps"),
    ("search: oracle, 2 epochs", "oracle", {"epochs": 2, "lr_step": 1}),
)

#: The anchor-alone learners of format-1 archives (format 2 marks them on each row).
ANCHOR_ALONE = (BASELINE, ANCHOR_ALONE_AT_VAS_STEPS)

#: Curriculum labelling (Cascante-Bonilla et al., 2021) as its paper sets it - the pool's most confident
#: 20 %, 40 %, ... 100 % by softmax in five rounds, each a learner restarted from scratch whose softmax makes
#: the next round's pseudo-labels, no cap - except that every round trains for the anchor's SGD steps, so
#: that the last round is compared with the baseline at equal steps and a round costs what the baseline does.
CURRICULUM = "curriculum labelling, 5 rounds of +20 % of the pool, each at the anchor's steps"

#: Offline pseudo-labelling methods beside the paper's margin rule (part ``rules``): condition name and
#: the selection overrides, at the first δ of ``vas_deltas``. ``None`` for a rule's own parameter matches
#: the margin rule's count there, so that the rule changes which samples are kept, not how many; the
#: next two keep the margin rule and change the scores it reads (flip-averaged views; a second round
#: whose teacher was retrained from scratch on the first round's selection), then soft labels and
#: :data:`CURRICULUM`, whose rows also hold each ``round``'s selection and accuracy.
RULE_CONDITIONS = (
    ("VAS softmax (matched count)", {"selection_rule": "softmax", "softmax_threshold": None}),
    ("VAS class-balanced quantile (matched count)", {"selection_rule": "balanced_quantile", "class_quantile": None}),
    ("VAS distribution alignment (matched count)",
     {"selection_rule": "distribution_alignment", "softmax_threshold": None}),
    ("VAS adaptive per-class thresholds", {"selection_rule": "adaptive_threshold"}),
    ("VAS margin rule, flip-averaged scores", {"selection_flip_average": True}),
    ("VAS margin rule, round 2 (teacher retrained on round 1's VAS)", {"selection_rounds": 2}),
    ("VAS margin rule, soft labels", {"vas_soft_labels": True}),
    (CURRICULUM, {"selection_rule": "curriculum", "curriculum_share": 0.2, "selection_rounds": 5,
                  "per_class_cap": None, "vas_equal_steps": True}),
)

#: The rules of :data:`RULE_CONDITIONS` matched to the margin rule's count (their own parameter left ``None``).
MATCHED_RULES = tuple(name for name, over in RULE_CONDITIONS
                      if any(k in over and over[k] is None for k in RULE_PARAMETERS))
#: How this code matches a rule to the margin rule's count under ``per_class_cap``
#: (:func:`omnifer_lib.select.decide`), recorded in each archive as ``rules_matched``; archives that lack it were
#: matched before the cap, which then trimmed each rule's classes in its own way.
RULES_MATCHED = "after the per-class cap"
RULES_MATCHED_BEFORE = "before the per-class cap"

#: The training recipes tried on real faces (part ``search``), each the anchor alone at the profile's
#: labeled fraction and master seed, whole configurations (not relative to the profile) so that the log
#: reads the same whichever recipe the profile adopts. The first is the paper's recipe cut down to 48 px.
_CUT_DOWN = {"width": 16, "epochs": 12, "lr": 0.02, "lr_step": 8, "lr_schedule": "step", "batch_size": 32,
             "crop_pad": 0, "label_smoothing": 0.0}
_STRONG = {**_CUT_DOWN, "epochs": 30, "lr": 0.05, "lr_schedule": "cosine", "batch_size": 64, "crop_pad": 4}
RECIPE_SEARCH = (
    ("the paper's recipe cut down: flip only, 12 epochs, step schedule", _CUT_DOWN),
    ("+ pad-and-crop 4 px, cosine, 30 epochs, lr 0.05, batch 64", _STRONG),
    ("+ label smoothing 0.1", {**_STRONG, "label_smoothing": 0.1}),
    ("+ width 32", {**_STRONG, "width": 32}),
    ("+ 60 epochs", {**_STRONG, "epochs": 60}),
    # tried after the study had run with the second recipe, toward the goal of 50 % with 10 % of the labels
    ("+ flip-averaged test", {**_STRONG, "test_flip_average": True}),
    ("+ 60 epochs, flip-averaged test", {**_STRONG, "epochs": 60, "test_flip_average": True}),
    # the 60 epochs' SGD steps at the 30 epochs' images seen, or a larger step, to reach the goal at less cost;
    # the last is the recipe the fer2013 profile adopts (the study is being run again with it, part by part)
    ("+ batch 32", {**_STRONG, "batch_size": 32}),
    ("+ lr 0.1", {**_STRONG, "lr": 0.1}),
    ("+ batch 16", {**_STRONG, "batch_size": 16}),
    ("+ batch 32, 45 epochs", {**_STRONG, "batch_size": 32, "epochs": 45}),
)

#: The parameters part ``search`` does not read: the training parameters every one of its recipes sets itself
#: and the selection's (it trains the anchor alone), so its log may join an archive made with another recipe.
SEARCH_UNREAD = frozenset({"delta", "vas_deltas", "deltas"}.union(
    set.intersection(*(set(recipe) for _, recipe in RECIPE_SEARCH))))

#: The distillers compared on real faces (part ``distillation``): label and ``das_method``, each at every
#: size of :data:`DISTILL_SIZES` images per class, trained the paper's way (the distilled images join every
#: minibatch of the anchor, so every such learner takes the baseline's SGD steps).
DISTILLERS = tuple((d.label, name) for name, d in distill_registry.DISTILLERS.items())
DISTILL_SIZES = (1, 10)


def distiller_condition(label: str, images_per_class: int) -> str:
    return f"DAS {label}, {images_per_class}/class"


#: Labeled shares of the train split in the learning curve (part ``curve``; the profile's recipe).
LEARNING_CURVE = (0.05, 0.1, 0.25, 0.5, 1.0)


def mixup_condition(condition: str) -> str:
    """The name of ``condition`` in part ``mixup`` (every learner trained under mixup)."""
    return f"mixup α={MIXUP_ALPHA:g}: {condition}"


def vas_condition(delta: float) -> str:
    return f"VAS δ={delta:g}"


def anchor_alone_at(epochs: int) -> str:
    """Name of the anchor-alone learner given ``epochs`` epochs: the equal-step reference of a
    learner that trains on more images at the profile's epochs."""
    return f"anchor alone, {epochs} epochs"


def applies(params: Mapping[str, Any]) -> bool:
    """Whether the profile gives what the study needs: real data, and a pool with hidden labels
    (the anchor's rest) whose root is set."""
    return (params.get("data_source") == "real" and roles.is_semi_supervised(params)
            and bool(params.get(f"{roles.anchor_of(params)}_root")))


def _steps(n_images: int, epochs: int, batch_size: int) -> int:
    return int(math.ceil(n_images / batch_size) * epochs)


def vas_statistics(vas) -> Dict[str, Any]:
    """Of a selection (an :class:`~omnifer_lib.select.AuxiliaryDataset` over a pool with hidden
    labels): ``selected`` images, ``precision`` of their pseudo-labels (0-1, ``None`` without hidden
    labels) and ``counts`` per class (the canonical order)."""
    labels = np.asarray(vas.labels, dtype=np.int64)
    truth = getattr(vas, "true_labels", None)
    known = truth is not None and len(truth) and (np.asarray(truth) >= 0).all()
    return {"selected": int(len(labels)),
            "precision": float((labels == np.asarray(truth)).mean()) if known else None,
            "counts": np.bincount(labels, minlength=7).astype(int).tolist()}


def collect(params: Mapping[str, Any], *, parts: Sequence[str] = PARTS,
            rule_conditions: Optional[Sequence[str]] = None, distill_sizes: Sequence[int] = DISTILL_SIZES,
            log: Callable[[str], None] = lambda _m: None,
            search_recipes: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run (or read from the cache) the study's conditions for each backbone and seed of ``params``
    and return the archive: ``conditions`` (one row per condition, backbone and seed: accuracy and
    mean class accuracy on the test split in %, epochs, SGD steps, training images, seconds per epoch,
    the equal-step ``reference`` and, for selections, their size and pseudo-label precision),
    ``selection`` (per δ and class: selected, correct, precision), ``rules`` (rules at matched counts),
    ``distillation`` (outer loss and step sizes η of Algorithm 1), ``search`` (every recipe tried),
    ``curve`` (the learning curve), ``skipped`` (conditions the data could not give, with the reason)
    and ``provenance``.

    With ``seeds_redraw_pipeline`` every seed redraws its labeled split, primitive learner, selection
    and distillation (:func:`omnifer_lib.engine.pipeline.seed_params`). ``parts``: which of
    :data:`PARTS` to run (``core``: baseline, VAS at the first δ of ``vas_deltas``, DAS and the equal-step
    anchor; ``margins``: VAS and its equal-step anchor at each further δ; ``rules``:
    :data:`RULE_CONDITIONS`; ``controls``: random real, mean image, the oracles; ``distillation``:
    :data:`DISTILLERS` at :data:`DISTILL_SIZES` images per class; ``search``:
    :data:`RECIPE_SEARCH`; ``curve``: :data:`LEARNING_CURVE`). ``rule_conditions``: names of
    :data:`RULE_CONDITIONS` that part ``rules`` runs (``None``: all), e.g. to add one to an archive
    with :func:`merge_archives`; ``distill_sizes``: images per class of part ``distillation``
    (:data:`DISTILL_SIZES` by default; one size at a time fits a session's budget, and
    :func:`merge_archives` adds the other later); ``search_recipes``: names of :data:`RECIPE_SEARCH`
    that part ``search`` runs (``None``: all), to add a recipe tried later."""
    from omnifer_lib.engine import pipeline
    from omnifer_lib.engine.pipeline.learners import ORACLE as ORACLE_MODE
    from omnifer_lib.select import delta_sweep

    if not applies(params):
        raise ValueError("the real-faces study needs data_source real, pool anchor_rest and the anchor's root "
                         "(e.g. omnifer archive-real-faces --profile fer2013 -p fer2013_root /path/to/fer2013)")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown parts {unknown}; expected some of {', '.join(PARTS)}")
    if "mixup" in parts and float(params.get("mixup_alpha") or 0):
        raise ValueError(f"part mixup trains its own learners under mixup (α = {MIXUP_ALPHA}) beside plain ones: run "
                         f"it with the profile's mixup_alpha 0, not {params['mixup_alpha']}")
    if "distillation" in parts and (not distill_sizes or any(int(n) < 1 for n in distill_sizes)):
        raise ValueError(f"distill_sizes must be positive images per class, got {list(distill_sizes)}")
    rules_run = [(c, o) for c, o in RULE_CONDITIONS if rule_conditions is None or c in rule_conditions]
    unknown = sorted(set(rule_conditions or ()) - {c for c, _ in RULE_CONDITIONS})
    if unknown:
        raise ValueError(f"unknown rule conditions {unknown}; expected some of: " +
                         "; ".join(c for c, _ in RULE_CONDITIONS))
    for given, part in ((rule_conditions, "rules"), (search_recipes, "search")):
        if given is not None and part not in parts:
            raise ValueError(f"{'rule_conditions' if part == 'rules' else 'search_recipes'} choose within part "
                             f"{part}, which parts {list(parts)} do not run: add {part!r} to parts")
    unknown = sorted(set(search_recipes or ()) - {c for c, _ in RECIPE_SEARCH})
    if unknown:
        raise ValueError(f"unknown search recipes {unknown}; expected some of: "
                         + "; ".join(c for c, _ in RECIPE_SEARCH))
    started, t0 = provenance.now_iso(), time.time()
    anchor_name = roles.anchor_of(params)
    anchor = pipeline.dataset(params, anchor_name, "train")
    pool = pipeline.dataset(params, roles.pool_of(params), "train")
    n_anchor, batch = len(anchor), int(params["batch_size"])
    redraw = bool(params.get("seeds_redraw_pipeline"))
    rows: List[Dict[str, Any]] = []
    made_on: Counter = Counter()  # results per processor their learner was trained on (cached ones as recorded)

    def add(condition: str, backbone: str, seed: int, art, run_params: Mapping[str, Any], *,
            reference: Optional[str] = None, anchor_alone: bool = False, with_das: bool = False,
            vas=None, baseline: Optional[str] = None) -> None:
        evaluations = pipeline.evaluation(art)
        ev = evaluations[anchor_name]
        hist = pipeline.history(art)
        n_train = int(art.meta["summary"].get("train_images") or n_anchor)
        das_per_batch = 7 * int(run_params["images_per_class"]) if with_das else 0  # they join every minibatch
        row = {"condition": condition, "backbone": backbone, "seed": int(seed),
               "accuracy": float(ev["accuracy"]), "mean_class_accuracy": float(ev["mean_class_accuracy"]),
               "epochs": int(run_params["epochs"]), "steps": _steps(n_train, int(run_params["epochs"]), batch),
               "train_images": n_train, "images_per_step": batch + das_per_batch,
               "seconds_per_epoch": float(hist["seconds"].mean()), "reference": reference,
               "anchor_alone": bool(anchor_alone)}
        if baseline is not None:  # the gain's own baseline (part mixup); others are paired with BASELINE
            row["baseline"] = baseline
        if vas is not None:
            row.update(vas_statistics(vas))
        cross = {t: round(float(e["accuracy"]), 4) for t, e in evaluations.items() if t != anchor_name}
        if cross:  # the cross-dataset targets (aligned to the anchor's framing with align_cross_targets)
            row["cross"] = cross
        rows.append(row)
        made_on[trained_on(art.meta)] += 1
        log(f"{condition} · {backbone} · seed {seed}: {ev['accuracy']:.1f} %")

    def with_equal_step_anchor(condition, backbone, seed, run, sel_params, art, named=str, baseline=None):
        """Add a VAS-like learner and the anchor alone at its number of steps (trained once per epochs);
        ``named`` names the anchor-alone learners of the part (:func:`mixup_condition`)."""
        vas = pipeline.auxiliary_samples(sel_params, backbone)
        if sel_params.get("vas_equal_steps"):  # trained at the anchor's steps: the baseline is its reference
            add(condition, backbone, seed, art, {**run, "epochs": len(pipeline.history(art))},
                reference=named(BASELINE), vas=vas, baseline=baseline)
            return
        eq = equal_step_params(run, n_anchor, n_anchor + len(vas))
        ref = named(BASELINE if eq["epochs"] == run["epochs"] else anchor_alone_at(eq["epochs"]))
        if ref != named(BASELINE) and not any(r["condition"] == ref and r["seed"] == seed
                                              and r["backbone"] == backbone for r in rows):
            add(ref, backbone, seed, pipeline.learner(eq, backbone, "anchor", seed=seed), eq, anchor_alone=True)
        add(condition, backbone, seed, art, run, reference=ref, vas=vas, baseline=baseline)

    selection_rows, rule_rows, distillation, search_rows, curve_rows, skipped = [], [], {}, [], [], []
    upstream_seeds = list(params["seeds"]) if redraw else [int(params["seed"])]
    for backbone in params["backbones"]:
        for seed in (params["seeds"] if {*_WITH_BASELINE, "mixup"} & set(parts) else []):
            run = pipeline.seed_params(params, seed)
            if set(_WITH_BASELINE) & set(parts):
                add(BASELINE, backbone, seed, pipeline.learner(run, backbone, "anchor", seed=seed), run,
                    anchor_alone=True)
            first_delta = run["vas_deltas"][0]
            margins = ([first_delta] if "core" in parts else []) + (run["vas_deltas"][1:] if "margins" in parts else [])
            for delta in margins:
                art = pipeline.learner(run, backbone, "anchor+VAS", seed=seed, selection={"delta": delta})
                with_equal_step_anchor(vas_condition(delta), backbone, seed, run, {**run, "delta": delta}, art)
            if "core" in parts:
                art = pipeline.learner(run, backbone, "anchor+DAS", seed=seed, das_method="algorithm1")
                add(DAS, backbone, seed, art, run, reference=BASELINE, with_das=True)
            if "rules" in parts:
                for condition, over in rules_run:
                    sel = {"delta": first_delta, **over}
                    art = pipeline.learner(run, backbone, "anchor+VAS", seed=seed, selection=sel)
                    with_equal_step_anchor(condition, backbone, seed, run, {**run, **sel}, art)
                    if int(sel.get("selection_rounds") or 1) > 1 and sel.get("vas_equal_steps"):
                        rows[-1]["rounds"] = round_rows(run, backbone, seed, sel)  # every round at equal steps
            if "controls" in parts:
                for condition, method in ((RANDOM_REAL, "random_real"), (MEAN_IMAGE, "mean_image")):
                    art = pipeline.learner(run, backbone, "anchor+DAS", seed=seed, das_method=method)
                    add(condition, backbone, seed, art, run, reference=BASELINE, with_das=True)
                oracle = equal_step_params(run, n_anchor + len(pool), n_anchor)
                add(ORACLE, backbone, seed, pipeline.learner(oracle, backbone, ORACLE_MODE, seed=seed), oracle,
                    reference=BASELINE)
                name, _, budget = SEARCH[1]
                two = {**run, **budget}
                add(name, backbone, seed, pipeline.learner(two, backbone, ORACLE_MODE, seed=seed), two,
                    reference=_nearest_anchor_alone(rows, backbone, seed, n_anchor + len(pool), two, batch))
            if "distillation" in parts:
                for label, method in DISTILLERS:
                    for size in distill_sizes:
                        sized = {**run, "images_per_class": int(size)}
                        name = distiller_condition(label, size)
                        try:
                            art = pipeline.learner(sized, backbone, "anchor+DAS", seed=seed, das_method=method)
                        except ValueError as exc:  # e.g. a class with fewer selected images than the size
                            skipped.append({"condition": name, "backbone": backbone, "seed": int(seed),
                                            "reason": str(exc)})
                            log(f"{name} · {backbone} · seed {seed}: skipped ({exc})")
                            continue
                        add(name, backbone, seed, art, sized, reference=BASELINE, with_das=True)
                        made = pipeline.distilled(sized, backbone, method).meta.get("seconds")
                        if made is not None:  # the distillation's own time (cached: as first measured)
                            rows[-1]["distill_seconds"] = float(made)
            if "mixup" in parts:  # the final learners under mixup; the teacher and its selection stay plain
                plain = BASELINE
                if not set(_WITH_BASELINE) & set(parts):  # run alone: its own copy of the baseline to pair with
                    plain = MIXUP_TEACHER
                    add(plain, backbone, seed, pipeline.learner(run, backbone, "anchor", seed=seed), run,
                        anchor_alone=True)
                mixed = {**run, "mixup_alpha": MIXUP_ALPHA}
                own = mixup_condition(BASELINE)
                add(own, backbone, seed, pipeline.learner(mixed, backbone, "anchor", seed=seed), mixed,
                    anchor_alone=True, baseline=plain)
                sel = {"delta": first_delta}
                art = pipeline.learner(mixed, backbone, "anchor+VAS", seed=seed, selection=sel)
                with_equal_step_anchor(mixup_condition(vas_condition(first_delta)), backbone, seed, mixed,
                                       {**mixed, **sel}, art, named=mixup_condition, baseline=own)
        for seed in (upstream_seeds if {"core", "margins", "rules", "controls"} & set(parts) else []):
            run = pipeline.seed_params(params, seed)
            if {"core", "margins", "rules"} & set(parts):
                sweep = delta_sweep(pipeline.manifest_dir(run, backbone), run["deltas"],
                                    pipeline.dataset(run, roles.pool_of(run), "train"),
                                    rules=("margin", "softmax", "balanced_quantile", "distribution_alignment"))
                for row in sweep.to_dict("records"):
                    row.pop("params", None)
                    target = selection_rows if row["rule"] == "margin" else rule_rows
                    target.append({"backbone": backbone, "seed": int(seed), **_plain(row)})
            if {"core", "controls"} & set(parts):  # controls: the DAS alone (merge_archives adds it to core's)
                das = pipeline.load_distilled(pipeline.distilled(run, backbone))
                distillation.setdefault(backbone, []).append(
                    {"seed": int(seed), "outer_loss": [float(x) for x in das.loss_history],
                     "step_sizes": [float(e) for e in das.step_sizes],
                     "alone": distilled_alone(run, backbone, das) if "controls" in parts else []})
        master = pipeline.seed_params(params, params["seeds"][0])
        if "search" in parts:
            for name, recipe in RECIPE_SEARCH:
                if search_recipes is not None and name not in search_recipes:
                    continue
                run = {**master, **recipe}
                art = pipeline.learner(run, backbone, "anchor", seed=master["seed"])
                made_on[trained_on(art.meta)] += 1
                ev = pipeline.evaluation(art)[anchor_name]
                search_rows.append({"backbone": backbone, "configuration": name, "recipe": dict(recipe),
                                    "seed": int(master["seed"]), "labeled_fraction": run["labeled_fraction"],
                                    "accuracy": float(ev["accuracy"]),
                                    "mean_class_accuracy": float(ev["mean_class_accuracy"]),
                                    "seconds_per_epoch": float(pipeline.history(art)["seconds"].mean())})
                log(f"search: {name} · {backbone}: {ev['accuracy']:.1f} %")
        if "curve" in parts:
            for fraction in LEARNING_CURVE:
                run = {**master, "labeled_fraction": float(fraction), "labeled_per_class": None}
                art = pipeline.learner(run, backbone, "anchor", seed=master["seed"])
                made_on[trained_on(art.meta)] += 1
                ev = pipeline.evaluation(art)[anchor_name]
                curve_rows.append({"backbone": backbone, "labeled_fraction": float(fraction),
                                   "labeled": int(art.meta["summary"].get("train_images") or 0),
                                   "seed": int(master["seed"]), "accuracy": float(ev["accuracy"]),
                                   "mean_class_accuracy": float(ev["mean_class_accuracy"])})
                log(f"learning curve: {fraction:.0%} labeled · {backbone}: {ev['accuracy']:.1f} %")
    prov = {**_provenance(params, started, time.time() - t0), "learners_made_on": dict(made_on.most_common()),
            "learners_here": trained_on({"created_by": {"machine": provenance.machine()}, "summary": {
                "device": provenance.device_description(params.get("device", "auto"))}})}
    made_on_note = made_on_text(prov)
    if made_on_note:
        log(made_on_note)
    return {"format": FORMAT, "parts": list(parts), "rules_matched": RULES_MATCHED,
            "distill_sizes": [int(n) for n in distill_sizes],
            "rule_conditions": None if rule_conditions is None else [c for c, _ in rules_run],
            "search_recipes": None if search_recipes is None else [c for c, _ in RECIPE_SEARCH if c in search_recipes],
            "conditions": rows, "selection": selection_rows, "rules": rule_rows, "distillation": distillation,
            "search": search_rows, "curve": curve_rows, "skipped": skipped,
            "sizes": {"anchor": n_anchor, "pool": len(pool), "test": len(pipeline.dataset(
                params, anchor_name, "test"))},
            "provenance": prov}


def round_rows(run: Mapping[str, Any], backbone: str, seed: int, selection: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Round by round of a select-then-retrain condition (``selection`` with ``selection_rounds`` k):
    each round's selection (:func:`vas_statistics`) and the test accuracy (%) of the learner trained on
    it: the next round's teacher (:func:`~omnifer_lib.engine.pipeline.teacher`, with the master seed)
    for r < k, the condition's own learner (``seed``) for the last (all cached: the condition trained them)."""
    from omnifer_lib.engine import pipeline

    out, k = [], int(selection["selection_rounds"])
    for r in range(1, k + 1):
        sel = {**selection, "selection_rounds": r}
        art = (pipeline.teacher({**run, **selection, "selection_rounds": r + 1}, backbone) if r < k
               else pipeline.learner(run, backbone, "anchor+VAS", seed=seed, selection=sel))
        ev = pipeline.evaluation(art)[roles.anchor_of(run)]
        out.append({"round": r, **vas_statistics(pipeline.auxiliary_samples({**run, **sel}, backbone)),
                    "accuracy": float(ev["accuracy"])})
    return out


def _nearest_anchor_alone(rows, backbone: str, seed: int, n_train: int, run: Mapping[str, Any],
                          batch: int, tolerance: float = 0.1) -> Optional[str]:
    """The anchor-alone condition (of ``rows``) whose SGD steps are within ``tolerance`` of a learner
    on ``n_train`` images with ``run``'s epochs, or ``None``."""
    steps = _steps(n_train, int(run["epochs"]), batch)
    for r in rows:
        if r["anchor_alone"] and r["backbone"] == backbone and r["seed"] == seed \
                and abs(r["steps"] - steps) <= tolerance * r["steps"]:
            return r["condition"]
    return None


def distilled_alone(params: Mapping[str, Any], backbone: str, das) -> List[Dict[str, Any]]:
    """Test accuracy (%, mean and std over ``distill_eval_inits`` fresh initialisations) of
    learners trained on the seven distilled images alone with their learned step sizes η, beside the
    same number of images that were not distilled: uniform noise and random real selected images
    (each with the DAS's η) and the per-class mean image, all by one protocol
    (:func:`~omnifer_lib.distill.compare_distilled`, the learned way only)."""
    import dataclasses

    import torch

    from omnifer_lib.engine import pipeline
    from omnifer_lib.data import to_tensors
    from omnifer_lib.distill import DistillConfig, compare_distilled, with_step_sizes

    cfg = DistillConfig.from_params(params)
    test_x, test_y = to_tensors(pipeline.dataset(params, roles.anchor_of(params), "test"))
    model = pipeline.load_model(pipeline.primitive_learner(params, backbone))
    noise = torch.rand(das.images.shape, generator=torch_generator(int(params["seed"])))
    sets = [("Algorithm 1 (DAS)", das), ("uniform noise, DAS's η", dataclasses.replace(das, images=noise))]
    for name, method in (("random real, DAS's η", "random_real"), ("mean image, DAS's η", "mean_image")):
        other = pipeline.load_distilled(pipeline.distilled(params, backbone, method))
        sets.append((name, with_step_sizes(other, das.step_sizes)))
    evals = compare_distilled(sets, model, test_x, test_y, ways=("learned",), inits=int(params["distill_eval_inits"]),
                              seed=int(params["seed"]), init_scope=cfg.init_scope, fixed_init=cfg.fixed_init,
                              device=pipeline.device_of(params))
    return [{"set": name, "accuracy": 100 * float(ev.mean), "std": 100 * float(ev.std), "inits": len(ev.accuracies),
             "chance": 100 * float(ev.chance)} for name, ev in evals]


def _plain(row: Mapping[str, Any]) -> Dict[str, Any]:
    out = {}
    for k, v in row.items():
        if isinstance(v, (np.integer,)):
            v = int(v)
        elif isinstance(v, (np.floating, float)):
            v = None if not np.isfinite(v) else float(v)
        out[k] = v
    return out


def _provenance(params: Mapping[str, Any], started: str, seconds: float) -> Dict[str, Any]:
    root = params.get(f"{roles.anchor_of(params)}_root")
    fingerprint = provenance.dataset_fingerprint(root)
    fingerprint["root"] = provenance.portable_path(fingerprint.get("root"))
    return {"git": provenance.git_state(Path(__file__).resolve().parents[2]),
            "parameters": provenance.portable_parameters(params),
            "seeds": list(params["seeds"]), "started": started, "seconds_to_collect": round(seconds, 1),
            "training_code": _training_code(),  # what two runs' learners must share
            "machine": {"cpu": provenance.cpu_model(), "cpu_id": provenance.cpu_id(), "platform": platform.platform(),
                        "device": provenance.device_description(params.get("device", "auto"))},
            "packages": provenance.package_versions(),
            "dataset": {"name": roles.anchor_of(params), "fingerprint": fingerprint}}


def trained_on(meta: Mapping[str, Any]) -> str:
    """The processor a cached learner was trained on, from its artifact's ``meta``: the GPU where it trained on
    one, else the CPU as :func:`omnifer_lib.engine.provenance.cpu_text` names it (with the family and model where
    recorded), or "not recorded". Another CPU model ends the same learner at other numbers, and a resumed run
    reuses whatever the cache holds, so an archive counts its results per processor
    (``provenance["learners_made_on"]``, :func:`made_on_text`)."""
    made = (meta.get("created_by") or {}).get("machine") or {}
    if made.get("gpu") and str((meta.get("summary") or {}).get("device") or "").startswith("cuda"):
        return made["gpu"]
    return provenance.cpu_text(made) or "not recorded"


def made_on_text(prov: Mapping[str, Any]) -> str:
    """What a run's results say about the processors their learners were trained on (``learners_made_on``, as
    their cache records them; ``learners_here``: the name a learner trained by the run itself gets): a sentence
    naming them where some were trained on another, one counting those whose record cannot tell (cached before the
    family and model were recorded), else empty (and for runs that did not count them)."""
    counts = prov.get("learners_made_on") or {}
    here = prov.get("learners_here") or provenance.cpu_text(prov.get("machine"))
    bare = (prov.get("machine") or {}).get("cpu")
    others = {n: c for n, c in counts.items() if n != here}
    vague = {n: c for n, c in others.items() if n == "not recorded" or (n == bare and n != here)}
    named = {n: c for n, c in others.items() if n not in vague}
    texts = []
    if named:
        shown = {**({here: counts[here]} if here in counts else {}), **named}
        listed = "; ".join(f"{name}: {n} result{'s' * (n != 1)}" for name, n in shown.items())
        elsewhere = "" if here in counts else f", not on the processor of the run that collected them ({here})"
        texts.append(f"Its learners were trained on {len(shown)} processor{'s' * (len(shown) > 1)} as their cache "
                     f"records them ({listed}){elsewhere}: another CPU model ends the same learner at other numbers, "
                     "so its comparisons may cross machines.")
    if vague:
        n = sum(vague.values())
        texts.append(f"{n} of its results come from learners whose cache does not record their processor's family "
                     f"and model{f' (only {bare!r})' if bare in vague else ''}: whether they were trained on this "
                     f"run's {here} cannot be told.")
    return " ".join(texts)


def _training_code() -> Optional[str]:
    """The learners' code fingerprint, or None where the library changed on disk during the run (the archive is
    still written, as an archive of a run that cannot vouch for its code)."""
    from omnifer_lib.engine.fingerprint import CodeChangedError

    try:
        return stage_code("learners")["fingerprint"]
    except CodeChangedError:
        return None


def write_archive(archive: Mapping[str, Any], path: Optional[Path] = None) -> Path:
    """Write ``archive`` as JSON, atomically (the committed :data:`ARCHIVE` by default)."""
    path = Path(path or ARCHIVE)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, archive, ensure_ascii=False, newline=True, default=str)
    return path


def read_archive(path: Optional[Path] = None) -> Optional[Dict[str, Any]]:
    """The archive at ``path`` (:data:`ARCHIVE` by default), or ``None`` when there is none yet."""
    path = Path(path or ARCHIVE)
    if not path.is_file():
        return None
    archive = json.loads(path.read_text())
    if archive.get("format") not in READABLE_FORMATS:
        raise ValueError(f"{path}: archive format {archive.get('format')!r}, this code reads formats "
                         f"{', '.join(map(str, READABLE_FORMATS))}")
    return upgrade(archive)


def upgrade(archive: Mapping[str, Any]) -> Dict[str, Any]:
    """``archive`` as format :data:`FORMAT` where it is format 2 (a copy; any other is returned as it is):
    format 2's part ``core`` computed every margin of ``vas_deltas``, which format 3 splits into ``core`` (the
    first) and ``margins`` (the rest), so a format-2 archive that holds ``core`` holds ``margins`` too. Rows and
    provenance stay as they were (``provenance["merged"]`` keeps the parts each run named then)."""
    if archive.get("format") != 2:
        return archive  # type: ignore[return-value]
    out = dict(archive)
    held = set(out.get("parts") or ()) | ({"margins"} if "core" in (out.get("parts") or ()) else set())
    out["parts"] = [p for p in PARTS if p in held]
    out["format"] = FORMAT
    return out


#: What identifies a row of each list of an archive (rows two archives share must agree).
_ROW_KEYS = {"conditions": ("condition", "backbone", "seed"),
             "selection": ("backbone", "seed", "delta", "rule", "class"),
             "rules": ("backbone", "seed", "delta", "rule", "class"),
             "search": ("configuration", "backbone", "seed"),
             "curve": ("labeled_fraction", "backbone", "seed")}
#: The numbers compared on a shared row.
_ROW_NUMBERS = ("accuracy", "mean_class_accuracy", "selected", "correct")


def merge_archives(base: Mapping[str, Any], extra: Mapping[str, Any], *, tolerance: float = 1e-6,
                   other_machine: bool = False) -> Dict[str, Any]:
    """``base`` with the parts and rows of ``extra`` (a run of other parts or rule conditions) added.

    Both must be format :data:`FORMAT` runs (or format 2, read as :func:`upgrade` does) on the same data, and every
    parameter both name must have the same value but ``seeds`` (``provenance["seeds"]`` becomes the union; each row
    carries its seed and the tables count the seeds they pair), or but :data:`SEARCH_UNREAD` when ``extra`` holds
    part ``search`` alone and no other rows (its recipes are whole configurations, so the log moves with the study
    when the profile adopts another recipe; ``merged[-1]["other_recipe"]`` records the values it differs in). A
    parameter only one names came with newer code; it is listed, not refused. The check that the two runs are one
    pipeline (same code, machine kind and thread count) is the rows both hold (same condition, backbone and seed; δ
    and class for the selections; recipe or labeled share for the search and the curve), and the rows that are a
    seed's baseline learner under another name (the curve's point at the profile's labeled share, part mixup's
    :data:`MIXUP_TEACHER`, a search recipe that is the profile's): their numbers must agree within ``tolerance``,
    else ``ValueError`` names the row. ``base``'s provenance stays and ``provenance["merged"]`` lists each added
    run's parts, commit, machine, time, new parameters and how many rows were checked so (:func:`parts_note` says
    it).

    ``other_machine=True`` declares ``extra`` made on another machine (another CPU model orders a convolution's sums
    otherwise, so the same learner ends elsewhere): allowed only for a run of part ``mixup`` alone (its rows pair
    within themselves) with the same package versions and device threads, on a CPU not recorded as the same one
    (:func:`_other_machine_refusal`); its :data:`MIXUP_TEACHER` rows that differ from the baseline are then
    recorded in ``merged[-1]["differs"]`` (the teacher and this archive's baseline side by side) instead of refused.
    ``rows_checked`` counts the rows found equal."""
    base, extra = upgrade(base), upgrade(extra)
    for name, a in (("base", base), ("extra", extra)):
        if a.get("format") != FORMAT:
            raise ValueError(f"the {name} archive is format {a.get('format')!r}; merging needs format {FORMAT} "
                             "(rerun the study with this code)")
    pb, pe = base["provenance"], extra["provenance"]
    if other_machine:
        refusal = _other_machine_refusal(pb, extra)
        if refusal:
            raise ValueError(f"other_machine (--other-machine) refused: {refusal}")
    if pb["dataset"]["fingerprint"].get("sha256") != pe["dataset"]["fingerprint"].get("sha256"):
        raise ValueError("the archives were made on different data (dataset fingerprints "
                         f"{pb['dataset']['fingerprint'].get('sha256')} and "
                         f"{pe['dataset']['fingerprint'].get('sha256')})")
    differ = sorted(k for k in (set(pb["parameters"]) & set(pe["parameters"])) - {"seeds"}  # rows carry theirs
                    if pb["parameters"][k] != pe["parameters"][k])
    recipe_free = []
    if set(extra.get("parts") or ()) == {"search"}:  # whole configurations: the profile's recipe is not read
        other_rows = _rows_held(extra, but="search")
        if other_rows:
            raise ValueError(f"the added archive names part search alone but holds rows of {', '.join(other_rows)}; "
                             "only the search log may join an archive made with another recipe")
        recipe_free = [k for k in differ if k in SEARCH_UNREAD]
        differ = [k for k in differ if k not in SEARCH_UNREAD]
    if differ:
        raise ValueError(f"the archives were made with different parameters ({', '.join(differ)}); "
                         "merge only runs of one profile with the same overrides (a run of part search alone "
                         f"may differ in {', '.join(sorted(SEARCH_UNREAD))})")
    matched = [rules_matched(a) for a in (base, extra) if _holds_matched_rows(a)]
    if len(set(matched)) > 1 and pb["parameters"].get("per_class_cap") is not None:  # without a cap: the same
        raise ValueError(f"the base archive's rules were matched to the margin rule's count {matched[0]} and the added "
                         f"run's {matched[1]}: their rows cannot share a table; make a new archive of the whole "
                         "study with this code (omnifer archive-real-faces --out FILE)")
    out = json.loads(json.dumps(base))
    if not _holds_matched_rows(out) and _holds_matched_rows(extra):
        out["rules_matched"] = rules_matched(extra)
    checked = 0
    for field, keys in _ROW_KEYS.items():
        held = {tuple(r.get(k) for k in keys): r for r in out.get(field, [])}
        for row in extra.get(field, []):
            key = tuple(row.get(k) for k in keys)
            if key not in held:
                out.setdefault(field, []).append(row)
                held[key] = row
                continue
            for n in _ROW_NUMBERS:
                a, b = held[key].get(n), row.get(n)
                if a is not None and b is not None and abs(float(a) - float(b)) > tolerance:
                    raise ValueError(f"{field} row {dict(zip(keys, key))}: {n} is {a} in the base archive and {b} in "
                                     "the added one; they were not made by the same pipeline (code, machine kind or "
                                     "train_threads differ), so their rows cannot share a table")
            checked += 1
    # rows that are a seed's baseline learner under another name (the learning curve's point at the profile's
    # labeled share, part mixup's own baseline row): one more check where the two came from different runs
    share = pb["parameters"].get("labeled_fraction")
    added = {id(r) for r in [*extra.get("curve", []), *extra.get("conditions", []), *extra.get("search", [])]}
    baselines = {(r["backbone"], r["seed"]): r for r in out["conditions"] if r["condition"] == BASELINE}
    twins = [(f"the learning curve's {share:.0%} point", p) for p in out.get("curve", [])
             if share is not None and abs(p["labeled_fraction"] - share) <= 1e-9]
    twins += [(MIXUP_TEACHER, r) for r in out["conditions"] if r["condition"] == MIXUP_TEACHER]
    twins += [(f"the search's recipe {r['configuration']!r}", r) for r in out.get("search", [])
              if _is_profile_recipe(r, pb["parameters"])]
    differs = []
    for name, row in twins:
        twin = baselines.get((row["backbone"], row["seed"]))
        if twin is None or (id(row) in added) == (id(twin) in added):
            continue
        if abs(row["accuracy"] - twin["accuracy"]) > tolerance:
            if other_machine and name == MIXUP_TEACHER:
                new, old = (row, twin) if id(row) in added else (twin, row)
                differs.append({"row": name, "backbone": row["backbone"], "seed": int(row["seed"]),
                                "accuracy": new["accuracy"], "base": old["accuracy"]})
                continue
            hint = ("code, thread count or package versions differ, or the machine does")
            if name == MIXUP_TEACHER and not _other_machine_refusal(pb, extra):
                hint = ("if the added run was made on another machine (its CPU: "
                        f"{_machine_name(pe) or 'not recorded'}; the archive's: {_machine_name(pb) or 'not recorded'}),"
                        " part mixup alone may still join with --other-machine: its rows pair within themselves and "
                        "the difference is recorded")
            raise ValueError(f"{name} (seed {row['seed']}) is {row['accuracy']} but the baseline of that seed is "
                             f"{twin['accuracy']}: they are one learner, so the runs were not made by the same "
                             f"pipeline ({hint})")
        checked += 1
    for backbone, entries in extra.get("distillation", {}).items():
        mine = {e["seed"]: e for e in out.setdefault("distillation", {}).setdefault(backbone, [])}
        for e in entries:
            if e["seed"] not in mine:
                out["distillation"][backbone].append(e)
            elif not mine[e["seed"]].get("alone") and e.get("alone"):
                mine[e["seed"]]["alone"] = e["alone"]
    seen = {(r["condition"], r["backbone"], r["seed"]) for r in out.get("skipped", [])}
    out["skipped"] = out.get("skipped", []) + [r for r in extra.get("skipped", [])
                                               if (r["condition"], r["backbone"], r["seed"]) not in seen]
    out["parts"] = [p for p in PARTS if p in set(base.get("parts", ())) | set(extra.get("parts", ()))]
    out["provenance"]["seeds"] = sorted(set(pb.get("seeds", ())) | set(pe.get("seeds", ())))
    out["provenance"].setdefault("merged", []).append(
        {"parts": list(extra.get("parts", ())), "rule_conditions": extra.get("rule_conditions"),
         **({"search_recipes": extra["search_recipes"]} if extra.get("search_recipes") else {}),
         "rows_checked": checked, **({"other_machine": True, "differs": differs} if other_machine else {}),
         **({"training_code": pe["training_code"]} if pe.get("training_code") else {}),
         "new_parameters": {k: pe["parameters"][k]
                            for k in sorted(set(pe["parameters"]) - set(pb["parameters"]) - {"seeds"})},
         **({"other_recipe": {k: pe["parameters"][k] for k in recipe_free}} if recipe_free else {}),
         **{k: pe.get(k) for k in ("git", "started", "seconds_to_collect", "machine", "packages")},
         **{k: pe[k] for k in ("learners_made_on", "learners_here") if pe.get(k)}})
    return out


def rules_matched(archive: Mapping[str, Any]) -> str:
    """How ``archive``'s rules were matched to the margin rule's count: :data:`RULES_MATCHED` as this code does,
    or :data:`RULES_MATCHED_BEFORE` for archives made before it recorded that."""
    return archive.get("rules_matched") or RULES_MATCHED_BEFORE


def _holds_matched_rows(archive: Mapping[str, Any]) -> bool:
    return any(r["condition"] in MATCHED_RULES for r in archive.get("conditions") or ())


def matched_note(archive: Mapping[str, Any]) -> str:
    """One sentence under the main table on the rules matched to a count (:data:`MATCHED_RULES`): how many
    images they and the margin rule they are matched to keep a seed, and whether they were matched to what the
    margin rule keeps after the per-class cap (:func:`rules_matched`); empty without such rows."""
    rows = [r for r in archive.get("conditions") or () if r["condition"] in MATCHED_RULES and "selected" in r]
    deltas = archive["provenance"]["parameters"].get("vas_deltas") or []
    margin = [r for r in archive.get("conditions") or ()
              if deltas and r["condition"] == vas_condition(float(deltas[0])) and "selected" in r]
    if not rows or not margin:
        return ""
    span = lambda rs: (f"{min(r['selected'] for r in rs):,}–{max(r['selected'] for r in rs):,}"  # noqa: E731
                       if len({r["selected"] for r in rs}) > 1 else f"{rs[0]['selected']:,}")
    cap = archive["provenance"]["parameters"].get("per_class_cap")
    head = (f"The rules matched to a count keep {span(rows)} pool images a seed where the margin rule at δ "
            f"{deltas[0]} keeps {span(margin)}")
    if rules_matched(archive) == RULES_MATCHED:
        return head + (f": they were matched to what it keeps after the per-class cap of {cap} and keep at least as "
                       "many after it where their candidates allow (the fewest their rule can give), so their gains "
                       "compare what they select."
                       if cap is not None else ".")
    return head + (f": in this archive they were matched to its count before the per-class cap of {cap}, which then "
                   "trimmed each rule's classes in its own way, so their gains mix what they select with how much "
                   "(the library now matches after the cap: a new archive of the study shows it)." if cap is not None
                   else ".")


def _is_profile_recipe(row: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    """Whether a row of part ``search`` trained the anchor alone the way ``params`` train the baseline (the same
    labeled share and every parameter its recipe sets): then it is that seed's baseline learner."""
    share = params.get("labeled_fraction")
    return (share is not None and abs(row.get("labeled_fraction", share) - share) <= 1e-9
            and all(params.get(k, False if k == "test_flip_average" else None) == v
                    for k, v in row["recipe"].items()))


def condition_order(archive: Mapping[str, Any]) -> List[str]:
    """The conditions in the order the chapter shows them (as collected)."""
    return list(dict.fromkeys(r["condition"] for r in archive["conditions"]))


def _references(df: pd.DataFrame, backbone: str, condition: str, steps: pd.Series,
                tolerance: float) -> Dict[int, str]:
    """Seed -> the equal-step anchor-alone condition of ``condition`` in that seed: recorded on each
    row (format 2; seeds that redraw the pipeline select different numbers of images, so their
    references may differ), else (format 1) the anchor-alone learner whose SGD steps are within
    ``tolerance`` of the condition's."""
    mine = df[(df.backbone == backbone) & (df.condition == condition)]
    if "reference" in df.columns:
        return {int(r.seed): str(r.reference) for r in mine.itertuples() if isinstance(r.reference, str)}
    own = steps[(backbone, condition)]
    matched = [c for c in ANCHOR_ALONE if (backbone, c) in steps.index
               and abs(steps[(backbone, c)] - own) <= tolerance * steps[(backbone, c)]]
    return {int(s): matched[0] for s in mine["seed"]} if matched and condition not in ANCHOR_ALONE else {}


def _is_anchor_alone(df: pd.DataFrame, backbone: str, condition: str) -> bool:
    mine = df[(df.backbone == backbone) & (df.condition == condition)]
    if "anchor_alone" in df.columns:
        return bool(mine["anchor_alone"].fillna(False).astype(bool).all())
    return condition in ANCHOR_ALONE


def _baseline_of(df: pd.DataFrame, backbone: str, condition: str) -> Optional[str]:
    """The condition a row's gain is taken over: the one its rows name (``baseline``: part ``mixup``
    pairs within itself), else :data:`BASELINE`; none for an anchor-alone learner that names none."""
    mine = df[(df.backbone == backbone) & (df.condition == condition)]
    named = [b for b in mine.get("baseline", pd.Series(dtype=object)).tolist() if isinstance(b, str)]
    if named:
        return named[0]
    return None if _is_anchor_alone(df, backbone, condition) else BASELINE


def _paired(df: pd.DataFrame, backbone: str, condition: str, reference: Union[str, Mapping[int, str]],
            value: str):
    """:func:`omnifer_lib.evaluate.paired_difference` of a condition and its reference, seed by seed;
    ``reference`` is one condition or, per seed, the condition to pair that seed with."""
    from omnifer_lib.evaluate import paired_difference

    sub = df[df.backbone == backbone]
    values = {(c, int(s)): v for c, s, v in zip(sub["condition"], sub["seed"], sub[value])}
    mine = {s: v for (c, s), v in values.items() if c == condition}
    refs = reference if isinstance(reference, Mapping) else {s: reference for s in mine}
    theirs = {s: values[(refs[s], s)] for s in mine if s in refs and (refs[s], s) in values}
    return paired_difference(mine, theirs)


def _gain_text(stats) -> str:
    return f"{stats.mean:+.1f} ± {stats.se:.1f}" if math.isfinite(stats.se) else f"{stats.mean:+.1f}"


def results_table(archive: Mapping[str, Any], value: str = "accuracy", tolerance: float = 0.1) -> pd.DataFrame:
    """Mean ± std over seeds per backbone and condition, with two **paired** gains (per seed, the
    condition minus its own seed's reference; mean ± standard error of those differences,
    :func:`omnifer_lib.evaluate.paired_difference`): over the baseline (the row's own ``baseline`` where
    it names one: part ``mixup``'s learners over its anchor alone, that one over the profile's), and *at equal
    steps* over the anchor-alone learner given (about) the row's number of SGD steps in that seed (the rows'
    ``reference``; empty when there is none). For the latter, ``pairs`` (seeds paired), whether it is
    beyond seed noise (2 × s.e. of at least two pairs, :func:`omnifer_lib.evaluate.beyond_noise`) and
    whether it exceeds 2 standard deviations of at least :data:`MIN_PAIRS` paired gains (the bar for a real
    gain); the
    pseudo-labels' precision and count where the row trained on a selection; SGD steps, s / epoch.
    ``mean``, ``std``, ``equal-step gain`` and ``equal-step s.e.`` (the paired gain's mean and standard error)
    are numbers for code; the chapter shows the texts."""
    from omnifer_lib.evaluate import beyond_noise, summarize_seeds

    df = pd.DataFrame(archive.get("conditions") or [])
    if df.empty:
        return pd.DataFrame(columns=["backbone", "condition", "mean", "std", "n", "result", "gain",
                                     "equal-step anchor", "gain at equal steps", "pairs", "beyond noise", "> 2 std",
                                     "equal-step gain", "equal-step s.e."])
    stats = summarize_seeds(df, ["backbone", "condition"], value=value)
    steps = df.groupby(["backbone", "condition"], sort=False)["steps"].mean()
    out = []
    for _, row in stats.iterrows():
        mine = df[(df.backbone == row.backbone) & (df.condition == row.condition)]
        entry = {"backbone": row.backbone, "condition": row.condition, "mean": row["mean"], "std": row["std"],
                 "n": int(row["n"]), "result": row.text, "gain": None, "equal-step anchor": None,
                 "gain at equal steps": None, "pairs": None, "beyond noise": None, "> 2 std": None,
                 "selected": None, "precision (%)": None,
                 "SGD steps": int(steps[(row.backbone, row.condition)]),
                 "s / epoch": round(float(mine["seconds_per_epoch"].mean()), 1), "equal-step gain": None,
                 "equal-step s.e.": None}
        if "selected" in mine.columns and mine["selected"].notna().any():
            entry["selected"] = int(round(float(mine["selected"].mean())))
            if mine["precision"].notna().any():
                entry["precision (%)"] = round(100 * float(mine["precision"].mean()), 1)
        base = _baseline_of(df, row.backbone, row.condition)
        if base is not None and ((df.backbone == row.backbone) & (df.condition == base)).any():
            entry["gain"] = _gain_text(_paired(df, row.backbone, row.condition, base, value))
        if _is_anchor_alone(df, row.backbone, row.condition):
            out.append(entry)
            continue
        refs = _references(df, row.backbone, row.condition, steps, tolerance)
        pair = _paired(df, row.backbone, row.condition, refs, value) if refs else None
        if pair is not None and pair.n:
            several = pair.n > 1
            entry.update({"equal-step anchor": " / ".join(dict.fromkeys(refs.values())),
                          "gain at equal steps": _gain_text(pair), "pairs": int(pair.n),
                          "beyond noise": bool(several and pair.mean > 0 and beyond_noise(pair.mean, pair.se)),
                          "> 2 std": bool(pair.n >= MIN_PAIRS and math.isfinite(pair.std)
                                          and pair.mean > 2 * pair.std),
                          "equal-step gain": float(pair.mean), "equal-step s.e.": float(pair.se)})
        out.append(entry)
    return pd.DataFrame(out)


def recipe_text(archive: Mapping[str, Any]) -> str:
    """The training recipe of an archive's learners in words, e.g. "30 epochs of minibatches of 64, margin
    δ 0.05": with the margin δ (``delta``) where the archive records it, since DAS, its controls and the
    rules of part ``rules`` start from the VAS at that δ."""
    p = archive["provenance"]["parameters"]
    said = f"{p['epochs']} epochs of minibatches of {p['batch_size']}"
    return said if p.get("delta") is None else f"{said}, margin δ {float(p['delta']):g}"


#: The parameters two archives must share to be one study apart from the training recipe (:func:`same_study`).
STUDY_PARAMETERS = ("anchor", "pool", "test_split", "labeled_fraction", "labeled_per_class", "split_seed", "seeds",
                    "seeds_redraw_pipeline", "image_size", "backbones", "width")


def same_study(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two archives are one study apart from the training recipe: the same data (a dataset fingerprint
    both have) and the same :data:`STUDY_PARAMETERS` (test split, labeled split, seeds, learners)."""
    pa, pb = a["provenance"], b["provenance"]
    sha = pa["dataset"]["fingerprint"].get("sha256")
    return bool(sha) and sha == pb["dataset"]["fingerprint"].get("sha256") and all(
        pa["parameters"].get(k) == pb["parameters"].get(k) for k in STUDY_PARAMETERS)


#: The columns of :func:`recipe_comparison`.
RECIPE_COLUMNS = ["recipe", "backbone", "condition", "result", "gain", "gain at equal steps", "pairs", "beyond noise",
                  "> 2 std", "selected", "precision (%)", "SGD steps"]


def _recipe_rows(archives: Sequence[Mapping[str, Any]], rules: bool = True) -> pd.DataFrame:
    """:func:`recipe_comparison` with every :func:`results_table` column (the numbers for code too); ``rules``:
    with the conditions of :data:`RULE_CONDITIONS` that any archive holds."""
    recipes = [recipe_text(a) for a in archives]
    if len(set(recipes)) < len(recipes):
        raise ValueError(f"archives with the same recipe ({', '.join(recipes)}): a recipe comparison needs "
                         "archives made with different epochs, minibatch sizes or margins δ")
    tables = [results_table(a) for a in archives]
    ran = [name for name, _ in RULE_CONDITIONS] if rules else []  # each table keeps the rules it holds
    frames = []
    for archive, recipe, table in zip(archives, recipes, tables):
        deltas = archive["provenance"]["parameters"].get("vas_deltas") or []
        core = {BASELINE, DAS, RANDOM_REAL, MEAN_IMAGE, *(vas_condition(float(d)) for d in deltas), *ran}
        frames.append(table[table["condition"].isin(core)].assign(recipe=recipe))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RECIPE_COLUMNS)


def recipe_comparison(archives: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The baseline, each VAS δ of ``vas_deltas`` (parts core and margins) and DAS, DAS's controls (part
    ``controls``: random real, mean image) and the other pseudo-labelling rules (part ``rules``:
    :data:`RULE_CONDITIONS`) where each archive holds them (a rule one recipe has not run yet is a row of the
    other only), of archives of one study made
    with different training recipes (:func:`same_study`), one after the other: per recipe (:func:`recipe_text`),
    backbone and condition the :func:`results_table` columns :data:`RECIPE_COLUMNS` (accuracy on the test split,
    mean ± std over seeds; paired gains over the baseline and over the anchor alone at equal SGD steps). It
    answers whether a gain survives a stronger baseline. Empty without archives; a ``ValueError`` for two
    archives with the same recipe."""
    return _recipe_rows(archives)[RECIPE_COLUMNS]


def recipe_sentence(archives: Sequence[Mapping[str, Any]]) -> str:
    """Sentences per backbone on :func:`recipe_comparison` without the rules (the core comparison and DAS's
    controls): the baseline under each recipe; for each condition with an equal-step anchor, its paired gain
    at equal steps under each recipe that ran it (marked where it exceeds 2 standard deviations of the paired
    gains) and, under each, whether it is a gain or a loss beyond seed noise or within it; for each VAS, the
    pool images it selected (mean over seeds) and the precision of their pseudo-labels under each; and, for
    the archives with a learning curve, the accuracy with the whole train split labeled. Empty with fewer
    than two archives."""
    if len(archives) < 2:
        return ""
    table = _recipe_rows(archives, rules=False)
    recipes = [recipe_text(a) for a in archives]
    tags = dict(zip(recipes, _recipe_tags(archives)))
    out = []
    for backbone, mine in table.groupby("backbone", sort=False):
        def under(condition: str, said: Callable[[pd.Series], Optional[str]], joiner: str = " and ",
                  mine: pd.DataFrame = mine) -> str:
            return joiner.join(f"{t} with {tags[r]}" for r, t in _told(mine, condition, recipes, said).items())

        conditions = list(dict.fromkeys(mine["condition"]))
        said = [f"{backbone}: the baseline reaches " + " and ".join(
            f"{t} with {r} ({tags[r]} below)" for r, t in _told(mine, BASELINE, recipes,
                                                                lambda row: row["result"]).items())]
        judged = [c for c in conditions if _told(mine, c, recipes, _gain_said)]
        if judged:
            said[0] += "; the paired gain at equal steps is " + "; ".join(
                f"{c}: " + under(c, _gain_said, " against ") for c in judged)
            said.append("Against seed noise (2 standard errors of the paired gains): " + "; ".join(
                f"{c} {under(c, _noise_said, ', ')}" for c in judged))
        said += [f"{c} selects on average {under(c, _selection_said)}" for c in conditions
                 if c.startswith("VAS") and _told(mine, c, recipes, _selection_said)]
        whole = {r: c[(c["backbone"] == backbone) & (c["labeled_fraction"] == 1.0)]["accuracy"]
                 for r, c in zip(recipes, (learning_curve(a) for a in archives))}
        whole = {r: w for r, w in whole.items() if len(w)}
        if len(whole) > 1:
            said.append("With the whole train split labeled (the learning curve) it reaches " + " and ".join(
                f"{float(w.mean()):.1f} % with {tags[r]}" for r, w in whole.items()))
        out.append(". ".join(said) + ".")
    return " ".join(out)


def _recipe_tags(archives: Sequence[Mapping[str, Any]]) -> List[str]:
    """Short names of the archives' recipes for :func:`recipe_sentence`: "30 × 64" (epochs × minibatch), or the
    whole :func:`recipe_text` where that would name two archives alike."""
    short = [f"{a['provenance']['parameters']['epochs']} × {a['provenance']['parameters']['batch_size']}"
             for a in archives]
    return short if len(set(short)) == len(short) else [recipe_text(a) for a in archives]


def _told(rows: pd.DataFrame, condition: str, recipes: Sequence[str],
          said: Callable[[pd.Series], Optional[str]]) -> Dict[str, str]:
    """recipe -> what ``said`` tells of ``condition``'s row under it (silent recipes left out)."""
    mine = rows[rows["condition"] == condition].set_index("recipe")
    return {r: t for r in recipes if r in mine.index and (t := said(mine.loc[r]))}


def _gain_said(row: pd.Series) -> Optional[str]:
    value = row["gain at equal steps"]
    return f"{value}{' (> 2 std)' if row['> 2 std'] else ''}" if isinstance(value, str) else None


def _noise_said(row: pd.Series) -> Optional[str]:
    from omnifer_lib.evaluate import beyond_noise

    if not isinstance(row["gain at equal steps"], str):
        return None
    mean, se, pairs = float(row["equal-step gain"]), float(row["equal-step s.e."]), int(row["pairs"])
    if pairs < 2 or not beyond_noise(mean, se):
        return "within noise"
    return "a gain beyond noise" if mean > 0 else "a loss beyond noise"


def _selection_said(row: pd.Series) -> Optional[str]:
    if pd.isna(row["selected"]):
        return None
    right = "" if pd.isna(row["precision (%)"]) else f" ({row['precision (%)']:.1f} % right)"
    return f"{int(row['selected']):,} pool images{right}"


def _other_recipe(archive: Mapping[str, Any], path: Path) -> Optional[Dict[str, Any]]:
    """The archive at ``path`` when it exists, is the same study as ``archive`` (:func:`same_study`) and has
    another recipe; else None."""
    other = read_archive(path)
    if other is None or not same_study(archive, other) or recipe_text(other) == recipe_text(archive):
        return None
    return other


def recipe_archives(archive: Mapping[str, Any], path: Optional[Path] = None) -> List[Dict[str, Any]]:
    """The study with the earlier recipe (:data:`EARLIER_ARCHIVE`, or ``path``) and ``archive``, in that order,
    when that one exists, is the same study (:func:`same_study`) and has another recipe; else ``[]`` (nothing
    to compare): what chapter 11 sets side by side (:func:`recipe_comparison`)."""
    earlier = _other_recipe(archive, Path(path or EARLIER_ARCHIVE))
    return [] if earlier is None else [earlier, dict(archive)]


#: The columns of :func:`processor_comparison`.
PROCESSOR_COLUMNS = ["processor", "backbone", "condition", "result", "gain", "gain at equal steps", "pairs", "> 2 std"]


def _processor_name(archive: Mapping[str, Any]) -> str:
    name = _machine_name(archive["provenance"]) or "not recorded"
    recorded = (archive["provenance"].get("machine") or {}).get("cpu_id") or name == "not recorded"
    return name if recorded else f"{name} (family and model not recorded)"


def second_processor(archive: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The committed :data:`SECOND_PROCESSOR_ARCHIVE` when it is ``archive``'s study and recipe (:func:`same_study`,
    :func:`recipe_text`) on a processor not recorded as the same; else None."""
    other = read_archive(SECOND_PROCESSOR_ARCHIVE)
    if other is None or not same_study(archive, other) or recipe_text(other) != recipe_text(archive) \
            or _same_cpu(archive["provenance"], other["provenance"]) is True:
        return None
    return other


def processor_comparison(archives: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The core comparison (the baseline, the VAS at the first δ of ``vas_deltas`` and DAS) of archives of one
    study made on different processors, one after the other: per processor (:func:`provenance.cpu_text`),
    backbone and condition the :func:`results_table` columns :data:`PROCESSOR_COLUMNS` (paired gains per seed
    within each processor's run)."""
    frames = []
    for archive in archives:
        deltas = archive["provenance"]["parameters"].get("vas_deltas") or []
        core = [BASELINE, *[vas_condition(float(d)) for d in deltas[:1]], DAS]
        table = results_table(archive)
        frames.append(table[table["condition"].isin(core)].assign(processor=_processor_name(archive)))
    return pd.concat(frames, ignore_index=True)[PROCESSOR_COLUMNS] if frames else \
        pd.DataFrame(columns=PROCESSOR_COLUMNS)


def processor_sentence(archive: Mapping[str, Any], other: Optional[Mapping[str, Any]]) -> str:
    """Sentences on :func:`processor_comparison` of ``archive`` and ``other`` (its study on another processor):
    how far the baseline learner moved (the same learner: same code, data, seed and threads), and which of the
    conditions that pass the bar (> 2 std of the paired gains at equal steps) in ``archive`` pass it in ``other``.
    Empty when ``other`` is None."""
    if other is None:
        return ""
    table = processor_comparison([archive, other])
    here, there = _processor_name(archive), _processor_name(other)
    base = pd.DataFrame([{**r, "where": name} for a, name in ((archive, here), (other, there))
                         for r in a["conditions"] if r["condition"] == BASELINE])
    wide = base.pivot_table(index=["backbone", "seed"], columns="where", values="accuracy").dropna()
    moved = (wide[here] - wide[there]).abs()
    text = (f"On {there} the same core comparison — the same data, seeds, recipe and learners' code, every learner "
            f"trained again — moves the baseline learner by {moved.mean():.2f} points on average over {len(moved)} "
            f"seeds (at most {moved.max():.2f}), the same learner with the same threads and package versions.")
    passed = table[(table["processor"] == here) & (table["> 2 std"] == True)]  # noqa: E712 (None: not judged)
    if len(passed):
        again = table[(table["processor"] == there) & table["condition"].isin(passed["condition"])]
        held = again[again["> 2 std"] == True]  # noqa: E712
        text += (f" Of the rows that pass the bar on {here} ({', '.join(passed['condition'])}), "
                 + (f"{', '.join(held['condition'])} pass{'es' * (len(held) == 1)} it there too."
                    if len(held) else "none passes it there ("
                    + "; ".join(f"{r.condition}: {r['gain at equal steps']}" for _, r in again.iterrows())
                    + " at equal steps): over three seeds, the bar does not hold against the machine."))
    return text


def _processors(archive: Mapping[str, Any]) -> pd.DataFrame:
    other = second_processor(archive)
    return processor_comparison([archive, other]) if other is not None else pd.DataFrame(columns=PROCESSOR_COLUMNS)


def _processor_sentence(archive: Mapping[str, Any]) -> str:
    return processor_sentence(archive, second_processor(archive))


def _recipes(archive: Mapping[str, Any]) -> pd.DataFrame:
    return recipe_comparison(recipe_archives(archive))


def _recipe_sentence(archive: Mapping[str, Any]) -> str:
    archives = recipe_archives(archive)
    ways = {recipe_text(a): rules_matched(a) for a in archives if _holds_matched_rows(a)}
    mixed = (" The rules matched to a count were matched to the margin rule's count "
             + " and ".join(f"{way} with {recipe}" for recipe, way in ways.items()) + ", so their rows of the two "
             "recipes differ in that too." if len(set(ways.values())) > 1 else "")
    return recipe_sentence(archives) + mixed


def paper_gains(backbone: str) -> pd.DataFrame:
    """The paper's own gains over its baseline for ``backbone``'s family (Tables 1 and 2: RAF-DB and
    FER-2013 with MS-Celeb-1M as pool), in accuracy points, to set beside this study's."""
    from omnifer_lib import names
    from omnifer_lib.publish import paper

    fam = names.family(backbone)
    out = []
    for number, data in ((1, "RAF-DB"), (2, "FER-2013")):
        base = paper.reproduced_value(number, fam, "anchor")
        for mode, label in (("anchor+VAS", "VAS"), ("anchor+DAS", "DAS")):
            value = paper.reproduced_value(number, fam, mode)
            out.append({"paper's table": number, "data": data, "learner": names.FAMILY_NAMES[fam],
                        "setting": label, "gain (paper)": round(value - base, 2)})
    return pd.DataFrame(out)


def is_distiller_row(condition: str) -> bool:
    """Whether ``condition`` is one of part ``distillation``'s (:func:`distiller_condition`)."""
    return any(condition == distiller_condition(label, size) for label, _ in DISTILLERS for size in DISTILL_SIZES)


def main_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`results_table` but part ``distillation``'s (shown by :func:`distiller_table`)."""
    return table[~table["condition"].map(is_distiller_row)].reset_index(drop=True)


def distiller_table(table: pd.DataFrame) -> pd.DataFrame:
    """Part ``distillation`` of :func:`results_table`: per backbone and distiller, the accuracy and the
    paired gain over the baseline (the same SGD steps) at each size of :data:`DISTILL_SIZES`."""
    out = []
    for backbone, sub in table.groupby("backbone", sort=False):
        by = sub.set_index("condition")
        for label, _ in DISTILLERS:
            row = {"backbone": backbone, "distiller": label}
            for size in DISTILL_SIZES:
                name = distiller_condition(label, size)
                if name in by.index:
                    row[f"{size}/class"] = by.loc[name, "result"]
                    row[f"gain, {size}/class"] = by.loc[name, "gain at equal steps"]
            if len(row) > 2:
                out.append(row)
    return pd.DataFrame(out)


def distillation_verdict(archive: Mapping[str, Any], value: str = "accuracy") -> str:
    """One sentence per backbone: does Algorithm 1 add anything, on these faces, over the images it came
    from? At each size of :data:`DISTILL_SIZES`, its paired gain over the baseline (all at the
    baseline's SGD steps), its paired difference from the best undistilled set of the same size
    (random real selected images or the per-class mean image), judged by the noise rule of the claims
    page (:func:`omnifer_lib.evaluate.beyond_noise`), beside the gain of the VAS it was distilled from at
    equal steps; and what it cost (seconds of distillation where the archive holds them)."""
    from omnifer_lib.evaluate import beyond_noise

    df = pd.DataFrame(archive.get("conditions") or [])
    if df.empty or not df["condition"].map(is_distiller_row).any():
        return "This archive has no distiller comparison."
    table = results_table(archive, value)
    sentences = []
    for backbone, sub in df.groupby("backbone", sort=False):
        held = set(sub["condition"])
        parts = []
        for size in DISTILL_SIZES:
            mine = distiller_condition("Algorithm 1", size)
            if mine not in held:
                continue
            gain = _paired(df, backbone, mine, BASELINE, value)
            others = {distiller_condition(label, size): label for label, method in DISTILLERS
                      if method in ("random_real", "mean_image") and distiller_condition(label, size) in held}
            text = (f"at {size}/class ({gain.n} seed{'s' if gain.n != 1 else ''}) Algorithm 1 gains "
                    f"{_gain_text(gain)} points over the baseline")
            if others:
                best = max(others, key=lambda c: float(sub.loc[sub.condition == c, value].mean()))
                diff = _paired(df, backbone, mine, best, value)
                verdict = ("more than" if diff.mean > 0 and beyond_noise(diff.mean, diff.se) else
                           "less than" if diff.mean < 0 and beyond_noise(-diff.mean, diff.se) else
                           "no more than (within seed noise)")
                text += f", {verdict} {others[best]} of the same size ({_gain_text(diff)})"
            seconds = sub.loc[sub.condition == mine].get("distill_seconds")
            if seconds is not None and seconds.notna().any():
                text += f", for {float(seconds.mean()) / 60:.1f} min of distillation per seed"
            parts.append(text)
        vas = table[(table.backbone == backbone) & table.condition.str.startswith("VAS δ=")]
        if len(vas) and vas.iloc[0]["gain at equal steps"]:
            parts.append(f"the VAS it was distilled from ({vas.iloc[0]['condition']}) gains "
                         f"{vas.iloc[0]['gain at equal steps']} at equal steps")
        if parts:
            sentences.append(f"{backbone}: " + "; ".join(parts) + ".")
    return " ".join(sentences) or "This archive has no Algorithm 1 row."


def cross_table(archive: Mapping[str, Any]) -> pd.DataFrame:
    """Accuracy (%) on each cross-dataset target per backbone and condition (mean ± std over seeds),
    with the paired gain over the baseline (the one a row names, as in :func:`results_table`); empty when
    the run had no cross-dataset target."""
    from omnifer_lib.evaluate import summarize_seeds

    long = [{"backbone": r["backbone"], "condition": r["condition"], "seed": r["seed"], "target": t,
             "accuracy": a} for r in archive["conditions"] for t, a in (r.get("cross") or {}).items()]
    if not long:
        return pd.DataFrame(columns=["backbone", "condition", "target", "result", "gain"])
    df = pd.DataFrame(long)
    named = {(r["backbone"], r["condition"]): r["baseline"] for r in archive["conditions"]
             if isinstance(r.get("baseline"), str)}
    stats = summarize_seeds(df, ["backbone", "target", "condition"])
    out = []
    for _, row in stats.iterrows():
        sub = df[(df.backbone == row.backbone) & (df.target == row.target)]
        base = named.get((row.backbone, row.condition), BASELINE)
        gain = None
        if row.condition not in (BASELINE, MIXUP_TEACHER) and (sub.condition == base).any():
            gain = _gain_text(_paired(sub, row.backbone, row.condition, base, "accuracy"))
        out.append({"backbone": row.backbone, "target": row.target, "condition": row.condition,
                    "result": row.text, "gain": gain})
    return pd.DataFrame(out)


def _commit_text(git: Mapping[str, Any]) -> str:
    text = f"`{(git.get('commit') or 'unknown')[:10]}`"
    if git.get("dirty"):
        changed = git.get("changed")
        text += (f" with uncommitted changes to {', '.join(f'`{c}`' for c in changed)}" if changed
                 else " with uncommitted changes")
    return text


def provenance_note(archive: Mapping[str, Any]) -> str:
    """One paragraph: the commit, date, machine, seeds and dataset (name, fingerprint, files) the
    archive was made with, the sizes of the anchor, pool and test set, and :func:`parts_note`."""
    prov = archive["provenance"]
    fp = prov["dataset"]["fingerprint"]
    return (f"Made by commit {_commit_text(prov['git'])} on {prov['started'][:10]} on a {prov['machine']['cpu']} "
            f"({prov['machine']['device']}); seeds {prov['seeds']}; dataset {prov['dataset']['name']} with "
            f"fingerprint `{str(fp.get('sha256', fp))[:16]}` ({fp.get('files', '?')} files). Anchor "
            f"{archive['sizes']['anchor']:,} labeled images, pool {archive['sizes']['pool']:,} unlabeled, test "
            f"{archive['sizes']['test']:,}; test split `{prov['parameters']['test_split']}`. "
            + " ".join(t for t in (made_on_text(prov), parts_note(archive)) if t))


def _rows_held(archive: Mapping[str, Any], but: str) -> List[str]:
    """The fields of rows (:data:`_ROW_KEYS` and ``distillation``) that ``archive`` holds, but field ``but``."""
    return [f for f in (*_ROW_KEYS, "distillation") if f != but and archive.get(f)]


#: The packages whose versions change a learner's numbers.
_NUMERIC_PACKAGES = ("torch", "torchvision", "numpy")


def _same_cpu(a: Mapping[str, Any], b: Mapping[str, Any]) -> Optional[bool]:
    """Whether two runs (provenances or ``merged`` entries) were recorded on the same processor: the model names
    differ, or both give a family and model (:func:`omnifer_lib.engine.provenance.cpu_id`) and those differ: False;
    both give them alike: True; else None (one of them recorded only a name, which can be as vague as 'AMD EPYC')."""
    ma, mb = a.get("machine") or {}, b.get("machine") or {}
    if not ma.get("cpu") or not mb.get("cpu"):
        return None
    if ma["cpu"].split() != mb["cpu"].split():  # older archives kept the name's inner runs of spaces
        return False
    if ma.get("cpu_id") and mb.get("cpu_id"):
        return ma["cpu_id"] == mb["cpu_id"]
    return None


def _other_machine_refusal(base_provenance: Mapping[str, Any], extra: Mapping[str, Any]) -> str:
    """Why ``extra`` may not join an archive of ``base_provenance`` as a run on another machine (empty when it
    may): it must hold part mixup's rows alone, run with the same package versions (:data:`_NUMERIC_PACKAGES`)
    and device threads, and not be recorded on the same CPU — the machine must be all that differs."""
    pe = extra["provenance"]
    prefix = mixup_condition("")
    others = sorted({r["condition"] for r in extra.get("conditions", [])
                     if r["condition"] != MIXUP_TEACHER and not r["condition"].startswith(prefix)})
    fields = _rows_held(extra, but="conditions")
    if set(extra.get("parts") or ()) != {"mixup"} or others or fields:
        return ("only a run of part mixup alone may join from another machine (its rows pair within themselves); "
                "the other parts' rows pair with this archive's baseline, so they must come from its machine, and "
                f"the added run holds parts {', '.join(extra.get('parts') or ()) or 'none'}"
                + (f" and rows {', '.join(others + fields)}" if others or fields else ""))
    if _same_cpu(base_provenance, pe):
        return (f"both runs are recorded on the same CPU ({_machine_name(pe)}), so another machine explains "
                "nothing: look for another code version, thread count or package version")
    mine, theirs = base_provenance.get("packages") or {}, pe.get("packages") or {}
    packages = [k for k in _NUMERIC_PACKAGES if mine.get(k) != theirs.get(k)]
    if packages:
        return ("the runs used other versions of " + ", ".join(
            f"{k} (the archive's {mine.get(k)}, the added run's {theirs.get(k)})" for k in packages)
            + "; only the machine may differ")
    devices = [(m.get("machine") or {}).get("device") for m in (base_provenance, pe)]
    if devices[0] != devices[1]:
        return (f"the archive's learners trained on {devices[0]}, the added run's on {devices[1]}; only the machine "
                "may differ, not its threads")
    codes = {c for c in _training_codes(base_provenance) if c}
    if pe.get("training_code") and codes - {pe["training_code"]}:
        return (f"the learners' training code differs (the added run's fingerprint {pe['training_code']}, the "
                f"archive's {', '.join(sorted(codes))}); only the machine may differ")
    return ""


def _training_codes(prov: Mapping[str, Any], but: Optional[Mapping[str, Any]] = None) -> List[Optional[str]]:
    """The learners' code fingerprints (``training_code``; None where not recorded) of the runs of an archive
    that made rows paired with its baseline — its own run and each merged run of :data:`_WITH_BASELINE` parts —
    but ``but`` (a run of part search, say, may come from older code with another recipe)."""
    return [prov.get("training_code")] + [m.get("training_code") for m in prov.get("merged", [])
                                          if m is not but and set(m.get("parts") or ()) & set(_WITH_BASELINE)]


def _machine_name(run: Mapping[str, Any]) -> Optional[str]:
    """The processor a run (an archive's provenance or one of its ``merged`` entries) was made on
    (:func:`omnifer_lib.engine.provenance.cpu_text`); None when not recorded."""
    return provenance.cpu_text(run.get("machine"))


def parts_note(archive: Mapping[str, Any]) -> str:
    """One sentence: which parts of the study (:data:`PARTS`) the archive holds and which it lacks
    (format 1 archives predate the parts: core, margins and controls)."""
    held = list(archive.get("parts") or (("core", "margins", "controls") if archive.get("format") == 1 else ()))
    missing = [p for p in PARTS if p not in held]
    text = f"This archive holds the parts {', '.join(held) or 'none'} of the study"
    if missing:
        text += (f"; not {', '.join(missing)} (`omnifer archive-real-faces --parts {' '.join(missing)} --out FILE` "
                 "computes them, reusing every cached learner)")
    text += "."
    for run in archive.get("provenance", {}).get("merged", []):
        what = ", ".join((run.get("rule_conditions") or []) + (run.get("search_recipes") or [])) \
            or ", ".join(run["parts"])
        n = run.get("rows_checked")
        check = (f"{n} results both runs hold agree to the last digit" if n else
                 "no row in common to check that both are one pipeline")
        differs = run.get("differs") or []
        if differs:
            check = (f"{len(differs)} of {(n or 0) + len(differs)} results both runs hold differ, its teacher against "
                     "this archive's baseline ("
                     + "; ".join(f"seed {d['seed']}: {d['accuracy']:.2f} against {d['base']:.2f} %" for d in differs)
                     + "), so its rows pair only within themselves")
        other = _machine_name(run)
        where = (f" on another machine{f' ({other})' if other else ''}" if run.get("other_machine")
                 else f" on another CPU ({other})" if _same_cpu(archive.get("provenance", {}), run) is False
                 else "")
        text += (f" Added later by commit {_commit_text(run.get('git') or {})}{where} on "
                 f"{str(run.get('started', ''))[:10]}: {what} ({check}).")
        made = made_on_text(run)
        if made:
            text += " " + made
    return text


def skipped_note(archive: Mapping[str, Any]) -> str:
    """One sentence naming the conditions the data could not give (e.g. more images per class than a
    class has selected), with the reason; empty when none was skipped."""
    skipped = archive.get("skipped") or []
    if not skipped:
        return ""
    reasons = dict.fromkeys(f"{r['condition']} ({r['reason']})" for r in skipped)
    return "Not run on this data: " + "; ".join(reasons) + "."


def mixup_sentence(archive: Mapping[str, Any]) -> str:
    """What part ``mixup`` found, in words, per backbone: the mixup anchor alone against the plain
    baseline, and the VAS learner under mixup against the mixup anchor alone and at equal steps (beside
    the same VAS without mixup); or that the archive has no part mixup."""
    table = results_table(archive)
    prefix = mixup_condition("")
    mixed = table[table["condition"].str.startswith(prefix)]
    if mixed.empty:
        return "This archive has no part mixup (`omnifer archive-real-faces --parts mixup --merge` adds it)."
    texts = []
    elsewhere = _mixup_elsewhere(archive) is not None
    for backbone, rows in mixed.groupby("backbone", sort=False):
        by = rows.set_index("condition")
        alone = by.loc[mixup_condition(BASELINE)]
        vas = rows[rows["gain at equal steps"].notna()]
        own = any(r.get("baseline") == MIXUP_TEACHER for r in archive.get("conditions") or ()
                  if r["condition"] == mixup_condition(BASELINE) and r["backbone"] == backbone)
        over = "its own plain teacher" if own else "the plain baseline"
        text = (f"Under mixup (α = {MIXUP_ALPHA:g}) the anchor alone reaches {alone['result']} % ({backbone}; "
                f"{alone['gain'] or 'no paired'} points over {over})")
        for _, v in vas.iterrows():
            plain = table[(table.backbone == backbone) & (table.condition == v.condition[len(prefix):])]
            verdict = "beyond seed noise" if v["beyond noise"] else "within seed noise"
            text += (f"; {v.condition[len(prefix):]} under mixup reaches {v['result']} %, {v['gain']} over the mixup "
                     f"anchor alone and {v['gain at equal steps']} at equal steps ({verdict}, {int(v['pairs'])} seeds)")
            if len(plain) and isinstance(plain.iloc[0]["gain at equal steps"], str):
                text += (f", against {plain.iloc[0]['gain at equal steps']} at equal steps without mixup"
                         + (" on the archive's machine, where the plain VAS at this δ, selected by that machine's "
                            "own baseline (other images), reaches " if elsewhere else
                            ", where the same selection reaches ") + f"{plain.iloc[0]['result']} %")
        texts.append(text + ".")
    return " ".join(texts + [teacher_sentence(archive)]).strip()


def _mixup_elsewhere(archive: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    """The ``merged`` entry that brought part mixup from another machine (``--other-machine``), or None."""
    return next((run for run in archive.get("provenance", {}).get("merged", [])
                 if run.get("other_machine") and "mixup" in run.get("parts", ())), None)


def teacher_sentence(archive: Mapping[str, Any]) -> str:
    """Part mixup's own row of the baseline learner (:data:`MIXUP_TEACHER`, when it was run alone) against
    the archive's baseline, per backbone and seed: one learner trained twice with the same parameters, so where
    the part came from another machine (:func:`merge_archives` with ``other_machine``, which checked that
    parameters, packages, threads and, where every run recorded it, the learners' code agree) a difference is that
    machine's order of floating-point sums, set beside the baselines' spread between seeds. Empty without both
    rows."""
    rows = archive.get("conditions") or []
    base = {(r["backbone"], r["seed"]): r["accuracy"] for r in rows if r["condition"] == BASELINE}
    pairs = [(r["backbone"], r["seed"], r["accuracy"], base[(r["backbone"], r["seed"])]) for r in rows
             if r["condition"] == MIXUP_TEACHER and (r["backbone"], r["seed"]) in base]
    if not pairs:
        return ""
    if all(abs(t - b) <= 1e-6 for *_, t, b in pairs):
        return (f"Part mixup's plain teacher is the baseline learner trained again, and agrees with it to the last "
                f"digit ({len(pairs)} seeds).")
    elsewhere = _mixup_elsewhere(archive)
    texts = []
    for backbone in dict.fromkeys(b for b, *_ in pairs):
        mine = [(s, t, b) for bb, s, t, b in pairs if bb == backbone]
        d = np.array([t - b for _, t, b in mine])
        between = float(np.std([b for *_, b in mine], ddof=1)) if len(mine) > 1 else float("nan")
        texts.append(f"{backbone}: it differs on {int(np.sum(np.abs(d) > 1e-6))} of {len(mine)} seeds ("
                     + ", ".join(f"seed {s} {t:.2f} % against {b:.2f} %" for s, t, b in mine)
                     + f"; mean |difference| {np.mean(np.abs(d)):.2f} points"
                     + (f", where the baselines' spread between seeds is {between:.2f} points"
                        if math.isfinite(between) else "") + ")")
    if elsewhere is not None:
        prov = archive.get("provenance", {})
        where = _machine_name(elsewhere)
        declared = ("" if _same_cpu(prov, elsewhere) is False else
                    f", declared at the merge (this archive records its own CPU as {_machine_name(prov) or 'nothing'}"
                    " only)")
        codes = _training_codes(prov, but=elsewhere)
        same_code = all(codes) and set(codes) == {elsewhere.get("training_code")}
        versions = f"{', '.join(_NUMERIC_PACKAGES)} versions"
        if same_code:
            how = f"{versions}, threads and training code (one fingerprint): only the machine differs"
        elif all(codes) and elsewhere.get("training_code"):
            how = (f"{versions} and threads but other training code (fingerprints "
                   f"{', '.join(sorted(set(codes)))} and {elsewhere['training_code']})")
        else:
            how = (f"{versions} and threads (the training code's fingerprint is not recorded for every run; the "
                   "commits are in the provenance)")
        return (f"Part mixup's plain teacher is the baseline learner trained again on another machine"
                f"{f' ({where})' if where else ''}{declared}, with the same parameters, {how}; "
                + "; ".join(texts) + ". The mixup rows are paired with their own teacher only, and their "
                "comparisons with the rows without mixup cross machines.")
    return ("Part mixup's plain teacher is the baseline learner trained again with the same parameters, yet "
            + "; ".join(texts) + ": the two runs differ in something this archive does not record (code, threads, "
            "packages or machine).")


def equal_step_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`results_table` that have an anchor-alone reference at (about) their number
    of SGD steps: the comparisons where extra compute cannot be read as a gain."""
    return table[table["gain at equal steps"].notna()]


def verdict_on_gain(table: pd.DataFrame) -> str:
    """One sentence: which configurations beat the anchor alone by more than two seed standard
    deviations at equal SGD steps (:func:`equal_step_rows`), or that none did and which came closest."""
    rows = equal_step_rows(table)
    if rows.empty:
        return "No configuration has an anchor-alone reference at its number of SGD steps."
    winners = rows[rows["> 2 std"].astype(bool)]
    if len(winners):
        def own_recipe(r) -> str:  # a part with its own recipe is judged against anchors of that recipe
            prefix = mixup_condition("")
            plain = table[(table.backbone == r.backbone) & (table.condition == r.condition[len(prefix):])]
            if not r.condition.startswith(prefix) or plain.empty:
                return ""
            return (f"; its anchors are trained under mixup too, and without mixup the VAS at this δ reaches "
                    f"{plain.iloc[0]['result']}")

        return ("At equal SGD steps, " + "; ".join(
            f"{r.condition} ({r.backbone}: {r.result}, {r.gain_at_equal_steps} over {r.equal_step_anchor}"
            f"{own_recipe(r)})"
            for r in winners.rename(columns=lambda c: c.replace(" ", "_").replace("-", "_")).itertuples())
            + " beat the anchor alone by more than two standard deviations of their paired gains "
            f"({len(rows)} compared).")
    best = rows.loc[rows["equal-step gain"].astype(float).idxmax()]
    return (f"At equal SGD steps no configuration beats the anchor alone by more than two standard deviations of "
            f"its paired gains ({len(rows)} compared); the closest is {best.condition} ({best.backbone}: "
            f"{best.result}, {best['gain at equal steps']} over {best['equal-step anchor']}).")


# --------------------------------------------------------------------------------------
# what the chapter shows, from an archive of either format


def selection_totals(archive: Mapping[str, Any]) -> pd.DataFrame:
    """Per backbone and δ: pool images the margin rule selects and the precision (%) of their
    pseudo-labels, mean over the seeds that drew a selection (one for format 1)."""
    sel = pd.DataFrame(archive.get("selection") or [])
    if sel.empty:
        return pd.DataFrame(columns=["backbone", "delta", "selected", "precision (%)", "seeds"])
    totals = sel[sel["class"] < 0]
    out = totals.groupby(["backbone", "delta"], sort=False).agg(
        selected=("selected", "mean"), precision=("precision", "mean"), seeds=("selected", "size")).reset_index()
    out["precision"] = 100 * out["precision"]
    return out.rename(columns={"precision": "precision (%)"})


def rule_precision(archive: Mapping[str, Any]) -> pd.DataFrame:
    """Precision (%) of the pseudo-labels of each rule at the margin rule's count, per backbone and δ
    (mean over the seeds that drew a selection)."""
    rules = pd.concat([pd.DataFrame(archive.get("selection") or []), pd.DataFrame(archive.get("rules") or [])])
    if rules.empty:
        return pd.DataFrame(columns=["backbone", "delta"])
    rules = rules[rules["class"] < 0]
    table = rules.pivot_table(index=["backbone", "delta"], columns="rule", values="precision", aggfunc="mean") * 100
    first = [r for r in ("margin",) if r in table.columns]
    return table[first + [c for c in table.columns if c not in first]].reset_index()


def distillation_runs(archive: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """One record per backbone and distillation (``backbone``, ``seed``, ``outer_loss``,
    ``step_sizes``, ``alone``): format 2 keeps one per seed that redrew the pipeline, format 1 one
    per backbone (seed ``None``)."""
    out = []
    for backbone, entry in archive.get("distillation", {}).items():
        for rec in (entry if isinstance(entry, list) else [{"seed": None, **entry}]):
            out.append({"backbone": backbone, **rec})
    return out


def distilled_alone_table(archive: Mapping[str, Any]) -> pd.DataFrame:
    """Accuracy (%) of learners trained on the distilled images alone beside undistilled sets of the
    same size (:func:`distilled_alone`), mean over the distillations (seeds) of each backbone."""
    rows = [{"backbone": r["backbone"], **a} for r in distillation_runs(archive) for a in r.get("alone", [])]
    if not rows:
        return pd.DataFrame(columns=["backbone", "set", "accuracy", "std", "inits", "chance"])
    df = pd.DataFrame(rows)
    return df.groupby(["backbone", "set"], sort=False).agg(
        accuracy=("accuracy", "mean"), std=("std", "mean"), inits=("inits", "sum"),
        chance=("chance", "first")).reset_index()


def search_log(archive: Mapping[str, Any]) -> pd.DataFrame:
    """Every training recipe tried on real faces (:data:`RECIPE_SEARCH`), losing ones included, with
    its accuracy on the test split and the recipe's settings; empty for an archive without it."""
    rows = archive.get("search") or []
    if not rows:
        return pd.DataFrame(columns=["backbone", "configuration", "accuracy", "mean_class_accuracy"])
    df = pd.DataFrame(rows)
    recipe = pd.DataFrame(list(df.pop("recipe")))
    for key, off in EVAL_KEYS.items():  # a setting newer than a recipe's row: the recipe ran without it
        if key in recipe:
            recipe[key] = recipe[key].fillna(off).astype(type(off))
    return pd.concat([df.drop(columns=["seconds_per_epoch"]), recipe,
                      df[["seconds_per_epoch"]].round(1)], axis=1)


def search_seeds_note(archive: Mapping[str, Any]) -> str:
    """One sentence per backbone on the recipes of the search that were repeated on several seeds' labeled
    splits: mean ± std of their accuracy over those seeds, beside the adopted recipe's baseline over the
    study's seeds; empty when no recipe was repeated."""
    from omnifer_lib.evaluate import seed_statistics

    rows = pd.DataFrame(archive.get("search") or [])
    if rows.empty:
        return ""
    runs = pd.DataFrame(archive.get("conditions") or [])
    out = []
    for backbone, mine in rows.groupby("backbone", sort=False):
        repeated = [(name, seed_statistics(group["accuracy"])) for name, group in
                    mine.groupby("configuration", sort=False) if group["seed"].nunique() > 1]
        if not repeated:
            continue
        said = "; ".join(f"{name} {st.text()} over {st.n} seeds" for name, st in repeated)
        base = runs[(runs["condition"] == BASELINE) & (runs["backbone"] == backbone)] if len(runs) else runs
        if len(base):
            st = seed_statistics(base["accuracy"])
            said += f", where the adopted recipe's baseline has {st.text()} over {st.n} seeds"
        out.append(f"{backbone}, over the labeled splits of several seeds: {said}.")
    return " ".join(out)


def learning_curve(archive: Mapping[str, Any]) -> pd.DataFrame:
    """Accuracy (%) of the anchor alone with each labeled share of the train split (:data:`LEARNING_CURVE`),
    with the profile's recipe; empty for an archive without it."""
    rows = archive.get("curve") or []
    return pd.DataFrame(rows) if rows else pd.DataFrame(
        columns=["backbone", "labeled_fraction", "labeled", "seed", "accuracy", "mean_class_accuracy"])


def round_table(archive: Mapping[str, Any]) -> pd.DataFrame:
    """Round by round of each select-then-retrain condition whose rows hold their ``rounds``
    (:data:`CURRICULUM`): the pool images the round selected and the precision of their pseudo-labels
    (mean over seeds), and the accuracy of the learner trained on them (mean ± std; the next round's
    teacher) with its paired gain over the baseline (mean ± s.e.; at equal steps when every round is cut
    to the anchor's steps). Empty for an archive without such rows."""
    from omnifer_lib.evaluate import paired_difference, seed_statistics

    columns = ["backbone", "condition", "round", "selected", "precision (%)", "accuracy", "gain over the baseline"]
    df = pd.DataFrame(archive.get("conditions") or [])
    if df.empty or "rounds" not in df.columns:
        return pd.DataFrame(columns=columns)
    out = []
    for (backbone, condition), mine in df[df["rounds"].notna()].groupby(["backbone", "condition"], sort=False):
        base = df[(df.backbone == backbone) & (df.condition == _baseline_of(df, backbone, condition))]
        base_acc = {int(s): float(a) for s, a in zip(base["seed"], base["accuracy"])}
        per_seed = {int(s): rounds for s, rounds in zip(mine["seed"], mine["rounds"])}
        for r in range(max(len(rounds) for rounds in per_seed.values())):
            at = {s: rounds[r] for s, rounds in per_seed.items() if r < len(rounds)}
            acc = seed_statistics(x["accuracy"] for x in at.values())
            known = [x["precision"] for x in at.values() if x.get("precision") is not None]
            out.append({"backbone": backbone, "condition": condition, "round": r + 1,
                        "selected": int(round(float(np.mean([x["selected"] for x in at.values()])))),
                        "precision (%)": round(100 * float(np.mean(known)), 1) if known else None,
                        "accuracy": acc.text(),
                        "gain over the baseline": _gain_text(paired_difference(
                            {s: x["accuracy"] for s, x in at.items()}, base_acc))})
    return pd.DataFrame(out, columns=columns)


def condition_costs(archive: Mapping[str, Any]) -> pd.DataFrame:
    """Seconds per epoch, images per epoch and per step of each condition, and the ratio of its
    seconds per epoch to the baseline's (Table 8's question on real data)."""
    runs = pd.DataFrame(archive.get("conditions") or [])
    if runs.empty:
        return pd.DataFrame(columns=["backbone", "condition", "seconds_per_epoch", "images_per_epoch",
                                     "images_per_step", "ratio to baseline"])
    cost = runs.groupby(["backbone", "condition"], sort=False).agg(
        seconds_per_epoch=("seconds_per_epoch", "mean"), images_per_epoch=("train_images", "mean"),
        images_per_step=("images_per_step", "mean")).reset_index()
    base = cost[cost.condition == BASELINE].set_index("backbone")["seconds_per_epoch"]
    cost["ratio to baseline"] = cost["seconds_per_epoch"] / cost["backbone"].map(base)
    return cost


# --------------------------------------------------------------------------------------
# chapter 11: the archive it renders and what each of its sections displays

#: What chapter 11 says when it has neither the data nor a committed archive.
NO_ARCHIVE = ("No archive of a real-faces run is committed yet, and this run was not given the data: "
              "run the two commands above to make one.")


def archive_note(archive: Optional[Mapping[str, Any]], source: str) -> str:
    """The chapter's opening note (Markdown): where the results come from (``source``, e.g. "computed
    in this run (profile 'fer2013')") and :func:`provenance_note`; :data:`NO_ARCHIVE` when ``archive`` is None."""
    if archive is None:
        return NO_ARCHIVE
    return f"**Results {source}.** " + provenance_note(archive)


def chapter_archive(params: Mapping[str, Any], profile: str) -> tuple:
    """What chapter 11 renders, as ``(archive, note)``: with the data (:func:`applies`) the archive of
    :data:`CHAPTER_PARTS` computed in this run, else the committed :data:`ARCHIVE` (None when there is
    none); ``note`` the :func:`archive_note` as a displayable Markdown. ``profile``: the profile's name,
    for the note."""
    from IPython.display import Markdown

    if applies(params):
        archive = collect(params, parts=CHAPTER_PARTS)
        source = f"computed in this run (profile '{profile}')"
    else:
        archive = read_archive()
        source = f"read from the committed archive `{ARCHIVE.name}` (the data is not given to this run)"
    return archive, Markdown(archive_note(archive, source))


#: The columns of chapter 11's tables that hold parameters, shown as given (δ 0.05, not 0.1).
SHOWN_AS_GIVEN = ("delta", "lr", "labeled_fraction", "label_smoothing")


def _table_or_note(table: pd.DataFrame, digits: int, missing: Optional[str]) -> Any:
    """``table`` styled for the book with ``digits`` decimals, or the Markdown sentence ``missing`` when
    it has no row (``missing`` None: the table however empty)."""
    from IPython.display import Markdown

    from omnifer_lib.publish.reporting import show

    return Markdown(missing) if missing is not None and not len(table) else show(table, digits=digits,
                                                                                exact=SHOWN_AS_GIVEN)


def _conditions(archive: Mapping[str, Any]) -> pd.DataFrame:
    """:func:`results_table` without part ``distillation``'s rows and the unformatted mean, std and s.e."""
    return main_rows(results_table(archive)).drop(columns=["mean", "std", "equal-step s.e."])


def _paper_gains(archive: Mapping[str, Any]) -> pd.DataFrame:
    """:func:`paper_gains` of each backbone of the archive's conditions."""
    return pd.concat([paper_gains(b) for b in pd.DataFrame(archive["conditions"])["backbone"].unique()])


def _distillers(archive: Mapping[str, Any]) -> pd.DataFrame:
    return distiller_table(results_table(archive))


def _verdict_on_gain(archive: Mapping[str, Any]) -> str:
    said = verdict_on_gain(results_table(archive))
    for earlier in recipe_archives(archive)[:1]:
        again = verdict_on_gain(results_table(earlier))
        said += f" Judged the same way, the earlier recipe ({recipe_text(earlier)}): {again}"
    return said


def not_yet_run_note(archive: Mapping[str, Any]) -> str:
    """One sentence naming the pseudo-labelling rules (:data:`RULE_CONDITIONS`) that the committed study with
    the earlier recipe (:func:`recipe_archives`) holds and neither ``archive`` nor the committed archive of its
    own recipe (:func:`_committed_alike`) does, so the reader looks for them in the recipe comparison; empty
    when there is none (or no earlier study of these data)."""
    own, earlier = [archive], []
    for a, _ in _committed_alike(archive):
        (own if recipe_text(a) == recipe_text(archive) else earlier).append(a)
    if not earlier:
        return ""
    mine = {r["condition"] for a in own for r in a.get("conditions") or []}
    theirs = {r["condition"] for r in earlier[0].get("conditions") or []}
    missing = [name for name, _ in RULE_CONDITIONS if name in theirs and name not in mine]
    if not missing:
        return ""
    return (f"Not yet run with this recipe ({recipe_text(archive)}): {'; '.join(missing)}. Their rows with the "
            f"earlier recipe ({recipe_text(earlier[0])}) are in the recipe comparison below.")


def _conditions_notes(archive: Mapping[str, Any]) -> str:
    return " ".join(t for t in (matched_note(archive), not_yet_run_note(archive)) if t)


#: Chapter 11's sections that show one table: name -> (the table of an archive, decimals, the sentence
#: shown instead when it has no row, or None).
CHAPTER_TABLES: Dict[str, tuple] = {
    "conditions": (_conditions, 1, None),
    "paper gains": (_paper_gains, 2, None),
    "cross-dataset": (cross_table, 1, "This run had no cross-dataset target (CK+ and JAFFE cannot ship either; a run "
                                      "given `-p cross_targets '[ckplus, jaffe]' -p ckplus_root DIR -p jaffe_root DIR` "
                                      "tests every learner on them)."),
    "recipe search": (search_log, 1, "This archive has no recipe search."),
    "learning curve": (learning_curve, 1, "This archive has no learning curve."),
    "earlier recipe": (_recipes, 1, "No study of these data with an earlier recipe is committed "
                                    f"(`{EARLIER_ARCHIVE.name}`)."),
    "rounds": (round_table, 1, "This archive has no curriculum labelling (rule condition CURRICULUM)."),
    "second processor": (_processors, 1, "No run of this study and recipe on a second processor is committed "
                                         f"(`{SECOND_PROCESSOR_ARCHIVE.name}`)."),
    "selection": (selection_totals, 1, None),
    "rule precision": (rule_precision, 1, None),
    "distilled alone": (distilled_alone_table, 1, None),
    "distillers": (_distillers, 1, "This archive has no distiller comparison."),
    "costs": (condition_costs, 2, None),
}
#: Chapter 11's sections that state a verdict: name -> its sentence(s) from an archive.
CHAPTER_VERDICTS: Dict[str, Callable[[Mapping[str, Any]], str]] = {
    "distillation verdict": distillation_verdict, "verdict": _verdict_on_gain, "mixup": mixup_sentence}
#: Every section of chapter 11, in its order (``"seed points"``: the figures of each condition's seeds).
CHAPTER_SECTIONS = ("conditions", "seed points", "rounds", "mixup", "paper gains", "cross-dataset", "second processor",
                    "recipe search",
                    "learning curve", "earlier recipe", "selection", "rule precision", "distilled alone", "distillers",
                    "distillation verdict", "costs", "verdict")
#: The sections whose part an archive may not hold: name -> whether an archive holds it. For these the chapter
#: shows a committed archive of the same data instead, saying which (:func:`borrowed_from`): the committed study
#: of the same recipe when the chapter computed part core only, else the earlier recipe's while the adopted
#: recipe's study has not run that part yet.
CHAPTER_BORROWED: Dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "rounds": lambda a: len(round_table(a)) > 0,
    "mixup": lambda a: any(r["condition"].startswith(mixup_condition("")) for r in a.get("conditions") or ()),
    "recipe search": lambda a: bool(a.get("search")),
    "learning curve": lambda a: bool(a.get("curve")),
    "distilled alone": lambda a: len(distilled_alone_table(a)) > 0,
    "distillers": lambda a: len(_distillers(a)) > 0,
    "distillation verdict": lambda a: len(_distillers(a)) > 0,
}


def _committed_alike(archive: Mapping[str, Any]) -> List[tuple]:
    """The committed archives a section may borrow from, as ``(archive, what it is)``: the committed
    :data:`ARCHIVE` when it is the same study with the same recipe (``archive`` was computed in this run, part
    core only), then the study with the earlier recipe (:func:`recipe_archives`)."""
    out = []
    same = read_archive(ARCHIVE)
    if same is not None and same_study(archive, same) and recipe_text(same) == recipe_text(archive):
        out.append((same, f"the committed archive of this study and recipe (`{ARCHIVE.name}`)"))
    out += [(earlier, f"the study with the earlier recipe ({recipe_text(earlier)}), whose primitive learner and "
                      "selection differ") for earlier in recipe_archives(archive)[:1]]
    return out


def borrowed_from(archive: Mapping[str, Any], name: str) -> Optional[tuple]:
    """For section ``name`` of :data:`CHAPTER_BORROWED` whose part ``archive`` does not hold: the first of
    :func:`_committed_alike` that holds it, as ``(archive, what it is)``; else None."""
    holds = CHAPTER_BORROWED.get(name)
    if holds is None or holds(archive):
        return None
    return next(((other, what) for other, what in _committed_alike(archive) if holds(other)), None)


def chapter_section(archive: Optional[Mapping[str, Any]], name: str) -> tuple:
    """What section ``name`` of chapter 11 (one of :data:`CHAPTER_SECTIONS`) displays, as a tuple for
    ``display(*…)``: its table of :data:`CHAPTER_TABLES` (styled for the book) or, for a part the archive
    lacks, the sentence saying so (Markdown); a verdict of :data:`CHAPTER_VERDICTS` as Markdown;
    ``"conditions"`` adds :func:`not_yet_run_note`, ``"distillers"`` :func:`skipped_note`, ``"recipe search"``
    :func:`search_seeds_note`, ``"earlier recipe"`` (:func:`recipe_comparison` of :func:`recipe_archives`)
    :func:`recipe_sentence`; ``"verdict"`` judges the earlier recipe's study too, when it is committed for the
    same data. A section of :data:`CHAPTER_BORROWED` whose part the archive lacks shows that of a committed
    archive of the same data (:func:`borrowed_from`) after a sentence that says which.
    ``"seed points"`` and ``"learning curve"`` draw their figures with pyplot
    (:func:`~omnifer_lib.publish.plots.condition_points`, :func:`~omnifer_lib.publish.plots.labeled_curve`):
    the notebook shows them at the end of the cell.
    Empty when ``archive`` is None (the chapter's opening note, :func:`archive_note`, says why)."""
    from IPython.display import Markdown

    from omnifer_lib.publish import plots

    if name not in CHAPTER_SECTIONS:
        raise ValueError(f"chapter 11 has no section {name!r}; its sections: {', '.join(CHAPTER_SECTIONS)}")
    if archive is None:
        return ()
    lead: tuple = ()
    borrowed = borrowed_from(archive, name)
    if borrowed is not None:
        archive, what = borrowed
        lead = (Markdown(f"*Not in the archive this chapter renders; shown: {what}.*"),)
    if name == "seed points":
        plots.condition_points(pd.DataFrame(archive["conditions"]), BASELINE)
        return ()
    if name in CHAPTER_VERDICTS:
        return lead + (Markdown(CHAPTER_VERDICTS[name](archive)),)
    table, digits, missing = CHAPTER_TABLES[name]
    rows = table(archive)
    if name == "learning curve" and len(rows):
        plots.labeled_curve(rows)
    shown = lead + (_table_or_note(rows, digits, missing),)
    notes = {"conditions": _conditions_notes, "distillers": skipped_note, "recipe search": search_seeds_note,
             "earlier recipe": _recipe_sentence, "second processor": _processor_sentence}
    return (shown + (Markdown(notes[name](archive)),)) if name in notes else shown
