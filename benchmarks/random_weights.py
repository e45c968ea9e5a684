"""Random weights in a real architecture's key layout: the benchmarks' stand-in for a download."""

from __future__ import annotations

import numpy as np


def random_state_dict(arch: str = "r3d_18", scale: float = 0.05) -> dict:
    """{key: float32 array} with the official checkpoint's keys and shapes; BatchNorm variances positive."""
    from modelzoo.models.video_resnet.architecture import expected_keys

    rng = np.random.default_rng(0)
    state = {}
    for key, shape in expected_keys(arch).items():
        array = rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
        state[key] = np.abs(array) + np.float32(0.5) if key.endswith(".running_var") else array
    return state
