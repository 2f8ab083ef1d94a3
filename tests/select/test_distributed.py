"""Selection under torch.distributed (2 processes, gloo on the CPU): the sharded, merged selection
equals the single-process one bit for bit, and a rank that died is resumed, not redone."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from omnifer_lib import select as S
from omnifer_lib.select import manifest as mf
from omnifer_lib.select.distributed import select_auxiliary_distributed

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with the gloo backend is not available in this torch build")

K = 7
KW = dict(batch_size=16, chunk_size=30, progress=False)


class RowNet(nn.Module):
    """Per-sample outputs computed without matrix products, so bit-identical whatever the batch."""

    num_classes = K

    def __init__(self, dim: int = 16):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.scale = nn.Parameter(torch.randn(dim, generator=g))
        self.out = nn.Parameter(torch.randn(K, 2, generator=g))
        self.dim = self.feature_dim = dim

    def features(self, x):
        return torch.relu(x.flatten(1)[:, : self.dim] * self.scale - 0.3)

    def classify(self, f):
        return (f[:, : 2 * K].reshape(-1, K, 2) * self.out).sum(-1)


class Pool(Dataset):
    def __init__(self, n: int = 203):
        self.images = torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(1))

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], -1


def anchor():
    g = torch.Generator().manual_seed(2)
    return TensorDataset(torch.rand(70, 3, 4, 4, generator=g), torch.arange(70) % K)


def _rank(rank: int, world: int, init_file: str, manifest_dir: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        summary = select_auxiliary_distributed(RowNet(), anchor(), Pool(), 0.05, manifest_dir=manifest_dir, **KW)
        np.savez(f"{out}-{rank}.npz", pool_index=summary.selection.pool_index,
                 pseudo_labels=summary.selection.pseudo_labels, resumed=summary.resumed_chunks,
                 computed=summary.computed_chunks, shard_range=np.array(summary.shard_range))
    finally:
        torch.distributed.destroy_process_group()


def _launch(tmp_path, name: str) -> list:
    out = str(tmp_path / name)
    mp.spawn(_rank, args=(2, str(tmp_path / f"{name}.init"), str(tmp_path / "sharded"), out), nprocs=2, join=True)
    return [dict(np.load(f"{out}-{r}.npz")) for r in range(2)]


def test_two_ranks_select_exactly_what_one_process_selects(tmp_path):
    single = S.select_auxiliary(RowNet(), anchor(), Pool(), 0.05, manifest_dir=tmp_path / "one", **KW).selection
    ranks = _launch(tmp_path, "first")
    assert [tuple(r["shard_range"]) for r in ranks] == [(0, 101), (101, 203)]
    for r in ranks:  # every rank returns the merged selection
        np.testing.assert_array_equal(r["pool_index"], single.pool_index)
        np.testing.assert_array_equal(r["pseudo_labels"], single.pseudo_labels)
    assert len(single.pool_index) > 0
    merged = S.open_manifest(tmp_path / "sharded")
    one = S.open_manifest(tmp_path / "one")
    for col in ("pool_index", "cosine", "margin", "softmax"):
        np.testing.assert_array_equal(merged.columns([col])[col], one.columns([col])[col])
    assert merged.anchor_counts.tolist() == one.anchor_counts.tolist() == [10] * K  # rank 0's, broadcast


def test_a_rank_that_died_is_resumed_on_the_rerun(tmp_path):
    # rank 1 dies after its first chunk: its shard folder holds one of its four chunks
    centroids = S.compute_centroids(RowNet(), anchor(), batch_size=16, progress=False)

    def first_then_die(chunk_id, completed, total):
        if completed >= 1:
            raise KeyboardInterrupt("rank 1 killed")

    with pytest.raises(KeyboardInterrupt):
        S.select_auxiliary(RowNet(), None, Pool(), 0.05, manifest_dir=tmp_path / "sharded", centroids=centroids,
                           shard=(1, 2), on_chunk=first_then_die, **KW)
    assert mf.completed_chunks(tmp_path / "sharded" / mf.shard_dirname(1, 2)) == [0]
    ranks = _launch(tmp_path, "rerun")
    assert int(ranks[1]["resumed"]) == 1 and int(ranks[1]["computed"]) == 3  # only the missing chunks
    assert int(ranks[0]["resumed"]) == 0 and int(ranks[0]["computed"]) == 4
    single = S.select_auxiliary(RowNet(), anchor(), Pool(), 0.05, manifest_dir=tmp_path / "one", **KW).selection
    np.testing.assert_array_equal(ranks[0]["pool_index"], single.pool_index)
    # rank 1's shard was begun from centroids alone; the merge keeps the counts rank 0 stored
    assert S.open_manifest(tmp_path / "sharded").anchor_counts.tolist() == [10] * K


def test_without_a_process_group_it_is_select_auxiliary(tmp_path):
    a = select_auxiliary_distributed(RowNet(), anchor(), Pool(), 0.05, manifest_dir=tmp_path / "a", **KW)
    b = S.select_auxiliary(RowNet(), anchor(), Pool(), 0.05, manifest_dir=tmp_path / "b", **KW)
    np.testing.assert_array_equal(a.selection.pool_index, b.selection.pool_index)
    with pytest.raises(ValueError, match="shard"):
        select_auxiliary_distributed(RowNet(), anchor(), Pool(), 0.05, manifest_dir=tmp_path / "c", shard=(0, 2))
