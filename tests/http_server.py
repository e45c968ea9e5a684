"""A local HTTP server on 127.0.0.1 for download tests: serves files, counts requests, and can fail,
drop connections half-way, ignore Range, redirect, omit Content-Length, stall or stream endlessly on
request; `https_server` is the same over TLS. Plus a toy ModelSpec whose artifacts it serves."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from modelzoo.core.contract.spec import Artifact, ModelSpec, TensorSpec

PAYLOAD = os.urandom(1 << 20) + b"end"
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    """Serves `state.files`, honouring `Range: bytes=N-` unless told otherwise; HTTP/1.0, one request per connection.

    `state.redirects` maps a path to a Location (302); paths in `state.endless` stream zeros without
    Content-Length until the client hangs up; `state.no_length` omits Content-Length (the body ends when
    the connection closes); `state.stall_after` sends that many body bytes, then holds the connection
    until `state.release` is set (at the latest when the test ends).
    """

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
        location = state.redirects.get(self.path)
        if location is not None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path in state.endless:
            self._send_endless()
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
        if not state.no_length:
            self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if drop:
            # Send part of the body, then hang up: the client sees a short read.
            self.wfile.write(body[: state.drop_after])
            self.wfile.flush()
            return
        if state.stall_after is not None:
            self.wfile.write(body[: state.stall_after])
            self.wfile.flush()
            state.release.wait(60)
            return
        step = 1 << 16
        try:
            for offset in range(0, len(body), step):
                self.wfile.write(body[offset : offset + step])
                if state.delay:
                    time.sleep(state.delay)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up, e.g. on refusing the announced size

    def _send_endless(self):
        self.send_response(200)
        self.end_headers()
        block = bytes(1 << 16)
        try:
            while not self.server.state.release.is_set():
                self.wfile.write(block)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the client stopped reading, as it should

    def log_message(self, *args):
        pass


def _serve(tls: ssl.SSLContext | None = None):
    """Start a server on 127.0.0.1; yields what the tests see of it and stops it afterwards."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    httpd.state = SimpleNamespace(
        files={"/toy-1234.pth": PAYLOAD, "/toy.hbm": PAYLOAD[::-1]},
        requests=[],
        lock=threading.Lock(),
        fail_first=0,
        drops_left=0,
        drop_after=len(PAYLOAD) // 2,
        ignore_range=False,
        delay=0.0,
        redirects={},
        endless=set(),
        no_length=False,
        stall_after=None,
        release=threading.Event(),
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"{'https' if tls else 'http'}://127.0.0.1:{httpd.server_address[1]}"
    yield SimpleNamespace(url=lambda path: base + path, state=httpd.state, gets=lambda: len(httpd.state.requests))
    httpd.state.release.set()  # let stalled and endless responses end
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def server():
    yield from _serve()


@pytest.fixture
def https_server(tmp_path_factory, monkeypatch):
    """The same server over TLS, with a self-signed certificate for 127.0.0.1 that this test trusts."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # read by the default context of each new connection
    yield from _serve(tls)


def toy_spec(weights_url: str, hbm_url: str = "http://127.0.0.1:9/toy.hbm") -> ModelSpec:
    return ModelSpec(
        name="toy",
        task="video-classification",
        description="a test model",
        input=TensorSpec("video", (1, 3, 16, 112, 112)),
        output=TensorSpec("logits", (1, 400)),
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
