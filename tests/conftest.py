"""Shared fixtures. Torch is a test-only dependency: fixtures that need it skip when it is missing."""

from __future__ import annotations

import pytest

pytest_plugins = ["http_server"]  # the local HTTP server fixture, shared by the download tests


# --- Reference video ResNets (torch) -----------------------------------------------------------


@pytest.fixture(scope="session")
def reference_model():
    """Factory `make(arch="r3d_18", seed=0, num_classes=400)` -> eval-mode random-weight torch model.

    Models are cached for the session and shared between tests: do not modify them.
    """
    pytest.importorskip("torch")
    import reference_video_resnet

    cache: dict = {}

    def make(arch: str = "r3d_18", seed: int = 0, num_classes: int = 400):
        key = (arch, seed, num_classes)
        if key not in cache:
            cache[key] = reference_video_resnet.make_model(arch, seed=seed, num_classes=num_classes)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def reference_checkpoint(reference_model, tmp_path_factory):
    """Factory `path(arch="r3d_18", seed=0)` -> a torch.save'd state dict in the official key layout."""
    import reference_video_resnet

    folder = tmp_path_factory.mktemp("checkpoints")
    cache: dict = {}

    def path(arch: str = "r3d_18", seed: int = 0):
        key = (arch, seed)
        if key not in cache:
            target = folder / f"{arch}-seed{seed}.pth"
            reference_video_resnet.save_checkpoint(reference_model(arch, seed), target)
            cache[key] = target
        return cache[key]

    return path


@pytest.fixture(scope="session")
def r3d18_checkpoint(reference_checkpoint):
    """Path to a random-weight R3D-18 checkpoint (non-trivial BatchNorm statistics), as torchvision saves one."""
    return reference_checkpoint("r3d_18")


# --- Isolation -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _isolated_zoo_home(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's real cache or config: each gets a fresh $ZOO_HOME."""
    monkeypatch.setenv("ZOO_HOME", str(tmp_path_factory.mktemp("zoo_home")))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg_config")))
    monkeypatch.delenv("ZOO_CONFIG", raising=False)
    monkeypatch.delenv("ZOO_PLUGINS", raising=False)


@pytest.fixture
def in_tmp_dir(tmp_path, monkeypatch):
    """Run from the test's own folder, so relative outputs (MODEL.onnx, ./zoo.yaml) land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
