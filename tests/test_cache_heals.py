"""A cache that heals: a damaged download is noticed at lookup, set aside and fetched again once; a damaged
import names `zoo cache clean`; a damaged converted ONNX is converted again; `zoo cache list` shows partial files."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from served_weights import gets, make_official, mc3_checkpoint_bytes, serve, sha256, write_clip
from zoo_cli import invoke

from modelzoo.core.artifacts.cache import ArtifactCache

pytestmark = pytest.mark.usefixtures("in_tmp_dir")


@pytest.fixture(scope="module")
def checkpoint() -> bytes:
    return mc3_checkpoint_bytes()


@pytest.fixture
def official(server, monkeypatch, checkpoint):
    """MC3-18's published weights are `checkpoint`, served on 127.0.0.1."""
    make_official(monkeypatch, serve(server, checkpoint), checkpoint)
    return server


def _cached_weights(checkpoint):
    entry = ArtifactCache(os.environ["ZOO_HOME"]).find_by_sha("mc3_18", sha256(checkpoint))
    assert entry is not None
    return entry


def test_a_truncated_official_checkpoint_is_fetched_again_and_the_run_succeeds(capsys, tmp_path, official, checkpoint):
    assert invoke(capsys, "fetch", "mc3_18").code == 0
    assert gets(official) == 1
    cached = _cached_weights(checkpoint).path
    with open(cached, "r+b") as handle:
        handle.truncate(len(checkpoint) // 2)  # a disk that filled up, a copy cut short

    result = invoke(capsys, "run", "mc3_18", write_clip(tmp_path / "clip.npy"), "--json")

    assert result.code == 0, result.err
    assert json.loads(result.out)["predictions"]
    notice = next(line for line in result.err.splitlines() if "damaged" in line)
    assert cached.name in notice and "fetching it again" in notice and "bytes on disk" in notice
    assert gets(official) == 2  # fetched again, once
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == sha256(checkpoint)
    assert not list(cached.parent.glob("*.damaged"))  # the good copy is back: nothing set aside remains
    again = invoke(capsys, "run", "mc3_18", tmp_path / "clip.npy")
    assert again.code == 0 and "damaged" not in again.err and gets(official) == 2


def test_same_size_but_changed_content_is_caught_by_its_sha256(capsys, tmp_path, official, checkpoint):
    assert invoke(capsys, "fetch", "mc3_18").code == 0
    cached = _cached_weights(checkpoint).path
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF  # bit rot: same size, new mtime
    cached.write_bytes(bytes(data))

    result = invoke(capsys, "fetch", "mc3_18")

    assert result.code == 0, result.err
    assert "changed since it was cached" in result.err and gets(official) == 2
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == sha256(checkpoint)


def test_a_change_that_hides_from_size_and_mtime_is_caught_when_it_fails_to_load(
    capsys, tmp_path, official, checkpoint
):
    assert invoke(capsys, "fetch", "mc3_18").code == 0
    cached = _cached_weights(checkpoint).path
    stat = cached.stat()
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))
    os.utime(cached, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as if nothing had happened

    result = invoke(capsys, "run", "mc3_18", write_clip(tmp_path / "clip.npy"))

    assert result.code == 0, result.err
    assert "no longer matches its sha256" in result.err and gets(official) == 2
    assert not list(cached.parent.glob("*.damaged"))


def test_an_unchanged_file_with_a_new_mtime_is_rehashed_once_and_kept(capsys, official, checkpoint):
    assert invoke(capsys, "fetch", "mc3_18").code == 0
    entry = _cached_weights(checkpoint)
    os.utime(entry.path, ns=(entry.mtime_ns + 10**9, entry.mtime_ns + 10**9))  # touched, e.g. by a backup

    result = invoke(capsys, "fetch", "mc3_18", "--json")

    assert result.code == 0 and json.loads(result.out)["status"] == "cached" and gets(official) == 1
    assert _cached_weights(checkpoint).mtime_ns == entry.mtime_ns + 10**9  # recorded: next lookup is a stat again


def test_damaged_imported_weights_name_zoo_cache_clean(capsys, tmp_path, official, checkpoint):
    mine = tmp_path / "mine.npz"
    mine.write_bytes(mc3_checkpoint_bytes(seed=1))
    assert invoke(capsys, "fetch", "mc3_18", "--weights", mine).code == 0
    cached = _cached_weights(mine.read_bytes()).path
    with open(cached, "r+b") as handle:
        handle.truncate(1000)

    result = invoke(capsys, "run", "mc3_18", write_clip(tmp_path / "clip.npy"))

    result.assert_user_error("damaged", str(mine), "zoo cache clean mc3_18")
    assert gets(official) == 0  # the user's own file: never replaced by a download


def test_a_damaged_converted_onnx_is_converted_again(capsys, tmp_path, official, checkpoint):
    clip = write_clip(tmp_path / "clip.npy")
    assert invoke(capsys, "run", "mc3_18", clip).code == 0
    onnx_file = next(e.path for e in ArtifactCache(os.environ["ZOO_HOME"]).entries() if e.source_sha256)
    with open(onnx_file, "r+b") as handle:
        handle.truncate(100)

    result = invoke(capsys, "run", "mc3_18", clip)

    assert result.code == 0, result.err
    assert "damaged" in result.err and "converting" in result.err
    assert onnx_file.stat().st_size > 1000


def test_cache_list_shows_a_partial_download_instead_of_empty(capsys):
    part = ArtifactCache(os.environ["ZOO_HOME"]).model_dir("r3d_18") / ("a" * 64) / "r3d_18-b3b3357e.pth.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 65_000)

    text = invoke(capsys, "cache", "list")
    data = json.loads(invoke(capsys, "cache", "list", "--json").out)

    assert text.code == 0 and "empty" not in text.out
    row = next(line for line in text.out.splitlines() if part.name in line)
    assert "partial download" in row and "r3d_18" in row
    assert data == [
        {
            "path": str(part),
            "model": "r3d_18",
            "filename": part.name,
            "size": 65_000,
            "status": "partial download (resumed by the next fetch)",
        }
    ]
