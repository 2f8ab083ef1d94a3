"""Table 8's epoch costs, timed one mode at a time in this process (cached).

The final learners record their seconds per epoch as they train, but on the CPU with
``train_threads`` set they train several at a time (``learner_processes``; two on a 2-core
machine), and how much the learner in another worker slows a learner down depends on which learner
that is. Those seconds cannot be compared across modes: on an AMD EPYC (2 cores), VGG-small's
anchor + DAS epochs came out at 0.89-0.97 × its anchor-only epochs, although each of their steps
processes the seven DAS on top of the minibatch.

:func:`epoch_costs` times the three modes of §4.4 on a scaled-down copy of their training sets
instead (:func:`scaled_copy`): ``steps`` minibatches of the anchor, the same share of the VAS, the
DAS whole. Each mode trains three epochs on its copy from the initial learner, with the profile's
recipe and threads, and held in memory or streamed as its full training set would be; the faster
of the second and third epochs (the first warms up), times the full epoch's minibatches over the
copy's, is the mode's seconds per epoch. The modes alternate and the whole round is repeated, so
that a slow moment of the machine hits every mode alike; the rounds play the seeds' part in
:func:`~omnifer_lib.publish.reporting.cost_table`. Nothing else of the pipeline runs meanwhile, but a
chapter run beside others (``omnifer reproduce --jobs``) shares the cores with them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Tuple

import numpy as np
from torch.utils.data import Dataset, Subset

from omnifer_lib._progress import stage
from omnifer_lib.engine.pipeline._common import (MODES, anchor_of, data_config, device_of, get_or_train, pick,
                                               selection_config, stage_code, train_threads)
from omnifer_lib.engine.pipeline.datasets import dataset
from omnifer_lib.engine.pipeline.pretraining import face_pretraining, initial_model
from omnifer_lib.engine.store import Artifact
from omnifer_lib.seeds import numpy_rng

#: The profile parameters an epoch's seconds depend on (besides the data and the selection):
#: what each step computes (the translation of ``crop_pad`` is work of every step). The learning rate,
#: its schedule, label smoothing or the number of epochs change no step's cost.
COST_KEYS = ("batch_size", "width", "amp", "das_strategy", "num_workers", "crop_pad")


def scaled_copy(anchor: Dataset, vas: Dataset, steps: int, batch_size: int, seed: int) -> Tuple[Subset, Subset]:
    """``steps × batch_size`` images of ``anchor`` (all of them when it has fewer) and the same share
    of ``vas`` (at least one image), drawn without replacement with ``seed``: a small copy of an
    epoch of anchor + VAS with the same mix of the two."""
    rng = numpy_rng(seed)
    n_anchor = min(len(anchor), steps * batch_size)
    n_vas = max(1, round(n_anchor / len(anchor) * len(vas)))
    return (Subset(anchor, np.sort(rng.permutation(len(anchor))[:n_anchor]).tolist()),
            Subset(vas, np.sort(rng.permutation(len(vas))[:n_vas]).tolist()))


def minibatches(n_images: int, n_das: int, das_strategy: str, batch_size: int) -> int:
    """Minibatches of an epoch over ``n_images`` training images (anchor, or anchor + VAS) with
    ``n_das`` DAS: ``"minibatch"`` adds the DAS to every step, ``"samples"`` adds them as images."""
    from omnifer_lib.train import _batch_bounds

    return len(_batch_bounds(n_images + (n_das if das_strategy == "samples" else 0), batch_size))


def _image_bytes(data: Dataset, n: int) -> int:
    return n * data[0][0].numel() * 4  # float32, as fit holds them


def epoch_costs(params: Mapping[str, Any], backbone: str, *, steps: int = 16, repeats: int = 3) -> Artifact:
    """Seconds per epoch of ``backbone`` in each mode of §4.4 (module docstring), cached.

    ``steps``: minibatches of anchor images in the timed copy of an epoch (at most the whole
    anchor); ``repeats``: rounds over the modes. The artifact's summary holds, per mode,
    ``seconds_per_epoch`` (one value per round), ``train_images`` and ``minibatches`` of the full
    epoch and ``timed_minibatches`` of the copy; ``steps`` and ``repeats``."""
    from omnifer_lib.engine.pipeline.distillation import distilled
    from omnifer_lib.engine.pipeline.learners import fit_kwargs
    from omnifer_lib.engine.pipeline.selection import auxiliary_samples, require_auxiliary_samples, selection
    from omnifer_lib.distill import load_das
    from omnifer_lib.evaluate import MATERIALIZE_MAX_BYTES
    from omnifer_lib.train import fit_final

    if steps < 1 or repeats < 1:
        raise ValueError(f"steps and repeats must be >= 1, got {steps} and {repeats}")
    train_on = anchor_of(params)
    # a timing belongs to the machine that made it: the device and the threads are in its key
    config: Dict[str, Any] = {"backbone": backbone, "train_on": train_on, "steps": int(steps),
                              "repeats": int(repeats), **pick(params, COST_KEYS), **selection_config(params),
                              "device": str(device_of(params)), "train_threads": train_threads(params),
                              "data": data_config(params, [train_on])}
    das_art = distilled(params, backbone, "algorithm1")
    upstream = {"selection": selection(params, backbone).key, "das": das_art.key}
    pre = face_pretraining(params, backbone)
    if pre is not None:
        upstream["face_pretraining"] = pre.key

    def compute(work: Path):
        anchor = dataset(params, train_on, "train")
        vas = auxiliary_samples(params, backbone)
        require_auxiliary_samples(vas, params, backbone, "time the anchor+VAS epoch")
        das = load_das(das_art.file("das.pt"))
        n_das = len(das.labels)
        strategy, batch = params["das_strategy"], params["batch_size"]
        part_anchor, part_vas = scaled_copy(anchor, vas, steps, batch, params["seed"])
        full = {"anchor": len(anchor), "anchor+VAS": len(anchor) + len(vas), "anchor+DAS": len(anchor)}
        copy = {"anchor": len(part_anchor), "anchor+VAS": len(part_anchor) + len(part_vas),
                "anchor+DAS": len(part_anchor)}
        das_of = {"anchor+DAS": n_das}
        full_steps = {m: minibatches(full[m], das_of.get(m, 0), strategy, batch) for m in MODES}
        copy_steps = {m: minibatches(copy[m], das_of.get(m, 0), strategy, batch) for m in MODES}
        # held in memory or streamed as the full set would be (as_tensors' rule)
        in_memory = {m: _image_bytes(anchor, full[m]) <= MATERIALIZE_MAX_BYTES for m in MODES}
        recipe = {**fit_kwargs(params), "epochs": 3, "progress": False}
        seconds: Dict[str, list] = {mode: [] for mode in MODES}
        with stage(f"epoch costs of {backbone} ({repeats} rounds of {len(MODES)} modes)"):
            for _ in range(repeats):
                for mode in MODES:
                    model = initial_model(params, backbone, params["seed"], pre)
                    history = fit_final(model, part_anchor, mode, vas=part_vas if mode == "anchor+VAS" else None,
                                        das=das if mode == "anchor+DAS" else None, seed=params["seed"],
                                        device=device_of(params), das_strategy=strategy,
                                        das_weight=params["das_weight"], materialize=in_memory[mode], **recipe)
                    # the first epoch warms up; the faster of the other two is the least disturbed
                    fastest = min(h["seconds"] for h in history[1:])
                    seconds[mode].append(fastest * full_steps[mode] / copy_steps[mode])
        return {"steps": int(steps), "repeats": int(repeats),
                **{mode: {"seconds_per_epoch": seconds[mode], "train_images": full[mode],
                          "minibatches": full_steps[mode], "timed_minibatches": copy_steps[mode]}
                   for mode in MODES}}

    return get_or_train(params, "epoch_costs", config, compute, upstream=upstream,
                        code=stage_code("pretraining", "learners", "selection", "cost"))

