"""The real-faces study (chapter "On real faces"): the omni-supervised pipeline on one labeled
dataset split into a small labeled anchor and an unlabeled pool whose labels are hidden, with
the controls a reviewer asks for, collected into one JSON-able archive.

The data cannot ship with the project, so the chapter renders from an archive committed to the
repository (:data:`ARCHIVE`: numbers, curves and per-class counts; no image) and recomputes
when the profile names the data (:func:`applies`). Every learner is a cached pipeline stage, so
``omnifer reproduce --profile fer2013 -p fer2013_root …`` followed by ``omnifer archive-real-faces
--profile fer2013 -p fer2013_root …`` trains nothing twice.

Conditions, per backbone and seed (the paper's protocol = the profile's epochs):

* ``baseline`` — the labeled anchor alone;
* ``VAS δ=…`` — anchor ∪ VAS selected with the paper's margin rule, at each δ of ``vas_deltas``;
* (the VAS learner at the baseline's steps is not a condition: a learner stage takes its epochs from
  the profile, so cutting them would also retrain the primitive learner and change the selection;
  the VAS learner is compared instead with the anchor alone given its number of steps, :data:`SEARCH`)
* ``DAS (Algorithm 1)`` — anchor ⊕ the distilled auxiliary samples (the same number of SGD steps
  as the baseline: the DAS join every minibatch);
* ``random real`` / ``mean image`` — the same number of images per class as the DAS, but real
  selected pool images or the per-class mean of the VAS instead of distilled ones;
* ``oracle, equal steps`` — anchor ∪ the whole pool with its *true* labels, at the baseline's
  number of SGD steps: what a perfect selection could give (with a pool ten times the anchor that
  is a single epoch, without the learning-rate decay: see :data:`SEARCH` for the fair budget);
* the configurations of :data:`SEARCH`, the search for a real gain.
"""
from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np
import pandas as pd

from omnifer_lib.book import provenance, roles
from omnifer_lib.files import atomic_write_bytes

#: The committed archive of the last real-faces run the chapter renders when the data is absent.
ARCHIVE = Path(__file__).parent / "archives" / "real_faces.json"
FORMAT = 1

BASELINE, DAS, RANDOM_REAL, MEAN_IMAGE, ORACLE = (
    "baseline", "DAS (Algorithm 1)", "random real", "mean image", "oracle, equal steps")


#: The search for a real gain (beyond the paper), each tried over the profile's seeds: (name, learner
#: mode, how its training is budgeted). Cutting epochs to equal the baseline's steps cannot keep the
#: learning-rate decay when the training set is ten times the anchor (one epoch, no decay), so the
#: whole-pool oracle is also given two epochs with the decay after the first (about the VAS learner's
#: steps), beside the anchor alone given the VAS learner's steps.
ANCHOR_ALONE_AT_VAS_STEPS = "search: anchor alone at VAS's steps"
SEARCH = (
    (ANCHOR_ALONE_AT_VAS_STEPS, "anchor", "vas_steps"),
    ("search: oracle, 2 epochs (decay after the first)", "oracle", {"epochs": 2, "lr_step": 1}),
)


#: The anchor-alone learners, the references of a gain at equal steps.
ANCHOR_ALONE = (BASELINE, ANCHOR_ALONE_AT_VAS_STEPS)


def vas_condition(delta: float) -> str:
    return f"VAS δ={delta:g}"


def applies(params: Mapping[str, Any]) -> bool:
    """Whether the profile gives what the study needs: real data, and a pool with hidden labels
    (the anchor's rest) whose root is set."""
    return (params.get("data_source") == "real" and roles.is_semi_supervised(params)
            and bool(params.get(f"{roles.anchor_of(params)}_root")))


def equal_step_params(params: Mapping[str, Any], n_train: int, n_anchor: int) -> Dict[str, Any]:
    """``params`` with ``epochs`` (and ``lr_step``) scaled by ``n_anchor / n_train``: a learner on
    ``n_train`` images then takes about as many SGD steps as one on the anchor's ``n_anchor`` with
    the profile's epochs (rounded to whole epochs, at least one)."""
    scale = n_anchor / max(n_train, 1)
    out = dict(params)
    out["epochs"] = max(1, int(round(params["epochs"] * scale)))
    out["lr_step"] = max(1, int(round(params["lr_step"] * scale)))
    return out


def _steps(n_images: int, epochs: int, batch_size: int) -> int:
    return int(math.ceil(n_images / batch_size) * epochs)


def collect(params: Mapping[str, Any], *, log: Callable[[str], None] = lambda _m: None) -> Dict[str, Any]:
    """Run (or read from the cache) every condition of the module docstring for each backbone and
    seed of ``params``, and return the archive: ``conditions`` (one row per condition, backbone and
    seed: accuracy and mean class accuracy on the test split in %, epochs, SGD steps, training
    images, seconds per epoch), ``selection`` (per δ and class: selected, correct, precision of
    the pseudo-labels), ``rules`` (margin vs softmax at matched counts, the class-balanced rules),
    ``distillation`` (outer loss and step sizes η of Algorithm 1) and ``provenance``."""
    from omnifer_lib.book import pipeline
    from omnifer_lib.book.pipeline.learners import ORACLE as ORACLE_MODE
    from omnifer_lib.select import delta_sweep

    if not applies(params):
        raise ValueError("the real-faces study needs data_source real, pool anchor_rest and the anchor's root "
                         "(e.g. omnifer archive-real-faces --profile fer2013 -p fer2013_root /path/to/fer2013)")
    started, t0 = provenance.now_iso(), time.time()
    anchor = pipeline.dataset(params, roles.anchor_of(params), "train")
    pool = pipeline.dataset(params, roles.pool_of(params), "train")
    n_anchor, batch = len(anchor), int(params["batch_size"])
    rows: List[Dict[str, Any]] = []

    def add(condition: str, backbone: str, seed: int, art, run_params: Mapping[str, Any],
            with_das: bool = False) -> None:
        ev = pipeline.evaluation(art)[roles.anchor_of(params)]
        hist = pipeline.history(art)
        n_train = int(art.meta["summary"].get("train_images") or n_anchor)
        das_per_batch = 7 * int(params["images_per_class"]) if with_das else 0  # they join every minibatch
        rows.append({"condition": condition, "backbone": backbone, "seed": int(seed),
                     "accuracy": float(ev["accuracy"]), "mean_class_accuracy": float(ev["mean_class_accuracy"]),
                     "epochs": int(run_params["epochs"]), "steps": _steps(n_train, int(run_params["epochs"]), batch),
                     "train_images": n_train, "images_per_step": batch + das_per_batch,
                     "seconds_per_epoch": float(hist["seconds"].mean())})
        log(f"{condition} · {backbone} · seed {seed}: {ev['accuracy']:.1f} %")

    selection_rows, rule_rows, distillation = [], [], {}
    for backbone in params["backbones"]:
        for seed in params["seeds"]:
            add(BASELINE, backbone, seed, pipeline.learner(params, backbone, "anchor", seed=seed), params)
            for delta in params["vas_deltas"]:
                art = pipeline.learner(params, backbone, "anchor+VAS", seed=seed, selection={"delta": delta})
                add(vas_condition(delta), backbone, seed, art, params)
            n_vas = len(pipeline.auxiliary_samples(params, backbone))
            for condition, method in ((DAS, "algorithm1"), (RANDOM_REAL, "random_real"), (MEAN_IMAGE, "mean_image")):
                art = pipeline.learner(params, backbone, "anchor+DAS", seed=seed, das_method=method)
                add(condition, backbone, seed, art, params, with_das=True)
            oracle = equal_step_params(params, n_anchor + len(pool), n_anchor)
            add(ORACLE, backbone, seed, pipeline.learner(oracle, backbone, ORACLE_MODE, seed=seed), oracle)
            for name, mode, budget in SEARCH:
                run = (equal_step_params(params, n_anchor, n_anchor + n_vas) if budget == "vas_steps"
                       else {**params, **budget})
                add(name, backbone, seed, pipeline.learner(run, backbone, ORACLE_MODE if mode == "oracle" else mode,
                                                           seed=seed), run)
        sweep = delta_sweep(pipeline.manifest_dir(params, backbone), params["deltas"], pool,
                            rules=("margin", "softmax", "balanced_quantile"))
        for row in sweep.to_dict("records"):
            row.pop("params", None)
            target = selection_rows if row["rule"] == "margin" else rule_rows
            target.append({"backbone": backbone, **_plain(row)})
        das = pipeline.load_distilled(pipeline.distilled(params, backbone))
        distillation[backbone] = {"outer_loss": [float(x) for x in das.loss_history],
                                  "step_sizes": [float(e) for e in das.step_sizes],
                                  "alone": distilled_alone(params, backbone, das)}
    return {"format": FORMAT, "conditions": rows, "selection": selection_rows, "rules": rule_rows,
            "distillation": distillation,
            "sizes": {"anchor": n_anchor, "pool": len(pool), "test": len(pipeline.dataset(
                params, roles.anchor_of(params), "test"))},
            "provenance": _provenance(params, started, time.time() - t0)}


def distilled_alone(params: Mapping[str, Any], backbone: str, das) -> List[Dict[str, Any]]:
    """Test accuracy (%, mean and std over ``distill_eval_inits`` fresh initialisations) of
    learners trained on the seven distilled images alone with their learned step sizes η, beside the
    same number of images that were not distilled: uniform noise and random real selected images
    (each with the DAS's η) and the per-class mean image."""
    import dataclasses

    import torch

    from omnifer_lib.book import pipeline
    from omnifer_lib.data import to_tensors
    from omnifer_lib.distill import DistillConfig, evaluate_learned

    cfg = DistillConfig.from_params(params)
    test_x, test_y = to_tensors(pipeline.dataset(params, roles.anchor_of(params), "test"))
    model = pipeline.load_model(pipeline.primitive_learner(params, backbone))
    noise = torch.rand(das.images.shape, generator=torch.Generator().manual_seed(int(params["seed"])))
    sets = [("Algorithm 1 (DAS)", das), ("uniform noise, DAS's η", dataclasses.replace(das, images=noise))]
    for name, method in (("random real, DAS's η", "random_real"), ("mean image, DAS's η", "mean_image")):
        other = pipeline.load_distilled(pipeline.distilled(params, backbone, method))
        sets.append((name, dataclasses.replace(other, step_sizes=das.step_sizes.clone())))
    rows = []
    for name, result in sets:
        ev = evaluate_learned(result, model, test_x, test_y, inits=int(params["distill_eval_inits"]),
                              seed=int(params["seed"]), init_scope=cfg.init_scope, fixed_init=cfg.fixed_init,
                              device=pipeline.device_of(params))
        rows.append({"set": name, "accuracy": 100 * float(ev.mean), "std": 100 * float(ev.std),
                     "inits": len(ev.accuracies), "chance": 100 * float(ev.chance)})
    return rows


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
    return {"git": provenance.git_state(Path(__file__).resolve().parents[2]), "parameters": dict(params),
            "seeds": list(params["seeds"]), "started": started, "seconds_to_collect": round(seconds, 1),
            "machine": {"cpu": _cpu_name(), "platform": platform.platform(),
                        "device": provenance.device_description(params.get("device", "auto"))},
            "packages": provenance.package_versions(),
            "dataset": {"name": roles.anchor_of(params), "fingerprint": provenance.dataset_fingerprint(root)}}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_archive(archive: Mapping[str, Any], path: Optional[Path] = None) -> Path:
    """Write ``archive`` as JSON, atomically (the committed :data:`ARCHIVE` by default)."""
    path = Path(path or ARCHIVE)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(archive, indent=1, ensure_ascii=False, default=str) + "\n").encode())
    return path


def read_archive(path: Optional[Path] = None) -> Optional[Dict[str, Any]]:
    """The archive at ``path`` (:data:`ARCHIVE` by default), or ``None`` when there is none yet."""
    path = Path(path or ARCHIVE)
    if not path.is_file():
        return None
    archive = json.loads(path.read_text())
    if archive.get("format") != FORMAT:
        raise ValueError(f"{path}: archive format {archive.get('format')!r}, this code reads format {FORMAT}")
    return archive


def condition_order(archive: Mapping[str, Any]) -> List[str]:
    """The conditions in the order the chapter shows them (as collected)."""
    return list(dict.fromkeys(r["condition"] for r in archive["conditions"]))


def results_table(archive: Mapping[str, Any], value: str = "accuracy", tolerance: float = 0.1) -> pd.DataFrame:
    """Mean ± std over seeds per backbone and condition, with two gains (difference of means ± its
    standard error, :func:`omnifer_lib.evaluate.difference`): over the baseline, and *at equal steps*
    over the anchor-alone learner whose number of SGD steps is within ``tolerance`` of the row's (the
    baseline, or the anchor alone given more steps; empty when there is none). For the latter, whether
    it is beyond seed noise (2 × s.e., :func:`omnifer_lib.evaluate.beyond_noise`) and whether it
    exceeds 2 seed standard deviations of both sides (the bar for a real gain); SGD steps, s / epoch."""
    from omnifer_lib.evaluate import beyond_noise, difference, summarize_seeds

    df = pd.DataFrame(archive["conditions"])
    stats = summarize_seeds(df, ["backbone", "condition"], value=value)
    steps = df.groupby(["backbone", "condition"], sort=False)["steps"].mean()
    out = []
    for _, row in stats.iterrows():
        mine = df[(df.backbone == row.backbone) & (df.condition == row.condition)]
        base = df[(df.backbone == row.backbone) & (df.condition == BASELINE)]
        entry = {"backbone": row.backbone, "condition": row.condition, "mean": row["mean"], "std": row["std"],
                 "n": int(row["n"]), "result": row.text, "gain": None, "equal-step anchor": None,
                 "gain at equal steps": None, "beyond noise": None, "> 2 std": None,
                 "SGD steps": int(steps[(row.backbone, row.condition)]),
                 "s / epoch": round(float(mine["seconds_per_epoch"].mean()), 1)}
        if row.condition in ANCHOR_ALONE:
            out.append(entry)
            continue
        if len(base):
            gain, se = difference(mine[value], base[value])
            entry["gain"] = f"{gain:+.1f} ± {se:.1f}"
        matched = [c for c in ANCHOR_ALONE if (row.backbone, c) in steps.index
                   and abs(steps[(row.backbone, c)] - entry["SGD steps"]) <= tolerance * steps[(row.backbone, c)]]
        if matched:
            ref = df[(df.backbone == row.backbone) & (df.condition == matched[0])]
            gain, se = difference(mine[value], ref[value])
            spread = 2 * max(np.nanstd(mine[value], ddof=1), np.nanstd(ref[value], ddof=1)) if len(mine) > 1 \
                else float("nan")
            entry.update({"equal-step anchor": matched[0], "gain at equal steps": f"{gain:+.1f} ± {se:.1f}",
                          "beyond noise": bool(gain > 0 and beyond_noise(gain, se)),
                          "> 2 std": bool(np.isfinite(spread) and gain > spread)})
        out.append(entry)
    return pd.DataFrame(out)


def paper_gains(backbone: str) -> pd.DataFrame:
    """The paper's own gains over its baseline for ``backbone``'s family (Tables 1 and 2: RAF-DB and
    FER-2013 with MS-Celeb-1M as pool), in accuracy points, to set beside this study's."""
    from omnifer_lib import names
    from omnifer_lib.book import paper

    fam = names.family(backbone)
    out = []
    for number, data in ((1, "RAF-DB"), (2, "FER-2013")):
        base = paper.reproduced_value(number, fam, "anchor")
        for mode, label in (("anchor+VAS", "VAS"), ("anchor+DAS", "DAS")):
            value = paper.reproduced_value(number, fam, mode)
            out.append({"paper's table": number, "data": data, "learner": names.FAMILY_NAMES[fam],
                        "setting": label, "gain (paper)": round(value - base, 2)})
    return pd.DataFrame(out)


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
        return ("At equal SGD steps, " + "; ".join(
            f"{r.condition} ({r.backbone}: {r.result}, {r.gain_at_equal_steps} over {r.equal_step_anchor})"
            for r in winners.rename(columns=lambda c: c.replace(" ", "_").replace("-", "_")).itertuples())
            + f" beat the anchor alone by more than two seed standard deviations ({len(rows)} compared).")
    best = rows.loc[rows["mean"].idxmax()]
    return (f"At equal SGD steps no configuration beats the anchor alone by more than two seed standard deviations "
            f"({len(rows)} compared); the closest is {best.condition} ({best.backbone}: {best.result}, "
            f"{best['gain at equal steps']} over {best['equal-step anchor']}).")
