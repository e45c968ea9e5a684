"""Seeking to keyframes gives, bitwise, the frames decoding from the start gives, and decodes fewer of them.

References come from two places: zoo decoding forward (seeking switched off), and OpenCV decoding every
frame independently of zoo (what zoo decoded before PyAV, and what its live-stream path decodes).
"""

import sys

import numpy as np
import pytest
from videos import decode_all, keyframe_indices, write_keyframed_video

from modelzoo.core.inputs import pyav_video, seek
from modelzoo.core.inputs.clips import clip_frame_indices
from modelzoo.core.inputs.video import decode_frames, read_frames

av = pytest.importorskip("av")

FRAMES, FPS, GOP = 100, 25, 10

# (file name, writer arguments): GOPs closed and open, B-frames, several codecs and containers.
VIDEOS = {
    "h264.mp4": {},
    "h264-open-gop.mp4": {"options": {"x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:open-gop=1:bframes=3"}},
    "h264-many-refs.mkv": {"options": {"x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:ref=16:bframes=8"}},
    "hevc.mp4": {"codec": "libx265"},
    "vp9.webm": {"codec": "libvpx-vp9"},
    "mpeg4.avi": {"codec": "mpeg4"},
    "mpeg2-open-gop.mkv": {"codec": "mpeg2video", "options": {"bf": "2"}},
}


def rgb(bgr):
    return np.ascontiguousarray(bgr[..., ::-1])


def forward(path, wanted, monkeypatch):
    """zoo's own decoding from frame 0, seeking switched off."""
    with monkeypatch.context() as patch:
        patch.setattr(pyav_video, "worth_seeking", lambda wanted: False)
        decoded = decode_frames(path, wanted, rgb)
    assert decoded.seeks == 0 and decoded.refused is None
    return decoded.frames


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keyframed")
    return {name: write_keyframed_video(folder / name, FRAMES, FPS, GOP, **args) for name, args in VIDEOS.items()}


def clips_at(starts, length=16):
    return {start + offset for start in starts for offset in range(length)}


# Clip positions, given the video's keyframes (presentation-order indices).
CASES = {
    "centred clip": lambda keys: clips_at([42]),
    "last frames": lambda keys: clips_at([FRAMES - 16]),
    "starts on a keyframe": lambda keys: clips_at([keys[len(keys) // 2]]),
    "starts just before a keyframe": lambda keys: clips_at([keys[len(keys) // 2] - 1]),
    "two clips far apart": lambda keys: clips_at([20, 80], length=8),
    "one frame": lambda keys: {77},
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", VIDEOS)
def test_seeking_gives_the_frames_of_decoding_from_the_start(videos, name, case, monkeypatch):
    path = videos[name]
    keys = keyframe_indices(path)
    assert len(keys) >= FRAMES // GOP  # keyframes inside the video
    wanted = CASES[case](keys)

    decoded = decode_frames(path, wanted, rgb)

    assert decoded.refused is None and decoded.seeks >= 1
    assert decoded.decoded < max(wanted) + 1  # fewer than decoding from the start
    assert decoded.end == max(wanted) + 1
    assert sorted(decoded.frames) == sorted(wanted)
    from_start = forward(path, wanted, monkeypatch)
    opencv = decode_all(path)
    assert len(opencv) == FRAMES
    for index in wanted:
        assert np.array_equal(decoded.frames[index], from_start[index]), f"frame {index}"
        assert np.array_equal(decoded.frames[index], opencv[index]), f"frame {index} differs from OpenCV's"


def test_the_open_gop_videos_have_keyframes_that_are_not_idr(videos):
    """The open-GOP case is real: H.264 keyframes after the first are recovery points, not IDR pictures."""
    with av.open(str(videos["h264-open-gop.mp4"])) as container:
        stream = container.streams.video[0]
        keyframes = [bytes(p) for p in container.demux(stream) if p.size and p.is_keyframe]
    nal_types = []
    for data in keyframes:  # MP4 holds length-prefixed NAL units (4-byte lengths, x264's default)
        types, at = set(), 0
        while at + 4 < len(data):
            types.add(data[at + 4] & 0x1F)
            at += 4 + int.from_bytes(data[at : at + 4], "big")
        nal_types.append(types)
    assert 5 in nal_types[0] and all(5 not in types and 1 in types for types in nal_types[1:])


def test_two_distant_clips_take_two_seeks(videos):
    decoded = decode_frames(videos["h264.mp4"], clips_at([20, 80], length=8), rgb)
    assert decoded.seeks == 2
    assert decoded.decoded < 2 * 8 + 2 * seek.REORDER_SLACK


def test_a_centred_clip_of_the_model_seeks_and_gives_the_same_input(videos, monkeypatch):
    """What a user sees: r3d_18's input tensor is the same, bitwise, with and without seeking."""
    from modelzoo.core.inputs.sources import open_input
    from modelzoo.core.tasks.video_classification import VideoClassificationTask, preprocess_video_classification
    from modelzoo.models.r3d_18 import SPEC
    from modelzoo.models.video_resnet import KINETICS400_PRESET

    path = videos["h264.mp4"]
    results = []
    real = pyav_video.decode
    monkeypatch.setattr(pyav_video, "decode", lambda *a, **k: results.append(real(*a, **k)) or results[-1])
    seeking = preprocess_video_classification(open_input(path, SPEC, VideoClassificationTask()), KINETICS400_PRESET, 1)
    assert [r.seeks for r in results] == [1]
    monkeypatch.setattr(pyav_video, "worth_seeking", lambda wanted: False)
    from_start = preprocess_video_classification(
        open_input(path, SPEC, VideoClassificationTask()), KINETICS400_PRESET, 1
    )
    assert results[-1].seeks == 0
    assert np.array_equal(seeking, from_start)


def test_a_video_with_one_keyframe_is_decoded_forward(tmp_path):
    path = write_keyframed_video(tmp_path / "one-gop.mp4", 60, FPS, gop=600)
    assert keyframe_indices(path) == [0]
    wanted = clips_at([40])
    decoded = decode_frames(path, wanted, rgb)
    assert decoded.seeks == 0 and "fewer than" in decoded.refused
    forward = decode_all(path)
    assert all(np.array_equal(decoded.frames[i], forward[i]) for i in wanted)


def test_a_container_without_a_seek_index_is_decoded_forward(tmp_path):
    """MPEG-TS has no index: FFmpeg's seek there bisects by timestamps and lands after the frame asked for."""
    path = write_keyframed_video(tmp_path / "v.ts", 60, FPS, GOP, container_format="mpegts")
    wanted = clips_at([40])
    decoded = decode_frames(path, wanted, rgb)
    assert decoded.seeks == 0 and decoded.refused == "the container has no seek index"
    assert decoded.decoded == decoded.end == 56  # the refusal cost nothing
    forward = decode_all(path)
    assert all(np.array_equal(decoded.frames[i], forward[i]) for i in wanted)


def test_a_variable_frame_rate_seeks_by_timestamps(tmp_path):
    """Frames are ranked by their timestamps, not by the frame rate, so irregular gaps do not shift them."""
    path = write_keyframed_video(tmp_path / "vfr.mp4", FRAMES, FPS, GOP, timestamps=lambda i: i + i // 3)
    wanted = clips_at([60])
    decoded = decode_frames(path, wanted, rgb)
    assert decoded.seeks == 1
    forward = decode_all(path)
    assert all(np.array_equal(decoded.frames[i], forward[i]) for i in wanted)


@pytest.mark.parametrize("rotation", [90, 180, -90])
def test_a_rotated_video_is_upright_as_opencv_shows_it(tmp_path, rotation):
    path = write_keyframed_video(tmp_path / "phone.mp4", 60, FPS, GOP, rotation=rotation)
    forward = decode_all(path)
    wanted = clips_at([40])
    decoded = decode_frames(path, wanted, rgb)
    assert decoded.seeks == 1
    assert all(np.array_equal(decoded.frames[i], forward[i]) for i in wanted)


@pytest.mark.parametrize(
    "name,args", [("p10.mp4", {"pix_fmt": "yuv420p10le"}), ("hd709.mp4", {"size": (320, 180), "colorspace": 1})]
)
def test_ten_bit_and_bt709_give_forward_frames_and_opencvs(tmp_path, monkeypatch, name, args):
    """10-bit to 8-bit rounding and BT.709 matrices: PyAV converts with OpenCV's swscale flags, so they agree."""
    path = write_keyframed_video(tmp_path / name, 60, FPS, GOP, **args)
    wanted = clips_at([40])
    decoded = decode_frames(path, wanted, rgb)
    assert decoded.seeks == 1
    from_start, opencv = forward(path, wanted, monkeypatch), decode_all(path)
    for i in wanted:
        assert np.array_equal(decoded.frames[i], from_start[i]) and np.array_equal(decoded.frames[i], opencv[i])


class Misdirected:
    """A container whose seeks land `shift` keyframes away from the one asked for, as an imprecise seek does."""

    def __init__(self, container, shift):
        self._container, self._shift = container, shift

    def __getattr__(self, name):
        return getattr(self._container, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._container.close()

    def seek(self, offset, stream, **kwargs):
        return self._container.seek(offset + self._shift * GOP * int(stream.time_base.denominator / FPS), stream=stream)


@pytest.mark.parametrize("shift", [-1, 1])
def test_a_seek_landing_on_another_frame_is_refused_and_decoded_forward(videos, monkeypatch, shift):
    path = videos["h264.mp4"]
    opened = av.open
    monkeypatch.setattr(av, "open", lambda *a, **k: Misdirected(opened(*a, **k), shift))
    wanted = clips_at([42])
    decoded = decode_frames(path, wanted, rgb)
    assert decoded.seeks == 0 and "after the seek to frame 40" in decoded.refused
    forward = decode_all(path)
    assert all(np.array_equal(decoded.frames[i], forward[i]) for i in wanted)
    wasted = decoded.decoded - decoded.end
    assert wasted <= seek.REORDER_SLACK + 2  # the refusal came at the first frame after the seek


def test_without_pyav_opencv_decodes_forward(videos, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)
    wanted = clips_at([42])
    decoded = decode_frames(videos["h264.mp4"], wanted, rgb)
    assert decoded.refused == "PyAV is not installed" and decoded.decoded == decoded.end == 58
    forward = decode_all(videos["h264.mp4"])
    assert all(np.array_equal(decoded.frames[i], forward[i]) for i in wanted)


def test_frames_past_the_end_keep_read_frames_contract(videos):
    """A header that claims more frames than there are: `end` is the real length, as decoding forward says."""
    frames, end = read_frames(videos["h264.mp4"], set(range(90, 110)), rgb)
    assert end == FRAMES and sorted(frames) == list(range(90, FRAMES))


def test_decode_time_is_recorded(videos):
    timings = {}
    read_frames(videos["h264.mp4"], clips_at([42]), rgb, timings)
    assert timings["decode"] > 0


def test_the_clip_plan_of_a_model_seeks_on_a_long_video(tmp_path):
    """15 fps clips of 16 frames from 25 fps: the centred clip of 10 s needs frames 111..136 only."""
    path = write_keyframed_video(tmp_path / "ten-seconds.mp4", 250, FPS, 25, size=(64, 48))
    (plan,) = clip_frame_indices(250, FPS, 15, 1, 16)
    decoded = decode_frames(path, set(plan), rgb)
    assert (min(plan), max(plan)) == (111, 136)
    assert decoded.seeks == 1 and decoded.decoded < 137 // 2  # from the keyframe at 100, not from 0


@pytest.mark.parametrize(
    "wanted,spans",
    [
        (range(42, 58), [(40, 57)]),
        (range(50, 66), [(50, 65)]),  # starts on a keyframe
        (list(range(20, 28)) + list(range(80, 88)), [(20, 27), (80, 87)]),
        (list(range(20, 28)) + list(range(34, 42)), [(20, 41)]),  # the second seek would skip only 2 frames
        (range(5, 10), [(0, 9)]),
    ],
)
def test_spans_start_on_the_keyframe_before_and_seek_only_to_skip_enough(wanted, spans):
    assert seek.plan_spans(list(range(0, 100, 10)), wanted) == spans


def test_worth_seeking_needs_a_gap_of_min_skip_frames():
    assert not seek.worth_seeking(range(0, 16))
    assert seek.worth_seeking(range(seek.MIN_SKIP, seek.MIN_SKIP + 16))
    assert seek.worth_seeking([0, seek.MIN_SKIP + 1])
    assert not seek.worth_seeking([])


def test_a_file_pyav_cannot_open_is_decoded_by_opencv(videos, monkeypatch):
    def refuse(*args, **kwargs):
        raise av.InvalidDataError(1094995529, "Invalid data found when processing input")

    monkeypatch.setattr(av, "open", refuse)
    wanted = clips_at([42])
    decoded = decode_frames(videos["h264.mp4"], wanted, rgb)
    assert decoded.refused.startswith("PyAV cannot open") and decoded.seeks == 0
    opencv = decode_all(videos["h264.mp4"])
    assert all(np.array_equal(decoded.frames[i], opencv[i]) for i in wanted)


def test_a_video_whose_header_claims_years_is_classified_from_the_frames_it_has(tmp_path, capsys):
    """A 100-frame Matroska file whose Duration says 10^10 s: OpenCV reports 2.5e11 frames. The run must
    not size anything by that claim; it classifies the 100 frames and says the header was wrong."""
    import struct

    from onnx_models import tiny_video_classifier
    from zoo_cli import invoke

    video = write_keyframed_video(tmp_path / "claims.mkv", FRAMES, FPS, GOP)
    data = bytearray(video.read_bytes())
    at = data.find(b"\x44\x89\x88")  # Segment Info's Duration, an 8-byte float in milliseconds
    assert at > 0
    data[at + 3 : at + 11] = struct.pack(">d", 1e13)
    video.write_bytes(bytes(data))
    result = invoke(capsys, "run", "r3d_18", video, "--model", tiny_video_classifier(tmp_path / "tiny.onnx"), "--json")
    assert result.code == 0, result.err
    assert f"decoded to {FRAMES} frames although its header claims" in result.err
