"""Saving model-input tensors as .npy, atomically."""

from __future__ import annotations

from pathlib import Path

from modelzoo.core.atomic import atomic_write


def save_npy(path: Path, array) -> None:
    import numpy as np

    with atomic_write(path) as handle:
        np.save(handle, array, allow_pickle=False)


def save_random_pixels(path: Path, shape: tuple) -> Path:
    """A deterministic uint8 RGB array of `shape` saved as .npy: a task's synthetic input for checks."""
    import numpy as np

    np.save(path, np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
    return Path(path)
