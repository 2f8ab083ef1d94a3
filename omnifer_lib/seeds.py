"""Seeds for every random stream of the library, derived from one master seed.

Every random draw (an epoch's sample order, a flip, a batch of real images in Algorithm 1, an
initialisation θ0, a split of §4.5) is seeded from ``(master seed, what it is for, where it is)``,
so a run resumed from a checkpoint draws exactly what an uninterrupted run would, and two streams
never share a seed by accident.

This module is the one home of random streams: no other module of the library seeds a generator
(``tests/test_layout.py`` checks it).

* :func:`derive_seed`, :func:`generator`, :func:`seed_global`: streams named by keys under a master
  seed; :func:`forked` gives the caller back its global state afterwards.
* :func:`numpy_rng`, :func:`torch_generator`, :func:`torch_seeded`: a stream seeded with a seed
  *as given*, for a draw that is its seed's only use (a labeled split drawn by ``split_seed``,
  subject folds, a model's initialisation drawn under its learner's seed). Deriving these too would
  redraw every split and initialisation the book and the real-faces archive report.
* :func:`split_seed_of`: the labeled split seed ``s`` of a pipeline redrawn per seed.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence, Union

import numpy as np
import torch

# A text key enters the entropy as this tag plus its length, then its UTF-8 bytes, so that
# ("ab",) and (97, 98) stay different streams.
_TEXT_TAG = 1 << 32


def derive_seed(seed: int, *keys: Union[int, str]) -> int:
    """A well-mixed 63-bit seed for the stream named by ``keys`` under the master ``seed``
    (non-negative ints and strings, e.g. ``derive_seed(seed, "batch", iteration)``); stable across
    machines and Python versions."""
    entropy = []
    for part in (seed, *keys):
        if isinstance(part, str):
            data = part.encode("utf-8")
            entropy += [_TEXT_TAG + len(data), *data]
        else:
            if int(part) < 0:
                raise ValueError(f"seed parts must be non-negative ints or strings, got {(seed, *keys)}")
            entropy.append(int(part))
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def generator(seed: int, *keys: Union[int, str]) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed`."""
    return torch.Generator().manual_seed(derive_seed(seed, *keys))


def seed_global(seed: int, *keys: Union[int, str]) -> None:
    """Seed torch's global RNG (dropout and other draws without a generator) with
    :func:`derive_seed` ``(seed, *keys)``."""
    torch.manual_seed(derive_seed(seed, *keys))


def numpy_rng(seed: int) -> np.random.Generator:
    """A numpy generator seeded with ``seed`` as given (not derived)."""
    return np.random.default_rng(seed)


def torch_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` as given (not derived)."""
    return torch.Generator().manual_seed(int(seed))


def forked(devices: Sequence[int] = ()):
    """A block after which torch's global RNG is back where the caller left it, whatever the block
    draws or seeds (``torch.random.fork_rng``). ``devices``: CUDA devices forked too."""
    return torch.random.fork_rng(devices=list(devices))


@contextlib.contextmanager
def torch_seeded(seed: int, devices: Sequence[int] = ()) -> Iterator[None]:
    """Run a block with torch's global RNG seeded with ``seed`` as given and restore the caller's
    state afterwards (torch's initialisers draw from the global RNG). ``devices``: the CUDA
    devices whose generators are forked too."""
    with forked(devices):
        torch.manual_seed(int(seed))
        yield


@contextlib.contextmanager
def numpy_global_seeded(seed: int) -> Iterator[None]:
    """Run a block with numpy's legacy global RNG seeded with ``seed`` and restore it afterwards,
    for third-party code that draws from it (seaborn's jitter)."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def split_seed_of(split_seed: int, seed: int) -> int:
    """The labeled split's seed for pipeline seed ``seed`` when seeds redraw the whole pipeline:
    ``split_seed + seed``, so seed 0 keeps the profile's split."""
    return int(split_seed or 0) + int(seed)
