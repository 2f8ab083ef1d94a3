"""The paper's pipeline as cached stages, shared by the notebooks; one module per step of Fig. 1.

Each stage is a pure function of the profile parameters it depends on, of the artifacts
upstream of it and of the library code it runs; its result is stored in the artifact store
(:mod:`omnifer_lib.engine.store`) under a key hashing exactly those, so every notebook that needs,
say, the VGG primitive learner gets the same one, trained once, and a rerun with a new
margin δ reuses it, while an edit to ``train.fit`` retrains it::

    datasets      the datasets playing the paper's roles; ``rendered`` caches synthetic images
    pretraining   face_pretraining (vgg_small on the demo) and the initial learners
    learners      the learner stage: a backbone trained on the anchor plus what a mode adds;
                  primitive_learner = its anchor-only learner with the master seed (§3.2)
    selection     selection = manifest of per-sample scores over the pool (§3.3);
                  auxiliary_samples(δ, rule) = the VAS re-thresholded from it (not cached: cheap)
    distillation  distilled(method) = DAS from the VAS (§3.4, Algorithm 1) or a baseline set
    final         learner(mode, seed) = the final learners of §4.4 (anchor, anchor+VAS, anchor+DAS),
                  evaluated on the inner test set and the cross targets
    kfold         kfold_learner = CK+ 10-fold (Table 3)
    cost          epoch_costs = seconds per epoch of each mode, timed one mode at a time (Table 8)

and, not stages: ``tables`` (result tables over the learners and the epoch costs), ``side_by_side`` (independent
learners trained at once in worker processes), ``display`` (names in captions),
``preflight`` (checks before any notebook starts). A stage's code fingerprint covers the
pipeline modules it names (:func:`stage_code`) and every library module they import; the
other stages' code reaches its key through their keys (see :mod:`omnifer_lib.engine.fingerprint`).

Datasets are named after the paper's datasets (``rafdb``, ``fer2013``, ``ckplus``, ``jaffe``,
``mmi``, ``ms1m``); with ``data_source="synthetic"`` each name is played by the synthetic domain
of that name (:func:`role_description` says which). Which dataset plays which role is a profile
parameter: ``anchor`` (:func:`anchor_of`), ``pool`` (:func:`pool_of`: a dataset, ``anchor_rest``
= the rest of the anchor's train split with labels hidden, or ``folder``) and ``cross_targets``.
"""
from omnifer_lib.engine.pipeline._common import (ANCHOR, ANCHOR_REST, CROSS_TARGETS, DATA_KEYS,
                                              DISTILL_KEYS, FOLDER, MODES, POOL, PRETRAIN_KEYS, PRETRAINED_WEIGHTS,
                                              REAL_DATASETS, SELECT_KEYS, SIZE_KEYS, SNAPSHOTS_FILE, TRAIN_KEYS,
                                              anchor_of, cross_targets_of, data_config, device_of, family,
                                              is_semi_supervised, load_model, paper_roles, pick, pool_of, seed_params,
                                              stage_code, store)
from omnifer_lib.engine.pipeline.cost import epoch_costs
from omnifer_lib.engine.pipeline.datasets import dataset, eval_targets, eval_targets_of, split_labeled
from omnifer_lib.engine.pipeline.display import (DATASET_NAMES, IMAGES_WITHHELD, display_backbone, images_may_be_shown,
                                               role_description)
from omnifer_lib.engine.pipeline.distillation import DAS_METHODS, distilled, load_distilled
from omnifer_lib.engine.pipeline.kfold import kfold_learner
from omnifer_lib.engine.pipeline.final import learner
from omnifer_lib.engine.pipeline.learners import evaluation, fit_kwargs, history, primitive_learner, primitive_learners
from omnifer_lib.engine.pipeline.preflight import check_dataset_roots, check_device, preflight
from omnifer_lib.engine.pipeline.pretraining import face_pretraining, initial_model, pretraining_indices
from omnifer_lib.engine.pipeline.selection import (EmptySelectionError, auxiliary_samples, manifest_dir,
                                                 require_auxiliary_samples, selection, selection_kwargs, teacher)
from omnifer_lib.engine.pipeline.side_by_side import learner_processes, train_side_by_side
from omnifer_lib.engine.pipeline.tables import epoch_cost_table, kfold_table, results_table, results_tables


def clear_memory_caches() -> None:
    """Forget the datasets and learners this process holds in memory (the artifact store on disk
    is untouched): e.g. after the cache folder (``$OMNIFER_CACHE``) was changed."""
    from omnifer_lib.engine.pipeline.datasets import _dataset_cached
    from omnifer_lib.engine.pipeline.final import _learner_cached
    from omnifer_lib.engine.pipeline.learners import _primitive_cached

    _dataset_cached.cache_clear()
    _learner_cached.cache_clear()
    _primitive_cached.cache_clear()


__all__ = [
    "ANCHOR", "ANCHOR_REST", "FOLDER", "anchor_of", "pool_of", "cross_targets_of", "is_semi_supervised",
    "paper_roles", "split_labeled", "CROSS_TARGETS", "DAS_METHODS",
    "DATASET_NAMES", "DATA_KEYS", "DISTILL_KEYS", "MODES", "POOL",
    "PRETRAIN_KEYS", "PRETRAINED_WEIGHTS", "REAL_DATASETS", "SELECT_KEYS", "SIZE_KEYS", "SNAPSHOTS_FILE", "TRAIN_KEYS",
    "seed_params", "teacher",
    "EmptySelectionError", "auxiliary_samples", "check_dataset_roots", "check_device", "clear_memory_caches",
    "data_config", "dataset", "device_of", "display_backbone", "distilled", "epoch_cost_table", "epoch_costs",
    "eval_targets", "eval_targets_of",
    "evaluation", "face_pretraining", "family", "fit_kwargs", "history", "IMAGES_WITHHELD", "images_may_be_shown",
    "initial_model", "kfold_learner",
    "kfold_table", "learner", "learner_processes", "load_distilled", "load_model", "manifest_dir", "pick", "preflight",
    "pretraining_indices", "primitive_learner", "primitive_learners", "require_auxiliary_samples", "results_table",
    "results_tables", "role_description",
    "selection", "selection_kwargs", "stage_code", "store", "train_side_by_side",
]
