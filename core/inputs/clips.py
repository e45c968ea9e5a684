"""Which frames a clip uses: torchvision's fps resampling and evenly spaced clip starts."""

from __future__ import annotations

import math


def resample_indices(num_frames: int, fps: float | None, target_fps: float | None) -> list:
    """Indices into the decoded frames after resampling to `target_fps`, as torchvision does.

    An integer stride is a plain slice; otherwise floor(k * stride) for k < floor(n * target/fps),
    computed in float32 like torchvision's `_resample_video_idx`, so the same frames are picked.
    """
    return resampled_at(range(resampled_count(num_frames, fps, target_fps)), num_frames, fps, target_fps)


def clip_starts(length: int, clips: int, clip_len: int) -> list:
    """Start positions of `clips` clips over a sequence of `length` frames.

    One clip is centred; several are spread evenly from the first to the last valid start.
    """
    last = max(length - clip_len, 0)
    if clips == 1:
        return [last // 2]
    import numpy as np

    return [int(s) for s in np.floor(np.linspace(0, last, clips))]


def resampled_count(num_frames: int, fps: float | None, target_fps: float | None) -> int:
    """len(resample_indices(...)), without building the list (a header may claim billions of frames)."""
    if not _resampling(fps, target_fps):
        return num_frames
    stride = fps / target_fps
    if float(stride).is_integer():
        return len(range(0, num_frames, int(stride)))
    return int(math.floor(num_frames * target_fps / fps))


def resampled_at(positions: list, num_frames: int, fps: float | None, target_fps: float | None) -> list:
    """resample_indices(...)[p] for each p in `positions`, computing only those."""
    if not _resampling(fps, target_fps):
        return list(positions)
    stride = fps / target_fps
    if float(stride).is_integer():
        return [p * int(stride) for p in positions]
    import numpy as np

    picked = np.floor(np.asarray(positions, dtype=np.float32) * np.float32(stride)).astype(np.int64)
    return [min(int(i), num_frames - 1) for i in picked]


def _resampling(fps, target_fps) -> bool:
    """Whether frames are resampled: both rates known (an unknown or absurd rate takes every frame)."""
    return bool(fps and target_fps and math.isfinite(fps) and fps > 0)


def clip_frame_indices(num_frames: int, fps: float | None, target_fps: float | None, clips: int, clip_len: int) -> list:
    """For each clip, the `clip_len` decoded-frame indices it uses; short videos repeat their last frame.
    Only the frames the clips use are computed: memory does not grow with the frame count a header claims."""
    if num_frames < 1:
        return []
    length = resampled_count(num_frames, fps, target_fps)
    if not length:  # fewer frames than one resampling step: use what there is
        return [[0] * clip_len for _ in clip_starts(1, clips, clip_len)]
    result = []
    for start in clip_starts(length, clips, clip_len):
        positions = [min(start + offset, length - 1) for offset in range(clip_len)]
        result.append(resampled_at(positions, num_frames, fps, target_fps))
    return result
