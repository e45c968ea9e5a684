"""Clip sampling follows torchvision's 15 fps resampling and the evenly spaced clip starts."""

import math

import numpy as np
import pytest

from modelzoo.core.inputs.clips import clip_frame_indices, clip_starts, resample_indices


def torchvision_resample(num_frames, fps, new_fps=15):
    """torchvision VideoClips: total = floor(n * new/fps); an integer step is a slice, else floor(arange * step) in float32."""
    torch = pytest.importorskip("torch")
    step = float(fps) / new_fps
    if step.is_integer():
        return list(range(num_frames))[:: int(step)]
    total = int(math.floor(num_frames * new_fps / fps))
    return (torch.arange(total, dtype=torch.float32) * step).floor().to(torch.int64).tolist()


@pytest.mark.parametrize("fps", [25, 30, 29.97, 10, 15, 60, 24, 23.976])
@pytest.mark.parametrize("frames", [1, 15, 16, 17, 100, 299, 1000])
def test_resampling_matches_torchvision(fps, frames):
    assert resample_indices(frames, fps, 15) == torchvision_resample(frames, fps)


def test_integer_stride_is_a_plain_slice():
    assert resample_indices(10, 30, 15) == [0, 2, 4, 6, 8]
    assert resample_indices(7, 15, 15) == list(range(7))


def test_unknown_fps_takes_every_frame():
    assert resample_indices(5, None, 15) == [0, 1, 2, 3, 4]
    assert resample_indices(5, 0.0, 15) == [0, 1, 2, 3, 4]


def test_ten_fps_repeats_frames_to_reach_fifteen():
    picked = resample_indices(10, 10, 15)
    assert len(picked) == 15
    assert picked[:6] == [0, 0, 1, 2, 2, 3]


def test_one_clip_is_centred():
    assert clip_starts(100, 1, 16) == [42]
    assert clip_starts(16, 1, 16) == [0]


def test_several_clips_span_first_to_last_start():
    assert clip_starts(100, 5, 16) == [0, 21, 42, 63, 84]
    assert clip_starts(100, 2, 16) == [0, 84]


def test_short_video_repeats_its_last_frame():
    (clip,) = clip_frame_indices(5, None, 15, 1, 16)
    assert clip == [0, 1, 2, 3, 4] + [4] * 11


def test_clip_indices_over_resampled_frames():
    # 30 fps, 60 frames -> every 2nd frame, 30 resampled -> one clip starting at (30-16)//2 = 7
    (clip,) = clip_frame_indices(60, 30, 15, 1, 16)
    assert clip == [2 * k for k in range(7, 23)]


def test_a_header_claiming_a_trillion_frames_costs_only_the_clips_frames():
    """A file's header is untrusted: only the indices the clips use are computed, never the whole list."""
    for fps, first_frame in ((30, lambda s: 2 * s), (25, lambda s: int(np.floor(np.float32(s) * np.float32(25 / 15))))):
        clips = clip_frame_indices(10**12, fps, 15, 3, 16)
        starts = clip_starts(10**12 * 15 // fps, 3, 16)
        assert [clip[0] for clip in clips] == [first_frame(s) for s in starts]
        assert all(len(clip) == 16 and clip == sorted(clip) for clip in clips)


@pytest.mark.parametrize("fps", [None, 10, 12.5, 15, 23.976, 30, 60, 1000])
@pytest.mark.parametrize("frames", [0, 1, 5, 16, 17, 100, 251])
def test_clip_indices_are_those_of_the_resampled_list(frames, fps):
    resampled = resample_indices(frames, fps, 15) or [0]
    for clips in (1, 2, 5):
        expected = [
            [resampled[min(s + k, len(resampled) - 1)] for k in range(16)]
            for s in clip_starts(len(resampled), clips, 16)
        ]
        assert clip_frame_indices(frames, fps, 15, clips, 16) == (expected if frames else [])


def test_a_clip_count_asking_for_unbounded_work_is_refused_before_any_download(capsys, tmp_path):
    from zoo_cli import invoke

    clip = tmp_path / "clip.npy"
    np.save(clip, np.zeros((16, 112, 112, 3), np.uint8))
    invoke(capsys, "run", "r3d_18", clip, "--clips", 100000).assert_user_error("'clips' must be at most 32")


def test_options_refuse_what_no_comparison_catches_and_past_their_maximum():
    from modelzoo.core.contract.task import Option
    from modelzoo.core.errors import ConfigError

    share = Option("share", float, 0.5, "a fraction", minimum=0, maximum=1)
    assert share.check(1, "here") == 1.0 and share.check(0.25, "here") == 0.25
    for bad, words in ((float("nan"), "finite"), (float("inf"), "finite"), (1.5, "at most 1"), (-0.1, "at least 0")):
        with pytest.raises(ConfigError, match=words):
            share.check(bad, "here")
