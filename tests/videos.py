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


def video_folder(root: Path) -> Path:
    """What a run over a folder must sort out: three videos (one in a subfolder), a file that is not a
    video though named like one, and a text file no video model takes. Returns `root`."""
    root = Path(root)
    (root / "more").mkdir(parents=True)
    for index, name in enumerate(("a.avi", "b.avi", "more/c.avi")):
        write_video(root / name, 20 + 8 * index, 25.0)
    (root / "broken.mp4").write_text("not a video")
    (root / "notes.txt").write_text("ignored: not an input this model takes")
    return root


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


def write_keyframed_video(
    path: Path,
    frames: int,
    fps: int,
    gop: int,
    size=(160, 120),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    container_format: str | None = None,
    rotation: int | None = None,
    options: dict | None = None,
    timestamps=None,
    colorspace: int | None = None,
    content=frame_content,
) -> Path:
    """Write with PyAV, which sets the GOP (OpenCV's writer cannot): a keyframe every `gop` frames.

    `timestamps(index)` gives each frame's pts in units of 1/fps (a variable frame rate when it skips);
    `colorspace` tags the YUV matrix (FFmpeg's AVColorSpace: 1 is BT.709).
    """
    from fractions import Fraction

    import av

    width, height = size
    params = {
        "libx264": {"x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:log-level=none"},
        "libx265": {"x265-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:log-level=none"},
    }.get(codec, {"sc_threshold": "1000000000"})
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt, stream.gop_size = width, height, pix_fmt, gop
        stream.options = {**params, **(options or {})}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if colorspace is not None:
            stream.codec_context.colorspace = colorspace
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(content(index, height, width), format="bgr24")
            if colorspace is not None:
                frame.colorspace = colorspace
            if timestamps is not None:
                frame.pts, frame.time_base = timestamps(index), Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return Path(path)


def keyframe_indices(path: Path) -> list:
    """Presentation-order indices of the keyframes, read from the container's packets with PyAV."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size]
    order = sorted(pts for pts, _ in packets)
    return sorted(order.index(pts) for pts, key in packets if key)
