"""The files `zoo new-plugin` writes, as string.Template texts ($name, $package, ...).

Kept as strings (not package data) so the scaffold cannot drift from an installed copy.
The plugin module must define every hook in core/contract/hookspecs.py; tests check that.
"""

from __future__ import annotations

PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "$name: a modelzoo model plugin"
requires-python = ">=3.10"
dependencies = ["modelzoo>=$zoo_version"]

[project.optional-dependencies]
test = ["pytest"]

# This is how zoo finds the plugin: entry-point group "modelzoo", plugin name = module.
[project.entry-points.modelzoo]
$name = "$package"

[tool.setuptools]
packages = ["$package"]

[tool.setuptools.package-data]
$package = ["labels.txt"]
"""

MODULE = '''\
"""$name: a modelzoo model plugin, scaffolded by `zoo new-plugin`.

The model is listed as soon as this is installed. Every hook that still raises NotFilledIn
must be written before `zoo run $name` works; modelzoo's docs/plugins.md explains each hook.
"""
from __future__ import annotations

from pathlib import Path

from modelzoo.plugin import ModelSpec, TensorSpec, VideoPreprocessing, ZooError, hookimpl

# The hook contract this plugin was written against; zoo refuses to load it under another one.
ZOO_HOOKSPEC_VERSION = $hookspec_version


class NotFilledIn(ZooError):
    """A hook of this scaffolded plugin is still a placeholder."""


def _fill_in(hook: str, what: str):
    raise NotFilledIn(f"the $name plugin is a scaffold: fill in {hook} in {__file__}: {what}")


# Placeholder values: replace each TODO. `zoo info $name` shows all of them.
SPEC = ModelSpec(
    name="$name",
    task="video-classification",
    description="TODO: what the model is and what it was trained on",
    input=TensorSpec("input", ("N", 3, 16, 112, 112), "float32", "NCTHW"),
    output=TensorSpec("logits", ("N", 2), "float32", "NC"),
    preprocessing=VideoPreprocessing(),
    labels_file=str(Path(__file__).with_name("labels.txt")),  # one label per line, in output order
    artifacts=(
        # TODO: modelzoo.Artifact(name="weights", url="https://...", sha256="<64 hex digits>"),
    ),
    metrics=(
        # TODO: modelzoo.Metric("acc@1", 0.0, "dataset and split", "how it was measured"),
    ),
    license="TODO",
    source="TODO: where the model comes from",
)


@hookimpl
def zoo_register_models(register):
    # Called when zoo loads the plugin: keep it cheap, no heavy imports.
    register(SPEC)


@hookimpl
def zoo_register_backends(register):
    # Only for plugins that add a runtime (a modelzoo.plugin.Backend subclass); a model
    # plugin registers none. Delete this hook unless you add one.
    return None


@hookimpl
def zoo_select_backend(spec, requested, model_path, backends, cache):
    # Asked for every model; None leaves the choice to zoo. Delete unless you pick backends.
    return None


@hookimpl
def zoo_preprocess(spec, source, clips):
    _fill_in(
        "zoo_preprocess",
        "return float32 [clips, 3, 16, 112, 112] for `source` (a video or .npy frames); for a torchvision-style "
        "video classifier that is modelzoo.plugin.preprocess_video_classification"
        "(source, spec.preprocessing, clips)",
    )


@hookimpl
def zoo_postprocess(spec, logits, top_k):
    _fill_in(
        "zoo_postprocess",
        "turn logits [clips, classes] into the top_k Predictions; for a classifier that is "
        "modelzoo.plugin.top_k_predictions(logits, spec.labels, top_k)",
    )


@hookimpl
def zoo_build_onnx(spec, state_dict):
    _fill_in(
        "zoo_build_onnx",
        "build an onnx.ModelProto from `state_dict` (numpy arrays keyed like the checkpoint), "
        "or pass --model FILE.onnx to zoo run",
    )


@hookimpl
def zoo_patch_graph(spec, model, march):
    if spec.name != SPEC.name:
        return None  # called for every model; only patch your own
    _fill_in(
        "zoo_patch_graph",
        f"edit `model` in place so the {march} toolchain accepts it and return the list of changes, "
        "or return [] if it needs none",
    )


@hookimpl
def zoo_compile_config(spec, march, onnx_path, calib_dir, working_dir):
    _fill_in(
        "zoo_compile_config",
        "return the hb_compile config dict; for one float input, "
        "modelzoo.plugin.hb_compile_config(spec, march, onnx_path, calib_dir, working_dir)",
    )
'''

LABELS = """\
TODO: label of class 0
TODO: label of class 1
"""

TEST = '''\
"""Tests for the $name plugin. They fail until its hooks are filled in: that is the to-do list.

Run them after installing the plugin (pip install -e .): pytest tests
"""
import numpy as np

import modelzoo


def test_plugin_is_registered_and_labels_match_the_output():
    spec = modelzoo.get_model("$name")
    assert spec.plugin == "$name"
    assert len(spec.labels) == spec.num_classes


def test_preprocess_gives_the_input_shape(tmp_path):
    spec = modelzoo.get_model("$name")
    frames = np.random.default_rng(0).integers(0, 256, (40, 120, 160, 3), dtype=np.uint8)
    np.save(tmp_path / "frames.npy", frames)  # raw RGB frames, as zoo run accepts them
    tensor = modelzoo.preprocess("$name", tmp_path / "frames.npy", clips=2)
    assert tensor.shape == (2, *spec.input.shape[1:])
    assert str(tensor.dtype) == spec.input.dtype


def test_postprocess_ranks_the_largest_logit_first():
    spec = modelzoo.get_model("$name")
    logits = np.zeros((2, spec.num_classes), np.float32)
    logits[:, -1] = 5.0
    best = modelzoo.postprocess("$name", logits, top_k=1)[0]
    assert best.class_id == spec.num_classes - 1
    assert best.label == spec.labels[-1]
'''

README = """\
# $dist

A modelzoo model plugin providing `$name`, scaffolded by `zoo new-plugin`.

    pip install -e .
    zoo list                 # $name is listed at once
    zoo run $name --input VIDEO --model MODEL.onnx   # tells you which hook to fill in next
    pytest tests             # the to-do list, as tests

Fill in `SPEC` and every hook in `$package/__init__.py` that raises NotFilledIn.
"""
