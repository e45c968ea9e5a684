"""zoo's preprocessing equals an independent torch computation of torchvision's VideoClassification preset."""

import math

import numpy as np
import pytest
from videos import decode_all, write_video

from modelzoo.core.inputs.sources import open_input
from modelzoo.core.tasks.video_classification import preprocess_video_classification
from modelzoo.models.video_resnet import KINETICS400_PRESET

torch = pytest.importorskip("torch")

MEAN = torch.tensor([0.43216, 0.394666, 0.37645]).view(3, 1, 1, 1)
STD = torch.tensor([0.22803, 0.22145, 0.216989]).view(3, 1, 1, 1)
SHAPE = ("N", 3, 16, 112, 112)


def opened(path):
    """The input as r3d_18's task opens it."""
    from modelzoo.core.tasks.video_classification import VideoClassificationTask
    from modelzoo.models.r3d_18 import SPEC

    return open_input(path, SPEC, VideoClassificationTask())


def preset_indices(num_frames, fps, clips):
    step = float(fps) / 15 if fps else 1.0
    if step.is_integer():
        resampled = list(range(num_frames))[:: int(step)]
    else:
        total = int(math.floor(num_frames * 15 / fps))
        resampled = (torch.arange(total, dtype=torch.float32) * step).floor().long().tolist()
    m = len(resampled)
    last = max(m - 16, 0)  # shorter than a clip: start at 0 and repeat the last frame
    starts = [last // 2] if clips == 1 else torch.linspace(0, last, clips).floor().long().tolist()
    return [[resampled[min(s + t, m - 1)] for t in range(16)] for s in starts]


def torchvision_preset(frames_rgb):
    """T×H×W×3 uint8 -> 3×T×112×112: resize 128×171 bilinear (no antialias), crop, /255, normalize."""
    video = torch.from_numpy(np.stack(frames_rgb)).permute(0, 3, 1, 2).float()
    video = torch.nn.functional.interpolate(
        video, size=(128, 171), mode="bilinear", align_corners=False, antialias=False
    )
    video = video.round().clamp(0, 255).to(torch.uint8)
    video = video[:, :, 8 : 8 + 112, 30 : 30 + 112].float() / 255.0
    return ((video.permute(1, 0, 2, 3) - MEAN) / STD).numpy()


@pytest.mark.parametrize("fps,frames,clips", [(25, 75, 1), (30, 90, 3), (29.97, 64, 2), (10, 30, 1), (10, 8, 1)])
def test_video_matches_torchvision_preset(tmp_path, fps, frames, clips):
    path = write_video(tmp_path / f"v{fps}.avi", frames, fps, size=(200, 150))
    decoded = decode_all(path)
    assert len(decoded) == frames
    ours = preprocess_video_classification(opened(path), KINETICS400_PRESET, clips)
    assert ours.shape == (clips, 3, 16, 112, 112) and ours.dtype == np.float32
    for clip, indices in zip(ours, preset_indices(frames, fps, clips)):
        expected = torchvision_preset([decoded[i] for i in indices])
        diff = np.abs(clip - expected)
        # float32 vs torch's arithmetic may round an exact .5 the other way: one uint8 level, rarely
        assert diff.max() <= 1.01 / 255 / 0.216989
        assert (diff > 1e-5).mean() < 0.002


def test_wrong_frame_choice_would_be_caught(tmp_path):
    path = write_video(tmp_path / "v.avi", 60, 30)
    decoded = decode_all(path)
    ours = preprocess_video_classification(opened(path), KINETICS400_PRESET, 1)[0]
    (indices,) = preset_indices(60, 30, 1)
    shifted = torchvision_preset([decoded[i + 1] for i in indices])
    assert np.abs(ours - shifted).mean() > 0.1


def test_raw_rgb_frames_npy_use_every_frame(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(20, 90, 120, 3), dtype=np.uint8)
    np.save(tmp_path / "frames.npy", frames)
    ours = preprocess_video_classification(opened(tmp_path / "frames.npy"), KINETICS400_PRESET, 1)
    expected = torchvision_preset([frames[i] for i in range(2, 18)])
    assert np.abs(ours[0] - expected).max() <= 1.01 / 255 / 0.216989


def test_preprocessed_clip_passes_through(tmp_path):
    clip = np.random.default_rng(1).standard_normal((3, 16, 112, 112)).astype(np.float32)
    np.save(tmp_path / "clip.npy", clip)
    ours = preprocess_video_classification(opened(tmp_path / "clip.npy"), KINETICS400_PRESET, 1)
    assert ours.shape == (1, 3, 16, 112, 112)
    assert np.array_equal(ours[0], clip)


def test_grayscale_and_odd_sizes_decode(tmp_path):
    def gray(index, height, width):
        return np.full((height, width, 3), index * 9 % 256, np.uint8)

    path = write_video(tmp_path / "gray.avi", 20, 15, size=(57, 33), content=gray)
    ours = preprocess_video_classification(opened(path), KINETICS400_PRESET, 1)
    assert ours.shape == (1, 3, 16, 112, 112)
    # a uniform frame stays uniform, and grey means the three channels carry the same level
    first = ours[0, :, 0]
    assert np.ptp(first, axis=(1, 2)).max() < 1e-6
    levels = first[:, 0, 0] * np.array([0.22803, 0.22145, 0.216989]) + np.array([0.43216, 0.394666, 0.37645])
    assert np.ptp(levels) < 1e-5


@pytest.mark.parametrize("height, width", [(240, 320), (360, 640), (720, 1280), (480, 360), (129, 170)])
def test_frame_resize_and_crop_match_torchvision_to_the_level(height, width):
    # Noise makes every pixel depend on the exact taps and weights; a photo would hide off-by-one levels.
    # torch's kernel itself is not bitwise stable (FMA, vectorised paths), so a rare tie may round the
    # other way; taps computed in float64 instead of torch's float32 put ~0.1 % of values one level off.
    from modelzoo.core.tasks.video_classification import frame_transform

    frames = np.random.default_rng(height * width).integers(0, 256, (4, height, width, 3), dtype=np.uint8)
    transform = frame_transform(KINETICS400_PRESET, from_bgr=False)
    ours = np.stack([transform(frame) for frame in frames]).astype(np.int16)
    video = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    resized = torch.nn.functional.interpolate(
        video, size=(128, 171), mode="bilinear", align_corners=False, antialias=False
    )
    expected = resized.round().clamp(0, 255).to(torch.uint8)[:, :, 8:120, 30:142].permute(0, 2, 3, 1).numpy()
    diff = np.abs(ours - expected.astype(np.int16))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= 1e-4 * diff.size, np.count_nonzero(diff)
    # BGR frames (what OpenCV decodes) come out as the same RGB
    bgr = frame_transform(KINETICS400_PRESET, from_bgr=True)
    assert np.array_equal(bgr(np.ascontiguousarray(frames[0][:, :, ::-1])), ours[0])
