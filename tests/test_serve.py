"""zoo serve: the HTTP service answers what `zoo run --json` / `zoo list --json` / `zoo info --json` print,
refuses what it must (size, queue, key, paths, host), and runs as a real uvicorn server."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from zoo_cli import invoke

import modelzoo

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

with warnings.catch_warnings():  # newer Starlette prefers httpx2; httpx is what FastAPI's TestClient documents
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient  # noqa: E402

from modelzoo.serve.app import create_app  # noqa: E402
from modelzoo.serve.served import InferenceQueue  # noqa: E402

LOCAL = "http://127.0.0.1"


@pytest.fixture
def stand_in(in_tmp_dir):
    """A stand-in resnet18 ONNX in the test's folder (the CWD), named relatively as a user would."""
    from modelzoo.testing import write_stand_in_onnx

    write_stand_in_onnx(modelzoo.get_model("resnet18").spec, in_tmp_dir / "stand_in.onnx")
    return "stand_in.onnx"


def image(height: int = 90, width: int = 120, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def client(*models, **settings) -> TestClient:
    return TestClient(create_app(models, **settings), base_url=LOCAL)


def cli_json(capsys, *args) -> dict:
    result = invoke(capsys, "run", *args, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def without_timing(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "timing_ms"}


def upload(api: TestClient, model: str, path, params=None, data=None, name=None):
    with open(path, "rb") as handle:
        files = {"file": (name or os.path.basename(path), handle)}
        return api.post(f"/v1/models/{model}/predict", params=params, data=data, files=files)


def test_predict_on_an_uploaded_npy_and_png_is_zoo_run_json(stand_in, capsys):
    import cv2

    np.save("photo.npy", image())
    assert cv2.imwrite("photo.png", cv2.cvtColor(image(seed=1), cv2.COLOR_RGB2BGR))
    api = client("resnet18", model_path=stand_in)
    for name, params, form, flags in (
        ("photo.npy", None, None, []),
        ("photo.npy", {"top_k": "3"}, None, ["--top-k", "3"]),
        ("photo.png", None, {"top_k": "2"}, ["--top-k", "2"]),
    ):
        response = upload(api, "resnet18", name, params=params, data=form)
        assert response.status_code == 200, response.text
        served = response.json()
        assert served["timing_ms"]["load"] == 0.0  # loaded once, when the app was made
        expected = cli_json(capsys, "resnet18", name, "--model", stand_in, *flags)
        assert without_timing(served) == without_timing(expected)
        assert set(served["timing_ms"]) == set(expected["timing_ms"])
    assert list((modelzoo_cache_root() / "serve-uploads").iterdir()) == []  # every upload removed


def modelzoo_cache_root():
    from modelzoo.core.config import load_config

    return load_config().cache_root()


def test_predict_on_an_uploaded_video_is_zoo_run_json(in_tmp_dir, capsys):
    from onnx_models import tiny_video_classifier
    from videos import write_video

    tiny_video_classifier(in_tmp_dir / "tiny.onnx")
    write_video(in_tmp_dir / "clip.avi", 40, 15.0)
    api = client("r3d_18", model_path="tiny.onnx")
    response = upload(api, "r3d_18", "clip.avi", params={"clips": "2", "top_k": "4"})
    assert response.status_code == 200, response.text
    expected = cli_json(capsys, "r3d_18", "clip.avi", "--model", "tiny.onnx", "--clips", "2", "--top-k", "4")
    assert without_timing(response.json()) == without_timing(expected)
    assert response.json()["clips"] == 2


def test_models_and_info_are_what_list_and_info_json_print(capsys):
    api = client(warm_up=False)
    listed = invoke(capsys, "list", "--json")
    assert listed.code == 0, listed.err
    assert api.get("/v1/models").json() == json.loads(listed.out)
    info = invoke(capsys, "info", "resnet18", "--json")
    assert info.code == 0, info.err
    assert api.get("/v1/models/resnet18").json() == json.loads(info.out)
    missing = api.get("/v1/models/no_such_model")
    assert missing.status_code == 404 and "no_such_model" in missing.json()["error"]


def test_only_the_named_models_are_served(stand_in):
    api = client("resnet18", model_path=stand_in)
    assert [row["name"] for row in api.get("/v1/models").json()] == ["resnet18"]
    response = api.post("/v1/models/r3d_18/predict", files={"file": ("x.npy", b"123")})
    assert (
        response.status_code == 404
        and response.json()["error"] == "r3d_18 is not served here; this server runs resnet18"
    )


def test_bad_requests_get_a_4xx_with_the_clis_one_line_message(stand_in, capsys):
    np.save("photo.npy", image())
    # a float tensor of the wrong shape: the CLI's message, naming the file as uploaded
    np.save("wrong.npy", np.zeros((2, 3), np.float32))
    api = client("resnet18", model_path=stand_in)
    cli_error = invoke(capsys, "run", "resnet18", "wrong.npy", "--model", stand_in).assert_user_error("wrong.npy")
    response = upload(api, "resnet18", "wrong.npy")
    assert response.status_code == 422
    assert "error: " + response.json()["error"] == cli_error
    cases = [
        (upload(api, "resnet18", "photo.npy", params={"clips": "2"}), 422, "--clips does not apply to resnet18"),
        (upload(api, "resnet18", "photo.npy", params={"top_k": "many"}), 422, "top_k='many' must be an integer"),
        (upload(api, "resnet18", "photo.npy", params={"top_k": "0"}), 422, "top_k"),
        (api.post("/v1/models/resnet18/predict", files={"file": ("notes.txt", b"hello")}), 422, "is not an image"),
        (api.post("/v1/models/resnet18/predict", files={"file": ("empty.png", b"")}), 422, "empty.png is empty"),
        (api.post("/v1/models/resnet18/predict", files={"other": ("a.png", b"x")}), 400, "field `file`"),
        (api.post("/v1/models/resnet18/predict", data={"top_k": "3"}), 415, "multipart/form-data"),
        (api.post("/v1/models/resnet18/predict", data={"top_k": "3"}, files={}), 415, "multipart/form-data"),
        (api.post("/v1/models/resnet18/predict", content=b"raw"), 415, "multipart/form-data"),
        (
            api.post(
                "/v1/models/resnet18/predict",
                content=b"--xyz\r\nnot a part",
                headers={"content-type": "multipart/form-data; boundary=xyz"},
            ),
            400,
            "",
        ),
        (api.post("/v1/models/resnet18/predict", json=["not", "an object"]), 400, '"path"'),
        (api.get("/no/such/route"), 404, "not found"),
    ]
    for response, status, fragment in cases:
        assert response.status_code == status, (fragment, response.status_code, response.text)
        message = response.json()["error"]
        assert fragment.lower() in message.lower() and "\n" not in message and "Traceback" not in message
    assert list((modelzoo_cache_root() / "serve-uploads").iterdir()) == []


def test_long_and_non_ascii_upload_names_keep_their_suffix(stand_in, capsys):
    np.save("photo.npy", image())
    api = client("resnet18", model_path=stand_in)
    expected = cli_json(capsys, "resnet18", "photo.npy", "--model", stand_in)["predictions"]
    for name in ("视频" * 45 + ".npy", "a" * 150 + ".npy"):  # 270 bytes in UTF-8; 154 characters
        response = upload(api, "resnet18", "photo.npy", name=name)
        assert response.status_code == 200, response.text
        shown = response.json()["input"]
        assert shown.endswith(".npy") and name.startswith(shown[:-4]), shown
        assert response.json()["predictions"] == expected
    assert list((modelzoo_cache_root() / "serve-uploads").iterdir()) == []


def test_an_upload_the_server_cannot_store_is_not_blamed_on_the_client(stand_in, monkeypatch):
    import errno

    from modelzoo.serve import uploads

    def full_disk(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    np.save("photo.npy", image())
    api = client("resnet18", model_path=stand_in)
    monkeypatch.setattr(uploads, "open", full_disk, raising=False)  # the spooled file cannot be written
    response = upload(api, "resnet18", "photo.npy")
    assert response.status_code == 507, response.text
    message = response.json()["error"]
    assert "could not store" in message and "serve-uploads" not in message, message
    assert list((modelzoo_cache_root() / "serve-uploads").iterdir()) == []


def test_a_body_over_the_limit_is_413(stand_in):
    api = client("resnet18", model_path=stand_in, max_body=4096)
    big = np.zeros(8192, np.uint8).tobytes()
    response = api.post("/v1/models/resnet18/predict", files={"file": ("big.npy", big)})  # Content-Length says so
    assert response.status_code == 413 and "--max-body" in response.json()["error"]

    def chunks():  # no Content-Length: counted as it arrives
        boundary = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.npy"\r\n\r\n'
        yield boundary
        for _ in range(8):
            yield big[:1024]
        yield b"\r\n--b--\r\n"

    streamed = api.post(
        "/v1/models/resnet18/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert streamed.status_code == 413
    assert list((modelzoo_cache_root() / "serve-uploads").iterdir()) == []


def test_options_are_checked_in_the_requests_words(stand_in, tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    np.save(allowed / "photo.npy", image())
    api = client("resnet18", model_path=stand_in, allow_paths=[str(allowed)])
    for response, fragment in (
        (upload(api, "resnet18", allowed / "photo.npy", params={"top_k": "0"}), "'top_k' must be at least 1"),
        (api.post("/v1/models/resnet18/predict", json={"path": "photo.npy", "top_k": [1]}), "'top_k' must be int"),
        (api.post("/v1/models/resnet18/predict", json={"path": "photo.npy", "top_k": 2.5}), "'top_k' must be int"),
        # a count that would hold the model for ever (clips=10**8 does, on a video model): refused at once
        (api.post("/v1/models/resnet18/predict", json={"path": "photo.npy", "top_k": 10**8}), "at most 1000"),
    ):
        assert response.status_code == 422, response.text
        message = response.json()["error"]
        assert fragment in message and "this request" in message and "command line" not in message, message


def test_a_form_of_many_parts_is_refused(stand_in):
    np.save("photo.npy", image())
    api = client("resnet18", model_path=stand_in)
    fields = {f"f{i}": "" for i in range(5000)}  # empty fields: nothing counts against the fields' bytes
    with open("photo.npy", "rb") as handle:
        response = api.post("/v1/models/resnet18/predict", data=fields, files={"file": ("photo.npy", handle)})
    assert response.status_code == 400 and "parts" in response.json()["error"], response.text
    assert list((modelzoo_cache_root() / "serve-uploads").iterdir()) == []


@contextlib.contextmanager
def real_server(app):
    """`app` under uvicorn on 127.0.0.1 (as `zoo serve` runs it), in a thread; yields the ZooServer."""
    from modelzoo.serve.server import ZooServer

    server = ZooServer(app, "127.0.0.1", free_port(), log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "the server did not stop"


SLOW_UPLOAD = (  # a request whose body never arrives whole (Content-Length promises more)
    b"POST /v1/models/resnet18/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n"
    b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
    b'--b\r\nContent-Disposition: form-data; name="file"; filename="slow.npy"\r\n\r\n\x93NUMPY'
)


def http_answer(sock: socket.socket) -> tuple:
    """(status line, JSON body) of the answer on `sock`, read until the server closes or the JSON ends."""
    answer = b""
    while not (b"\r\n\r\n" in answer and answer.rstrip().endswith(b"}")):
        more = sock.recv(65536)
        assert more, answer
        answer += more
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"application/json" in head, answer
    return head.split(b"\r\n", 1)[0].decode(), json.loads(body)


def test_a_stalled_upload_gives_up_its_place_in_the_queue(stand_in, monkeypatch):
    import httpx

    from modelzoo.serve import uploads

    monkeypatch.setattr(uploads, "UPLOAD_IDLE_S", 1.0)
    np.save("photo.npy", image())
    app = create_app(["resnet18"], model_path=stand_in, queue=0)
    with real_server(app) as server:
        port = server.config.port
        with socket.create_connection(("127.0.0.1", port), timeout=20) as slow:
            slow.sendall(SLOW_UPLOAD)  # and then nothing more: the request holds the model's only place
            status, body = http_answer(slow)
        assert status.startswith("HTTP/1.1 408") and "stopped arriving" in body["error"], (status, body)
        assert list((modelzoo_cache_root() / "serve-uploads").iterdir()) == []
        with open("photo.npy", "rb") as handle:  # the place is free again
            files = {"file": ("photo.npy", handle)}
            after = httpx.post(f"{LOCAL}:{port}/v1/models/resnet18/predict", files=files, timeout=30)
        assert after.status_code == 200, after.text


def test_stopping_ends_an_upload_in_progress_with_a_json_503(stand_in, capfd):
    app = create_app(["resnet18"], model_path=stand_in)
    with real_server(app) as server, socket.create_connection(("127.0.0.1", server.config.port), timeout=20) as slow:
        slow.sendall(SLOW_UPLOAD)
        deadline = time.monotonic() + 10
        while not list((modelzoo_cache_root() / "serve-uploads").iterdir()):  # the upload is being spooled
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stopping = time.monotonic()
        server.should_exit = True
        status, body = http_answer(slow)
        assert status.startswith("HTTP/1.1 503") and "stopping" in body["error"], (status, body)
        assert time.monotonic() - stopping < 5  # not the whole grace period (10 s), then a cancellation
    assert list((modelzoo_cache_root() / "serve-uploads").iterdir()) == []
    assert "Traceback" not in capfd.readouterr().err


def test_a_full_queue_is_503_with_retry_after(stand_in):
    np.save("photo.npy", image())
    api = client("resnet18", model_path=stand_in, queue=0)
    served = api.app.state.zoo.served("resnet18")
    with served.queue.hold():  # the model is busy and nobody may wait
        response = upload(api, "resnet18", "photo.npy")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1 and "--queue 0" in response.json()["error"]
    assert upload(api, "resnet18", "photo.npy").status_code == 200
    metrics = api.get("/metrics").text
    assert 'zoo_queue_rejected_total{model="resnet18"} 1' in metrics
    assert 'zoo_http_requests_total{method="POST",route="/v1/models/{name}/predict",status="503"} 1' in metrics


def test_requests_wait_their_turn_up_to_the_queue_limit(stand_in):
    np.save("photo.npy", image())
    api = client("resnet18", model_path=stand_in, queue=1)
    served = api.app.state.zoo.served("resnet18")
    answers = []
    with served.queue.hold():
        waiting = threading.Thread(target=lambda: answers.append(upload(api, "resnet18", "photo.npy")))
        waiting.start()
        deadline = time.monotonic() + 10
        while served.queue.state()["waiting"] < 1:  # the first request is admitted and waits
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert upload(api, "resnet18", "photo.npy").status_code == 503  # no room for a second
        assert 'zoo_queue_depth{model="resnet18"} 1' in api.get("/metrics").text
    waiting.join(30)
    assert answers and answers[0].status_code == 200, answers


def test_the_queue_admits_one_running_and_limit_waiting():
    queue = InferenceQueue(limit=1)
    first, second = queue.admit(), queue.admit()
    assert first is not None and second is not None and queue.admit() is None
    entered = threading.Event()
    with first:
        waiter = threading.Thread(target=lambda: (second.__enter__(), entered.set(), second.__exit__(None, None, None)))
        waiter.start()
        time.sleep(0.05)
        assert not entered.is_set() and queue.state() == {"waiting": 1, "busy": True, "limit": 1}
        assert queue.admit() is None
    waiter.join(5)
    assert entered.is_set() and queue.state() == {"waiting": 0, "busy": False, "limit": 1}
    third = queue.admit()
    third.release()  # a request that ended before its turn gives its place back
    third.release()
    assert queue.state()["waiting"] == 0


def test_an_api_key_is_required_on_every_endpoint_but_healthz(stand_in):
    np.save("photo.npy", image())
    api = client("resnet18", model_path=stand_in, api_key="s3cret-key")
    for method, path in (("get", "/"), ("get", "/v1/models"), ("get", "/v1/models/resnet18"), ("get", "/metrics")):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "s3cret-ke"}):
            response = getattr(api, method)(path, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert "API key" in response.json()["error"] and "Basic" in response.headers["WWW-Authenticate"]
    assert api.post("/v1/models/resnet18/predict", files={"file": ("photo.npy", b"x")}).status_code == 401
    assert api.get("/healthz").status_code == 200
    basic = base64.b64encode(b"anyone:s3cret-key").decode()
    for headers in (
        {"Authorization": "Bearer s3cret-key"},
        {"X-API-Key": "s3cret-key"},
        {"Authorization": f"Basic {basic}"},
    ):
        assert api.get("/v1/models", headers=headers).status_code == 200, headers
    with open("photo.npy", "rb") as handle:
        response = api.post(
            "/v1/models/resnet18/predict", files={"file": ("photo.npy", handle)}, headers={"X-API-Key": "s3cret-key"}
        )
    assert response.status_code == 200, response.text


def test_a_loopback_server_answers_only_requests_addressed_to_loopback(stand_in):
    app = create_app(["resnet18"], model_path=stand_in)
    assert TestClient(app, base_url="http://attacker.example").get("/v1/models").status_code == 403
    assert TestClient(app, base_url="http://localhost:8000").get("/v1/models").status_code == 200
    exposed = TestClient(
        create_app(["resnet18"], model_path=stand_in, host="0.0.0.0", api_key="k"), base_url="http://robot.lan"
    )
    assert exposed.get("/v1/models", headers={"X-API-Key": "k"}).status_code == 200


def test_another_sites_page_cannot_post_here(stand_in):
    np.save("photo.npy", image())
    api = client("resnet18", model_path=stand_in, api_key="k")
    key = {"X-API-Key": "k"}
    for origin in ("http://attacker.example", "null", "http://127.0.0.1:9"):
        with open("photo.npy", "rb") as handle:  # a plain form post: browsers send it without a preflight
            files = {"file": ("photo.npy", handle)}
            refused = api.post("/v1/models/resnet18/predict", files=files, headers={**key, "Origin": origin})
        assert refused.status_code == 403 and "another site" in refused.json()["error"], (origin, refused.text)
    assert api.delete("/v1/streams/x", headers={**key, "Origin": "http://attacker.example"}).status_code == 403
    for headers in (key, {**key, "Origin": LOCAL}):  # no Origin (curl), or this server's own page
        assert upload_with(api, "photo.npy", headers).status_code == 200
    assert api.get("/v1/models", headers={**key, "Origin": "http://attacker.example"}).status_code == 200


def upload_with(api: TestClient, path, headers: dict):
    with open(path, "rb") as handle:
        return api.post("/v1/models/resnet18/predict", files={"file": ("photo.npy", handle)}, headers=headers)


def test_probes_may_send_head(stand_in):
    api = client("resnet18", model_path=stand_in)
    assert api.head("/healthz").status_code == 200
    assert api.head("/").status_code == 200


def test_paths_are_read_only_inside_allow_paths(stand_in, tmp_path, capsys):
    allowed = tmp_path / "allowed"
    (allowed / "sub").mkdir(parents=True)
    np.save(allowed / "sub" / "photo.npy", image())
    np.save(tmp_path / "secret.npy", image(seed=2))
    (allowed / "escape.npy").symlink_to(tmp_path / "secret.npy")
    (allowed / "link_dir").symlink_to(tmp_path)

    closed = client("resnet18", model_path=stand_in)
    refused = closed.post("/v1/models/resnet18/predict", json={"path": str(allowed / "sub" / "photo.npy")})
    assert refused.status_code == 403 and "--allow-paths" in refused.json()["error"]

    api = client("resnet18", model_path=stand_in, allow_paths=[str(allowed)])
    inside = str(allowed / "sub" / "photo.npy")
    response = api.post("/v1/models/resnet18/predict", json={"path": inside, "top_k": 2})
    assert response.status_code == 200, response.text
    expected = cli_json(capsys, "resnet18", inside, "--model", stand_in, "--top-k", "2")
    assert without_timing(response.json()) == without_timing(expected)
    relative = api.post("/v1/models/resnet18/predict", json={"path": "sub/photo.npy", "top_k": 2})
    assert relative.status_code == 200 and relative.json()["predictions"] == expected["predictions"]
    assert relative.json()["input"] == "sub/photo.npy"  # as the client named it

    for attempt in (
        str(tmp_path / "secret.npy"),
        "../secret.npy",
        "sub/../../secret.npy",
        "escape.npy",
        "link_dir/secret.npy",
        "/etc/passwd",
    ):
        response = api.post("/v1/models/resnet18/predict", json={"path": attempt})
        assert response.status_code == 403, (attempt, response.text)
        assert "outside the folders" in response.json()["error"]
    missing = api.post("/v1/models/resnet18/predict", json={"path": "sub/none.npy"})
    assert missing.status_code == 422 and "does not exist" in missing.json()["error"]


def test_metrics_count_requests_latencies_and_queues(stand_in):
    np.save("photo.npy", image())
    api = client("resnet18", model_path=stand_in)
    for _ in range(3):
        assert upload(api, "resnet18", "photo.npy").status_code == 200
    api.get("/healthz")
    api.get("/v1/models/none")
    response = api.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    for line in (
        'zoo_http_requests_total{method="POST",route="/v1/models/{name}/predict",status="200"} 3',
        'zoo_http_requests_total{method="GET",route="/healthz",status="200"} 1',
        'zoo_http_requests_total{method="GET",route="/v1/models/{name}",status="404"} 1',
        'zoo_http_request_duration_seconds_count{method="POST",route="/v1/models/{name}/predict"} 3',
        'zoo_predictions_total{model="resnet18",outcome="ok"} 4',  # the warm-up and three requests
        'zoo_inference_duration_seconds_count{model="resnet18"} 4',
        'zoo_queue_depth{model="resnet18"} 0',
        'zoo_queue_limit{model="resnet18"} 8',
        'zoo_model_busy{model="resnet18"} 0',
        "# TYPE zoo_http_request_duration_seconds histogram",
    ):
        assert line in text, line


def test_made_up_methods_add_no_metric_series(stand_in):
    api = client("resnet18", model_path=stand_in)
    for index in range(50):
        assert api.request(f"M{index}", "/v1/models").status_code == 405
    metrics = api.get("/metrics").text
    assert 'zoo_http_requests_total{method="other",route="unmatched",status="405"} 50' in metrics
    assert 'method="M1"' not in metrics and metrics.count("\n") < 200, metrics


def test_the_page_is_served_without_anything_from_elsewhere(stand_in):
    response = client("resnet18", model_path=stand_in).get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "v1/models" in page and "predict" in page and "detections" in page and "<canvas" in page
    assert "v1/streams" in page and "EventSource" in page and 'id="live-video"' in page  # the live view
    assert "http://" not in page and "https://" not in page and "src=" not in page.replace("video.src", "")
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_serve_refuses_to_listen_openly_without_a_key(capsys, monkeypatch):
    monkeypatch.delenv("ZOO_API_KEY", raising=False)
    invoke(capsys, "serve", "--host", "0.0.0.0").assert_user_error("--host 0.0.0.0", "--api-key", "--insecure")
    invoke(capsys, "serve", "--host", "192.168.1.7", "--port", "8123").assert_user_error("--api-key")


def test_serve_settings_are_checked_before_listening(capsys, tmp_path):
    invoke(capsys, "serve", "resnet18", "r3d_18", "--model", tmp_path / "x.onnx").assert_user_error("--model FILE")
    invoke(capsys, "serve", "no_such_model").assert_user_error("no_such_model")
    invoke(capsys, "serve", "--allow-paths", tmp_path / "none").assert_user_error("--allow-paths")


def test_serve_without_the_extra_says_how_to_install_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)
    invoke(capsys, "serve").assert_user_error("pip install 'modelzoo[serve]'")


def test_importing_zoo_does_not_import_fastapi():
    code = "import sys, modelzoo, modelzoo.cli; assert 'fastapi' not in sys.modules and 'uvicorn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_zoo_serve_runs_a_real_server(stand_in, in_tmp_dir):
    import httpx

    np.save("photo.npy", image())
    port = free_port()
    log = open(in_tmp_dir / "server.log", "wb")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [sys.executable, "-m", "modelzoo", "serve", "resnet18", "--model", stand_in, "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (in_tmp_dir / "server.log").read_text()
            try:
                health = httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, (in_tmp_dir / "server.log").read_text()
                time.sleep(0.2)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        page = httpx.get(f"{base}/", timeout=10)
        assert page.status_code == 200 and "<title>zoo serve</title>" in page.text
        with open("photo.npy", "rb") as handle:
            result = httpx.post(f"{base}/v1/models/resnet18/predict", files={"file": ("photo.npy", handle)}, timeout=30)
        assert result.status_code == 200 and result.json()["input"] == "photo.npy"
    finally:
        server.terminate()
        code = server.wait(timeout=30)
        log.close()
    output = (in_tmp_dir / "server.log").read_text()
    assert code == 0 and output.rstrip().endswith("zoo serve: stopped"), output  # SIGTERM is how a server ends
    assert "Traceback" not in output and "error:" not in output


def test_a_port_in_use_is_one_error_line(stand_in, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke(capsys, "serve", "resnet18", "--model", stand_in, "--port", port)
    result.assert_user_error(f"could not listen on 127.0.0.1 port {port}", "--port")
