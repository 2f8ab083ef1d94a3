"""Seeds for every random stream of the library, derived from one master seed.

Every random draw (an epoch's sample order, a flip, a batch of real images in Algorithm 1, an
initialisation θ0, a split of §4.5) is seeded from ``(master seed, what it is for, where it is)``,
so a run resumed from a checkpoint draws exactly what an uninterrupted run would, and two streams
never share a seed by accident.
"""
from __future__ import annotations

from typing import Union

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
