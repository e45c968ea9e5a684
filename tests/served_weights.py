"""A random-weight MC3-18 checkpoint (no torch needed) served by the loopback `server` fixture as if it
were the published file, or as a zoo.yaml mirror; for the cache, lock and signal tests."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path

import numpy as np

URL_PATH = "/mc3_18-test.npz"


def mc3_checkpoint_bytes(seed: int = 0) -> bytes:
    """An .npz state dict in torchvision's MC3-18 key layout (~47 MB)."""
    from modelzoo.models.video_resnet.architecture import expected_keys

    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in expected_keys("mc3_18").items():
        values = rng.standard_normal(shape, dtype=np.float32) * 0.05
        state[key] = np.abs(values) + 1.0 if key.endswith("running_var") else values
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def serve(server, data: bytes) -> str:
    """Put `data` on the server; returns its URL."""
    server.state.files[URL_PATH] = data
    return server.url(URL_PATH)


def gets(server) -> int:
    """Requests for the checkpoint (not counting anything else the server was asked)."""
    return sum(1 for r in server.state.requests if r["path"] == URL_PATH)


def make_official(monkeypatch, url: str, data: bytes) -> None:
    """Make `data` at `url` MC3-18's published weights, full sha256 and size, for in-process commands."""
    import modelzoo.models.mc3_18 as plugin
    from modelzoo.plugin import Artifact

    weights = Artifact("weights", url, sha256=sha256(data), size=len(data), format="pytorch")
    monkeypatch.setattr(plugin, "SPEC", dataclasses.replace(plugin.SPEC, artifacts=(weights,)))


def write_mirror_config(folder: Path, url: str, data: bytes) -> Path:
    """A zoo.yaml naming `url` with its sha256 as MC3-18's weights (verified, not official)."""
    path = folder / "zoo.yaml"
    path.write_text(f"models:\n  mc3_18:\n    weights:\n      url: {url}\n      sha256: {sha256(data)}\n")
    return path


def write_clip(path: Path) -> Path:
    """A preprocessed MC3-18 input (one clip): runs need no video decoding."""
    np.save(path, np.zeros((3, 16, 112, 112), np.float32))
    return path
