"""Live streams for `zoo run`: a network URL, a camera, or `--stream FILE` played at its own frame rate.

Frames are read on the calling thread and resampled to the model's rate with the file path's rule
(`resample_indices`), so a stream's window holds the frames a clip of the same file would. Every
`stride` model frames a window of the model's clip (image models: one sampled frame) goes to an
inference thread through a one-window slot: when inference falls behind, the waiting window is
replaced by the newer one and counted as dropped, so nothing queues however long the lag.

`StreamHooks` let another caller than the CLI (`zoo serve`) stop a stream, see each frame, share a
loaded backend and take turns with other users of it; the CLI passes none.

Frame times come from the stream's declared rate (index / fps), not the wall clock: network bursts
(buffered frames arriving at once) do not change which frames a window takes. A stream whose frames
arrive at another rate than it declares (some MJPEG cameras) gets a warning.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelzoo.core.contract.task import FRAMES, IMAGE, VIDEO
from modelzoo.core.errors import InputError, OutputError, ZooError

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")
OPEN_TIMEOUT_S = 10.0  # opening a network stream (connect and probe)
READ_TIMEOUT_S = 5.0  # no frame for this long is a dropped stream
RECONNECT_DELAY_S = 0.5  # before the n-th attempt, n times this
DEFAULT_RECONNECT = 3
DEFAULT_IMAGE_FPS = 1.0
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv")  # what --save-video writes (mp4v)


def stream_kind(text, stream_flag: bool = False) -> str | None:
    """The kind of stream `text` names: network, camera, or file (a video given with --stream); else None."""
    text = str(text)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in NETWORK_SCHEMES:
        return "network"
    if (text.isdigit() or re.fullmatch(r"/dev/video\d+", text)) and not Path(text).is_file():
        return "camera"
    return "file" if stream_flag else None


@dataclass
class StreamOptions:
    stride: int | None = None  # model frames from one window's start to the next; None: the clip length
    fps: float | None = None  # image models: frames sampled per second; None: DEFAULT_IMAGE_FPS
    reconnect: int = DEFAULT_RECONNECT  # attempts after a network stream drops, before giving up
    save_video: str | None = None  # write the frames with the current result drawn here
    stream_flag: bool = False  # --stream: a file is played as a stream


@dataclass
class StreamHooks:
    """What a long-running caller (`zoo serve`) plugs into `run_stream`; every hook is optional."""

    stop: threading.Event | None = None  # once set, the stream ends at its next frame or reconnect wait
    on_start: Callable | None = None  # (summary) once the stream is open and the model loaded; the summary is live
    on_frame: Callable | None = None  # (frame_bgr, latest task result or None) per frame read, on the reading thread
    loaded: dict | None = None  # backends already loaded, as `runner.run`'s `loaded`: reused and filled in
    turn: Callable | None = None  # () -> a context manager held around the model's load and each window's inference


@dataclass
class StreamSummary:
    """What a stream run did; `line()` is the summary printed at the end."""

    input: str
    windows: int = 0  # windows with a result
    failed: int = 0  # windows whose inference failed
    dropped: int = 0  # windows skipped because inference was behind
    frames: int = 0  # frames read
    reconnects: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float = 0.0
    end: str = ""  # how the stream ended, for people
    lost: bool = False  # the stream broke off and could not be reconnected
    interrupted: bool = False  # Ctrl-C
    video: str | None = None  # the annotated video written
    started: float = field(default_factory=time.perf_counter)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def latency_mean_ms(self) -> float:
        return self.latency_sum_ms / self.windows if self.windows else 0.0

    def line(self) -> str:
        latency = (
            f"latency mean {self.latency_mean_ms:.0f} ms, max {self.latency_max_ms:.0f} ms"
            if self.windows
            else "no latency measured"
        )
        text = (
            f"{self.windows} window(s), {self.dropped} dropped, {self.failed} failed; {self.frames} frames in "
            f"{self.elapsed:.1f} s; {latency}; {self.reconnects} reconnect(s); "
            + ("the stream was lost" if self.lost else self.end)
        )
        return text + (f"; wrote {self.video}" if self.video else "")

    def to_dict(self) -> dict:
        return {
            "windows": self.windows,
            "failed": self.failed,
            "dropped": self.dropped,
            "frames": self.frames,
            "seconds": round(self.elapsed, 3),
            "latency_ms": {"mean": round(self.latency_mean_ms, 3), "max": round(self.latency_max_ms, 3)},
            "reconnects": self.reconnects,
            "end": self.end,
        }


@dataclass
class Window:
    """One unit of inference: a clip's frames (or one image), with its place in the stream."""

    index: int
    frames: list  # crops, RGB frames, or [one RGB image]
    start_s: float
    end_s: float
    arrived: float  # perf_counter when its last frame was read


class WindowSlot:
    """At most one window waiting for inference: offering a new one replaces the waiting one (dropped)."""

    def __init__(self):
        self._ready = threading.Condition()
        self._window = None
        self._closed = False
        self.dropped = 0

    def offer(self, window: Window) -> None:
        with self._ready:
            self.dropped += self._window is not None
            self._window = window
            self._ready.notify()

    def take(self) -> Window | None:
        """The waiting window, blocking until there is one; None once closed and empty."""
        with self._ready:
            while self._window is None and not self._closed:
                self._ready.wait()
            window, self._window = self._window, None
            return window

    def close(self, discard: bool = False) -> None:
        with self._ready:
            if discard and self._window is not None:
                self.dropped += 1
                self._window = None
            self._closed = True
            self._ready.notify_all()


class Resampler:
    """How many times each arriving frame is used at `target_fps`: `resample_indices`' rule (an integer
    stride is a slice, otherwise floor(k * fps / target) in float32), applied frame by frame. Without a
    declared rate the stream's own clock decides; without a target every frame is used once."""

    def __init__(self, fps: float | None, target_fps: float | None):
        self.stride = fps / target_fps if fps and target_fps else None
        self.target_fps = target_fps
        self.k = 0

    def count(self, index: int, t: float) -> int:
        if self.stride is None:
            if not self.target_fps:
                return 1
            used = 0
            while self.k / self.target_fps <= t:
                used, self.k = used + 1, self.k + 1
            return min(used, 1)  # a late frame stands for one sample, not a burst of copies
        if float(self.stride).is_integer():
            return int(index % int(self.stride) == 0)
        import numpy as np

        stride = np.float32(self.stride)
        used = 0
        while (pick := int(np.floor(np.float32(self.k) * stride))) <= index:
            used += pick == index
            self.k += 1
        return used


class ClipWindows:
    """Windows of `clip_len` consecutive model frames, one starting every `stride` frames; frames that no
    window uses are not transformed."""

    def __init__(self, clip_len: int, stride: int, transform):
        self.clip_len, self.stride, self.transform = clip_len, stride, transform
        self.buffer: deque = deque(maxlen=clip_len)
        self.position = 0

    def reset(self) -> None:
        """After a reconnection: no window spans the gap."""
        self.buffer.clear()
        self.position = 0

    def push(self, frame_bgr, t: float, arrived: float):
        """Add the next model frame; returns (frames, start_s, end_s, arrived) when a window completes."""
        position, self.position = self.position, self.position + 1
        if position % self.stride >= self.clip_len:  # between windows (stride > clip_len)
            return None
        self.buffer.append((self.transform(frame_bgr), t))
        if position + 1 < self.clip_len or (position + 1 - self.clip_len) % self.stride:
            return None
        return [item for item, _ in self.buffer], self.buffer[0][1], t, arrived


class FrameReader:
    """An opened stream: `frames()` yields (segment, index, frame_bgr, t_seconds, arrived) and reconnects
    network streams; `segment` grows by one at each reconnection, `index` counts from 0 in each segment.
    After the frames end, `end` and `lost` say why."""

    def __init__(self, target: str, kind: str, *, reconnect: int, log=None, stop: threading.Event | None = None):
        self.target, self.kind, self.reconnect, self.log = str(target), kind, reconnect, log
        self.stop = stop
        self.paced = kind == "file"  # --stream FILE plays at the file's rate
        self.frames_read = 0
        self.reconnects = 0
        self.end = ""
        self.lost = False
        if kind == "file" and Path(self.target).is_dir():
            raise InputError(f"--stream plays one video file; {self.target} is a folder")
        if kind == "file" and not Path(self.target).is_file():
            raise InputError(f"input file {self.target} does not exist; check the path")
        self.capture = self._open()
        if self.capture is None:
            raise InputError(self._unopenable())
        self.fps, self.frame_count = self._rate(self.capture)

    def _open(self):
        from modelzoo.core.inputs.video import opencv

        cv2 = opencv()
        if self.kind == "camera":
            capture = cv2.VideoCapture(int(self.target) if self.target.isdigit() else self.target)
        else:  # FFmpeg: the backend that honours open and read timeouts
            timeouts = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(OPEN_TIMEOUT_S * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(READ_TIMEOUT_S * 1000),
            ]  # fmt: skip
            capture = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, timeouts)
        if not capture.isOpened():
            capture.release()
            return None
        return capture

    def _unopenable(self) -> str:
        if self.kind == "camera":
            return f"cannot open camera {self.target}; check that it exists (ls /dev/video*) and is not in use"
        if self.kind == "file":
            return f"{self.target} is not a video OpenCV can open; --stream plays a video file"
        return (
            f"cannot open the stream {self.target} (no answer within {OPEN_TIMEOUT_S:g} s, refused, or not a "
            "video); check the URL, e.g. with ffprobe"
        )

    @staticmethod
    def _rate(capture):
        from modelzoo.core.inputs.video import capture_rate

        fps, count = capture_rate(capture)
        return (fps if fps is not None and fps <= 1000 else None), count  # a stream over 1000 fps: rate unknown

    def frames(self):
        started = segment_started = None
        segment = index = 0
        offset = 0.0  # stream time at the start of this segment
        attempts = 0
        warned_rate = False
        while True:
            if self._stopped():
                return
            asked = time.perf_counter()
            ok, frame = self.capture.read()
            now = time.perf_counter()
            if ok and frame is not None:
                if started is None:
                    started = now
                if segment_started is None:
                    segment_started = now
                attempts = 0
                if self.paced and self.fps:
                    due = started + index / self.fps
                    if due > now:
                        self._sleep(due - now)
                        now = time.perf_counter()
                t = offset + (index / self.fps if self.fps else now - segment_started)
                self.frames_read += 1
                if not warned_rate and not self.paced and self.fps and now - segment_started >= 10 and index >= 50:
                    warned_rate = True
                    measured = index / (now - segment_started)
                    if abs(measured / self.fps - 1) > 0.25 and self.log:
                        self.log(
                            f"warning: {self.target} declares {self.fps:g} fps but frames arrive at {measured:.1f} "
                            "fps; windows are taken by the declared rate"
                        )
                yield segment, index, frame, t, now
                index += 1
                continue
            why = f"no frame for {READ_TIMEOUT_S:g} s" if now - asked >= READ_TIMEOUT_S * 0.9 else "the stream ended"
            if self.kind == "file":
                self.end = f"{self.target} ended after {self.frames_read} frames"
                return
            if self.kind == "camera":
                self.end, self.lost = f"camera {self.target} stopped sending frames ({why})", True
                return
            if self.frame_count:  # a finite file over the network: reconnecting would start it again
                self.lost = index < self.frame_count
                self.end = f"{self.target} ended after {index} of its {self.frame_count} frames" + (
                    f" ({why})" if self.lost else ""
                )
                return
            self.capture.release()
            self.capture = None
            while self.capture is None and attempts < self.reconnect:
                attempts += 1
                self.reconnects += 1
                if self.log:
                    self.log(f"warning: {self.target}: {why}; reconnecting ({attempts}/{self.reconnect})")
                self._sleep(RECONNECT_DELAY_S * attempts)
                if self._stopped():
                    return
                self.capture = self._open()
            if self.capture is None:
                tried = f"{self.reconnect} reconnect attempt(s) failed" if self.reconnect else "--reconnect 0"
                self.end = f"lost the stream {self.target} after {self.frames_read} frames: {why}; {tried}"
                self.lost = True
                return
            segment += 1
            index = 0
            offset = (now - started) if started is not None else 0.0
            segment_started = None

    def _stopped(self) -> bool:
        if self.stop is None or not self.stop.is_set():
            return False
        self.end = "stopped"
        return True

    def _sleep(self, seconds: float) -> None:
        if self.stop is None:
            time.sleep(seconds)
        else:
            self.stop.wait(seconds)

    def release(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


class AnnotatedVideo:
    """--save-video: frames with the current result drawn, written with mp4v to a hidden temp file
    beside the target (core/atomic's PendingFile: OpenCV picks the container from the name's suffix,
    which it keeps) and renamed over it when done, so the target is never half-written."""

    def __init__(self, path, fps: float | None, draw):
        from modelzoo.core.atomic import PendingFile

        self.path = Path(path)
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise InputError(f"--save-video {self.path}: write a {' or '.join(VIDEO_SUFFIXES)} file")
        self.fps = fps or 25.0
        self.draw = draw  # (frame_bgr, result) -> frame_bgr
        self.pending = PendingFile(self.path)
        self.writer = None
        self.count = 0

    def write(self, frame_bgr, result) -> None:
        from modelzoo.core.inputs.video import opencv

        cv2 = opencv()
        if self.writer is None:
            height, width = frame_bgr.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self.writer = cv2.VideoWriter(str(self.pending.temp), fourcc, self.fps, (width, height))
            if not self.writer.isOpened():
                self.discard()
                raise OutputError(
                    f"cannot write {self.path}: OpenCV has no mp4v writer here, or the folder is read-only"
                )
        if result is not None:
            frame_bgr = self.draw(frame_bgr, result)
        self.writer.write(frame_bgr)
        self.count += 1

    def finish(self) -> Path | None:
        """Close and rename over the target; None when no frame was written."""
        if self.writer is None:
            self.pending.discard()
            return None
        self.writer.release()
        self.writer = None
        return self.pending.commit()

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        self.pending.discard()


def window_plan(model, task, options: StreamOptions) -> tuple:
    """("clips", clip_len, target_fps, stride) for models that take clips, ("frames", 1, fps, 1) for image models."""
    pre = model.spec.preprocessing
    if VIDEO in task.accepts or FRAMES in task.accepts:
        clip_len = getattr(pre, "clip_len", None)
        if not isinstance(clip_len, int) or clip_len < 1:
            raise InputError(
                f"{model.name} ({task.name}) declares no clip length (preprocessing.clip_len), so a stream "
                "cannot be cut into its clips"
            )
        target_fps = getattr(pre, "target_fps", None)
        if options.fps is not None:
            rate = f"{target_fps:g} fps" if target_fps else "the stream's rate"
            raise InputError(
                f"--fps samples frames for image models; {model.name} takes {clip_len}-frame clips at {rate}: "
                "space its windows with --stride"
            )
        return "clips", clip_len, target_fps, options.stride or clip_len
    if IMAGE in task.accepts:
        if options.stride is not None:
            raise InputError(f"--stride spaces the clips of video models; {model.name} is run per frame: use --fps")
        return "frames", 1, options.fps or DEFAULT_IMAGE_FPS, 1
    raise InputError(f"{model.name} ({task.name}) takes {task.accepted()}, not a stream")


def clip_transform(model):
    """The video-classification preset's per-frame transform, when `model` preprocesses exactly as that
    task does: each frame is then cropped once, as it arrives, and a window only normalizes its crops
    (bitwise what `preprocess` makes of the same frames). None for models with their own preprocessing."""
    from modelzoo.core.tasks.video_classification import VideoClassifier, VideoPreprocessing, frame_transform

    pre = model.spec.preprocessing
    if isinstance(pre, VideoPreprocessing) and type(model).preprocess is VideoClassifier.preprocess:
        return frame_transform(pre, from_bgr=True)
    return None


def run_stream(
    request, registry, config, cache, *, options: StreamOptions, on_record, log=None, hooks: StreamHooks | None = None
) -> StreamSummary:
    """Run `request`'s model on the stream `request.input` until it ends, is lost, is stopped or Ctrl-C;
    `on_record(record, run_result_or_None)` gets each window's record (from the inference thread)."""
    from modelzoo.core import runner

    hooks = hooks or StreamHooks()
    model = registry.get_model(request.model)
    task = registry.task_of(model)
    if request.options.get("clips") is not None:
        raise InputError("--clips does not apply to a stream: each window is one clip (space them with --stride)")
    task_options = runner.task_options(registry, model, config, request.options)
    mode, clip_len, target_fps, stride = window_plan(model, task, options)
    backend_cls = runner.pick_backend(
        registry, model, config, cache, backend=request.backend, model_path=request.model_path,
        weights=request.weights, options=request.backend_options, log=log,
    )  # fmt: skip
    kind = stream_kind(request.input, options.stream_flag)
    if options.save_video:
        check_save_video(options.save_video, input_path=request.input if kind == "file" else None)
    video = AnnotatedVideo(options.save_video, None, task.draw) if options.save_video else None
    reader = None
    try:
        reader = FrameReader(request.input, kind, reconnect=options.reconnect, log=log, stop=hooks.stop)  # fails first
        model_file = runner.resolve_model_file(
            registry, model, backend_cls, config, cache, model_path=request.model_path, weights=request.weights,
            precision=request.precision, log=log, force=request.force,
        )  # fmt: skip
        import numpy  # noqa: F401  (initialised here, before the inference thread imports it)

        with hooks.turn() if hooks.turn else contextlib.nullcontext():
            backend, load_ms = _backend(runner, backend_cls, model_file, model, config, cache, request, hooks.loaded)
    except BaseException:
        if reader is not None:
            reader.release()
        if video is not None:
            video.discard()
        raise
    if video is not None:
        video.fps = reader.fps or 25.0

    transform = clip_transform(model) if mode == "clips" else None
    inference = _Inference(
        runner, registry, model, request, backend, model_file, task_options, load_ms, log,
        prepare=_preparer(runner, model, task_options, mode, transform, str(request.input)),
        on_record=on_record, summary=StreamSummary(str(request.input)), turn=hooks.turn,
    )  # fmt: skip
    windows = ClipWindows(clip_len, stride, transform or _to_rgb) if mode == "clips" else None
    finished = False
    inference.start()
    try:
        if hooks.on_start is not None:
            hooks.on_start(inference.summary)
        _read(reader, windows, target_fps, inference, video, hooks.on_frame)
        inference.summary.end, inference.summary.lost = reader.end or "stopped", reader.lost
        if hooks.stop is not None and hooks.stop.is_set():
            inference.slot.close(discard=True)  # stopped on purpose: the waiting window is not wanted
        finished = True
    except KeyboardInterrupt:
        inference.summary.end, inference.summary.interrupted = "stopped (Ctrl-C)", True
        inference.slot.close(discard=True)
        finished = True
    finally:
        inference.stop()
        reader.release()
        summary = inference.summary
        summary.frames, summary.reconnects = reader.frames_read, reader.reconnects
        summary.dropped = inference.slot.dropped
        if video is not None:
            if finished and inference.error is None:
                written = video.finish()
                summary.video = str(written) if written else None
            else:
                video.discard()
    if inference.error is not None:
        raise inference.error
    return summary


def _backend(runner, backend_cls, model_file, model, config, cache, request, loaded) -> tuple:
    """(backend, load_ms): the one in `loaded` under `runner.run`'s key when there is one, else loaded now."""
    threads = request.threads or config.threads
    key = runner.backend_key(backend_cls, model_file, threads, request.backend_options)
    if loaded is not None and key in loaded:
        return loaded[key], 0.0
    started = time.perf_counter()
    backend = runner.load_backend(backend_cls, model_file, model, cache, threads=threads, **request.backend_options)
    if loaded is not None:
        loaded[key] = backend
    return backend, (time.perf_counter() - started) * 1000


def _read(reader: FrameReader, windows: ClipWindows | None, target_fps, inference, video, on_frame=None) -> None:
    """The reading loop: resample, cut windows, offer them to inference, write the annotated frames.
    The summary's counters are kept current, for a caller watching it while the stream runs."""
    resampler = Resampler(reader.fps, target_fps)
    segment_now = 0
    next_index = 0
    for segment, index, frame, t, arrived in reader.frames():
        if inference.error is not None:
            return
        if segment != segment_now:  # reconnected: the windows and the resampling start afresh
            segment_now = segment
            resampler = Resampler(reader.fps, target_fps)
            if windows is not None:
                windows.reset()
        uses = resampler.count(index, t)
        if windows is None and uses:  # an image model: one frame is one sample, however many picks it stands for
            inference.slot.offer(Window(next_index, [_to_rgb(frame)], t, t, arrived))
            next_index += 1
        for _ in range(uses if windows is not None else 0):
            complete = windows.push(frame, t, arrived)
            if complete is not None:
                frames, start_s, end_s, last = complete
                inference.slot.offer(Window(next_index, frames, start_s, end_s, last))
                next_index += 1
        summary = inference.summary
        summary.frames, summary.reconnects = reader.frames_read, reader.reconnects
        summary.dropped = inference.slot.dropped
        if on_frame is not None:
            on_frame(frame, inference.current)
        if video is not None:
            video.write(frame, inference.current)


class _Inference:
    """The inference thread: takes windows from its slot, runs them, hands each record to `on_record`."""

    def __init__(
        self, runner, registry, model, request, backend, model_file, task_options, load_ms, log, *, prepare,
        on_record, summary, turn=None,
    ):  # fmt: skip
        self.runner, self.registry, self.model, self.request = runner, registry, model, request
        self.backend, self.model_file, self.task_options = backend, model_file, task_options
        self.load_ms, self.log, self.prepare, self.on_record = load_ms, log, prepare, on_record
        self.summary = summary
        self.turn = turn  # () -> context manager around each window's inference (a shared model's turn)
        self.slot = WindowSlot()
        self.current = None  # the latest result, drawn on the frames written to --save-video
        self.error = None  # an exception of the thread, raised again on the reading thread
        self.warned: set = set()
        self.thread = threading.Thread(target=self._loop, name="zoo-stream-infer", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Let the waiting window run, then wait for the thread; a second Ctrl-C meanwhile is ignored."""
        self.slot.close()
        while self.thread.is_alive():
            try:
                self.thread.join()
            except KeyboardInterrupt:
                continue

    def _loop(self) -> None:
        while (window := self.slot.take()) is not None:
            try:
                with self.turn() if self.turn else contextlib.nullcontext():
                    record, result = self._run(window)
                self.on_record(record, result)
            except BaseException as exc:  # a bug, or stdout closed: the stream stops and it is raised there
                self.error = exc
                return

    def _run(self, window: Window):
        place = {"index": window.index, "start_s": round(window.start_s, 3), "end_s": round(window.end_s, 3)}
        started = time.perf_counter()
        try:
            source, tensor = self.prepare(window)
            result = self.runner.finish_run(
                self.registry, self.model, self.request, self.backend, source, tensor, self.task_options,
                self.model_file, (time.perf_counter() - started) * 1000, self.load_ms, log=None,
            )  # fmt: skip
        except ZooError as exc:
            self.summary.failed += 1
            record = {"model": self.model.name, "input": str(self.request.input), "window": place}
            return {**record, "error": str(exc)}, None
        latency_ms = (time.perf_counter() - window.arrived) * 1000
        self.load_ms = 0.0  # the model loaded once, for the first record
        self.current = result.result
        summary = self.summary
        summary.windows += 1
        summary.latency_sum_ms += latency_ms
        summary.latency_max_ms = max(summary.latency_max_ms, latency_ms)
        for warning in result.warnings:  # the same warning on every window is said once
            if warning not in self.warned and self.log:
                self.warned.add(warning)
                self.log(f"warning: {warning}")
        return {**result.to_dict(), "window": place, "latency_ms": round(latency_ms, 3)}, result


def _to_rgb(frame_bgr):
    from modelzoo.core.inputs.video import opencv

    cv2 = opencv()
    if frame_bgr.ndim == 2:
        return cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(frame_bgr, cv2.COLOR_BGRA2RGB if frame_bgr.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def _preparer(runner, model, task_options: dict, mode: str, transform, input_name: str):
    """window -> (InputSource, tensor): crops normalized as the task does, else the model's own preprocess
    on the window's RGB frames (or image), exactly as for a .npy of them."""
    import numpy as np

    from modelzoo.core.inputs.sources import InputSource

    path = Path(input_name)

    def prepare(window: Window):
        if mode == "frames":
            source = InputSource(path=path, image=window.frames[0])
        elif transform is None:
            source = InputSource(path=path, frames=np.stack(window.frames))
        else:
            from modelzoo.core.tasks.video_classification import normalize_clips

            return InputSource(path=path), normalize_clips([window.frames], model.spec.preprocessing)
        return source, runner.preprocess_source(model, source, task_options)

    return prepare


def check_save_video(path, source=None, input_path=None) -> None:
    """Refuse a --save-video target before any download or inference: a suffix it cannot write, the input
    itself (it would be replaced by its annotated copy), or an input (`source`, opened) with no frames."""
    if Path(path).suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"--save-video {path}: write a {' or '.join(VIDEO_SUFFIXES)} file")
    from modelzoo.core.atomic import same_file

    if input_path is not None and same_file(path, input_path):
        raise InputError(f"--save-video {path} is the input video: write the annotated copy to another file")
    if source is not None and source.frames is None and source.video is None:
        raise InputError(f"--save-video draws on a video; {source.path} is not one (for an image use --save)")


def save_annotated_video(registry, run_result, source, path) -> Path:
    """--save-video for a file run: every frame of the input with the run's result drawn on it."""
    from modelzoo.core.inputs.video import opencv, probe

    cv2 = opencv()
    task = registry.task_of(registry.get_model(run_result.model))
    if source.frames is not None:
        frames, fps = (cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) for frame in source.frames), None
    elif source.video is not None:
        frames, fps = _decoded(source.video), probe(source.video).fps
    else:
        raise InputError(f"--save-video draws on a video; {source.path} is not one (for an image use --save)")
    video = AnnotatedVideo(path, fps, task.draw)
    try:
        for frame in frames:
            video.write(frame, run_result.result)
    except BaseException:
        video.discard()
        raise
    return video.finish()


def _decoded(path):
    from modelzoo.core.inputs.video import opencv

    capture = opencv().VideoCapture(str(path))
    try:
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                return
            yield frame
    finally:
        capture.release()
