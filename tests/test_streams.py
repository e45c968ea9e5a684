"""`zoo run` on live streams: an MJPEG camera served by the test on 127.0.0.1, and `--stream FILE`.

Windows of a stream must be the clips the same frames give from a file, a stream that stops must
end with the summary (never hang), a slow model must drop windows rather than queue them, and
`--save-video` must write every frame."""

from __future__ import annotations

import _thread
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pytest
from onnx_models import tiny_image_classifier, tiny_video_classifier
from videos import frame_content, write_video
from zoo_cli import invoke

from modelzoo.core import streams
from modelzoo.core.inputs.clips import resample_indices

pytestmark = pytest.mark.usefixtures("in_tmp_dir")


class _MJPEGHandler(BaseHTTPRequestHandler):
    """multipart/x-mixed-replace of JPEG frames, as IP cameras serve them, paced at `state.pace` s per frame.

    The first connection sends `state.first` frames (all by default), then closes, or holds the connection
    when `state.hold`; later connections are served again, refused (503) or held silent, per `state.later`.
    `state.loop` serves the frames over and over until the test ends.
    """

    protocol_version = "HTTP/1.0"

    def do_GET(self):
        state = self.server.state
        with state.lock:
            number = state.connections
            state.connections += 1
        if number and state.later == "refuse":
            self.send_error(503, "Service Unavailable")
            return
        if number and state.later == "silent":
            state.release.wait(30)
            return
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        frames = state.jpegs[: state.first] if state.first is not None and not number else state.jpegs
        try:
            while not state.release.is_set():
                for jpeg in frames:
                    head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                    self.wfile.write(head + jpeg + b"\r\n")
                    self.wfile.flush()
                    time.sleep(state.pace)
                if not state.loop:
                    break
            if state.hold:
                state.release.wait(30)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up

    def log_message(self, *args):
        pass


@pytest.fixture
def camera():
    """An MJPEG stream on 127.0.0.1; set `camera.state.jpegs` (and the rest) before connecting."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _MJPEGHandler)
    httpd.daemon_threads = True
    httpd.state = SimpleNamespace(
        jpegs=[], pace=0.01, first=None, hold=False, later="serve", loop=False, connections=0,
        lock=threading.Lock(), release=threading.Event(),
    )  # fmt: skip
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_address[1]}/stream", state=httpd.state)
    httpd.state.release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def tiny_onnx(tmp_path):
    return tiny_video_classifier(tmp_path / "tiny.onnx")


@pytest.fixture
def quick_timeouts(monkeypatch):
    monkeypatch.setattr(streams, "READ_TIMEOUT_S", 1.0)
    monkeypatch.setattr(streams, "OPEN_TIMEOUT_S", 1.0)
    monkeypatch.setattr(streams, "RECONNECT_DELAY_S", 0.05)


def served_jpegs(tmp_path, count: int):
    """JPEG frames for the camera, and the same bytes as a file (`frames.mjpeg`) zoo can decode itself."""
    import cv2

    jpegs = [cv2.imencode(".jpg", frame_content(i, 120, 160), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
             for i in range(count)]  # fmt: skip
    path = tmp_path / "frames.mjpeg"
    path.write_bytes(b"".join(jpegs))
    return jpegs, path


def decoded(path):
    """(BGR frames, declared fps) of a video file, decoded by OpenCV independently of zoo."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames, fps


def summary_counts(err: str) -> tuple:
    """(windows, dropped) from the summary line."""
    found = re.search(r"summary: (\d+) window\(s\), (\d+) dropped", err)
    assert found, err
    return int(found[1]), int(found[2])


def records(text: str) -> list:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def file_results(capsys, tmp_path, model, onnx_file, arrays: dict) -> dict:
    """`zoo run` on a .npy of each array (frames or an image), in one many-input run: {key: record}."""
    folder = tmp_path / f"reference-{len(list(tmp_path.glob('reference-*')))}"
    folder.mkdir()
    for key, array in arrays.items():
        np.save(folder / f"{key:04d}.npy", array)
    result = invoke(capsys, "run", model, folder, "--model", onnx_file, "--json", "--top-k", "3")
    assert result.code == 0, result.err
    return {int(r["input"].rsplit("/", 1)[1][:4]): r for r in records(result.out)}


def assert_same_predictions(window_records: list, expected: dict) -> None:
    assert window_records
    for record in window_records:
        reference = expected[record["window"]["index"]]["predictions"]
        assert [p["class_id"] for p in record["predictions"]] == [p["class_id"] for p in reference]
        assert [p["label"] for p in record["predictions"]] == [p["label"] for p in reference]
        assert np.allclose([p["score"] for p in record["predictions"]], [p["score"] for p in reference], atol=1e-6)


def clip_windows(frames_bgr, fps, stride: int, clip_len: int = 16, target_fps: float = 15.0) -> dict:
    """The RGB frames of each window of a stream of these frames: {window index: T×H×W×3}, and their start times."""
    picked = resample_indices(len(frames_bgr), fps, target_fps)
    windows, starts = {}, {}
    for index, start in enumerate(range(0, len(picked) - clip_len + 1, stride)):
        sources = picked[start : start + clip_len]
        windows[index] = np.stack([frames_bgr[i][:, :, ::-1] for i in sources])
        starts[index] = (sources[0] / fps, sources[-1] / fps)
    return windows, starts


def test_stream_inputs_are_recognised():
    assert streams.stream_kind("rtsp://cam.local/live") == "network"
    assert streams.stream_kind("HTTPS://example.com/feed.mjpg") == "network"
    assert streams.stream_kind("0") == streams.stream_kind("/dev/video2") == "camera"
    assert streams.stream_kind("clip.mp4") is None and streams.stream_kind("clip.mp4", True) == "file"


def test_the_resampler_picks_the_frames_a_file_clip_would():
    for fps, target in ((25, 15), (30, 15), (29.97, 15), (24, 15), (10, 15), (60, 8), (12.5, 30)):
        resampler = streams.Resampler(fps, target)
        picked = [i for i in range(500) for _ in range(resampler.count(i, i / fps))]
        reference = resample_indices(500, fps, target)
        # a stream does not know its length: at most one more pick at the end than the file's rule
        assert picked[: len(reference)] == reference and len(picked) - len(reference) <= 1


def test_an_http_mjpeg_stream_gives_the_clips_of_the_same_frames_from_the_file(capsys, tmp_path, camera, tiny_onnx):
    camera.state.jpegs, mjpeg_file = served_jpegs(tmp_path, 60)
    result = invoke(
        capsys, "run", "r3d_18", camera.url, "--model", tiny_onnx, "--stride", "8", "--json", "--top-k", "3",
        "--reconnect", "0",
    )  # fmt: skip
    # a live stream that stops is lost: its summary and one clear line, exit 1
    assert result.code == 1, result.err
    assert "summary:" in result.err and "latency mean" in result.err
    assert result.error_lines == [result.error_lines[0]] and "lost the stream" in result.error_lines[0]
    got = records(result.out)  # stdout holds only JSON lines
    frames, fps = decoded(mjpeg_file)  # bitwise what the stream decodes to
    windows, times = clip_windows(frames, fps, stride=8)
    assert len(windows) == 3 and {r["window"]["index"] for r in got} <= set(windows)
    done, dropped = summary_counts(result.err)
    assert done == len(got) and done + dropped == 3  # the camera is paced: normally none is dropped
    assert_same_predictions(got, file_results(capsys, tmp_path, "r3d_18", tiny_onnx, windows))
    for record in got:
        start, end = times[record["window"]["index"]]
        assert record["window"]["start_s"] == pytest.approx(start, abs=1e-3)
        assert record["window"]["end_s"] == pytest.approx(end, abs=1e-3)
        assert 0 < record["latency_ms"] < 10_000  # from the window's last frame to its result
        assert record["model"] == "r3d_18" and record["input"] == camera.url and record["clips"] == 1


def run_in_thread(capsys, *args, timeout: float = 30):
    """invoke() with a deadline: a stream run that hangs fails the test instead of blocking it."""
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(result=invoke(capsys, *args)), daemon=True)
    started = time.perf_counter()
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"zoo run {' '.join(map(str, args))} still running after {timeout} s"
    return outcome["result"], time.perf_counter() - started


@pytest.mark.parametrize("how", ["closes", "stalls"])
def test_a_stream_that_stops_midway_ends_with_the_summary(capsys, tmp_path, camera, tiny_onnx, quick_timeouts, how):
    camera.state.jpegs, _ = served_jpegs(tmp_path, 40)
    camera.state.first = 30  # then the camera goes away: hangs up, or stops sending and answers no more
    camera.state.hold = how == "stalls"
    camera.state.later = "refuse" if how == "closes" else "silent"
    result, seconds = run_in_thread(
        capsys, "run", "r3d_18", camera.url, "--model", tiny_onnx, "--json", "--reconnect", "2"
    )
    assert result.code == 1, result.err
    assert len(result.error_lines) == 1 and "Traceback" not in result.err
    message = result.error_lines[0]
    assert "lost the stream" in message and "2 reconnect attempt(s) failed" in message
    assert ("no frame for 1 s" in message) == (how == "stalls")
    assert "summary: 1 window(s)" in result.err and "30 frames" in result.err and "2 reconnect(s)" in result.err
    assert "reconnecting (2/2)" in result.err
    assert len(records(result.out)) == 1 and camera.state.connections == 3
    assert seconds < 15


def test_stream_flag_plays_a_file_as_a_stream_and_saves_the_annotated_video(capsys, tmp_path, tiny_onnx):
    import cv2

    video = write_video(tmp_path / "walk.avi", 45, 30.0)  # lossless: the windows' frames are exact
    out = tmp_path / "annotated" / "walk.mp4"
    started = time.perf_counter()
    result = invoke(
        capsys, "run", "r3d_18", video, "--stream", "--model", tiny_onnx, "--stride", "4", "--json", "--top-k", "3",
        "--save-video", out,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert time.perf_counter() - started >= 45 / 30 * 0.9  # played at its own frame rate
    assert f"{video} ended after 45 frames" in result.err and f"wrote {out}" in result.err
    frames, fps = decoded(video)
    windows, _ = clip_windows(frames, fps, stride=4)
    got = records(result.out)
    assert [r["window"]["index"] for r in got] == [0, 1] == sorted(windows)
    assert_same_predictions(got, file_results(capsys, tmp_path, "r3d_18", tiny_onnx, windows))

    written, written_fps = decoded(out)
    assert len(written) == 45 and written_fps == pytest.approx(30.0)
    assert not [p for p in out.parent.iterdir() if p.name != out.name]  # no temp file left
    # the label is drawn once there is a result: the first frames are the input, the last ones are not
    assert np.abs(written[0].astype(int) - frames[0]).mean() < 8
    top = slice(0, 20)
    assert np.abs(written[-1][top].astype(int) - frames[-1][top]).mean() > 20
    assert cv2.VideoCapture(str(out)).isOpened()


def test_save_video_on_a_file_run_draws_the_result_on_every_frame(capsys, tmp_path, tiny_onnx):
    video = write_video(tmp_path / "clip.avi", 20, 25.0)
    out = tmp_path / "clip.mp4"
    result = invoke(capsys, "run", "r3d_18", video, "--model", tiny_onnx, "--json", "--save-video", out)
    assert result.code == 0, result.err
    label = json.loads(result.out)["predictions"][0]["label"]
    assert label and f"wrote {out}" in result.err
    written, _ = decoded(out)
    assert len(written) == 20
    invoke(capsys, "run", "r3d_18", video, "--model", tiny_onnx, "--save-video", tmp_path / "x.gif").assert_user_error(
        ".mp4"
    )


def test_save_video_is_refused_before_the_model_is_loaded(capsys, tmp_path, tiny_onnx, monkeypatch):
    """As --save: a target --save-video cannot write, or an input with no frames, is one `error:` line
    before any download, conversion or inference."""
    import cv2

    import modelzoo
    from modelzoo.core import runner
    from modelzoo.testing import write_stand_in_onnx

    loads = []
    monkeypatch.setattr(runner, "load_backend", lambda *a, **k: loads.append(1))
    video = write_video(tmp_path / "clip.avi", 20, 25.0)
    invoke(capsys, "run", "r3d_18", video, "--model", tiny_onnx, "--save-video", tmp_path / "x.gif").assert_user_error(
        "--save-video", ".mp4"
    )
    cv2.imwrite(str(tmp_path / "photo.png"), np.full((48, 64, 3), 90, np.uint8))
    stand_in = write_stand_in_onnx(modelzoo.get_model("resnet18").spec, tmp_path / "stand_in.onnx")
    result = invoke(
        capsys, "run", "resnet18", tmp_path / "photo.png", "--model", stand_in, "--save-video", tmp_path / "p.mp4"
    )
    result.assert_user_error("--save-video draws on a video", "--save")
    assert loads == [] and not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob("*.gif"))


@pytest.mark.parametrize("as_stream", [False, True])
def test_save_video_over_the_input_is_refused_and_the_input_kept(capsys, tmp_path, tiny_onnx, monkeypatch, as_stream):
    video = write_video(tmp_path / "clip.avi", 20, 25.0)
    before = video.read_bytes()
    monkeypatch.chdir(tmp_path)
    result = invoke(capsys, "run", "r3d_18", video, *(["--stream"] if as_stream else []), "--model", tiny_onnx,
                    "--save-video", "./clip.avi")  # fmt: skip
    result.assert_user_error("--save-video", "is the input")
    assert video.read_bytes() == before and result.out == ""


def test_slow_inference_drops_windows_and_counts_them(capsys, tmp_path, tiny_onnx, monkeypatch):
    from modelzoo.core.backends.onnxruntime_backend import OnnxRuntimeBackend

    original = OnnxRuntimeBackend.run

    def slow_run(self, batch):
        time.sleep(0.25)
        return original(self, batch)

    monkeypatch.setattr(OnnxRuntimeBackend, "run", slow_run)
    video = write_video(tmp_path / "fast.avi", 42, 30.0)  # 21 frames at 15 fps: windows at 15..20, every 67 ms
    result = invoke(capsys, "run", "r3d_18", video, "--stream", "--model", tiny_onnx, "--stride", "1", "--json")
    assert result.code == 0, result.err
    got = records(result.out)
    dropped = 6 - len(got)
    assert dropped >= 2, result.err  # never queued: at most one window waits while one runs
    assert f"{len(got)} window(s), {dropped} dropped" in result.err
    indices = [r["window"]["index"] for r in got]
    assert indices == sorted(indices) and indices[0] == 0 and indices[-1] == 5  # the newest window is kept


def test_an_image_model_on_a_stream_runs_sampled_frames_as_the_file_path_does(capsys, tmp_path):
    onnx_file = tiny_image_classifier(tmp_path / "image.onnx", size=224, classes=1000)
    video = write_video(tmp_path / "still.avi", 15, 30.0, size=(320, 240))
    result = invoke(
        capsys, "run", "resnet18", video, "--stream", "--model", onnx_file, "--fps", "10", "--json", "--top-k", "3"
    )
    assert result.code == 0, result.err
    got = records(result.out)
    assert [r["window"]["start_s"] for r in got] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    frames, _ = decoded(video)
    images = {index: frames[index * 3][:, :, ::-1].copy() for index in range(5)}
    assert_same_predictions(got, file_results(capsys, tmp_path, "resnet18", onnx_file, images))


def test_ctrl_c_ends_a_stream_with_the_summary_and_keeps_the_video(capsys, tmp_path, camera, tiny_onnx):
    camera.state.jpegs, _ = served_jpegs(tmp_path, 20)
    camera.state.loop = True  # a camera that never stops
    out = tmp_path / "live.mp4"
    timer = threading.Timer(2.0, _thread.interrupt_main)
    timer.start()
    try:
        result = invoke(capsys, "run", "r3d_18", camera.url, "--model", tiny_onnx, "--save-video", out)
    finally:
        timer.cancel()
    assert result.code == 130, result.err
    assert "stopped (Ctrl-C)" in result.err and "summary:" in result.err and not result.error_lines
    assert "window 0 0.00-" in result.out and "latency" in result.out  # a table line per window
    written, _ = decoded(out)
    assert len(written) > 30


def test_stream_options_are_checked(capsys, tmp_path, tiny_onnx):
    video = write_video(tmp_path / "v.avi", 20, 25.0)
    invoke(capsys, "run", "r3d_18", video, "--stride", "2").assert_user_error("--stride", "streams only")
    invoke(capsys, "run", "r3d_18", video, "--stream", "--fps", "2", "--model", tiny_onnx).assert_user_error(
        "--fps", "--stride"
    )
    invoke(capsys, "run", "r3d_18", video, "--stream", "--clips", "2").assert_user_error("--clips")
    invoke(capsys, "run", "r3d_18", video, video, "--stream").assert_user_error("one input")
    invoke(capsys, "run", "r3d_18", tmp_path / "none.avi", "--stream").assert_user_error("does not exist")
    invoke(capsys, "run", "r3d_18", tmp_path, "--stream").assert_user_error("one video file", "is a folder")
    invoke(capsys, "run", "r3d_18", "rtsp://127.0.0.1:9/live", "--resume").assert_user_error("--resume")
