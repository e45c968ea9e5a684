"""Third-party plugins: real distributions with entry points, found, listed, run, and isolated when broken."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from fake_dist import write_distribution
from zoo_cli import zoo

from modelzoo.core.contract.hookspecs import HOOKSPEC_VERSION
from modelzoo.core.contract.registry import get_registry, reset_registry

LABELS = ["alpha", "beta", "gamma", "delta", "epsilon"]

# A complete third-party model plugin: a 4-frame 8x8 clip in, five classes out. It uses the
# core's video preprocessing and Top-k, as a real plugin would.
FAKE_PLUGIN = """
from pathlib import Path

from modelzoo import ModelSpec, TensorSpec, VideoPreprocessing, hookimpl

ZOO_HOOKSPEC_VERSION = {version}

SPEC = ModelSpec(
    name="{model}",
    task="video-classification",
    description="channel means to five logits (test plugin)",
    input=TensorSpec("clip", ("N", 3, 4, 8, 8), "float32", "NCTHW"),
    output=TensorSpec("logits", ("N", 5), "float32", "NC"),
    preprocessing=VideoPreprocessing(clip_len=4, target_fps=None, resize=(8, 8), crop=(8, 8)),
    labels_file=str(Path(__file__).with_name("labels.txt")),
    license="MIT",
)


@hookimpl
def zoo_register_models(register):
    register(SPEC)


@hookimpl
def zoo_preprocess(spec, source, clips):
    from modelzoo.core.tasks.video_classification import preprocess_video_classification

    return preprocess_video_classification(source, spec.preprocessing, clips)


@hookimpl
def zoo_postprocess(spec, logits, top_k):
    from modelzoo.core.tasks.classification import top_k_predictions

    return top_k_predictions(logits, spec.labels, top_k)
"""

# logits = channel means @ W; the means (2, 0.5, 0) of CLIP give logits (2, 0.5, 0, 2.5, 0).
W = np.array([[1, 0, 0, 1, 0], [0, 1, 0, 1, 0], [0, 0, 1, 0, -1]], np.float32)
CHANNEL_MEANS = np.array([2.0, 0.5, 0.0], np.float32)


def install_fake(
    site: Path,
    dist="fakezoo-plugin",
    package="fakezoo_plugin",
    entry="fake",
    model="fake",
    body=None,
    version=HOOKSPEC_VERSION,
    dist_version="0.1",
) -> None:
    source = textwrap.dedent(body) if body is not None else FAKE_PLUGIN.format(version=version, model=model)
    write_distribution(
        site,
        dist,
        dist_version,
        {entry: package},
        {f"{package}/__init__.py": source, f"{package}/labels.txt": "\n".join(LABELS) + "\n"},
    )


def tiny_onnx(path: Path) -> Path:
    """Averages the clip per channel, then a 3x5 matrix: a real ONNX model small enough to write by hand."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["clip"], ["means"], axes=[2, 3, 4], keepdims=0),
            helper.make_node("MatMul", ["means", "W"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("clip", TensorProto.FLOAT, ["N", 3, 4, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])],
        initializer=[numpy_helper.from_array(W, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def expected_scores(clips: np.ndarray) -> np.ndarray:
    logits = clips.mean(axis=(2, 3, 4)).astype(np.float64) @ W
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (probs / probs.sum(axis=1, keepdims=True)).mean(axis=0)


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path for hand-made distributions, a private ZOO_HOME and a fresh registry."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo_home"))
    for name in ("ZOO_PLUGINS", "ZOO_CONFIG", "ZOO_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    before = set(sys.modules)
    reset_registry()
    yield folder
    reset_registry()
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(folder)):
            del sys.modules[name]


@pytest.fixture
def clip_file(tmp_path) -> Path:
    """One preprocessed clip [3,4,8,8] whose channel means are CHANNEL_MEANS."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, (3, 4, 8, 8)).astype(np.float32)
    clip = noise - noise.mean(axis=(1, 2, 3), keepdims=True) + CHANNEL_MEANS[:, None, None, None]
    path = tmp_path / "x.npy"
    np.save(path, clip.astype(np.float32))
    return path


def plugins_json(capsys) -> dict:
    code, out, err = zoo(capsys, "plugins", "--json")
    assert code == 0, err
    return {p["name"]: p for p in json.loads(out)}


# -- a working third-party plugin ---------------------------------------------------------------


def test_fake_plugin_is_listed_with_its_version_and_hooks(site, capsys):
    install_fake(site)
    code, out, err = zoo(capsys, "list", "--json")
    assert code == 0, err
    models = {m["name"]: m for m in json.loads(out)}
    assert models["fake"]["plugin"] == "fake"
    assert models["fake"]["input"] == {"name": "clip", "shape": ["N", 3, 4, 8, 8], "dtype": "float32"}
    assert "onnxruntime" in models["fake"]["backends"]
    assert "r3d_18" in models  # the built-in plugins still load beside it

    info = plugins_json(capsys)["fake"]
    assert info["version"] == "0.1" and info["error"] is None
    assert info["models"] == ["fake"]
    assert set(info["hooks"]) == {"zoo_register_models", "zoo_preprocess", "zoo_postprocess"}

    code, out, _ = zoo(capsys, "list")
    assert any(line.split()[:2] == ["fake", "video-classification"] for line in out.splitlines())


def test_fake_plugin_runs_through_the_core_runner(site, capsys, clip_file, tmp_path):
    install_fake(site)
    model = tiny_onnx(tmp_path / "tiny.onnx")
    code, out, err = zoo(capsys, "run", "fake", "--input", clip_file, "--model", model, "--top-k", 3, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["model"] == "fake" and result["clips"] == 1
    assert result["backend"].startswith("onnxruntime")
    expected = expected_scores(np.load(clip_file)[None])
    assert [p["class_id"] for p in result["predictions"]] == [3, 0, 1]
    assert [p["label"] for p in result["predictions"]] == ["delta", "alpha", "beta"]
    for p in result["predictions"]:
        assert p["score"] == pytest.approx(expected[p["class_id"]], abs=1e-6)

    code, out, err = zoo(capsys, "run", "fake", "--input", clip_file, "--model", model)
    assert code == 0, err
    assert "delta" in out and "timing:" in out


def test_fake_plugin_gets_videos_decoded_by_the_core(site, capsys, tmp_path):
    import cv2

    install_fake(site)
    video = tmp_path / "blue.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 24))
    for _ in range(12):
        writer.write(np.full((24, 32, 3), (255, 0, 0), np.uint8))  # BGR: pure blue
    writer.release()
    code, out, err = zoo(capsys, "preprocess", "fake", "--input", video, "-o", tmp_path / "p.npy", "--clips", 2)
    assert code == 0, err
    tensor = np.load(tmp_path / "p.npy")
    assert tensor.shape == (2, 3, 4, 8, 8)
    # RGB order after the core's BGR conversion: blue is the largest channel.
    assert tensor[:, 2].mean() > tensor[:, 0].mean() + 1

    code, out, err = zoo(capsys, "run", "fake", "--input", video, "--model", tiny_onnx(tmp_path / "t.onnx"), "--json")
    assert code == 0, err
    assert json.loads(out)["predictions"][0]["label"] == "gamma"  # the blue channel's class


def test_fake_plugin_installed_on_pythonpath_works_in_a_fresh_process(tmp_path, clip_file):
    site = tmp_path / "site"
    install_fake(site)
    env = {**os.environ, "PYTHONPATH": str(site), "ZOO_HOME": str(tmp_path / "home")}
    env.pop("ZOO_PLUGINS", None)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelzoo",
            "run",
            "fake",
            "--input",
            str(clip_file),
            "--model",
            str(tiny_onnx(tmp_path / "tiny.onnx")),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["predictions"][0]["label"] == "delta"


# -- broken plugins -------------------------------------------------------------------------------

BROKEN = {
    "badimport": """
        import a_module_that_does_not_exist  # noqa: F401
    """,
    "badregister": """
        from pathlib import Path
        from modelzoo import ModelSpec, TensorSpec, VideoPreprocessing, hookimpl

        ZOO_HOOKSPEC_VERSION = {version}

        @hookimpl
        def zoo_register_models(register):
            # registers one model, then fails: neither may stay half-registered
            register(ModelSpec("halfway", "video-classification", "", TensorSpec("x", ("N", 3)),
                               TensorSpec("y", ("N", 2)), VideoPreprocessing(), str(Path(__file__))))
            raise RuntimeError("cannot reach the model server")
    """,
    "badversion": """
        from modelzoo import hookimpl

        ZOO_HOOKSPEC_VERSION = {version} + 1

        @hookimpl
        def zoo_register_models(register):
            raise AssertionError("an incompatible plugin must not be called")
    """,
    # sorts before r3d_18 by name, but modelzoo's own plugins load first, so it finds the name taken
    "aa_dupname": FAKE_PLUGIN.replace('name="{model}"', 'name="r3d_18"'),
}


def install_broken(site: Path) -> None:
    for name, body in BROKEN.items():
        install_fake(
            site,
            dist=f"{name}-plugin",
            package=f"{name}_plugin",
            entry=name,
            body=textwrap.dedent(body).format(version=HOOKSPEC_VERSION, model=name),
        )
    raising = FAKE_PLUGIN.format(version=HOOKSPEC_VERSION, model="badpre").replace(
        "    return preprocess_video_classification(", '    raise ValueError("decoder exploded")\n    return ('
    )
    install_fake(site, dist="badpre-plugin", package="badpre_plugin", entry="badpre", body=raising)
    install_fake(site)


def test_broken_plugins_are_reported_in_zoo_plugins(site, capsys):
    install_broken(site)
    plugins = plugins_json(capsys)
    assert plugins["badimport"]["error"].startswith("failed to import: ModuleNotFoundError")
    assert "a_module_that_does_not_exist" in plugins["badimport"]["error"]
    assert "failed while registering: RuntimeError: cannot reach the model server" in plugins["badregister"]["error"]
    assert f"targets hook-spec version {HOOKSPEC_VERSION + 1}" in plugins["badversion"]["error"]
    assert "'r3d_18' is already registered" in plugins["aa_dupname"]["error"]
    for name in ("badimport", "badregister", "badversion", "aa_dupname"):
        assert plugins[name]["models"] == [] and plugins[name]["version"] == "0.1"
    assert plugins["fake"]["error"] is None and plugins["badpre"]["error"] is None
    assert plugins["r3d_18"]["error"] is None and plugins["r3d_18"]["models"] == ["r3d_18"]

    code, out, _ = zoo(capsys, "plugins")
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert "error: failed to import" in rows["badimport"]
    assert rows["fake"].rstrip().endswith("ok")


def test_broken_plugins_are_not_fatal_for_other_models(site, capsys, clip_file, tmp_path):
    install_broken(site)
    code, out, err = zoo(capsys, "list", "--json")
    assert code == 0, err
    names = {m["name"] for m in json.loads(out)}
    assert {"fake", "badpre", "r3d_18", "mc3_18", "r2plus1d_18"} <= names
    assert "halfway" not in names  # registered by a plugin that then failed: dropped with it
    warnings = [line for line in err.splitlines() if line.startswith("warning: plugin")]
    assert {w.split("'")[1] for w in warnings} == {"badimport", "badregister", "badversion", "aa_dupname"}
    assert all("see `zoo plugins`" in w for w in warnings)
    assert get_registry().get_model("r3d_18").plugin == "r3d_18"  # not taken over by aa_dupname

    model = tiny_onnx(tmp_path / "tiny.onnx")
    code, out, err = zoo(capsys, "run", "badpre", "--input", clip_file, "--model", model)
    assert code == 2
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "Traceback" not in err
    assert "'badpre'" in error_lines[0] and "zoo_preprocess" in error_lines[0] and "decoder exploded" in error_lines[0]

    code, out, err = zoo(capsys, "run", "fake", "--input", clip_file, "--model", model, "--json")
    assert code == 0, err
    assert json.loads(out)["predictions"][0]["label"] == "delta"


def test_incompatible_plugin_is_not_loaded_half_way(site, capsys):
    newer = """
        from modelzoo import hookimpl
        ZOO_HOOKSPEC_VERSION = {version}

        @hookimpl
        def zoo_register_models(register):
            raise AssertionError("must not be called")

        @hookimpl
        def zoo_patch_graph(spec, model, march):
            raise AssertionError("must not be called")

        @hookimpl
        def zoo_select_backend(spec, requested, model_path, backends, cache):
            raise AssertionError("must not be called")
    """
    install_fake(
        site,
        dist="newer-plugin",
        package="newer_plugin",
        entry="newer",
        body=newer.format(version=HOOKSPEC_VERSION + 1),
    )
    install_fake(
        site,
        dist="unversioned-plugin",
        package="unversioned_plugin",
        entry="unversioned",
        body=newer.replace("ZOO_HOOKSPEC_VERSION = {version}", ""),
    )
    plugins = plugins_json(capsys)
    assert plugins["newer"]["error"] == (
        f"targets hook-spec version {HOOKSPEC_VERSION + 1}, this zoo provides {HOOKSPEC_VERSION}; "
        "upgrade the plugin or modelzoo"
    )
    assert plugins["unversioned"]["error"] == (
        f"declares no ZOO_HOOKSPEC_VERSION; add `ZOO_HOOKSPEC_VERSION = {HOOKSPEC_VERSION}` to unversioned_plugin"
    )

    registry = get_registry()
    for name in ("newer", "unversioned"):
        assert plugins[name]["hooks"] == [] and plugins[name]["models"] == []
        assert registry.pm.get_plugin(name) is None
        module = sys.modules[f"{name}_plugin"]
        for hook_name in ("zoo_register_models", "zoo_patch_graph", "zoo_select_backend"):
            impls = getattr(registry.pm.hook, hook_name).get_hookimpls()
            assert all(impl.plugin is not module for impl in impls)
    # Hooks that run on every plugin still work: the incompatible ones are not among them.
    spec = registry.get_model("r3d_18")
    assert registry.select_backend(spec, "auto", None, None).name == "onnxruntime"


# -- limiting what loads ---------------------------------------------------------------------------


def listed(capsys) -> tuple:
    code, out, err = zoo(capsys, "list", "--json")
    assert code == 0, err
    return sorted(m["name"] for m in json.loads(out)), err


@pytest.mark.parametrize(
    "value, expected",
    [
        ("fake", ["fake"]),
        ("fake, mc3_18", ["fake", "mc3_18"]),
        ("", []),
        (None, None),  # unset: everything installed
    ],
)
def test_zoo_plugins_env_limits_which_plugins_load(site, capsys, monkeypatch, value, expected):
    install_fake(site)
    install_fake(site, dist="badimport-plugin", package="badimport_plugin", entry="badimport", body=BROKEN["badimport"])
    if value is not None:
        monkeypatch.setenv("ZOO_PLUGINS", value)
    names, err = listed(capsys)
    if expected is None:
        assert {"fake", "mc3_18", "r2plus1d_18", "r3d_18"} <= set(names)
    else:
        assert names == expected
    loaded = set(plugins_json(capsys))
    # A plugin left out is not even imported, so its import error cannot surface either.
    assert ("badimport" in loaded) == (value is None)
    assert ("warning: plugin 'badimport'" in err) == (value is None)
    assert "badimport_plugin" not in sys.modules or value is None


def test_zoo_plugins_env_with_no_model_plugins_says_how_to_get_one(site, capsys, monkeypatch):
    monkeypatch.setenv("ZOO_PLUGINS", "")
    code, out, err = zoo(capsys, "list")
    assert code == 0
    assert "no models installed" in out
    code, out, err = zoo(capsys, "run", "r3d_18", "--input", "x.mp4")
    assert code == 2 and err.startswith("error: unknown model 'r3d_18'")


# -- the hook contract ----------------------------------------------------------------------------


def test_check_pending_passes_for_every_installed_plugin(monkeypatch):
    monkeypatch.delenv("ZOO_PLUGINS", raising=False)
    reset_registry()
    try:
        registry = get_registry()
        assert all(info.error is None for info in registry.plugins.values()), registry.plugins
        registry.pm.check_pending()  # raises on a hookimpl that matches no hookspec
    finally:
        reset_registry()


def test_a_misspelled_hook_is_reported_not_ignored(site):
    body = FAKE_PLUGIN.format(version=HOOKSPEC_VERSION, model="typo").replace(
        "def zoo_postprocess(", "def zoo_postproces("
    )
    install_fake(site, dist="typo-plugin", package="typo_plugin", entry="typo", body=body)
    registry = get_registry()
    # the registry refuses it outright, so the typo is reported instead of silently never called
    assert "unknown hook(s) zoo_postproces" in registry.plugins["typo"].error
    assert registry.plugins["typo"].models == [] and "typo" not in registry.models
    registry.pm.check_pending()  # nothing half-registered is left behind for pluggy to find
