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
from zoo_cli import invoke, zoo

from modelzoo.core.contract.hookspecs import HOOKSPEC_VERSION
from modelzoo.core.contract.registry import get_registry, reset_registry

LABELS = ["alpha", "beta", "gamma", "delta", "epsilon"]

# A complete third-party model plugin: a 4-frame 8x8 clip in, five classes out. Its model class is
# the task's own (the core's video preprocessing and Top-k), with every preprocessing constant given.
FAKE_PLUGIN = """
from pathlib import Path

from modelzoo.plugin import ModelSpec, TensorSpec, VideoClassifier, VideoPreprocessing, hookimpl

ZOO_HOOKSPEC_VERSION = {version}

SPEC = ModelSpec(
    name="{model}",
    task="video-classification",
    description="channel means to five logits (test plugin)",
    input=TensorSpec("clip", ("N", 3, 4, 8, 8), "float32", "NCTHW"),
    output=TensorSpec("logits", ("N", 5), "float32", "NC"),
    preprocessing=VideoPreprocessing(
        clip_len=4, target_fps=None, resize=(8, 8), crop=(8, 8), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)
    ),
    labels_file=str(Path(__file__).with_name("labels.txt")),
    license="MIT",
)


class Fake(VideoClassifier):
    pass


@hookimpl
def zoo_register_models(register):
    register(Fake(SPEC))
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
    labels=LABELS,
) -> None:
    source = textwrap.dedent(body) if body is not None else FAKE_PLUGIN.format(version=version, model=model)
    write_distribution(
        site,
        dist,
        dist_version,
        {entry: package},
        {f"{package}/__init__.py": source, f"{package}/labels.txt": "\n".join(labels) + "\n"},
    )


def install_module(site: Path, name: str, body: str, **kwargs) -> None:
    """A plugin distribution `<name>-plugin` whose module `<name>_plugin` is `body`, entry point `name`."""
    install_fake(site, dist=f"{name}-plugin", package=f"{name}_plugin", entry=name, body=body, **kwargs)


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
    """A folder on sys.path for hand-made distributions, a private ZOO_HOME and a fresh registry.

    Commands a plugin adds to zoo's click group are removed afterwards, like the plugin's modules.
    """
    from modelzoo.cli import cli

    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo_home"))
    for name in ("ZOO_PLUGINS", "ZOO_CONFIG", "ZOO_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    before = set(sys.modules)
    commands = dict(cli.commands)
    reset_registry()
    yield folder
    reset_registry()
    cli.commands.clear()
    cli.commands.update(commands)
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


def plugin_warnings(err: str) -> set:
    """Names of the plugins a command warned about."""
    return {line.split("'")[1] for line in err.splitlines() if line.startswith("warning: plugin")}


# -- a working third-party plugin ---------------------------------------------------------------


def test_fake_plugin_is_listed_with_its_version_and_hooks(site, capsys):
    install_fake(site)
    code, out, err = zoo(capsys, "list", "--json")
    assert code == 0, err
    models = {m["name"]: m for m in json.loads(out)}
    assert models["fake"]["plugin"] == "fake"
    assert models["fake"]["input"] == {"name": "clip", "shape": ["N", 3, 4, 8, 8], "dtype": "float32"}
    assert models["fake"]["backends"] == []  # it publishes no weights: it runs with --weights or --model
    assert {"r3d_18", "resnet18"} <= set(models)  # the built-in plugins still load beside it

    info = plugins_json(capsys)["fake"]
    assert info["version"] == "0.1" and info["error"] is None
    assert info["models"] == ["fake"] and info["tasks"] == []
    assert info["hooks"] == ["zoo_register_models"]  # the rest is the model object's methods

    model = get_registry().get_model("fake")
    assert type(model).__name__ == "Fake" and model.spec.plugin == "fake"

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

    code, out, err = zoo(capsys, "run", "fake", clip_file, "--model", model)  # the input as an argument
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
    # RGB order after the core's BGR conversion, normalized with the plugin's mean 0.5 and std 0.25:
    # blue is about (1 - 0.5) / 0.25 = 2, red about -2.
    assert tensor[:, 2].mean() == pytest.approx(2.0, abs=0.1)
    assert tensor[:, 0].mean() == pytest.approx(-2.0, abs=0.1)

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


def test_fake_plugin_passes_modelzoo_checks(site, tmp_path):
    from modelzoo.testing import check_model

    install_fake(site)
    ran = check_model("fake", tmp_path)
    assert "runs_end_to_end" in ran and "board_config" in ran


def test_check_model_says_why_a_model_is_missing_when_its_plugin_failed(site, tmp_path):
    # the scaffold's own test calls check_model(NAME): a broken spec must show its reason there, not just
    # "unknown model"
    from modelzoo.testing import check_model

    install_fake(site, labels=LABELS[:4])  # five outputs, four labels
    with pytest.raises(AssertionError) as failure:
        check_model("fake", tmp_path)
    message = str(failure.value)
    assert message.startswith("model 'fake' is not registered: plugin 'fake' failed while registering: model 'fake': ")
    assert "4 labels in " in message


# -- broken plugins -------------------------------------------------------------------------------

BROKEN = {
    "badimport": """
        import a_module_that_does_not_exist  # noqa: F401
    """,
    "badregister": """
        from pathlib import Path
        from modelzoo.plugin import ModelSpec, TensorSpec, VideoClassifier, VideoPreprocessing, hookimpl

        ZOO_HOOKSPEC_VERSION = {version}

        PRE = VideoPreprocessing(clip_len=4, target_fps=None, resize=(8, 8), crop=(8, 8), mean=(0, 0, 0), std=(1, 1, 1))

        @hookimpl
        def zoo_register_models(register):
            # registers one model, then fails: neither may stay half-registered
            register(VideoClassifier(ModelSpec("halfway", "video-classification", "", TensorSpec("x", ("N", 3, 4, 8, 8)),
                                               TensorSpec("y", ("N", 5)), PRE, str(Path(__file__).with_name("labels.txt")))))
            raise RuntimeError("cannot reach the model server")
    """,
    "badversion": """
        from modelzoo.plugin import hookimpl

        ZOO_HOOKSPEC_VERSION = {version} + 1

        @hookimpl
        def zoo_register_models(register):
            raise AssertionError("an incompatible plugin must not be called")
    """,
    # sorts before r3d_18 by name, but modelzoo's own plugins load first, so it finds the name taken
    "aa_dupname": FAKE_PLUGIN.replace('name="{model}"', 'name="r3d_18"'),
}

# A model whose preprocessing raises: registered fine, fails when run.
BADPRE = FAKE_PLUGIN.replace(
    "class Fake(VideoClassifier):\n    pass",
    'class Fake(VideoClassifier):\n    def preprocess(self, source, options):\n        raise ValueError("decoder exploded")',
)


def install_broken(site: Path) -> None:
    for name, body in BROKEN.items():
        install_module(site, name, textwrap.dedent(body).format(version=HOOKSPEC_VERSION, model=name))
    install_module(site, "badpre", BADPRE.format(version=HOOKSPEC_VERSION, model="badpre"))
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
    assert {"fake", "badpre", "r3d_18", "mc3_18", "r2plus1d_18", "resnet18"} <= names
    assert "halfway" not in names  # registered by a plugin that then failed: dropped with it
    assert plugin_warnings(err) == {"badimport", "badregister", "badversion", "aa_dupname"}
    assert all("see `zoo plugins`" in line for line in err.splitlines() if line.startswith("warning: plugin"))
    assert get_registry().get_model("r3d_18").plugin == "r3d_18"  # not taken over by aa_dupname

    model = tiny_onnx(tmp_path / "tiny.onnx")
    code, out, err = zoo(capsys, "run", "badpre", "--input", clip_file, "--model", model)
    assert code == 2
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "Traceback" not in err
    assert "plugin 'badpre' failed in preprocess for badpre: ValueError: decoder exploded" in error_lines[0]

    code, out, err = zoo(capsys, "run", "fake", "--input", clip_file, "--model", model, "--json")
    assert code == 0, err
    assert json.loads(out)["predictions"][0]["label"] == "delta"


def test_incompatible_plugin_is_not_loaded_half_way(site, capsys):
    newer = """
        from modelzoo.plugin import hookimpl
        ZOO_HOOKSPEC_VERSION = {version}

        @hookimpl
        def zoo_register_models(register):
            raise AssertionError("must not be called")

        @hookimpl
        def zoo_register_commands(cli):
            raise AssertionError("must not be called")

        @hookimpl
        def zoo_select_backend(model, requested, model_path, backends, cache):
            raise AssertionError("must not be called")
    """
    install_module(site, "newer", newer.format(version=HOOKSPEC_VERSION + 1))
    install_module(site, "unversioned", newer.replace("ZOO_HOOKSPEC_VERSION = {version}", ""))
    install_module(site, "quoted", newer.format(version=f"'{HOOKSPEC_VERSION}'"))  # a string, not the integer
    plugins = plugins_json(capsys)
    assert plugins["newer"]["error"] == (
        f"targets hook-spec version {HOOKSPEC_VERSION + 1}, this zoo provides {HOOKSPEC_VERSION}; "
        "upgrade the plugin or modelzoo"
    )
    assert plugins["quoted"]["error"] == (
        f"declares ZOO_HOOKSPEC_VERSION as the string '{HOOKSPEC_VERSION}'; write the integer: "
        f"`ZOO_HOOKSPEC_VERSION = {HOOKSPEC_VERSION}` in quoted_plugin"
    )
    assert plugins["unversioned"]["error"] == (
        f"declares no ZOO_HOOKSPEC_VERSION; add `ZOO_HOOKSPEC_VERSION = {HOOKSPEC_VERSION}` to unversioned_plugin"
    )

    registry = get_registry()
    for name in ("newer", "unversioned"):
        assert plugins[name]["hooks"] == [] and plugins[name]["models"] == []
        assert registry.pm.get_plugin(name) is None
        module = sys.modules[f"{name}_plugin"]
        for hook_name in ("zoo_register_models", "zoo_register_commands", "zoo_select_backend"):
            impls = getattr(registry.pm.hook, hook_name).get_hookimpls()
            assert all(impl.plugin is not module for impl in impls)
    # Hooks that run on every plugin still work: the incompatible ones are not among them.
    model = registry.get_model("r3d_18")
    assert registry.select_backend(model, "auto", None, None).name == "onnxruntime"


# A version-1 plugin, as written for the previous contract: a bare spec and per-model hooks.
V1_PLUGIN = """
from pathlib import Path

from modelzoo.plugin import ModelSpec, TensorSpec, VideoPreprocessing, hookimpl

ZOO_HOOKSPEC_VERSION = 1

SPEC = ModelSpec(
    name="oldstyle",
    task="video-classification",
    description="a plugin for the version-1 contract",
    input=TensorSpec("clip", ("N", 3, 4, 8, 8)),
    output=TensorSpec("logits", ("N", 5)),
    preprocessing=VideoPreprocessing(clip_len=4, target_fps=None, resize=(8, 8), crop=(8, 8), mean=(0, 0, 0), std=(1, 1, 1)),
    labels_file=str(Path(__file__).with_name("labels.txt")),
)


@hookimpl
def zoo_register_models(register):
    raise AssertionError("a version-1 plugin must not be called")


@hookimpl
def zoo_preprocess(spec, source, clips):
    raise AssertionError("a version-1 plugin must not be called")


@hookimpl
def zoo_postprocess(spec, logits, top_k):
    raise AssertionError("a version-1 plugin must not be called")
"""


def test_a_version_1_plugin_is_refused_with_a_message_that_says_what_changed(site, capsys):
    install_module(site, "oldstyle", V1_PLUGIN)
    install_fake(site)
    info = plugins_json(capsys)["oldstyle"]
    assert info["error"] == (
        f"targets hook-spec version 1, this zoo provides {HOOKSPEC_VERSION}; upgrade the plugin or modelzoo "
        "(version 1 had per-model hooks; see docs/plugins.md for the Model classes of version 2)"
    )
    assert info["models"] == [] and info["hooks"] == [] and info["version"] == "0.1"

    code, out, err = zoo(capsys, "plugins")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("oldstyle "))
    assert "error: targets hook-spec version 1" in row and "docs/plugins.md" in row

    code, out, err = zoo(capsys, "list", "--json")
    assert code == 0, err
    assert plugin_warnings(err) == {"oldstyle"}
    assert "version 1 had per-model hooks" in err
    names = {m["name"] for m in json.loads(out)}
    assert "oldstyle" not in names and "fake" in names

    code, _, err = zoo(capsys, "info", "oldstyle")
    assert code == 2 and "unknown model 'oldstyle'" in err


def test_a_version_1_hook_in_a_version_2_plugin_is_an_unknown_hook(site):
    body = FAKE_PLUGIN.format(version=HOOKSPEC_VERSION, model="halfmoved") + textwrap.dedent(
        """

        @hookimpl
        def zoo_build_onnx(spec, state_dict):
            raise AssertionError("never called")
        """
    )
    install_module(site, "halfmoved", body)
    registry = get_registry()
    assert registry.plugins["halfmoved"].error.startswith(
        "rejected by the plugin manager: unknown hook 'zoo_build_onnx'"
    )
    assert "halfmoved" not in registry.models


# -- specs the task refuses --------------------------------------------------------------------------

BAD_SPEC_PLUGIN = """
from pathlib import Path

from modelzoo.plugin import (
    ImageClassifier, ImagePreprocessing, Model, ModelSpec, TensorSpec, VideoClassifier, VideoPreprocessing, hookimpl,
)

ZOO_HOOKSPEC_VERSION = {version}

LABELS = str(Path(__file__).with_name("labels.txt"))  # five labels
VIDEO = VideoPreprocessing(clip_len=4, target_fps=None, resize=(8, 8), crop=(8, 8), mean=(0, 0, 0), std=(1, 1, 1))
IMAGE = ImagePreprocessing(resize=8, crop=(8, 8), mean=(0, 0, 0), std=(1, 1, 1))


def spec(name, task="image-classification", shape=("N", 3, 8, 8), classes=5, preprocessing=IMAGE, labels=LABELS):
    return ModelSpec(
        name, task, "test", TensorSpec("x", shape), TensorSpec("y", ("N", classes)), preprocessing, labels, license="MIT"
    )


@hookimpl
def zoo_register_models(register):
    register(ImageClassifier(spec("good_one")))  # valid, but the plugin's registration is all or nothing
    register({bad})
"""

BAD_SPECS = {
    "wrong_preprocessing": (
        'ImageClassifier(spec("wrong_pre", preprocessing=VIDEO))',
        "model 'wrong_pre': image-classification needs preprocessing=ImagePreprocessing(...), got VideoPreprocessing",
    ),
    "labels_count": (
        'ImageClassifier(spec("four_out", classes=4))',
        "model 'four_out': 5 labels in ",
    ),
    "input_shape": (
        'VideoClassifier(spec("wrong_shape", task="video-classification", preprocessing=VIDEO))',
        "model 'wrong_shape': input ['N', 3, 8, 8] does not match [N, 3, clip_len, *crop] of the preprocessing",
    ),
    "task_mismatch": (
        'VideoClassifier(spec("mismatch"))',
        "model 'mismatch': spec.task is 'image-classification' but VideoClassifier is a 'video-classification' model",
    ),
    "unknown_task": (
        'Model(spec("no_task", task="segmentation"))',
        "model 'no_task': unknown task 'segmentation' (installed: image-classification, object-detection, video-classification)",
    ),
    "bare_spec": (
        'spec("bare")',
        "registered ModelSpec, not a Model; wrap the spec in its task's model class",
    ),
    "same_name_twice": (  # the second would silently replace the first
        'VideoClassifier(spec("good_one", task="video-classification", shape=("N", 3, 4, 8, 8), preprocessing=VIDEO))',
        "model 'good_one' is registered twice by this plugin",
    ),
    "layout_as_dtype": (  # TensorSpec(name, shape, dtype, layout): a layout in third place is its dtype
        'ImageClassifier(ModelSpec("nchw", "image-classification", "test", TensorSpec("x", ("N", 3, 8, 8), "NCHW"), '
        'TensorSpec("y", ("N", 5)), IMAGE, LABELS, license="MIT"))',
        "model 'nchw': input dtype 'NCHW' is not one of bool, float16, float32",
    ),
    "non_ascii_name": (
        'ImageClassifier(spec("caf\\u00e9"))',
        "model 'caf\u00e9': model name 'caf\u00e9' must be lower-case letters, digits and _",
    ),
    "model_class_not_instance": (
        "ImageClassifier",
        "registered the class ImageClassifier, not a model; register an instance: register(ImageClassifier(SPEC))",
    ),
    "bad_name": (
        'ImageClassifier(spec("Bad-Name"))',
        "model 'Bad-Name': model name 'Bad-Name' must be lower-case letters, digits and _",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_a_plugin_registering_a_bad_spec_is_reported_with_its_reason(site, capsys, case):
    bad, reason = BAD_SPECS[case]
    install_module(site, "badspec", BAD_SPEC_PLUGIN.format(version=HOOKSPEC_VERSION, bad=bad))
    install_fake(site)
    info = plugins_json(capsys)["badspec"]
    assert info["error"].startswith("failed while registering: " + reason), info["error"]
    if case == "labels_count":
        assert info["error"].endswith("labels.txt for 4 classes")
    assert info["models"] == []
    assert get_registry().pm.get_plugin("badspec") is None  # unregistered: none of its hooks is called again

    code, out, err = zoo(capsys, "list", "--json")
    assert code == 0, err
    assert plugin_warnings(err) == {"badspec"}
    names = {m["name"] for m in json.loads(out)}
    assert "good_one" not in names  # all or nothing: the plugin's valid model is dropped too
    assert {"fake", "r3d_18", "resnet18"} <= names

    for name in ("fake", "r3d_18", "resnet18"):  # the other models' info still works
        code, out, err = zoo(capsys, "info", name, "--json")
        assert code == 0, err
        assert json.loads(out)["name"] == name


# -- extending zoo: commands and tasks ------------------------------------------------------------------

COMMAND_PLUGIN = """
from modelzoo.plugin import hookimpl

ZOO_HOOKSPEC_VERSION = {version}


@hookimpl
def zoo_register_commands(cli):
    import click

    @cli.command("hello")
    @click.argument("who")
    @click.option("--shout", is_flag=True, help="Upper case.")
    def hello(who, shout):
        \"\"\"Greet WHO (a plugin's command).\"\"\"
        import modelzoo

        text = f"hello {{who}} from a plugin; {{len(modelzoo.get_models())}} models installed"
        click.echo(text.upper() if shout else text)
"""

FAILING_COMMAND_PLUGIN = """
from modelzoo.plugin import hookimpl

ZOO_HOOKSPEC_VERSION = {version}


@hookimpl
def zoo_register_commands(cli):
    raise RuntimeError("no click today")
"""


def test_a_plugin_adds_a_subcommand(site, capsys):
    install_module(site, "greeter", COMMAND_PLUGIN.format(version=HOOKSPEC_VERSION))
    install_module(site, "nocommand", FAILING_COMMAND_PLUGIN.format(version=HOOKSPEC_VERSION))
    code, out, err = zoo(capsys, "hello", "world", "--shout")
    assert code == 0, err
    models = len(get_registry().models)
    assert out == f"HELLO WORLD FROM A PLUGIN; {models} MODELS INSTALLED\n"

    code, out, err = zoo(capsys, "--help")
    assert code == 0, err
    assert any(line.split()[:1] == ["hello"] and "Greet WHO" in line for line in out.splitlines())

    code, out, err = zoo(capsys, "hello", "--help")
    assert code == 0 and "--shout" in out

    plugins = plugins_json(capsys)
    assert plugins["greeter"]["error"] is None and plugins["greeter"]["hooks"] == ["zoo_register_commands"]
    # a plugin failing to add its commands is reported; zoo's own commands and the others' still work
    assert plugins["nocommand"]["error"] == "failed adding commands: RuntimeError: no click today"
    code, out, err = zoo(capsys, "info", "r3d_18", "--json")
    assert code == 0, err


EMBEDDING_PLUGIN = """
from dataclasses import dataclass
from pathlib import Path

from modelzoo.plugin import TENSOR, Model, ModelSpec, Option, Result, Task, TensorSpec, hookimpl

ZOO_HOOKSPEC_VERSION = {version}


@dataclass
class EmbeddingResult(Result):
    vector: list
    norm: float

    def to_dict(self):
        return {{"embedding": self.vector, "norm": self.norm}}


class Embedder(Model):
    task = "embedding"

    def preprocess(self, source, options):
        return source.tensor

    def postprocess(self, output, source, options):
        import numpy as np

        vector = np.asarray(output, np.float64).mean(axis=0)
        norm = float(np.linalg.norm(vector))
        if options["normalize"]:
            vector = vector / norm
        return EmbeddingResult([float(v) for v in vector], norm)


class EmbeddingTask(Task):
    name = "embedding"
    description = "a vector per input"
    accepts = (TENSOR,)
    options = (Option("normalize", bool, True, "Unit length."),)

    @property
    def model_class(self):
        return Embedder

    def format_result(self, result):
        return "vector " + " ".join(f"{{v:.3f}}" for v in result.vector)

    def synthetic_input(self, spec, directory):
        import numpy as np

        path = Path(directory) / "sample.npy"
        np.save(path, np.ones(spec.input.shape[1:], np.float32))
        return path


SPEC = ModelSpec(
    name="embed",
    task="embedding",
    description="channel means of an 8x8 image (test plugin)",
    input=TensorSpec("x", ("N", 3, 8, 8), "float32", "NCHW"),
    output=TensorSpec("vec", ("N", 3), "float32", "NC"),
    license="MIT",
)


@hookimpl
def zoo_register_tasks(register):
    register(EmbeddingTask())


@hookimpl
def zoo_register_models(register):
    register(Embedder(SPEC))
"""


def channel_means_onnx(path: Path) -> Path:
    """[N,3,8,8] -> [N,3]: the mean of each channel."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["vec"], axes=[2, 3], keepdims=0)],
        "means",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("vec", TensorProto.FLOAT, ["N", 3])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def test_a_plugin_registers_a_new_task_and_a_model_of_it(site, capsys, tmp_path):
    install_module(site, "embedding", EMBEDDING_PLUGIN.format(version=HOOKSPEC_VERSION))
    sample = tmp_path / "sample.npy"
    np.save(sample, np.stack([np.full((8, 8), v, np.float32) for v in (3.0, 0.0, 4.0)]))
    model = channel_means_onnx(tmp_path / "means.onnx")

    info = plugins_json(capsys)["embedding"]
    assert info["error"] is None and info["tasks"] == ["embedding"] and info["models"] == ["embed"]
    code, out, err = zoo(capsys, "list", "--json")
    assert {m["name"]: m["task"] for m in json.loads(out)}["embed"] == "embedding"

    code, out, err = zoo(capsys, "run", "embed", sample, "--model", model, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert list(data) == ["model", "input", "backend", "embedding", "norm", "timing_ms", "model_file", "warnings"]
    assert data["embedding"] == pytest.approx([0.6, 0.0, 0.8]) and data["norm"] == pytest.approx(5.0)
    assert "predictions" not in data and "clips" not in data

    code, out, err = zoo(capsys, "run", "embed", sample, "--model", model, "-O", "normalize=false", "--json")
    assert code == 0, err
    assert json.loads(out)["embedding"] == pytest.approx([3.0, 0.0, 4.0])

    code, out, err = zoo(capsys, "run", "embed", sample, "--model", model)
    assert code == 0, err
    assert out.splitlines()[1] == "vector 0.600 0.000 0.800"  # the task's format_result

    code, out, err = zoo(capsys, "run", "embed", sample, "--model", model, "--top-k", 2)
    assert code == 2 and "--top-k does not apply to embed (embedding)" in err  # a classifier's option

    code, out, err = zoo(capsys, "info", "embed", "--json")
    assert code == 0, err
    assert json.loads(out)["options"] == [
        {"name": "normalize", "type": "bool", "default": True, "help": "Unit length."}
    ]

    from modelzoo.testing import check_model

    (tmp_path / "checks").mkdir()
    assert "runs_end_to_end" in check_model("embed", tmp_path / "checks")


def test_a_task_naming_its_input_files_by_the_former_name_still_takes_them(site, capsys, tmp_path):
    # `calibration_suffixes` was the name of `input_suffixes`: a plugin written with it keeps working
    body = EMBEDDING_PLUGIN.format(version=HOOKSPEC_VERSION).replace(
        "    accepts = (TENSOR,)\n", '    accepts = (TENSOR,)\n    calibration_suffixes = (".npy", ".vec")\n'
    )
    install_module(site, "embedding", body)
    folder = tmp_path / "inputs"
    folder.mkdir()
    np.save(folder / "a.npy", np.ones((3, 8, 8), np.float32))
    (folder / "b.vec").write_bytes(b"not a tensor")
    (folder / "c.txt").write_text("not an input of this task")
    code, out, err = zoo(capsys, "run", "embed", folder, "--model", channel_means_onnx(tmp_path / "m.onnx"), "--json")
    records = {Path(json.loads(line)["input"]).name: json.loads(line) for line in out.splitlines()}
    assert sorted(records) == ["a.npy", "b.vec"], err  # the task's files, and only those
    assert records["a.npy"]["embedding"] == pytest.approx([3**-0.5] * 3)

    task = get_registry().tasks["embedding"]
    assert task.input_suffixes == task.calibration_suffixes == (".npy", ".vec")


def test_a_model_of_a_task_nobody_registered_is_refused(site, capsys):
    # the model alone, without its plugin's task hook: the registry names the installed tasks
    body = EMBEDDING_PLUGIN.format(version=HOOKSPEC_VERSION).replace("@hookimpl\ndef zoo_register_tasks", "def _unused")
    install_module(site, "embedding", body)
    info = plugins_json(capsys)["embedding"]
    assert info["error"] == (
        "failed while registering: model 'embed': unknown task 'embedding' "
        "(installed: image-classification, object-detection, video-classification)"
    )
    assert info["tasks"] == [] and info["models"] == []


def test_the_reserved_option_names_are_zoos_own_settings_and_predicts_keywords():
    # kept as a literal in the contract (cheap to import); this keeps it in step with what it protects
    import inspect

    from modelzoo.core.config import MODEL_SETTINGS
    from modelzoo.core.contract.task import RESERVED_OPTION_NAMES
    from modelzoo.core.runner import predict

    keywords = {name for name, p in inspect.signature(predict).parameters.items() if p.kind is not p.VAR_KEYWORD} - {
        "model"
    }
    assert set(MODEL_SETTINGS) | keywords <= RESERVED_OPTION_NAMES


def test_a_task_class_registered_instead_of_an_instance_is_reported(site, capsys):
    body = EMBEDDING_PLUGIN.format(version=HOOKSPEC_VERSION).replace(
        "register(EmbeddingTask())", "register(EmbeddingTask)"
    )
    install_module(site, "embedding", body)
    info = plugins_json(capsys)["embedding"]
    assert info["error"] == (
        "failed while registering: task 'embedding': registered the class EmbeddingTask, not a task; "
        "register an instance: register(EmbeddingTask())"
    )
    assert info["tasks"] == [] and "embedding" not in get_registry().tasks


@pytest.mark.parametrize(
    "option, reason",
    [
        # predict(backend=...) and zoo.yaml's `weights` would take these before the task saw them
        ('Option("backend", str, "fast", "Which head.")', "option 'backend' clashes with zoo's own 'backend' setting"),
        ('Option("weights", str, "a", "Mix.")', "option 'weights' clashes with zoo's own 'weights' setting"),
        ('Option("layers", list, [], "Which.")', "option 'layers' is a list; an option is an int, float, str or bool"),
        (
            'Option("scale", float, 0, "Factor.", minimum=1)',
            "option 'scale': 'scale' must be at least 1 (its own default, 0)",
        ),
        # --top-k is an integer flag for every task that takes top_k
        ('Option("top_k", str, "all", "Which.")', "option 'top_k' is str, but --top-k of video-classification is int"),
    ],
)
def test_a_task_option_clashing_with_zoos_own_is_refused_and_the_others_still_load(site, capsys, option, reason):
    body = EMBEDDING_PLUGIN.format(version=HOOKSPEC_VERSION).replace(
        'options = (Option("normalize", bool, True, "Unit length."),)',
        f'options = (Option("normalize", bool, True, "Unit length."), {option})',
    )
    install_module(site, "embedding", body)
    install_fake(site)
    plugins = plugins_json(capsys)
    assert plugins["embedding"]["error"].startswith(f"failed while registering: task 'embedding': {reason}")
    assert plugins["embedding"]["tasks"] == [] and plugins["embedding"]["models"] == []
    assert plugins["fake"]["error"] is None
    names, err = listed(capsys)
    assert "fake" in names and "resnet18" in names and "embed" not in names
    code, _, err = zoo(capsys, "info", "embed")
    assert code == 2 and "unknown model 'embed'" in err


FLAKY_BACKEND_PLUGIN = """
from modelzoo.plugin import Backend, hookimpl

ZOO_HOOKSPEC_VERSION = {version}


class Flaky(Backend):
    name = "flaky"
    model_suffixes = (".flaky",)
    package = "json"  # importable everywhere: the backend counts as available

    @classmethod
    def has_model_for(cls, model, cache):
        raise RuntimeError("no cache today")


@hookimpl
def zoo_register_backends(register):
    register(Flaky)
"""


def test_a_backend_plugin_failing_in_its_checks_leaves_zoo_list_working_and_is_named(site, capsys):
    install_fake(site)
    install_module(site, "flaky", FLAKY_BACKEND_PLUGIN.format(version=HOOKSPEC_VERSION))
    result = invoke(capsys, "list", "--json")
    assert result.code == 0, result.err
    rows = {row["name"]: row for row in json.loads(result.out)}
    assert {"fake", "r3d_18", "resnet18"} <= set(rows)
    assert all("flaky" not in row["backends"] for row in rows.values())
    assert "onnxruntime" in rows["r3d_18"]["backends"]  # the other backends are still asked
    (line,) = [line for line in result.err.splitlines() if "flaky" in line]  # once, not once per model
    assert (
        line.startswith("warning: plugin 'flaky' failed in backend 'flaky'") and "RuntimeError: no cache today" in line
    )
    assert "Traceback" not in result.err


def test_a_model_method_calling_sys_exit_is_blamed_on_its_plugin(site, capsys, clip_file, tmp_path):
    body = FAKE_PLUGIN.format(version=HOOKSPEC_VERSION, model="fake").replace(
        "class Fake(VideoClassifier):\n    pass",
        "class Fake(VideoClassifier):\n    def preprocess(self, source, options):\n        raise SystemExit('bye')",
    )
    install_fake(site, body=body)
    result = invoke(capsys, "run", "fake", "--input", clip_file, "--model", tiny_onnx(tmp_path / "tiny.onnx"))
    result.assert_user_error("plugin 'fake' failed in preprocess for fake: SystemExit: bye")


def test_a_model_method_failing_in_zoo_info_is_blamed_on_its_plugin(site, capsys):
    body = FAKE_PLUGIN.format(version=HOOKSPEC_VERSION, model="fake").replace(
        "class Fake(VideoClassifier):\n    pass",
        "class Fake(VideoClassifier):\n    def board_input(self):\n        raise KeyError('norm')",
    )
    install_fake(site, body=body)
    invoke(capsys, "info", "fake").assert_user_error("plugin 'fake' failed in board_input for fake", "KeyError")
    invoke(capsys, "info", "fake", "--json").assert_user_error("plugin 'fake'")
    result = invoke(capsys, "info", "r3d_18", "--json")
    assert result.code == 0 and json.loads(result.out)["name"] == "r3d_18"


def test_a_plugin_choosing_a_backend_comes_before_the_core_and_none_leaves_it_the_choice(site, tmp_path):
    chooser = """
        from modelzoo.plugin import Backend, hookimpl

        ZOO_HOOKSPEC_VERSION = {version}


        class Special(Backend):
            name = "special"


        @hookimpl
        def zoo_select_backend(model, requested, model_path, backends, cache):
            return Special if model.name == "fake" else None
    """
    install_fake(site)
    install_module(site, "chooser", chooser.format(version=HOOKSPEC_VERSION))
    registry = get_registry()
    onnx_file = str(tiny_onnx(tmp_path / "tiny.onnx"))
    assert registry.select_backend(registry.get_model("fake"), "auto", onnx_file, None).name == "special"
    assert registry.select_backend(registry.get_model("r3d_18"), "auto", onnx_file, None).name == "onnxruntime"


def test_a_plugin_failing_in_zoo_select_backend_is_blamed_not_zoo(site, capsys, clip_file, tmp_path):
    picky = """
        from modelzoo.plugin import hookimpl

        ZOO_HOOKSPEC_VERSION = {version}


        @hookimpl
        def zoo_select_backend(model, requested, model_path, backends, cache):
            raise RuntimeError("no backend table")
    """
    install_fake(site)
    install_module(site, "picky", picky.format(version=HOOKSPEC_VERSION))
    model = tiny_onnx(tmp_path / "tiny.onnx")
    result = invoke(capsys, "run", "fake", "--input", clip_file, "--model", model)
    result.assert_user_error("plugin 'picky' failed in zoo_select_backend", "RuntimeError: no backend table")


def test_a_plugin_exiting_while_it_loads_is_reported_and_zoo_goes_on(site, capsys):
    # e.g. a module that parses sys.argv at import, or calls sys.exit in a hook: zoo must not exit with it
    install_module(site, "argv", "import argparse\nargparse.ArgumentParser().parse_args(['--nope'])\n")
    exiting = """
        import sys

        from modelzoo.plugin import hookimpl

        ZOO_HOOKSPEC_VERSION = {version}


        @hookimpl
        def zoo_register_models(register):
            sys.exit("no models today")
    """
    install_module(site, "exiting", exiting.format(version=HOOKSPEC_VERSION))
    install_fake(site)
    result = invoke(capsys, "list", "--json")
    assert result.code == 0, result.err
    assert {"fake", "r3d_18"} <= {m["name"] for m in json.loads(result.out)}
    plugins = plugins_json(capsys)
    assert plugins["argv"]["error"] == "failed to import: SystemExit: 2"
    assert plugins["exiting"]["error"] == "failed while registering: SystemExit: no models today"
    assert plugins["fake"]["error"] is None


@pytest.mark.parametrize(
    "hook, registered, reason",
    [
        ("zoo_register_backends", '"fast"', "backend 'fast' is not a subclass of modelzoo.plugin.Backend"),
        ("zoo_register_backends", "dict", "backend <class 'dict'> is not a subclass of modelzoo.plugin.Backend"),
        ("zoo_register_marches", '"nash-e"', "march 'nash-e' is not a modelzoo.plugin.March"),
    ],
)
def test_a_plugin_registering_something_else_than_a_backend_or_march_is_reported(
    site, capsys, hook, registered, reason
):
    body = f"""
        from modelzoo.plugin import Backend, hookimpl

        ZOO_HOOKSPEC_VERSION = {HOOKSPEC_VERSION}


        class Fast(Backend):  # registered only as the plugin means to, never here
            name = "fast"


        @hookimpl
        def {hook}(register):
            register({registered})
    """
    install_module(site, "wrongkind", body)
    install_fake(site)
    result = invoke(capsys, "list", "--json")
    assert result.code == 0, result.err
    assert "fake" in {m["name"] for m in json.loads(result.out)}
    info = plugins_json(capsys)["wrongkind"]
    assert info["error"] == f"failed while registering: {reason}"
    assert "fast" not in get_registry().backends


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
    install_module(site, "badimport", BROKEN["badimport"])
    if value is not None:
        monkeypatch.setenv("ZOO_PLUGINS", value)
    names, err = listed(capsys)
    if expected is None:
        assert {"fake", "mc3_18", "r2plus1d_18", "r3d_18", "resnet18"} <= set(names)
    else:
        assert names == expected
    loaded = set(plugins_json(capsys))
    # A plugin left out is not even imported, so its import error cannot surface either.
    assert ("badimport" in loaded) == (value is None)
    assert ("warning: plugin 'badimport'" in err) == (value is None)
    assert "badimport_plugin" not in sys.modules or value is None
    assert "modelzoo.core.builtin" in loaded  # the core's tasks and backends load whatever the setting


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


def test_a_misspelled_hook_is_reported_not_ignored(site, capsys):
    body = FAKE_PLUGIN.format(version=HOOKSPEC_VERSION, model="typo").replace(
        "def zoo_register_models(", "def zoo_register_model("
    )
    install_module(site, "typo", body)
    registry = get_registry()
    # the registry refuses it outright, so the typo is reported instead of silently never called
    error = registry.plugins["typo"].error
    assert error.startswith("rejected by the plugin manager: unknown hook 'zoo_register_model' in plugin ")
    assert error.endswith("; check the hook's spelling against modelzoo's hookspecs")
    assert registry.plugins["typo"].models == [] and "typo" not in registry.models
    registry.pm.check_pending()  # nothing half-registered is left behind for pluggy to find

    info = plugins_json(capsys)["typo"]
    assert info["error"].startswith("rejected by the plugin manager: unknown hook 'zoo_register_model'")
