"""zoo serve's live streams, against a real uvicorn server on 127.0.0.1 and the MJPEG camera of test_streams:
each window's record reaches SSE and WebSocket clients exactly as `zoo run URL --json` prints it, the video
carries the result drawn as --save-video draws it, a stream ends (by itself, by DELETE, or with the server)
with its summary and never hangs, and everything a client can make the server hold is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
import test_streams
from onnx_models import tiny_image_classifier, tiny_video_classifier
from zoo_cli import invoke

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient  # noqa: E402

from modelzoo.serve import live as live_module  # noqa: E402
from modelzoo.serve.app import create_app  # noqa: E402
from modelzoo.serve.channels import Channel  # noqa: E402
from modelzoo.serve.errors import TooManyViewers  # noqa: E402
from modelzoo.serve.server import ZooServer  # noqa: E402

pytestmark = pytest.mark.usefixtures("in_tmp_dir")
camera = test_streams.camera  # an MJPEG camera on 127.0.0.1
quick_timeouts = test_streams.quick_timeouts
served_jpegs = test_streams.served_jpegs
WAIT_S = 30  # no wait in these tests is longer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(app):
    """`app` under uvicorn on 127.0.0.1 (as `zoo serve` runs it), in a thread; yields the base URL."""
    server = ZooServer(app, "127.0.0.1", free_port(), log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(WAIT_S)
        assert not thread.is_alive(), "the server did not stop"


def start(base: str, **body) -> dict:
    response = httpx.post(f"{base}/v1/streams", json=body, timeout=WAIT_S)
    assert response.status_code == 201, response.text
    return response.json()


def sse_events(url: str, until: str = "end", count: int = 10_000, headers=None) -> list:
    """(event, id, data) of the Server-Sent Events at `url`, until the `until` event or `count` events."""
    events, fields = [], {}
    deadline = time.monotonic() + WAIT_S
    with httpx.stream("GET", url, timeout=WAIT_S, headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            assert time.monotonic() < deadline, events
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            if "event" in fields:
                events.append((fields["event"], int(fields["id"]), json.loads(fields["data"])))
                if fields["event"] == until or len(events) >= count:
                    break
            fields = {}
    return events


def mjpeg_parts(url: str, count: int) -> tuple:
    """The first `count` JPEG images of a multipart/x-mixed-replace response, decoded, and when each came."""
    import cv2

    images, times, buffer = [], [], b""
    deadline = time.monotonic() + WAIT_S
    with httpx.stream("GET", url, timeout=WAIT_S) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
        for chunk in response.iter_bytes():
            assert time.monotonic() < deadline
            buffer += chunk
            while len(images) < count:
                head_end = buffer.find(b"\r\n\r\n")
                if head_end < 0:
                    break
                head = buffer[:head_end].decode()
                assert head.startswith("--frame\r\nContent-Type: image/jpeg"), head
                length = int(head.rsplit("Content-Length: ", 1)[1])
                if len(buffer) < head_end + 4 + length + 2:
                    break
                jpeg = buffer[head_end + 4 : head_end + 4 + length]
                buffer = buffer[head_end + 4 + length + 2 :]
                images.append(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
                times.append(time.monotonic())
            if len(images) >= count:
                break
    return images, times


def comparable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("timing_ms", "latency_ms")}


def test_each_window_reaches_sse_as_zoo_run_json_prints_it_then_the_end(camera, tmp_path, capsys):
    camera.state.jpegs, _ = served_jpegs(tmp_path, 60)
    tiny = str(tiny_video_classifier(tmp_path / "tiny.onnx"))
    flags = ["--stride", "8", "--top-k", "3", "--reconnect", "0"]
    cli = invoke(capsys, "run", "r3d_18", camera.url, "--model", tiny, "--json", *flags)
    assert cli.code == 1 and "lost the stream" in cli.err  # the camera's 60 frames end: lost
    expected = {r["window"]["index"]: r for r in map(json.loads, cli.out.splitlines())}
    assert len(expected) >= 2

    app = create_app(["r3d_18"], model_path=tiny)
    with serving(app) as base:
        info = start(base, model="r3d_18", input=camera.url, stride=8, top_k=3, reconnect=0)
        assert info["model"] == "r3d_18" and info["input"] == camera.url and info["status"] in ("running", "lost")
        assert info["options"] == {"stride": 8, "reconnect": 0, "top_k": 3}
        events = sse_events(base + info["links"]["events"])
        listed = httpx.get(f"{base}/v1/streams", timeout=WAIT_S).json()
    windows = [data for kind, _, data in events if kind == "window"]
    assert [kind for kind, _, _ in events] == ["window"] * len(windows) + ["end"]
    assert [seq for _, seq, _ in events] == list(range(1, len(events) + 1))
    common = [r for r in windows if r["window"]["index"] in expected]
    assert len(common) >= 2
    for record in common:
        assert list(record) == list(expected[record["window"]["index"]])
        assert comparable(record) == comparable(expected[record["window"]["index"]])
    assert all(r["timing_ms"]["load"] == 0.0 for r in windows)  # the server's loaded model, shared
    assert len(app.state.zoo.served("r3d_18").loaded) == 1

    end = events[-1][2]
    assert end["status"] == "lost" and end["id"] == info["id"] and end["error"] is None
    assert "lost the stream" in end["summary"]["end"] and end["line"].endswith("the stream was lost")
    assert end["summary"]["windows"] == len(windows) and end["summary"]["frames"] == 60
    assert listed[0]["status"] == "lost" and listed[0]["windows"] == len(windows)
    assert listed[0]["last"] == windows[-1]


def test_websocket_video_and_delete_of_a_live_camera(camera, tmp_path, monkeypatch):
    from websockets.sync.client import connect

    monkeypatch.setattr(live_module, "MAX_VIEWERS", 1)  # one client of the events, one of the video

    camera.state.jpegs, _ = served_jpegs(tmp_path, 20)
    camera.state.loop = True  # a camera that never stops
    raw = [test_streams.frame_content(i, 120, 160) for i in range(20)]
    tiny = str(tiny_video_classifier(tmp_path / "tiny.onnx"))
    with serving(create_app(["r3d_18"], model_path=tiny)) as base:
        info = start(base, model="r3d_18", input=camera.url, stride=4)
        socket_url = base.replace("http://", "ws://") + info["links"]["ws"]
        with connect(socket_url, open_timeout=WAIT_S, close_timeout=5) as ws:
            first = json.loads(ws.recv(timeout=WAIT_S))
            assert first["event"] == "window" and first["id"] >= 1
            record = first["data"]
            assert record["model"] == "r3d_18" and record["input"] == camera.url and record["clips"] == 1
            assert list(record)[-2:] == ["window", "latency_ms"] and len(record["predictions"]) == 5

            crowded = httpx.get(base + info["links"]["events"], timeout=WAIT_S)  # the WebSocket is its one client
            assert crowded.status_code == 503 and "already has 1 clients" in crowded.json()["error"]

            images, times = mjpeg_parts(base + info["links"]["video"], 5)
            assert all(image.shape == (120, 160, 3) for image in images)
            # frames come at most live.MJPEG_FPS a second, however fast the camera sends them (100 fps here)
            assert times[-1] - times[0] >= 4 / live_module.MJPEG_FPS * 0.8
            # the task's drawing (a classifier's caption, top left), as --save-video writes it
            last = images[-1].astype(int)
            nearest = min(raw, key=lambda frame: np.abs(last[60:] - frame[60:]).mean())
            assert np.abs(last[60:] - nearest[60:]).mean() < 6  # the frame itself below the caption
            assert np.abs(last[:12, :40] - nearest[:12, :40]).mean() > 30  # the caption's black band
            assert last[:12, :40].mean() < 110

            stopped = httpx.delete(f"{base}/v1/streams/{info['id']}", timeout=WAIT_S)
            assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
            assert stopped.json()["end"] == "stopped" and stopped.json()["windows"] >= 1
            messages = []
            with contextlib.suppress(Exception):  # the server closes the socket after the end
                while True:
                    messages.append(json.loads(ws.recv(timeout=WAIT_S)))
        assert messages and messages[-1]["event"] == "end" and messages[-1]["data"]["status"] == "stopped"
        assert httpx.get(f"{base}/v1/streams", timeout=WAIT_S).json() == []
        assert httpx.get(base + info["links"]["events"], timeout=WAIT_S).status_code == 404


def test_an_image_model_stream_draws_its_boxes_on_the_video(camera, tmp_path):
    import cv2
    from detection_onnx import designed_detector
    from test_detection import designed_case

    from modelzoo.core.tasks.detection import Detection, draw_detections

    frame = test_streams.frame_content(3, 272, 640)
    jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    camera.state.jpegs, camera.state.loop = [jpeg], True  # the same picture over and over
    values, expected = designed_case(640, 272)
    model = str(designed_detector(tmp_path / "designed.onnx", values))
    with serving(create_app(["yolo11n"], model_path=model)) as base:
        info = start(base, model="yolo11n", input=camera.url, fps=5)
        window = sse_events(base + info["links"]["events"], until="window")[-1][2]
        assert window["detections"] == expected
        image = mjpeg_parts(base + info["links"]["video"], 2)[0][-1].astype(int)
        assert httpx.delete(f"{base}/v1/streams/{info['id']}", timeout=WAIT_S).json()["status"] == "stopped"
    picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    drawn = draw_detections(picture, [Detection(**d) for d in expected]).astype(int)
    # what the server sends is the task's drawing on the frame, through its JPEG encoder: nearly exact
    quality = [cv2.IMWRITE_JPEG_QUALITY, live_module.MJPEG_QUALITY]
    drawn = cv2.imdecode(cv2.imencode(".jpg", drawn.astype(np.uint8), quality)[1], cv2.IMREAD_COLOR).astype(int)
    region = (slice(0, 140), slice(10, 180))  # around boxes A, G and C
    assert np.abs(image[region] - drawn[region]).mean() < 3
    assert np.abs(image[region] - picture[region].astype(int)).mean() > 10  # without the boxes: far off


def test_start_refusals_say_why_in_one_line(camera, tmp_path, quick_timeouts):
    camera.state.jpegs, _ = served_jpegs(tmp_path, 20)
    camera.state.loop = True
    tiny = str(tiny_video_classifier(tmp_path / "tiny.onnx"))
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    api = TestClient(create_app(["r3d_18"], model_path=tiny, allow_paths=[allowed]), base_url="http://127.0.0.1")
    cases = [
        ({"model": "r3d_18", "input": "file:///etc/passwd"}, 422, "not a stream this server can open"),
        ({"model": "r3d_18", "input": "clip.mp4"}, 422, '"path"'),
        ({"model": "r3d_18", "path": "../secret.mp4"}, 403, "outside the folders"),
        ({"model": "r3d_18", "path": "/etc/passwd"}, 403, "outside the folders"),
        ({"model": "r3d_18", "path": "none.avi"}, 422, "does not exist"),
        ({"model": "r3d_18", "input": camera.url, "path": "x.avi"}, 400, 'one of "input"'),
        ({"model": "r3d_18"}, 400, 'one of "input"'),
        ({"input": camera.url}, 400, '"model"'),
        ({"model": "resnet18", "input": camera.url}, 404, "not served here"),
        ({"model": "r3d_18", "input": camera.url, "stride": 0}, 422, "stride=0 must be an integer from 1"),
        ({"model": "r3d_18", "input": camera.url, "stride": 2.5}, 422, "stride"),
        ({"model": "r3d_18", "input": camera.url, "reconnect": 99}, 422, "reconnect"),
        ({"model": "r3d_18", "input": camera.url, "fps": 2}, 422, "--stride"),  # the CLI's message
        ({"model": "r3d_18", "input": camera.url, "top_k": "many"}, 422, "top_k='many' must be an integer"),
        ({"model": "r3d_18", "input": camera.url, "clips": 2}, 422, "--clips does not apply to a stream"),
        ({"model": "r3d_18", "input": "http://127.0.0.1:9/none"}, 422, "cannot open the stream"),
        (["not", "an object"], 400, "object"),
    ]
    for body, status, fragment in cases:
        response = api.post("/v1/streams", json=body)
        assert response.status_code == status, (body, response.text)
        message = response.json()["error"]
        assert fragment.lower() in message.lower() and "\n" not in message and "Traceback" not in message
    form = api.post("/v1/streams", data={"model": "r3d_18", "input": camera.url})
    assert form.status_code == 415  # JSON only: a cross-site form cannot start a stream
    assert api.get("/v1/streams").json() == []  # nothing that failed to start is listed
    for path in ("/v1/streams/nope", "/v1/streams/nope/events", "/v1/streams/nope/video"):
        assert api.get(path).status_code == 404 and "no stream 'nope'" in api.get(path).json()["error"]
    assert api.delete("/v1/streams/nope").status_code == 404
    from starlette.testclient import WebSocketDenialResponse

    with pytest.raises(WebSocketDenialResponse) as denied, api.websocket_connect("ws://127.0.0.1/v1/streams/nope/ws"):
        pass
    assert denied.value.status_code == 404


def test_streams_past_max_streams_get_503_and_a_file_plays_from_allow_paths(camera, tmp_path):
    from videos import write_video

    camera.state.jpegs, _ = served_jpegs(tmp_path, 20)
    camera.state.loop = True
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    write_video(allowed / "walk.avi", 45, 30.0)
    tiny = str(tiny_video_classifier(tmp_path / "tiny.onnx"))
    api = TestClient(
        create_app(["r3d_18"], model_path=tiny, allow_paths=[allowed], max_streams=1), base_url="http://127.0.0.1"
    )
    first = api.post("/v1/streams", json={"model": "r3d_18", "input": camera.url})
    assert first.status_code == 201, first.text
    assert first.headers["Location"] == f"/v1/streams/{first.json()['id']}"
    refused = api.post("/v1/streams", json={"model": "r3d_18", "path": "walk.avi"})
    assert refused.status_code == 503 and "--max-streams 1" in refused.json()["error"]
    assert api.delete(f"/v1/streams/{first.json()['id']}").json()["status"] == "stopped"

    played = api.post("/v1/streams", json={"model": "r3d_18", "path": "walk.avi", "stride": 4, "top_k": 2})
    assert played.status_code == 201, played.text
    assert played.json()["input"] == "walk.avi"  # as the client named it, not the server's path
    with api.stream("GET", played.json()["links"]["events"]) as response:  # ends with the file
        text = "".join(response.iter_text())
    kinds = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("event: ")]
    assert kinds == ["window", "window", "end"]
    end = json.loads(text.rsplit("data: ", 1)[1])
    assert end["status"] == "ended" and "walk.avi ended after 45 frames" in end["line"]
    assert str(allowed) not in text
    # an ended stream's events, all read: 204, which tells a browser's EventSource not to reconnect
    last_id = [line for line in text.splitlines() if line.startswith("id: ")][-1][4:]
    assert api.get(played.json()["links"]["events"], headers={"Last-Event-ID": last_id}).status_code == 204

    metrics = api.get("/metrics").text
    for line in (
        'zoo_streams_started_total{model="r3d_18"} 2',
        'zoo_streams_ended_total{model="r3d_18",status="ended"} 1',
        'zoo_streams_ended_total{model="r3d_18",status="stopped"} 1',
        "zoo_streams_rejected_total 1",
        'zoo_stream_windows_total{model="r3d_18",outcome="ok"}',
        'zoo_stream_latency_seconds_count{model="r3d_18"}',
        'zoo_streams_active{model="r3d_18"} 0',
        "zoo_stream_clients 0",
        'zoo_http_requests_total{method="POST",route="/v1/streams",status="503"} 1',
    ):
        assert line in metrics, line


def test_streams_need_the_api_key_and_sockets_their_own_origin(camera, tmp_path):
    from starlette.testclient import WebSocketDenialResponse

    camera.state.jpegs, _ = served_jpegs(tmp_path, 20)
    camera.state.loop = True
    tiny = str(tiny_video_classifier(tmp_path / "tiny.onnx"))
    app = create_app(["r3d_18"], model_path=tiny, host="0.0.0.0", api_key="k3y")
    api = TestClient(app, base_url="http://robot.lan:8000")
    assert api.post("/v1/streams", json={"model": "r3d_18", "input": camera.url}).status_code == 401
    key = {"X-API-Key": "k3y"}
    info = api.post("/v1/streams", json={"model": "r3d_18", "input": camera.url}, headers=key).json()
    for path in ("/v1/streams", f"/v1/streams/{info['id']}", info["links"]["events"], info["links"]["video"]):
        assert api.get(path).status_code == 401, path
    with (
        pytest.raises(WebSocketDenialResponse) as denied,
        api.websocket_connect("ws://robot.lan:8000" + info["links"]["ws"]),
    ):
        pass
    assert denied.value.status_code == 401
    elsewhere = {**key, "Origin": "http://evil.example"}
    with (
        pytest.raises(WebSocketDenialResponse) as denied,
        api.websocket_connect("ws://robot.lan:8000" + info["links"]["ws"], headers=elsewhere),
    ):
        pass
    assert denied.value.status_code == 403
    own = {**key, "Origin": "http://robot.lan:8000"}
    with api.websocket_connect("ws://robot.lan:8000" + info["links"]["ws"], headers=own) as ws:
        assert ws.receive_json()["event"] == "window"
    assert api.delete(f"/v1/streams/{info['id']}", headers=key).json()["status"] == "stopped"
    assert 'route="/v1/streams/{stream_id}/ws",status="101"' in api.get("/metrics", headers=key).text


def test_a_slow_client_loses_the_oldest_events_never_memory():
    channel = Channel(history=4, queue=8, limit=2)

    async def scenario():
        loop = asyncio.get_running_loop()
        slow = channel.subscribe(loop)
        for number in range(100):  # published while the client reads nothing
            channel.publish("window", number)
        late = channel.subscribe(loop)  # a new client starts with the last few
        with pytest.raises(TooManyViewers, match="2 clients"):
            channel.subscribe(loop)
        channel.publish("end", "done")
        channel.close()
        slow_got = [(kind, data) async for _seq, kind, data in slow.events()]
        late_got = [data async for _seq, _kind, data in late.events()]
        return slow_got, slow.dropped, late_got

    slow_got, dropped, late_got = asyncio.run(asyncio.wait_for(scenario(), WAIT_S))
    assert slow_got == [("window", n) for n in range(93, 100)] + [("end", "done")] and dropped == 93
    assert late_got == [96, 97, 98, 99, "done"]
    assert channel.subscribers == 0  # each left when it ended
    assert channel.has_after(None) and channel.has_after(100) and not channel.has_after(101)


def test_an_image_stream_on_a_video_model_is_refused_with_the_clis_words(camera, tmp_path):
    camera.state.jpegs, _ = served_jpegs(tmp_path, 20)
    camera.state.loop = True
    onnx_file = str(tiny_image_classifier(tmp_path / "image.onnx", size=224, classes=1000))
    api = TestClient(create_app(["resnet18"], model_path=onnx_file), base_url="http://127.0.0.1")
    response = api.post("/v1/streams", json={"model": "resnet18", "input": camera.url, "stride": 4})
    assert response.status_code == 422 and "use --fps" in response.json()["error"]
    response = api.post("/v1/streams", json={"model": "resnet18", "input": camera.url, "fps": "4", "top_k": "2"})
    assert response.status_code == 201 and response.json()["options"] == {"fps": 4.0, "top_k": 2}
    assert api.delete(f"/v1/streams/{response.json()['id']}").json()["status"] == "stopped"


def test_sigterm_stops_zoo_serve_with_a_stream_and_its_clients(camera, tmp_path):
    camera.state.jpegs, _ = served_jpegs(tmp_path, 20)
    camera.state.loop = True
    tiny = tiny_video_classifier(tmp_path / "tiny.onnx")
    port = free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [sys.executable, "-m", "modelzoo", "serve", "r3d_18", "--model", str(tiny), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    got = {}
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        info = start(base, model="r3d_18", input=camera.url)
        reader = threading.Thread(target=lambda: got.update(events=sse_events(base + info["links"]["events"])))
        reader.start()
        deadline = time.monotonic() + WAIT_S
        while httpx.get(f"{base}/metrics", timeout=WAIT_S).text.count("zoo_stream_clients 1") == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stopping = time.monotonic()
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=WAIT_S)
        seconds = time.monotonic() - stopping
        reader.join(WAIT_S)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        log.close()
    output = (tmp_path / "server.log").read_text()
    assert code == 0 and output.rstrip().endswith("zoo serve: stopped"), output
    assert seconds < 8, output  # the open event stream does not hold the server
    assert "Traceback" not in output and "error:" not in output
    end = got["events"][-1]
    assert end[0] == "end" and end[2]["status"] == "stopped" and end[2]["line"] == "the server stopped"
