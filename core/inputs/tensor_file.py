"""Saving model-input tensors as .npy, atomically."""

from __future__ import annotations

from pathlib import Path

from modelzoo.core.atomic import atomic_write


def save_npy(path: Path, array) -> None:
    import numpy as np

    with atomic_write(path) as handle:
        np.save(handle, array, allow_pickle=False)
