"""Synthetic test videos written with OpenCV, with frame content that identifies the frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def frame_content(index: int, height: int, width: int) -> np.ndarray:
    """A BGR frame unique to `index`: smooth colour gradients shifted by the index."""
    rng = np.random.default_rng(index)
    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    import cv2

    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def write_video(
    path: Path, frames: int, fps: float, size=(160, 120), codec: str = "FFV1", content=frame_content
) -> Path:
    """Write `frames` frames at `fps`; FFV1 is lossless, so decoded frames equal what was written."""
    import cv2

    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {codec} here"
    for index in range(frames):
        writer.write(content(index, height, width))
    writer.release()
    return Path(path)


def decode_all(path: Path) -> list:
    """Every frame, decoded independently of zoo, as RGB."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames
