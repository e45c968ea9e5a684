"""Downloads against a local HTTP server: verification, failures, resume, locking, and `zoo fetch`."""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from modelzoo.core.cache import ArtifactCache
from modelzoo.core.artifact_fetch import fetch_artifact, import_local
from modelzoo.core.download import download
from modelzoo.core.errors import CheckpointError, DownloadError
from modelzoo.core.spec import Artifact, ModelSpec, TensorSpec, VideoPreprocessing

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


def _spec(weights_url: str, hbm_url: str = "http://127.0.0.1:9/toy.hbm") -> ModelSpec:
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


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/toy-1234.pth"  # nothing listens there any more


# -- download() ---------------------------------------------------------------------------------


def test_success(server, tmp_path):
    dest = tmp_path / "toy.pth"
    assert download(server.url("/toy-1234.pth"), dest, PAYLOAD_SHA, progress=False) == PAYLOAD_SHA
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name("toy.pth.part").exists()


def test_present_file_is_not_downloaded_again(server, tmp_path):
    dest = tmp_path / "toy.pth"
    download(server.url("/toy-1234.pth"), dest, PAYLOAD_SHA, progress=False)
    download(server.url("/toy-1234.pth"), dest, PAYLOAD_SHA, progress=False)
    assert server.gets() == 1


def test_wrong_checksum_leaves_nothing_under_the_final_name(server, tmp_path):
    wrong = "0" * 64
    dest = tmp_path / "toy.pth"
    with pytest.raises(DownloadError) as info:
        download(server.url("/toy-1234.pth"), dest, wrong, progress=False)
    message = str(info.value)
    assert server.url("/toy-1234.pth") in message and wrong in message and PAYLOAD_SHA in message
    assert not dest.exists()
    assert not dest.with_name("toy.pth.part").exists()


def test_wrong_checksum_through_the_cache(server, tmp_path):
    cache = ArtifactCache(tmp_path / "home")
    spec = _spec(server.url("/toy-1234.pth"))
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch_artifact(spec, spec.artifact("weights"), cache, sha256="ab" * 32, progress=False)
    assert cache.entries() == []
    assert cache.find("toy", "weights") is None
    assert not cache.file_path("toy", "ab" * 32, "toy-1234.pth").exists()


def test_404_fails_at_once(server, tmp_path):
    url = server.url("/missing.pth")
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download(url, tmp_path / "missing.pth", PAYLOAD_SHA, progress=False)
    assert url in str(info.value)
    assert server.gets() == 1  # a 404 is not retried


def test_5xx_is_retried(server, tmp_path):
    server.state.fail_first = 2
    dest = tmp_path / "toy.pth"
    download(server.url("/toy-1234.pth"), dest, PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.gets() == 3


def test_connection_refused_fails_within_seconds(tmp_path):
    url = _refused_url()
    spec = _spec(url)
    started = time.monotonic()
    with pytest.raises(DownloadError) as info:
        fetch_artifact(spec, spec.artifact("weights"), ArtifactCache(tmp_path), progress=False)
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert elapsed < 10
    assert url in message
    assert "refused" in message
    assert "zoo fetch toy --weights FILE" in message


def test_dropped_connection_is_resumed_with_range(server, tmp_path):
    server.state.drops_left = 1
    dest = tmp_path / "toy.pth"

    assert download(server.url("/toy-1234.pth"), dest, PAYLOAD_SHA, progress=False) == PAYLOAD_SHA

    ranges = [r["range"] for r in server.state.requests]
    assert ranges == [None, f"bytes={server.state.drop_after}-"]
    assert dest.read_bytes() == PAYLOAD


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    dest = tmp_path / "toy.pth"
    half = len(PAYLOAD) // 3
    dest.with_name("toy.pth.part").write_bytes(PAYLOAD[:half])  # an interrupted earlier run

    download(server.url("/toy-1234.pth"), dest, PAYLOAD_SHA, progress=False)

    assert [r["range"] for r in server.state.requests] == [f"bytes={half}-"]
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == PAYLOAD_SHA


def test_repeated_drops_without_progress_give_up(server, tmp_path):
    server.state.drops_left = 10
    server.state.drop_after = 0  # headers, then nothing
    with pytest.raises(DownloadError, match="closed after 0 of"):
        download(server.url("/toy-1234.pth"), tmp_path / "toy.pth", PAYLOAD_SHA, retries=1, progress=False)
    assert server.gets() == 2


def test_server_ignoring_range_restarts(server, tmp_path):
    server.state.ignore_range = True
    dest = tmp_path / "toy.pth"
    dest.with_name("toy.pth.part").write_bytes(b"stale bytes that are not a prefix")

    download(server.url("/toy-1234.pth"), dest, PAYLOAD_SHA, progress=False)

    assert server.state.requests[0]["range"] is not None  # it asked to resume...
    assert dest.read_bytes() == PAYLOAD  # ...and started over when the server sent everything


def test_progress_off_a_terminal_prints_a_few_lines(server, tmp_path, capsys):
    download(server.url("/toy-1234.pth"), tmp_path / "toy.pth", PAYLOAD_SHA, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert 1 <= len(lines) <= 4
    assert lines[-1].startswith("toy.pth: 100%")


def test_concurrent_threads_download_once(server, tmp_path):
    server.state.delay = 0.02  # ~0.3 s per download, so the two overlap
    cache = ArtifactCache(tmp_path / "home")
    spec = _spec(server.url("/toy-1234.pth"))
    results, errors = [], []

    def fetch():
        try:
            results.append(fetch_artifact(spec, spec.artifact("weights"), cache, progress=False))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert len(results) == 2 and results[0].path == results[1].path
    assert results[0].path.read_bytes() == PAYLOAD
    assert server.gets() == 1
    assert [e.sha256 for e in cache.entries()] == [PAYLOAD_SHA]


def _download_in_child(url, dest, sha256, queue):
    try:
        queue.put(download(url, dest, sha256, progress=False))
    except Exception as exc:
        queue.put(f"error: {exc}")


def test_concurrent_processes_download_once(server, tmp_path):
    server.state.delay = 0.05  # ~0.8 s per download: longer than a spawned child takes to start
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    dest = tmp_path / "toy.pth"
    args = (server.url("/toy-1234.pth"), str(dest), PAYLOAD_SHA, queue)
    children = [context.Process(target=_download_in_child, args=args) for _ in range(2)]
    for child in children:
        child.start()
    outcomes = [queue.get(timeout=60) for _ in children]
    for child in children:
        child.join(10)

    assert outcomes == [PAYLOAD_SHA, PAYLOAD_SHA]
    assert dest.read_bytes() == PAYLOAD
    assert server.gets() == 1
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["toy.pth"]


# -- fetch_artifact / import_local ----------------------------------------------------------------


def test_fetch_records_a_manifest_and_reuses_it(server, tmp_path):
    cache = ArtifactCache(tmp_path / "home")
    spec = _spec(server.url("/toy-1234.pth"))

    cached = fetch_artifact(spec, spec.artifact("weights"), cache, progress=False)
    again = fetch_artifact(spec, spec.artifact("weights"), cache, progress=False)

    assert cached.path == tmp_path / "home" / "models" / "toy" / PAYLOAD_SHA / "toy-1234.pth"
    manifest = json.loads((cached.path.parent / "manifest.json").read_text())
    assert manifest["url"] == server.url("/toy-1234.pth")
    assert manifest["sha256"] == PAYLOAD_SHA and manifest["size"] == len(PAYLOAD)
    assert manifest["verified"] is True and manifest["official"] is True
    assert again == cached
    assert server.gets() == 1


def test_unverifiable_artifact_records_the_observed_hash(server, tmp_path):
    cache = ArtifactCache(tmp_path / "home")
    spec = _spec(server.url("/toy-1234.pth"), hbm_url=server.url("/toy.hbm"))

    cached = fetch_artifact(spec, spec.artifact("hbm"), cache, progress=False)
    again = fetch_artifact(spec, spec.artifact("hbm"), cache, progress=False)

    observed = hashlib.sha256(PAYLOAD[::-1]).hexdigest()
    assert cached.verified is False and cached.official is True
    assert cached.sha256 == observed and cached.path.read_bytes() == PAYLOAD[::-1]
    assert again.path == cached.path
    assert server.gets() == 1
    assert not list(cache.staging_dir("toy").glob("toy.hbm*[!k]"))  # nothing left in staging but locks


@pytest.mark.parametrize("matches", [True, False])
def test_published_hash_prefix_is_checked(server, tmp_path, matches):
    import dataclasses

    observed = hashlib.sha256(PAYLOAD[::-1]).hexdigest()
    prefix = observed[:8] if matches else ("0" if observed[0] != "0" else "1") + observed[1:8]
    cache = ArtifactCache(tmp_path / "home")
    spec = _spec(server.url("/toy-1234.pth"), hbm_url=server.url("/toy.hbm"))
    artifact = dataclasses.replace(spec.artifact("hbm"), sha256_prefix=prefix)
    if matches:
        cached = fetch_artifact(spec, artifact, cache, progress=False)
        assert cached.verified is True and cached.official is True and cached.sha256 == observed
    else:
        with pytest.raises(DownloadError, match=prefix):
            fetch_artifact(spec, artifact, cache, progress=False)
        assert cache.entries() == []
        assert not list(cache.staging_dir("toy").glob("toy.hbm*[!k]"))


def test_import_checks_a_published_hash_prefix(tmp_path):
    import dataclasses

    cache = ArtifactCache(tmp_path / "home")
    spec = _spec("http://127.0.0.1:9/toy-1234.pth")
    local = tmp_path / "toy.hbm"
    local.write_bytes(PAYLOAD[::-1])
    prefix = hashlib.sha256(PAYLOAD[::-1]).hexdigest()[:8]
    artifact = dataclasses.replace(spec.artifact("hbm"), sha256_prefix=prefix)
    assert import_local(spec, artifact, cache, local)[1] is True
    other = dataclasses.replace(artifact, sha256_prefix="f" * 8 if prefix != "f" * 8 else "e" * 8)
    assert import_local(spec, other, ArtifactCache(tmp_path / "home2"), local)[1] is False


def test_url_and_sha_override_is_honoured_and_not_official(server, tmp_path):
    other = b"fine-tuned weights" * 1000
    server.state.files["/mine.pth"] = other
    cache = ArtifactCache(tmp_path / "home")
    spec = _spec("http://127.0.0.1:9/never-used.pth")

    cached = fetch_artifact(
        spec, spec.artifact("weights"), cache,
        url=server.url("/mine.pth"), sha256=hashlib.sha256(other).hexdigest().upper(), progress=False,
    )

    assert cached.path.read_bytes() == other
    assert cached.verified is True and cached.official is False
    assert cache.find("toy", "weights") == cached


def test_override_url_with_the_official_hash_is_official(server, tmp_path):
    spec = _spec("http://127.0.0.1:9/unreachable.pth")
    cached = fetch_artifact(
        spec, spec.artifact("weights"), ArtifactCache(tmp_path), url=server.url("/toy-1234.pth"), progress=False
    )
    assert cached.official is True


def test_import_official_file(tmp_path):
    source = tmp_path / "download" / "whatever.pth"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    cache = ArtifactCache(tmp_path / "home")
    spec = _spec("http://127.0.0.1:9/toy-1234.pth")

    cached, official = import_local(spec, spec.artifact("weights"), cache, source)

    assert official is True and cached.official is True and cached.verified is True
    assert cached.path.name == "toy-1234.pth"  # the published name, whatever the user called it
    assert cached.path.read_bytes() == PAYLOAD
    assert source.exists()  # copied, not moved


def test_import_custom_weights_is_never_official(tmp_path):
    np = pytest.importorskip("numpy")
    source = tmp_path / "finetuned.npz"
    np.savez(source, **{"fc.weight": np.ones((2, 2), np.float32)})
    cache = ArtifactCache(tmp_path / "home")
    spec = _spec("http://127.0.0.1:9/toy-1234.pth")

    cached, official = import_local(spec, spec.artifact("weights"), cache, source)

    assert official is False and cached.official is False and cached.verified is False
    assert cached.path.name == "finetuned.npz"
    assert cache.find("toy", "weights") == cached


def test_import_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    source = tmp_path / "notes.pth"
    source.write_text("not weights")
    cache = ArtifactCache(tmp_path / "home")
    spec = _spec("http://127.0.0.1:9/toy-1234.pth")

    with pytest.raises(CheckpointError):
        import_local(spec, spec.artifact("weights"), cache, source)
    assert cache.entries() == []


# -- zoo fetch ------------------------------------------------------------------------------------


def _invoke(command, args, spec, tmp_path, config=None):
    from click.testing import CliRunner

    from modelzoo.core.config import Config
    from modelzoo.session import Session

    session = Session()
    session.__dict__["registry"] = SimpleNamespace(get_model=lambda name: spec)
    session.__dict__["config"] = config or Config(cache_dir=str(tmp_path / "home"))
    session.__dict__["cache"] = ArtifactCache(tmp_path / "home")
    return CliRunner().invoke(command, args, obj=session)


def test_zoo_fetch_json(server, tmp_path):
    from modelzoo.commands.fetch import fetch

    spec = _spec(server.url("/toy-1234.pth"))
    first = _invoke(fetch, ["toy", "--json"], spec, tmp_path)
    second = _invoke(fetch, ["toy", "--json"], spec, tmp_path)

    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert data["status"] == "downloaded" and data["sha256"] == PAYLOAD_SHA and data["official"] is True
    assert json.loads(second.stdout)["status"] == "cached"
    assert server.gets() == 1


def test_zoo_fetch_honours_zoo_yaml_override(server, tmp_path):
    from modelzoo.commands.fetch import fetch
    from modelzoo.core.config import parse_config

    other = b"custom" * 100
    server.state.files["/custom.pth"] = other
    config = parse_config(
        f"models:\n  toy:\n    weights:\n      url: {server.url('/custom.pth')}\n"
        f"      sha256: {hashlib.sha256(other).hexdigest()}\n",
        tmp_path / "zoo.yaml",
    )
    result = _invoke(fetch, ["toy", "--json"], _spec("http://127.0.0.1:9/x.pth"), tmp_path, config=config)

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["url"] == server.url("/custom.pth") and data["official"] is False and data["verified"] is True


def test_zoo_fetch_hbm_says_it_could_not_verify(server, tmp_path):
    from modelzoo.commands.fetch import fetch

    spec = _spec(server.url("/toy-1234.pth"), hbm_url=server.url("/toy.hbm"))
    result = _invoke(fetch, ["toy", "--hbm"], spec, tmp_path)

    assert result.exit_code == 0, result.output
    observed = hashlib.sha256(PAYLOAD[::-1]).hexdigest()
    assert "could not be verified" in result.stderr and observed in result.stderr
    assert "sha256 not verified" in result.stdout


def test_zoo_fetch_local_custom_weights_gives_a_notice(tmp_path):
    np = pytest.importorskip("numpy")
    from modelzoo.commands.fetch import fetch

    source = tmp_path / "mine.npz"
    np.savez(source, w=np.zeros(3, np.float32))
    result = _invoke(fetch, ["toy", "--weights", str(source)], _spec("http://127.0.0.1:9/toy-1234.pth"), tmp_path)

    assert result.exit_code == 0, result.output
    assert "not the official toy weights" in result.stderr
    assert "custom" in result.stdout and "official," not in result.stdout


def test_zoo_fetch_without_network_names_the_way_out(tmp_path):
    from modelzoo.commands.fetch import fetch

    url = _refused_url()
    result = _invoke(fetch, ["toy"], _spec(url), tmp_path)

    assert result.exit_code != 0
    assert isinstance(result.exception, DownloadError)
    assert url in str(result.exception) and "zoo fetch toy --weights FILE" in str(result.exception)


def test_progress_on_a_terminal_redraws_one_line():
    import io

    from modelzoo.core.download import _Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    progress = _Progress("toy.pth", True, stream)
    for done in range(0, 1001, 10):
        progress.update(done, 1000)
    progress.done()

    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert "toy.pth 100% 0.0/0.0 MB" in text.split("\r")[-1]
    assert text.count("\r") < 10  # throttled, not one redraw per chunk
