"""The video-classification task: torchvision's VideoClassification-style preset (sampled clips,
resize, center crop, normalize), Top-k over clips' averaged softmax."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from modelzoo.core.contract.model import Model
from modelzoo.core.contract.task import FRAMES, TENSOR, VIDEO, Option, Task
from modelzoo.core.errors import InputError
from modelzoo.core.inputs.clips import clip_frame_indices, resampled_count
from modelzoo.core.inputs.sources import VIDEO_SUFFIXES, InputSource
from modelzoo.core.tasks.classification import TOP_K, classification_problems, classification_table, classify

CLIPS = Option("clips", int, 1, "Clips sampled from the video; their softmax is averaged.", minimum=1, maximum=32)


@dataclass(frozen=True)
class VideoPreprocessing:
    """Constants of a video classification preset; every dataset-specific value comes from the plugin."""

    clip_len: int
    target_fps: float | None  # None keeps the video's own rate
    resize: tuple  # H, W, aspect ratio not kept
    crop: tuple  # H, W, center crop
    mean: tuple
    std: tuple
    interpolation: str = "bilinear"


class VideoClassificationTask(Task):
    name = "video-classification"
    description = "Top-k labels for a video clip"
    accepts = (VIDEO, FRAMES, TENSOR)
    options = (CLIPS, TOP_K)
    preprocessing_type = VideoPreprocessing
    input_suffixes = (*sorted(VIDEO_SUFFIXES), ".npy")

    @property
    def model_class(self) -> type:
        return VideoClassifier

    def spec_problems(self, spec) -> list:
        problems = super().spec_problems(spec) + classification_problems(spec)
        pre = spec.preprocessing
        if not problems and tuple(spec.input.shape[1:]) != (3, pre.clip_len, *pre.crop):
            problems.append(
                f"input {list(spec.input.shape)} does not match [N, 3, clip_len, *crop] of the preprocessing"
            )
        if not problems and pre.interpolation not in ("bilinear", "nearest"):
            problems.append(f"interpolation {pre.interpolation!r} is not bilinear or nearest")
        return problems

    def describe_preprocessing(self, spec) -> str:
        pre = spec.preprocessing
        return (
            f"{pre.clip_len} frames at {pre.target_fps or 'native'} fps, resize {pre.resize[0]}x{pre.resize[1]} "
            f"{pre.interpolation}, center crop {pre.crop[0]}x{pre.crop[1]}, mean {pre.mean}, std {pre.std}"
        )

    def format_result(self, result) -> str:
        return classification_table(result)

    def synthetic_input(self, spec, directory: Path) -> Path:
        from modelzoo.core.inputs.tensor_file import save_random_pixels

        frames = (spec.preprocessing.clip_len * 2, 72, 96, 3)
        return save_random_pixels(Path(directory) / f"{spec.name}_frames.npy", frames)


class VideoClassifier(Model):
    """A video classifier: the preset from spec.preprocessing, Top-k from spec.labels."""

    task = "video-classification"

    def preprocess(self, source, options: dict):
        return preprocess_video_classification(source, self.spec.preprocessing, options.get("clips") or 1)

    def postprocess(self, output, source, options: dict):
        import math

        # one row of logits per clip; a single clip's logits may come without the batch axis
        result = classify(self, output, options, clips=math.prod(output.shape[:-1]))
        source.warnings.extend(result.warnings)
        return result


def frame_transform(pre: VideoPreprocessing, from_bgr: bool):
    """Per-frame: resize to pre.resize (H×W, bilinear, no antialias), center crop, to RGB uint8.

    A non-antialiased bilinear resize reads at most 2×2 source pixels per output pixel, so only the
    cropped outputs are computed, from the source rows and columns they read: a 720p frame costs a
    112×112 gather instead of converting and resizing the whole frame. The taps are torch's
    (half-pixel centres, clamped at the border), computed in float and rounded once, as torchvision's
    uint8 resize does.
    """
    import numpy as np

    out_h, out_w = pre.resize
    crop_h, crop_w = pre.crop
    # torchvision's center_crop rounds half to even: (171 - 112) / 2 = 29.5 -> 30
    top = int(round((out_h - crop_h) / 2.0))
    left = int(round((out_w - crop_w) / 2.0))
    nearest = pre.interpolation == "nearest"
    taps: dict = {}  # frame size -> gather indices and weights, computed once per video

    def plan(height: int, width: int):
        if (height, width) not in taps:
            taps[(height, width)] = (
                _axis_taps(height, out_h, top, crop_h, nearest),
                _axis_taps(width, out_w, left, crop_w, nearest),
            )
        return taps[(height, width)]

    def transform(frame):
        if frame.ndim == 2:
            frame = frame[:, :, None]
        (r0, r1, wy), (c0, c1, wx) = plan(frame.shape[0], frame.shape[1])
        rows = frame[np.concatenate([r0, r1])]
        block = rows[:, np.concatenate([c0, c1])].astype(np.float32)
        a, b = block[:crop_h, :crop_w], block[:crop_h, crop_w:]
        c, d = block[crop_h:, :crop_w], block[crop_h:, crop_w:]
        wx3, wy3 = wx[None, :, None], wy[:, None, None]
        upper = a * (1 - wx3) + b * wx3
        lower = c * (1 - wx3) + d * wx3
        pixels = np.clip(np.rint(upper * (1 - wy3) + lower * wy3), 0, 255).astype(np.uint8)
        if pixels.shape[2] == 1:
            return np.ascontiguousarray(np.repeat(pixels, 3, axis=2))
        pixels = pixels[:, :, :3]  # alpha dropped
        return np.ascontiguousarray(pixels[:, :, ::-1] if from_bgr else pixels)

    return transform


def _axis_taps(in_size: int, out_size: int, start: int, count: int, nearest: bool):
    """Source indices (i0, i1) and the weight of i1 for outputs start..start+count of a resize along one axis.

    In float32 as torch's CPU kernel computes them: in float64 about 0.1 % of a 720p frame's pixels
    came out one level off torchvision's after rounding.
    """
    import numpy as np

    scale = np.float32(in_size) / np.float32(out_size)
    dst = np.arange(start, start + count, dtype=np.float32)
    if nearest:  # torch's legacy nearest: floor(dst * scale)
        index = np.minimum(np.floor(dst * scale).astype(np.intp), in_size - 1)
        return index, index, np.zeros(count, np.float32)
    src = np.maximum(scale * (dst + np.float32(0.5)) - np.float32(0.5), np.float32(0.0))
    i0 = np.minimum(np.floor(src).astype(np.intp), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)


def normalize_clips(clips_frames, pre: VideoPreprocessing):
    """[K][T] RGB uint8 crops -> float32 [K, 3, T, H, W], scaled to [0, 1] and normalized."""
    import numpy as np

    stacked = np.stack([np.stack(frames) for frames in clips_frames])  # K,T,H,W,C
    data = stacked.astype(np.float32) / np.float32(255.0)
    data -= np.asarray(pre.mean, dtype=np.float32)
    data /= np.asarray(pre.std, dtype=np.float32)
    return np.ascontiguousarray(data.transpose(0, 4, 1, 2, 3))


def preprocess_video_classification(source: InputSource, pre: VideoPreprocessing, clips: int):
    """The model input for `source`: float32 [clips, 3, clip_len, crop_h, crop_w]."""
    if clips < 1:
        raise InputError(f"the number of clips must be at least 1, got {clips}")
    if source.tensor is not None:
        return source.tensor
    from modelzoo.core.inputs.video import load_decoders

    load_decoders()  # imported before the clock starts: start-up is not preprocessing

    started = time.perf_counter()
    if source.frames is not None:
        frames = source.frames
        plan = clip_frame_indices(len(frames), None, pre.target_fps, clips, pre.clip_len)
        _warn_if_short(source, len(frames), None, pre)
        transform = frame_transform(pre, from_bgr=False)
        kept = {i: transform(frames[i]) for i in sorted({i for clip in plan for i in clip})}
    else:
        plan, kept = _decode_plan(source, pre, clips)
    result = normalize_clips([[kept[i] for i in clip] for clip in plan], pre)
    total_ms = (time.perf_counter() - started) * 1000
    source.timings["preprocess"] = total_ms - source.timings.get("decode", 0.0)
    return result


def _decode_plan(source: InputSource, pre: VideoPreprocessing, clips: int):
    from modelzoo.core.inputs.video import count_frames, probe, read_frames

    info = probe(source.video)
    transform = frame_transform(pre, from_bgr=True)
    total = info.frame_count or count_frames(source.video)
    if total:
        plan = clip_frame_indices(total, info.fps, pre.target_fps, clips, pre.clip_len)
        kept, end = read_frames(source.video, {i for clip in plan for i in clip}, transform, source.timings)
        needed = max(i for clip in plan for i in clip)
        if end > needed:  # the decoder reached past the last frame needed: the header's count holds
            _warn_if_short(source, total, info.fps, pre)
            return plan, kept
        if end and info.frame_count:
            source.warnings.append(
                f"{source.video} decoded to {end} frames although its header claims {info.frame_count}; "
                "classifying the frames that decoded"
            )
        total = end
    if not total:
        raise InputError(
            f"{source.video} decodes to no frames (audio only, truncated, or corrupt); check it with ffprobe"
        )
    plan = clip_frame_indices(total, info.fps, pre.target_fps, clips, pre.clip_len)
    kept, _ = read_frames(source.video, {i for clip in plan for i in clip}, transform, source.timings)
    _warn_if_short(source, total, info.fps, pre)
    return plan, kept


def _warn_if_short(source: InputSource, frames: int, fps, pre: VideoPreprocessing) -> None:
    """A clip longer than the input is padded with its last frame: say so, it changes the answer."""
    available = resampled_count(frames, fps, pre.target_fps)
    if available < pre.clip_len:
        rate = f" at {pre.target_fps:g} fps" if fps and pre.target_fps else ""
        source.warnings.append(
            f"{source.path.name} has {available} frame(s){rate}, fewer than the {pre.clip_len} a clip needs; "
            "the clip repeats its last frame"
        )
