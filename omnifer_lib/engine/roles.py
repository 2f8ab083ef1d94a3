"""Which dataset plays which of the paper's roles: profile parameters, not constants.

The paper (§4) has an anchor (labeled; RAF-DB), an unlabeled pool (MS-Celeb-1M), the anchor's
test split as inner test set, and cross-dataset targets (CK+, JAFFE, MMI, FER-2013). A profile
names them with ``anchor``, ``pool`` and ``cross_targets``; the pool may also be the rest of the
anchor's train split with its labels hidden (``anchor_rest``, the semi-supervised protocol of
:func:`omnifer_lib.data.protocols.semi_supervised_split`) or a folder of unlabeled faces
(``folder``). This module reads those parameters; it imports nothing heavy, so the runner can ask
which chapters a profile can run before any notebook starts.
"""
from __future__ import annotations

from typing import Any, Mapping, Tuple

from omnifer_lib.data.registry import RECORDS

#: The paper's roles (§4): the anchor, the unlabeled pool, inner-dataset tests, cross targets. These
#: are the defaults of the profile parameters ``anchor``, ``pool`` and ``cross_targets``
#: (:func:`anchor_of`, :func:`pool_of`, :func:`cross_targets_of`), which any profile may change.
ANCHOR = "rafdb"
POOL = "ms1m"
CROSS_TARGETS = ("ckplus", "jaffe", "mmi", "fer2013")  # Tables 4-7, in the paper's order
#: The pool of the semi-supervised protocol: the anchor's train split minus its labeled part, labels
#: hidden (``data.protocols.semi_supervised_split``; the hidden labels measure pseudo-label precision).
ANCHOR_REST = "anchor_rest"
#: A pool of unlabeled face images in a folder (``data.load("folder", root=folder_root)``).
FOLDER = "folder"
#: The parameters of the semi-supervised split, part of the key of the anchor and of its rest.
SPLIT_KEYS = ("anchor", "pool", "labeled_fraction", "labeled_per_class", "split_seed")
#: Datasets whose test set the ``test_split`` parameter picks (``test`` or ``val``).
#: (From the dataset records: those with a root and a published test split.)
SPLIT_DATASETS = tuple(n for n, r in RECORDS.items() if r.needs_root and "test" in r.splits)


def anchor_of(params: Mapping[str, Any]) -> str:
    """The dataset playing the labeled anchor (the paper's RAF-DB)."""
    return str(params.get("anchor") or ANCHOR)


def pool_of(params: Mapping[str, Any]) -> str:
    """The dataset playing the unlabeled pool: a dataset name (the paper's ``ms1m``),
    :data:`ANCHOR_REST` (the rest of the anchor's train split, labels hidden) or :data:`FOLDER`."""
    return str(params.get("pool") or POOL)


def cross_targets_of(params: Mapping[str, Any]) -> Tuple[str, ...]:
    """The cross-dataset targets (Tables 4-7), in the paper's order; none when the profile gives none."""
    targets = params.get("cross_targets")
    return CROSS_TARGETS if targets is None else tuple(targets)


def is_semi_supervised(params: Mapping[str, Any]) -> bool:
    """Whether anchor and pool are the two parts of the anchor's train split."""
    return pool_of(params) == ANCHOR_REST


def split_text(params: Mapping[str, Any]) -> str:
    """The labeled part of a semi-supervised split in words, e.g. ``"10 % of each class (split seed 0)"``."""
    if params.get("labeled_per_class") is not None:
        part = f"{int(params['labeled_per_class'])} labeled images per class"
    else:
        part = f"{100 * float(params.get('labeled_fraction') or 0):g} % of each class, labeled"
    return f"{part} (split seed {params.get('split_seed', 0)})"


def paper_roles(params: Mapping[str, Any]) -> bool:
    """Whether the profile plays the paper's roles (anchor RAF-DB, pool MS-Celeb-1M): the chapters
    that reproduce the paper's tables need them."""
    return anchor_of(params) == ANCHOR and pool_of(params) == POOL
