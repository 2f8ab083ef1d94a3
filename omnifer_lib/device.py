"""Device choice shared by training, selection and distillation."""
from __future__ import annotations

from typing import Optional, Union

import torch


def resolve_device(device: Optional[Union[str, torch.device]] = None) -> torch.device:
    """``None`` or ``"auto"`` -> CUDA when available, else CPU; anything else is used as given.

    Raises ``ValueError`` when CUDA (or a CUDA index, or MPS) is asked for explicitly and this
    machine does not have it.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but torch sees no CUDA device; "
                         "use device='cpu' or 'auto'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} was requested but torch sees {torch.cuda.device_count()} CUDA "
                         f"device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} was requested but torch sees no Apple MPS device; "
                         "use device='cpu' or 'auto'")
    return dev


def describe_device(device: Optional[Union[str, torch.device]] = None) -> str:
    """A human-readable name of the device, e.g. 'cpu (2 threads)' or 'cuda:0 NVIDIA H100'."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        return f"{dev} {torch.cuda.get_device_name(dev)}"
    return f"cpu ({torch.get_num_threads()} threads)"
