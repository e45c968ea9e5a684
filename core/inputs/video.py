"""Decoding video with OpenCV: forward only, keeping just the frames a caller asks for."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from modelzoo.core.errors import InputError


@dataclass(frozen=True)
class VideoInfo:
    path: str
    fps: float | None  # None when the container does not say
    frame_count: int  # from the header; may be wrong or 0
    width: int
    height: int


def opencv():
    """Import cv2 with FFmpeg's own console logging off: a bad file must give one `error:` line."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    import cv2

    return cv2


def _open(path: Path):
    cv2 = opencv()
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise InputError(
            f"{path} is not a video OpenCV can open (not a video, truncated, or an unsupported codec); "
            "convert it with ffmpeg or pass a .npy clip"
        )
    return capture


def check_first_frame(path: Path) -> None:
    """Open the video and decode its first frame: what is not a decodable video fails here, in
    milliseconds, before any download or conversion."""
    capture = _open(path)
    try:
        ok = capture.grab() and capture.retrieve()[0]
    finally:
        capture.release()
    if not ok:
        raise InputError(
            f"{path} is not a video OpenCV can decode (its first frame does not decode: no video stream, "
            "truncated, or an unsupported codec); check it with ffprobe, convert it with ffmpeg or pass a .npy clip"
        )


def probe(path: Path) -> VideoInfo:
    cv2 = opencv()
    capture = _open(path)
    try:
        fps = capture.get(cv2.CAP_PROP_FPS)
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        info = VideoInfo(
            path=str(path),
            fps=float(fps) if fps and math.isfinite(fps) and fps > 0 else None,
            frame_count=int(count) if count and math.isfinite(count) and count > 0 else 0,
            width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
    finally:
        capture.release()
    return info


def count_frames(path: Path) -> int:
    """Decode forward to count frames, for containers whose header count is missing or wrong."""
    capture = _open(path)
    count = 0
    try:
        while capture.grab():
            count += 1
    finally:
        capture.release()
    return count


def read_frames(path: Path, wanted, transform, timings: dict | None = None) -> tuple:
    """Decode forward once; return ({index: transform(bgr_frame)}, frames_decoded).

    Frames not in `wanted` are only grabbed, never converted or kept, so memory stays
    proportional to the wanted frames. Decoding stops after the last wanted frame.
    """
    wanted = set(wanted)
    last = max(wanted) if wanted else -1
    kept = {}
    decode_s = 0.0
    capture = _open(path)
    index = 0
    try:
        while index <= last:
            started = time.perf_counter()
            if not capture.grab():
                break
            if index in wanted:
                ok, frame = capture.retrieve()
                decode_s += time.perf_counter() - started
                if not ok or frame is None:
                    break
                kept[index] = transform(frame)
            else:
                decode_s += time.perf_counter() - started
            index += 1
    finally:
        capture.release()
    if timings is not None:
        timings["decode"] = timings.get("decode", 0.0) + decode_s * 1000
    return kept, index
