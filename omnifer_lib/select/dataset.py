"""The selected auxiliary samples (VAS) as a dataset for the final training (anchor ∪ VAS)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
from torch.utils.data import Dataset

from .reselect import PoolSelection, load_selection, reselect


class AuxiliaryDataset(Dataset):
    """Selected pool samples with their pseudo-labels, yielding ``(image, pseudo_label)``.

    ``selection`` is a :class:`PoolSelection`, the path of a selection file (``.npz`` written
    by :func:`save_selection`), or a manifest folder together with ``reselect`` keyword
    arguments (``rule=``, ``delta=``, ...). Images come from ``pool`` unchanged (its own
    transform applies).

    Attributes: ``labels`` (M,) int64 pseudo-labels; ``true_labels`` (M,) int64 hidden true
    labels of the selected samples when the pool has ``true_labels`` (synthetic pool,
    semi-supervised splits), else ``None``; ``pool_index`` (M,) and ``similarity`` (M,).
    """

    def __init__(self, pool: Dataset, selection: Union[PoolSelection, str, os.PathLike],
                 **reselect_kwargs: Any):
        if not isinstance(selection, PoolSelection):
            path = Path(selection)
            if path.is_dir():
                selection = reselect(path, **reselect_kwargs)
            else:
                if reselect_kwargs:
                    raise ValueError("rule keyword arguments apply to a manifest folder, not to a "
                                     f"selection file ({path})")
                selection = load_selection(path)
        elif reselect_kwargs:
            raise ValueError("rule keyword arguments apply to a manifest folder, not to a PoolSelection")
        if selection.n_pool != len(pool):
            raise ValueError(f"the selection was made from a pool of {selection.n_pool} samples but "
                             f"this pool has {len(pool)}; pass the pool the manifest was computed on")
        self.pool = pool
        self.selection = selection
        self.pool_index = selection.pool_index
        self.similarity = selection.similarity
        self.labels = selection.pseudo_labels.astype(np.int64)
        pool_true = getattr(pool, "true_labels", None)
        self.true_labels: Optional[np.ndarray] = (
            np.asarray(pool_true, dtype=np.int64)[self.pool_index] if pool_true is not None else None)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> Tuple[Any, int]:
        image = self.pool[int(self.pool_index[i])][0]
        return image, int(self.labels[i])

    def __getitems__(self, indices: Sequence[int]) -> List[Tuple[Any, int]]:
        """Batched access: one call into the pool's own ``__getitems__`` when it has one."""
        idx = [int(self.pool_index[i]) for i in indices]
        if hasattr(self.pool, "__getitems__"):
            items = self.pool.__getitems__(idx)
        else:
            items = [self.pool[j] for j in idx]
        return [(item[0], int(self.labels[i])) for item, i in zip(items, indices)]

    def __repr__(self) -> str:
        return f"AuxiliaryDataset({len(self)} samples, rule={self.selection.rule!r}, params={self.selection.params})"
