"""Which torch device a step runs on: the one setting ``device`` (``auto`` | ``cpu`` | ``cuda``).

Below training, logits and inference in the import order: every step that
runs torch code resolves its device here.
"""

from __future__ import annotations

import torch

from taxonbench.errors import TaxonbenchError


def resolve_device(setting: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a CUDA device is an error."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise TaxonbenchError("device: 'cuda' was asked for but no CUDA device is available")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)
