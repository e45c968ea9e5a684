"""download(): verification, failures, resume with Range, locking, progress and interruption, against a local HTTP server."""

from __future__ import annotations

import hashlib
import multiprocessing
import signal
import subprocess
import sys
import threading
import time

import pytest
from http_server import PAYLOAD, PAYLOAD_SHA, refused_url, toy_spec

from modelzoo.core.artifacts.artifact_fetch import fetch_artifact
from modelzoo.core.artifacts.cache import ArtifactCache
from modelzoo.core.artifacts.download import download
from modelzoo.core.errors import DownloadError

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
    spec = toy_spec(server.url("/toy-1234.pth"))
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
    url = refused_url()
    spec = toy_spec(url)
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


def test_progress_off_a_terminal_without_a_size_still_shows_the_bytes(server, tmp_path, capsys, monkeypatch):
    """No Content-Length (no quarters to print): a log used to show nothing at all for the whole download."""
    from modelzoo.core.artifacts.download import _Progress

    server.state.no_length = True
    server.state.delay = 0.01  # the body arrives in several reads
    monkeypatch.setattr(_Progress, "INTERVAL", 0.0)
    download(server.url("/toy-1234.pth"), tmp_path / "toy.pth", PAYLOAD_SHA, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 2 and all(line.startswith("toy.pth: ") for line in lines)
    assert "so far" in lines[0]
    assert lines[-1] == f"toy.pth: {len(PAYLOAD) / 1e6:.1f} MB received"


def test_progress_without_a_size_is_throttled():
    import io

    from modelzoo.core.artifacts.download import _Progress

    stream = io.StringIO()
    progress = _Progress("toy.pth", True, stream)
    for done in range(0, 1001, 10):
        progress.update(done, None)
    progress.done()
    assert stream.getvalue().count("\n") == 2  # the first line, then the end: not one per chunk


def test_concurrent_threads_download_once(server, tmp_path):
    server.state.delay = 0.02  # ~0.3 s per download, so the two overlap
    cache = ArtifactCache(tmp_path / "home")
    spec = toy_spec(server.url("/toy-1234.pth"))
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


def test_progress_on_a_terminal_redraws_one_line():
    import io

    from modelzoo.core.artifacts.download import _Progress

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


# -- interruption -------------------------------------------------------------------------------


def test_interrupted_download_keeps_a_resumable_part_file(server, tmp_path, monkeypatch):
    from modelzoo.core.artifacts import download as download_module

    def interrupt(self, done, total):
        raise KeyboardInterrupt  # Ctrl-C once the first bytes are written

    monkeypatch.setattr(download_module._Progress, "update", interrupt)
    dest = tmp_path / "toy.pth"
    with pytest.raises(KeyboardInterrupt):
        download(server.url("/toy-1234.pth"), dest, PAYLOAD_SHA, progress=False)
    monkeypatch.undo()

    kept = dest.with_name("toy.pth.part").read_bytes()
    assert 0 < len(kept) < len(PAYLOAD) and PAYLOAD.startswith(kept)
    assert not dest.exists()
    download(server.url("/toy-1234.pth"), dest, PAYLOAD_SHA, progress=False)  # the lock was released
    assert server.state.requests[-1]["range"] == f"bytes={len(kept)}-"
    assert dest.read_bytes() == PAYLOAD


_CHILD = """
import signal, sys, threading
from pathlib import Path
from modelzoo.core.artifacts.download import download
from modelzoo.core.atomic import atomic_write, remove_temporary_files

signal.signal(signal.SIGTERM, lambda *a: (remove_temporary_files(), sys.exit(143)))
url, folder = sys.argv[1], Path(sys.argv[2])
writing = threading.Event()

def write():
    with atomic_write(folder / "out.bin") as handle:
        handle.write(b"half of a file")
        writing.set()
        threading.Event().wait()  # a slow writer, still busy when the signal comes

threading.Thread(target=write, daemon=True).start()
writing.wait()
download(url, folder / "toy.pth", progress=False)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or sys.platform == "win32", reason="POSIX signals")
def test_sigterm_removes_temp_files_and_keeps_the_part_file(server, tmp_path):
    server.state.stall_after = 300_000  # more than one read, then the server goes quiet
    folder = tmp_path / "out"
    folder.mkdir()
    part = folder / "toy.pth.part"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, server.url("/toy-1234.pth"), str(folder)])
    try:
        deadline = time.monotonic() + 30
        while not (part.is_file() and part.stat().st_size == server.state.stall_after):
            assert child.poll() is None and time.monotonic() < deadline, "the child never got the first bytes"
            time.sleep(0.05)
        assert any(p.name.startswith(".out.bin.") for p in folder.iterdir())  # the write is in progress
        child.send_signal(signal.SIGTERM)
        assert child.wait(20) == 143
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) == ["toy.pth.part"]
    assert part.read_bytes() == PAYLOAD[: server.state.stall_after]

    server.state.stall_after = None
    download(server.url("/toy-1234.pth"), folder / "toy.pth", PAYLOAD_SHA, progress=False)
    assert server.state.requests[-1]["range"] == "bytes=300000-"
    assert (folder / "toy.pth").read_bytes() == PAYLOAD
