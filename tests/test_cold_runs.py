"""A cold cache under pressure: a bad input costs no download, two processes download and convert once,
and Ctrl-C or SIGTERM leave nothing but a resumable `.part`, which the next run resumes.

The weights come from a loopback server that counts requests (a zoo.yaml mirror, so real processes see it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from served_weights import URL_PATH, gets, mc3_checkpoint_bytes, serve, write_clip, write_mirror_config
from videos import write_video
from zoo_cli import invoke

pytestmark = pytest.mark.usefixtures("in_tmp_dir")
posix_signals = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture(scope="module")
def checkpoint() -> bytes:
    return mc3_checkpoint_bytes()


@pytest.fixture
def mirror(server, tmp_path, checkpoint):
    """MC3-18's weights come from the loopback server, named with their sha256 in ./zoo.yaml."""
    write_mirror_config(tmp_path, serve(server, checkpoint), checkpoint)
    return server


def _home() -> Path:
    return Path(os.environ["ZOO_HOME"])


def _files(root: Path) -> list:
    """Every file under `root` but the cache's lock files (kept on purpose: they hold no data)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def _zoo_process(*args, cwd, stderr=subprocess.PIPE, code=None):
    command = [sys.executable, "-c", code, *map(str, args)] if code else [sys.executable, "-m", "modelzoo", *args]
    return subprocess.Popen(
        [str(c) for c in command], cwd=cwd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=dict(os.environ)
    )


# -- a bad input costs nothing ---------------------------------------------------------------------


def _text_named_mp4(folder: Path) -> Path:
    (folder / "notes.mp4").write_text("these are not frames\n" * 50)
    return folder / "notes.mp4"


def _cut_video(folder: Path) -> Path:
    good = write_video(folder / "good.mp4", 30, 25, codec="mp4v")
    (folder / "cut.mp4").write_bytes(good.read_bytes()[:300])
    return folder / "cut.mp4"


def _no_frames(folder: Path) -> Path:
    np.save(folder / "empty.npy", np.zeros((5, 0, 10, 3), np.uint8))
    return folder / "empty.npy"


def _still_image(folder: Path) -> Path:
    import cv2

    cv2.imwrite(str(folder / "photo.png"), np.zeros((32, 32, 3), np.uint8))
    return folder / "photo.png"


@pytest.mark.parametrize("make", [_text_named_mp4, _cut_video, _no_frames, _still_image])
def test_a_bad_input_is_refused_before_any_download(capsys, tmp_path, mirror, make):
    bad = make(tmp_path)

    result = invoke(capsys, "run", "mc3_18", bad)

    result.assert_user_error(bad.name)
    assert gets(mirror) == 0 and mirror.gets() == 0  # not one request
    assert not list(_home().rglob("*.onnx"))  # nor a conversion


def test_a_many_input_run_of_bad_inputs_makes_no_request(capsys, tmp_path, mirror):
    """As a single run does: the inputs are checked before the weights are fetched or converted."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    bad = [make(folder) for make in (_text_named_mp4, _cut_video, _no_frames, _still_image)]

    result = invoke(capsys, "run", "mc3_18", *bad, "--json")

    assert result.code == 1, result.err  # each input has its failed record
    records = [json.loads(line) for line in result.out.splitlines()]
    assert [r["input"] for r in records] == [str(p) for p in bad] and all(r["error"] for r in records)
    assert gets(mirror) == 0 and mirror.gets() == 0  # not one request
    assert not list(_home().rglob("*.onnx"))  # nor a conversion


# -- two cold processes ----------------------------------------------------------------------------


def test_two_concurrent_cold_runs_download_once_and_convert_once(tmp_path, mirror):
    mirror.state.delay = 0.002  # ~1.5 s of download: the second process starts while the first downloads
    clip = write_clip(tmp_path / "clip.npy")
    first = _zoo_process("run", "mc3_18", clip, "--json", cwd=tmp_path)
    second = _zoo_process("run", "mc3_18", clip, "--json", cwd=tmp_path)
    outputs = [process.communicate(timeout=240) for process in (first, second)]

    assert [p.returncode for p in (first, second)] == [0, 0], [err for _out, err in outputs]
    errs = [err for _out, err in outputs]
    assert gets(mirror) == 1  # one download (the other process waited and reused it)
    conversions = [line for err in errs for line in err.splitlines() if line.startswith("converting ")]
    assert len(conversions) == 1, errs  # one conversion: the other process waited for it and reused it
    predictions = [json.loads(out)["predictions"] for out, _err in outputs]
    assert predictions[0] == predictions[1]
    converted = [p for p in _home().rglob("*.onnx")]
    assert len(converted) == 1


# -- interruptions ---------------------------------------------------------------------------------


def test_ctrl_c_during_a_download_says_what_it_kept(capsys, tmp_path, mirror, monkeypatch):
    from modelzoo.core.artifacts import download as download_module

    def interrupt(self, done, total):
        raise KeyboardInterrupt  # Ctrl-C once the first bytes are on disk

    with monkeypatch.context() as patched:
        patched.setattr(download_module._Progress, "update", interrupt)
        result = invoke(capsys, "run", "mc3_18", write_clip(tmp_path / "clip.npy"))

    assert result.code == 130
    assert len(result.error_lines) == 1 and "nothing was changed" not in result.err
    line = result.error_lines[0]
    parts = list(_home().rglob("*.part"))
    assert len(parts) == 1 and str(parts[0]) in line
    assert line.startswith("error: interrupted; kept the partial download") and "resumes it" in line
    assert _files(_home()) == [str(parts[0].relative_to(_home()))]  # and nothing else
    kept = parts[0].stat().st_size

    resumed = invoke(capsys, "run", "mc3_18", tmp_path / "clip.npy")
    assert resumed.code == 0, resumed.err
    assert mirror.state.requests[-1]["range"] == f"bytes={kept}-"


def _terminate_when(child, ready, seconds: float, never: str) -> str:
    """SIGTERM `child` once `ready()` holds (failing with `never` and its stderr if it ends or `seconds` pass
    first); its stderr. The child never outlives the test."""
    try:
        deadline = time.monotonic() + seconds
        while not ready():
            if child.poll() is not None or time.monotonic() >= deadline:
                child.kill()
                raise AssertionError(f"{never}: {child.communicate()[1]}")
            time.sleep(0.05)
        child.send_signal(signal.SIGTERM)
        return child.communicate(timeout=30)[1]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@posix_signals
def test_sigterm_during_a_download_keeps_only_the_part_and_the_next_run_resumes_it(capsys, tmp_path, mirror):
    mirror.state.stall_after = 1 << 20  # a megabyte, then the server goes quiet
    clip = write_clip(tmp_path / "clip.npy")
    child = _zoo_process("run", "mc3_18", clip, cwd=tmp_path)
    err = _terminate_when(
        child,
        lambda: any(p.stat().st_size >= 1 << 20 for p in _home().rglob("*.part")),
        60,
        "the download never started",
    )

    assert child.returncode == 143, err
    (part,) = _home().rglob("*.part")
    assert _files(_home()) == [str(part.relative_to(_home()))]  # no temp file, no manifest, nothing else
    assert err.strip().splitlines()[-1].startswith("error: terminated; kept the partial download")
    assert str(part) in err

    mirror.state.stall_after = None
    resumed = invoke(capsys, "run", "mc3_18", clip)
    assert resumed.code == 0, resumed.err
    downloads = [r for r in mirror.state.requests if r["path"] == URL_PATH]
    assert downloads[-1]["range"] == f"bytes={1 << 20}-"  # resumed, not started over
    assert not list(_home().rglob("*.part"))


# Runs `zoo run` with the conversion's write slowed down: it writes half, says so, then waits for the signal.
_SLOW_CONVERSION = """
import sys, time
from pathlib import Path
from modelzoo.core.artifacts.cache import ArtifactCache

marker = Path(sys.argv[1])
add_derived = ArtifactCache.add_derived

def slow_add_derived(self, model, source_sha256, filename, write_fn):
    def slow(handle):
        handle.write(b"half of an onnx file")
        handle.flush()
        marker.write_text("writing")
        time.sleep(60)
    return add_derived(self, model, source_sha256, filename, slow)

ArtifactCache.add_derived = slow_add_derived
from modelzoo.cli import main
main(sys.argv[2:])
"""


@posix_signals
def test_sigterm_during_a_conversion_leaves_no_file_and_the_next_run_converts(capsys, tmp_path, mirror):
    clip = write_clip(tmp_path / "clip.npy")
    marker = tmp_path / "writing"
    child = _zoo_process(marker, "run", "mc3_18", clip, cwd=tmp_path, code=_SLOW_CONVERSION)

    def writing() -> bool:
        if not marker.exists():
            return False
        assert list(_home().rglob(".mc3_18-*.onnx.*.tmp"))  # the conversion's write is in progress
        return True

    err = _terminate_when(child, writing, 120, "the conversion never started writing")

    assert child.returncode == 143, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: terminated; removed the unfinished") and ".onnx" in last
    assert not list(_home().rglob("*.tmp")) and not list(_home().rglob("*.onnx"))
    assert all("derived" not in name for name in _files(_home()))  # only the complete, cached download remains

    again = invoke(capsys, "run", "mc3_18", clip)
    assert again.code == 0, again.err
    assert "converting" in again.err and gets(mirror) == 1  # converted now; the weights were not fetched again
