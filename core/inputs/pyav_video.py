"""Decoding a video file with PyAV: forward from the start, or from keyframes where that gives the same frames.

One decoder for both, so a seek changes which frames are decoded, never their pixels. PyAV returns each
frame's presentation timestamp, so every frame decoded after a seek is checked to be the frame forward
decoding gives at that index; anything unexpected refuses the seek and the file is decoded forward.
OpenCV's own seek guesses where it landed from the frame rate. See docs/decoding.md.
"""

from __future__ import annotations

from bisect import bisect_left

from modelzoo.core.inputs.seek import MAX_INDEX, MIN_SKIP, REORDER_SLACK, frames_skipped, plan_spans, worth_seeking
from modelzoo.core.inputs.video import DecodedFrames


class Unreadable(Exception):
    """PyAV cannot open this file or finds no video in it; another decoder may."""


class _Refused(Exception):
    """A seek cannot be shown to give forward decoding's frames; the message says why."""


def decode(path, wanted: set, transform) -> DecodedFrames:
    """The `wanted` frames (indices as forward decoding counts them), each through `transform(bgr)`.

    Raises ImportError without PyAV and Unreadable when PyAV cannot open the file.
    """
    import av

    work = {"decoded": 0, "seeks": 0}
    refused = None
    if worth_seeking(wanted):
        try:
            with _open(path) as container:
                frames = _decode_by_seeking(container, wanted, transform, work)
            return DecodedFrames(frames, max(wanted) + 1, work["decoded"], work["seeks"])
        except _Refused as exc:
            refused = str(exc)
        except av.FFmpegError as exc:
            refused = f"PyAV failed while seeking ({exc})"
    with _open(path) as container:
        kept, end = _decode_forward(container, wanted, transform)
    return DecodedFrames(kept, end, work["decoded"] + end, refused=refused)


def _open(path):
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise Unreadable(f"PyAV cannot open {path} ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise Unreadable(f"{path} has no video stream")
    container.streams.video[0].thread_type = "AUTO"  # frame and slice threads: the output is the same
    return container


def _decode_forward(container, wanted: set, transform) -> tuple:
    """Decode from frame 0 through the last wanted one; return (kept, end) as OpenCV's grab loop does.

    A packet that does not decode is skipped, as FFmpeg's own tools do; a read error ends the video,
    or, before any frame, hands the file to OpenCV (Unreadable).
    """
    import av

    stream = container.streams.video[0]
    last = max(wanted) if wanted else -1
    kept, index = {}, 0
    if last < 0:
        return kept, index
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.InvalidDataError:
                continue
            for frame in frames:
                if index in wanted:
                    kept[index] = transform(_to_bgr(frame))
                index += 1
                if index > last:
                    return kept, index
    except av.FFmpegError as exc:
        if index == 0:
            raise Unreadable(f"PyAV cannot decode {container.name} ({exc})") from exc
    return kept, index


def _decode_by_seeking(container, wanted: set, transform, work: dict) -> dict:
    stream = container.streams.video[0]
    if len(stream.index_entries) == 0:  # MPEG-TS, raw streams: FFmpeg would bisect by timestamps
        raise _Refused("the container has no seek index")
    last = max(wanted)
    if last + 1 + REORDER_SLACK > MAX_INDEX:
        raise _Refused(f"more than {MAX_INDEX} frames to index")
    timestamps, keyframes = _scan(container, stream, last, work)
    spans = plan_spans(keyframes, wanted)
    if frames_skipped(spans, last) < MIN_SKIP:
        raise _Refused(f"the keyframes allow skipping fewer than {MIN_SKIP} frames")
    kept = {}
    for start, stop in spans:
        container.seek(timestamps[start], stream=stream, backward=True, any_frame=False)
        work["seeks"] += 1
        _decode_span(container, stream, timestamps, start, stop, wanted, kept, transform, work)
    return kept


def _scan(container, stream, last: int, work: dict) -> tuple:
    """Sorted presentation timestamps of the packets through `last` (plus slack), and the keyframes' ranks.

    Packets are read, not decoded, except until frame 0 comes out: forward decoding counts from it,
    so it must be the first frame in presentation order.
    """
    stamps, key_stamps, first = [], [], None
    for packet in container.demux(stream):
        if packet.size == 0:  # the end (an empty packet mid-file would end a decoder's input too)
            break
        if packet.pts is None:
            raise _Refused("the container gives no presentation timestamps")
        if packet.is_corrupt or packet.is_discard:
            raise _Refused("a packet is marked corrupt or to be discarded")
        stamps.append(packet.pts)
        if packet.is_keyframe:
            key_stamps.append(packet.pts)
        if first is None:
            work["decoded"] += 1
            frames = packet.decode()
            first = frames[0] if frames else None
            if first is None and work["decoded"] > REORDER_SLACK:
                raise _Refused(f"no frame after {REORDER_SLACK} packets")
        if len(stamps) > last + REORDER_SLACK:
            break
    if len(stamps) <= last:
        raise _Refused(f"the container has {len(stamps)} frames, fewer than the {last + 1} wanted")
    stamps.sort()
    if first is None or first.pts != stamps[0] or not first.key_frame:
        raise _Refused("the first frame decoded is not the first in presentation order")
    if any(earlier == later for earlier, later in zip(stamps, stamps[1:])):
        raise _Refused("two packets share a presentation timestamp")
    return stamps, sorted(bisect_left(stamps, stamp) for stamp in key_stamps)


def _decode_span(container, stream, timestamps, start: int, stop: int, wanted: set, kept: dict, transform, work):
    """Decode frames start..stop after a seek; each must be the next frame the timestamps promise."""
    position, fed = start, 0
    budget = stop - start + 1 + REORDER_SLACK  # a seek that lands elsewhere never decodes more than this
    for packet in container.demux(stream):
        if packet.size:
            fed += 1
            work["decoded"] += 1
            if fed > budget:
                raise _Refused(f"the seek to frame {start} decoded {budget} packets without reaching frame {stop}")
        for frame in packet.decode():
            if frame.pts != timestamps[position]:
                raise _Refused(f"after the seek to frame {start}, frame {position} has another timestamp")
            if position == start and not frame.key_frame:
                raise _Refused(f"the seek to frame {start} did not land on a keyframe")
            if frame.is_corrupt:
                raise _Refused(f"frame {position} decodes with errors after the seek")
            if position in wanted:
                kept[position] = transform(_to_bgr(frame))
            if position == stop:
                return
            position += 1
    raise _Refused(f"the video ended at frame {position} after the seek to frame {start}")


def _to_bgr(frame):
    """BGR uint8 as OpenCV's FFmpeg backend gives it: converted by swscale with its flag (bicubic), so the
    pixels are OpenCV's too (10-bit and BT.709 included), and turned upright by a display rotation."""
    import numpy as np

    # One scaling thread: the default starts a thread pool per frame, 2.5x slower at 720p (measured).
    image = frame.to_ndarray(format="bgr24", interpolation="BICUBIC", threads=1)
    turns = (frame.rotation // 90) % 4 if frame.rotation % 90 == 0 else 0
    return np.ascontiguousarray(np.rot90(image, turns) if turns else image)
