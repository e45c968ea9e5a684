"""A local HTTP server on 127.0.0.1 for download tests: serves files, counts requests, and can fail,
drop connections half-way or ignore Range on request. Plus a toy ModelSpec whose artifacts it serves."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from modelzoo.core.contract.spec import Artifact, ModelSpec, TensorSpec, VideoPreprocessing

PAYLOAD = os.urandom(1 << 20) + b"end"
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    """Serves `state.files`, honouring `Range: bytes=N-` unless told otherwise; HTTP/1.0, one request per connection."""

    def do_GET(self):
        state = self.server.state
        with state.lock:
            state.requests.append({"path": self.path, "range": self.headers.get("Range")})
            fail = state.fail_first > 0
            state.fail_first -= fail
            drop = state.drops_left > 0
            state.drops_left -= drop
        if fail:
            self.send_error(503, "Service Unavailable")
            return
        data = state.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        requested = self.headers.get("Range")
        if requested and not state.ignore_range:
            start = int(requested.split("=", 1)[1].split("-", 1)[0])
            if start >= len(data):
                self.send_error(416, "Range Not Satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if drop:
            # Send part of the body, then hang up: the client sees a short read.
            self.wfile.write(body[: state.drop_after])
            self.wfile.flush()
            return
        step = 1 << 16
        for offset in range(0, len(body), step):
            self.wfile.write(body[offset : offset + step])
            if state.delay:
                time.sleep(state.delay)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = SimpleNamespace(
        files={"/toy-1234.pth": PAYLOAD, "/toy.hbm": PAYLOAD[::-1]},
        requests=[],
        lock=threading.Lock(),
        fail_first=0,
        drops_left=0,
        drop_after=len(PAYLOAD) // 2,
        ignore_range=False,
        delay=0.0,
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield SimpleNamespace(url=lambda path: base + path, state=httpd.state, gets=lambda: len(httpd.state.requests))
    httpd.shutdown()
    httpd.server_close()


def toy_spec(weights_url: str, hbm_url: str = "http://127.0.0.1:9/toy.hbm") -> ModelSpec:
    return ModelSpec(
        name="toy",
        task="video-classification",
        description="a test model",
        input=TensorSpec("video", (1, 3, 16, 112, 112)),
        output=TensorSpec("logits", (1, 400)),
        preprocessing=VideoPreprocessing(),
        labels_file="",
        artifacts=(
            Artifact("weights", weights_url, sha256=PAYLOAD_SHA, size=len(PAYLOAD)),
            Artifact("hbm", hbm_url, sha256=None, format="hbm"),
        ),
    )


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/toy-1234.pth"  # nothing listens there any more
