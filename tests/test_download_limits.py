"""What download() refuses: too many bytes, unsafe redirects, file:// URLs nobody wrote, other schemes."""

from __future__ import annotations

import time

import pytest
from http_server import PAYLOAD, PAYLOAD_SHA

from modelzoo.core.artifacts import download as download_module
from modelzoo.core.artifacts.download import download
from modelzoo.core.errors import DownloadError


def _left_in(folder) -> list:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


# -- size ---------------------------------------------------------------------------------------


def test_announced_size_over_the_expected_one_is_refused_before_the_body(server, tmp_path):
    url = server.url("/toy-1234.pth")
    with pytest.raises(DownloadError) as info:
        download(url, tmp_path / "toy.pth", PAYLOAD_SHA, progress=False, max_bytes=1000)
    message = str(info.value)
    assert url in message and f"is {len(PAYLOAD)} bytes" in message and "1000 bytes expected" in message
    assert "zoo fetch" in message  # says what to do next
    assert _left_in(tmp_path) == []
    assert server.gets() == 1  # refused, not retried


def test_body_without_length_is_cut_at_the_expected_size(server, tmp_path):
    server.state.no_length = True  # nothing announced: only the streamed bytes can tell
    url = server.url("/toy-1234.pth")
    with pytest.raises(DownloadError, match="sent more, more than the 1000 bytes expected") as info:
        download(url, tmp_path / "toy.pth", PAYLOAD_SHA, progress=False, max_bytes=1000)
    assert url in str(info.value)
    assert _left_in(tmp_path) == []
    assert server.gets() == 1


def test_exact_expected_size_downloads(server, tmp_path):
    server.state.no_length = True
    dest = tmp_path / "toy.pth"
    download(server.url("/toy-1234.pth"), dest, PAYLOAD_SHA, progress=False, max_bytes=len(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD


def test_resumed_download_counts_the_bytes_already_on_disk(server, tmp_path):
    dest = tmp_path / "toy.pth"
    dest.with_name("toy.pth.part").write_bytes(PAYLOAD[:1000])
    with pytest.raises(DownloadError, match=f"is {len(PAYLOAD)} bytes, more than the 2000 bytes expected"):
        download(server.url("/toy-1234.pth"), dest, PAYLOAD_SHA, progress=False, max_bytes=2000)
    assert _left_in(tmp_path) == []


def test_endless_response_stops_at_the_default_limit(server, tmp_path, monkeypatch):
    monkeypatch.setattr(download_module, "DEFAULT_MAX_BYTES", 3 << 20)  # 4 GiB in real use
    server.state.endless.add("/endless.pth")
    url = server.url("/endless.pth")
    started = time.monotonic()
    with pytest.raises(DownloadError, match="zoo's limit for a file of unknown size") as info:
        download(url, tmp_path / "endless.pth", progress=False)
    assert time.monotonic() - started < 10
    assert url in str(info.value)
    assert _left_in(tmp_path) == []  # nothing of it stays on disk


def test_a_trickling_body_uses_up_the_retries_instead_of_taking_forever(server, tmp_path, monkeypatch):
    """Bytes now and then, each within the read timeout, kept an attempt alive forever, and as each retry
    brought a few bytes ("progress"), the retries never ran out. Here the rate floor is raised so that
    the test server's pace counts as a trickle."""
    monkeypatch.setattr(download_module, "SLOW_WINDOW", 0.2)
    monkeypatch.setattr(download_module, "MIN_RATE", 1 << 40)
    server.state.delay = 0.05  # 64 KiB per 50 ms: ~0.8 s for the payload, over the window
    url = server.url("/toy-1234.pth")
    started = time.monotonic()
    with pytest.raises(DownloadError, match="slowed to") as info:
        download(url, tmp_path / "toy.pth", PAYLOAD_SHA, progress=False, retries=1)
    assert time.monotonic() - started < 10
    assert url in str(info.value)
    # 1 + 1 retry, about 0.25 s each: well short of the ~0.8 s the whole payload takes at this pace
    assert len([r for r in server.state.requests if r["path"] == "/toy-1234.pth"]) == 2
    assert _left_in(tmp_path) == ["toy.pth.part"]  # what did arrive is kept for the next run to resume


def test_a_slow_but_steady_body_downloads(server, tmp_path, monkeypatch):
    monkeypatch.setattr(download_module, "SLOW_WINDOW", 0.2)
    server.state.delay = 0.05
    assert download(server.url("/toy-1234.pth"), tmp_path / "toy.pth", PAYLOAD_SHA, progress=False) == PAYLOAD_SHA
    assert (tmp_path / "toy.pth").read_bytes() == PAYLOAD


# -- redirects ----------------------------------------------------------------------------------


def test_https_to_https_redirect_is_followed(https_server, tmp_path):
    https_server.state.redirects["/moved.pth"] = https_server.url("/toy-1234.pth")
    dest = tmp_path / "toy.pth"
    download(https_server.url("/moved.pth"), dest, PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_https_to_http_redirect_is_refused(https_server, server, tmp_path):
    target = server.url("/toy-1234.pth")
    https_server.state.redirects["/moved.pth"] = target
    url = https_server.url("/moved.pth")
    with pytest.raises(DownloadError) as info:
        download(url, tmp_path / "toy.pth", PAYLOAD_SHA, progress=False)
    message = str(info.value)
    assert "refused the redirect" in message and url in message and target in message
    assert server.gets() == 0  # no plain-http request was made
    assert https_server.gets() == 1  # and the refusal was not retried
    assert _left_in(tmp_path) == []


def test_http_mirror_may_redirect_on_the_same_host(server, tmp_path):
    server.state.redirects["/mirror/toy.pth"] = "/toy-1234.pth"
    dest = tmp_path / "toy.pth"
    download(server.url("/mirror/toy.pth"), dest, PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [r["path"] for r in server.state.requests] == ["/mirror/toy.pth", "/toy-1234.pth"]


def test_http_redirect_to_another_host_is_refused(server, tmp_path):
    elsewhere = server.url("/toy-1234.pth").replace("127.0.0.1", "localhost")
    server.state.redirects["/mirror/toy.pth"] = elsewhere
    with pytest.raises(DownloadError, match="refused the redirect") as info:
        download(server.url("/mirror/toy.pth"), tmp_path / "toy.pth", PAYLOAD_SHA, progress=False)
    assert elsewhere in str(info.value)
    assert server.gets() == 1  # localhost was never asked
    assert _left_in(tmp_path) == []


def test_redirect_to_a_local_file_is_refused(server, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    server.state.redirects["/toy.pth"] = secret.as_uri()
    dest = tmp_path / "out" / "toy.pth"
    with pytest.raises(DownloadError, match="refused the redirect") as info:
        download(server.url("/toy.pth"), dest, progress=False, allow_file=True)
    assert secret.as_uri() in str(info.value)
    assert not dest.exists() and not dest.with_name("toy.pth.part").exists()


# -- file:// and other schemes ------------------------------------------------------------------


def test_file_url_is_refused_unless_the_user_wrote_it(tmp_path):
    source = tmp_path / "weights.pth"
    source.write_bytes(PAYLOAD)
    dest = tmp_path / "cache" / "toy.pth"
    with pytest.raises(DownloadError) as info:
        download(source.as_uri(), dest, PAYLOAD_SHA, progress=False, hint="run `zoo fetch toy --weights FILE`")
    message = str(info.value)
    assert message.startswith(f"refusing {source.as_uri()}:")
    assert "zoo fetch toy --weights FILE" in message and "\n" not in message
    assert not dest.exists() and not dest.with_name("toy.pth.part").exists()


def test_file_url_from_the_user_is_copied_with_a_notice(tmp_path, capsys):
    source = tmp_path / "weights.pth"
    source.write_bytes(PAYLOAD)
    dest = tmp_path / "cache" / "toy.pth"
    assert download(source.as_uri(), dest, PAYLOAD_SHA, progress=False, allow_file=True) == PAYLOAD_SHA
    assert dest.read_bytes() == PAYLOAD
    assert f"{source.as_uri()} is a local file" in capsys.readouterr().err


def test_missing_file_url_fails_at_once(tmp_path):
    url = (tmp_path / "absent.pth").as_uri()
    started = time.monotonic()
    with pytest.raises(DownloadError, match="Check the path") as info:
        download(url, tmp_path / "toy.pth", progress=False, allow_file=True)
    assert time.monotonic() - started < 1  # no network-style retries with back-off
    assert url in str(info.value)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/toy.pth", "data:,hello", "toy.pth"])
def test_other_schemes_are_refused(url, tmp_path):
    with pytest.raises(DownloadError, match="zoo downloads only https:// and http:// URLs") as info:
        download(url, tmp_path / "toy.pth", progress=False, allow_file=True)
    assert url in str(info.value)
    assert _left_in(tmp_path) == []
