"""Video files: OpenCV for probing and checking them, PyAV for decoding the frames a caller asks for.

PyAV decodes forward or from keyframes with the same frames either way (docs/decoding.md); OpenCV decodes
forward where PyAV is missing or cannot read the file.
"""

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


def load_decoders() -> None:
    """Import OpenCV and PyAV (when installed) now, so that their start-up is not counted as decoding."""
    opencv()
    try:
        import av  # noqa: F401
    except ImportError:
        pass


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
        fps, count = capture_rate(capture)
        info = VideoInfo(
            path=str(path),
            fps=fps,
            frame_count=count,
            width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
    finally:
        capture.release()
    return info


def capture_rate(capture) -> tuple:
    """(fps, frame count) an open OpenCV capture declares: None and 0 for what is missing, non-finite or
    not positive (a header may say anything)."""
    cv2 = opencv()
    fps, count = capture.get(cv2.CAP_PROP_FPS), capture.get(cv2.CAP_PROP_FRAME_COUNT)
    return (
        float(fps) if fps and math.isfinite(fps) and fps > 0 else None,
        int(count) if count and math.isfinite(count) and count > 0 else 0,
    )


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


@dataclass
class DecodedFrames:
    """The frames asked for, where decoding ended, and the work it took."""

    frames: dict  # {index: transform(bgr_frame)}, indices as forward decoding counts frames
    end: int  # the index after the last frame reached: the video's length when it ended first
    decoded: int  # frames (packets) the decoders worked through, checks and refused seeks included
    seeks: int = 0  # 0: decoded forward from the start
    refused: str | None = None  # why seeking (or PyAV) was not used, when it was tried


def decode_frames(path: Path, wanted, transform, timings: dict | None = None) -> DecodedFrames:
    """Decode the `wanted` frames, seeking to keyframes where that is shown to give forward decoding's frames.

    `timings["decode"]` gains the milliseconds spent outside `transform`.
    """
    wanted = set(wanted)
    spent = [0.0]

    def timed(frame):
        started = time.perf_counter()
        try:
            return transform(frame)
        finally:
            spent[0] += time.perf_counter() - started

    started = time.perf_counter()
    result = _decode(path, wanted, timed)
    if timings is not None:
        timings["decode"] = timings.get("decode", 0.0) + (time.perf_counter() - started - spent[0]) * 1000
    return result


def _decode(path: Path, wanted: set, transform) -> DecodedFrames:
    from modelzoo.core.inputs import pyav_video

    try:
        return pyav_video.decode(path, wanted, transform)
    except ImportError:
        refused = "PyAV is not installed"
    except pyav_video.Unreadable as exc:
        refused = str(exc)
    kept, end = _decode_forward_opencv(path, wanted, transform)
    return DecodedFrames(kept, end, end, refused=refused)


def read_frames(path: Path, wanted, transform, timings: dict | None = None) -> tuple:
    """({index: transform(bgr_frame)}, end): `end` is the index after the last frame reached, as decoding
    forward from the start counts frames; it is the video's length when the video ends before a wanted frame."""
    decoded = decode_frames(path, wanted, transform, timings)
    return decoded.frames, decoded.end


def _decode_forward_opencv(path: Path, wanted: set, transform) -> tuple:
    """Decode forward from frame 0 with OpenCV; return ({index: transform(bgr_frame)}, end).

    Frames not in `wanted` are only grabbed, never converted or kept, so memory stays
    proportional to the wanted frames. Decoding stops after the last wanted frame.
    """
    last = max(wanted) if wanted else -1
    kept = {}
    capture = _open(path)
    index = 0
    try:
        while index <= last:
            if not capture.grab():
                break
            if index in wanted:
                ok, frame = capture.retrieve()
                if not ok or frame is None:
                    break
                kept[index] = transform(frame)
            index += 1
    finally:
        capture.release()
    return kept, index
