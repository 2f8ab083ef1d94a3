"""§3.3 of the paper: selecting auxiliary samples from a huge unlabeled pool.

The primitive learner's features (the layer before the softmax output) of the labelled
anchor give one centroid per class (Eq. 3). Each pool sample's cosine similarity to every
centroid (Eq. 4) decides its pseudo-label: the nearest class, if it beats every other class
by the margin δ (Eq. 5, read in similarity terms: ``cos(k̂) ≥ cos(k) + δ`` for all ``k ≠ k̂``).
The softmax-confidence rule (Eq. 2 with a threshold), which the paper argues against,
class-balanced variants and two offline pseudo-labelling rules of the semi-supervised literature
(FreeMatch's self-adaptive per-class thresholds, ReMixMatch's distribution alignment) are provided
beside it for comparison.

Modules:
  rules     the maths on arrays: centroids, cosine, the margin rule and the rules compared with it
  stream    :func:`select_auxiliary`: streaming, resumable, shardable scoring of a pool
  manifest  the on-disk manifest of per-sample scores; merge of shards; readers
  reselect  :func:`reselect`: any rule / δ applied to a manifest without recomputation
  report    per-class counts and precision, δ sweeps, rules compared at matched counts
  dataset   :class:`AuxiliaryDataset`: the selected samples with pseudo-labels (VAS)
"""
from .dataset import AuxiliaryDataset
from .manifest import (CHUNK_COLUMNS, Manifest, ManifestError, ScoreTable, merge_manifests,
                       open_manifest, read_manifest)
from .report import compare_rules, delta_sweep, rule_tally, selection_report
from .reselect import (PoolSelection, decide, load_selection, reselect, rule_parameters, save_selection,
                       soft_pseudo_labels)
from .rules import (RULE_PARAMETERS, RULES, SELECTION_RULES, CentroidAccumulator, Selection, SelectionRule,
                    adaptive_class_thresholds, balanced_quantile,
                    balanced_topk, cap_per_class, class_centroids, class_threshold_rule, cosine_similarity,
                    distribution_alignment, margin_rule, margin_select, rule_record, softmax_probabilities, top_share,
                    softmax_select, top_two)
from .stream import (ChunkBatches, SelectionSummary, compute_anchor_statistics, compute_centroids,
                     dataset_fingerprint, iter_features, model_fingerprint, select_auxiliary)

__all__ = [
    "AuxiliaryDataset", "CHUNK_COLUMNS", "CentroidAccumulator", "ChunkBatches", "Manifest",
    "ManifestError", "PoolSelection", "RULES", "RULE_PARAMETERS", "SELECTION_RULES", "ScoreTable", "Selection",
    "SelectionRule", "SelectionSummary", "rule_record",
    "adaptive_class_thresholds", "balanced_quantile", "balanced_topk", "cap_per_class", "class_centroids",
    "class_threshold_rule", "compare_rules", "compute_anchor_statistics", "compute_centroids",
    "cosine_similarity", "dataset_fingerprint", "decide", "delta_sweep", "distribution_alignment",
    "iter_features", "load_selection", "margin_rule", "margin_select", "merge_manifests",
    "model_fingerprint", "open_manifest", "read_manifest", "reselect", "rule_parameters", "rule_tally",
    "save_selection", "select_auxiliary", "selection_report", "soft_pseudo_labels", "softmax_probabilities",
    "softmax_select", "top_share", "top_two",
]
