"""Where to seek: the spans of frames to decode, each from the keyframe before its first wanted frame."""

from __future__ import annotations

from bisect import bisect_right

# A seek must skip at least this many frames to pay for itself: it reads the packets' timestamps, decodes
# frame 0 and restarts the decoder's threads. Measured on 720p H.264 (GOP 6): seeking past 12 frames costs
# what decoding them does; past 24, seeking is 20% faster.
MIN_SKIP = 12
# Packets read past the last wanted one, so that B-frame reordering cannot change a wanted frame's rank
# (H.264 reorders at most 16 frames), and the packets a decoder may take to return a frame.
REORDER_SLACK = 32
# Timestamps held for one video (a list of ints, about 9 MB at most; 2.4 h at 30 fps): beyond, decode forward.
MAX_INDEX = 1 << 18


def worth_seeking(wanted) -> bool:
    """Whether a seek could skip MIN_SKIP frames at all, judged before opening the file."""
    ordered = sorted(wanted)
    if not ordered:
        return False
    gaps = [later - earlier - 1 for earlier, later in zip(ordered, ordered[1:])]
    return max([ordered[0], *gaps]) >= MIN_SKIP


def plan_spans(keyframes: list, wanted, min_skip: int = MIN_SKIP) -> list:
    """(start, stop) index ranges to decode, each starting on a keyframe (`keyframes` sorted, from 0).

    A frame whose keyframe is fewer than `min_skip` frames past the current span extends that span:
    decoding through is cheaper than seeking there.
    """
    spans = []
    for frame in sorted(wanted):
        key = keyframes[bisect_right(keyframes, frame) - 1]
        if spans and key - spans[-1][1] - 1 < min_skip:
            spans[-1] = (spans[-1][0], frame)
        else:
            spans.append((key, frame))
    return spans


def frames_skipped(spans: list, last: int) -> int:
    """Frames up to `last` that the spans do not decode."""
    return last + 1 - sum(stop - start + 1 for start, stop in spans)
