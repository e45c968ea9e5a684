"""The files `zoo new-plugin` writes, as string.Template texts ($name, $package, ...).

Kept as strings (not package data) so the scaffold cannot drift from an installed copy.
One module per task shape: `TASKS` holds what differs between the tasks a scaffold can target.
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
"""$name: a modelzoo $task plugin, scaffolded by `zoo new-plugin`.

The model is listed as soon as this is installed. $model_class supplies the preprocessing,
the postprocessing and the board path from SPEC; replace each TODO, and write build_onnx (or
always run it with --model FILE.onnx). modelzoo's docs/plugins.md explains every part.
"""

from __future__ import annotations

from pathlib import Path

from modelzoo.plugin import $model_class, $pre_class, ModelSpec, TensorSpec, hookimpl

# The hook contract this plugin was written against; zoo refuses to load it under another one.
ZOO_HOOKSPEC_VERSION = $hookspec_version

# TODO: the preset your weights were trained with (`zoo info $name` shows it).
PREPROCESSING = $pre_value

SPEC = ModelSpec(
    name="$name",
    task="$task",
    description="TODO: what the model is and what it was trained on",
    input=TensorSpec("input", $input_shape, "float32", "$layout"),
    output=$output_spec
    preprocessing=PREPROCESSING,
    labels_file=str(Path(__file__).with_name("labels.txt")),  # one label per line, in output order
    artifacts=(
        # TODO: modelzoo.plugin.Artifact(name="weights", url="https://...", sha256="<64 hex digits>"),
    ),
    metrics=(
        # TODO: modelzoo.plugin.Metric("$metric", 0.0, "dataset and split", "how it was measured"),
    ),
    license="TODO",
    source="TODO: where the model comes from",
)


class Model($model_class):
    """What differs from a plain $task model: here, only the checkpoint converter."""

    def build_onnx(self, state_dict):
        # TODO: return an onnx.ModelProto built from `state_dict` (numpy arrays keyed like the
        # checkpoint; modelzoo.plugin.GraphBuilder helps), or keep this and pass --model FILE.onnx.
        return super().build_onnx(state_dict)


@hookimpl
def zoo_register_models(register):
    # Called when zoo loads the plugin: keep it cheap, no heavy imports.
    register(Model(SPEC))
'''

LABELS = """\
TODO: label of class 0
TODO: label of class 1
"""

TEST = '''\
"""Tests for the $name plugin: modelzoo's own checks for every model, plus your model's.

Run them after installing the plugin (pip install -e .): pytest tests
"""

import modelzoo
from modelzoo.testing import check_model


def test_passes_modelzoo_checks(tmp_path):
    check_model("$name", tmp_path)


def test_preprocess_gives_the_input_shape(tmp_path):
    model = modelzoo.get_model("$name")
    sample = modelzoo.get_tasks()[model.spec.task].synthetic_input(model.spec, tmp_path)
    tensor = modelzoo.preprocess("$name", sample)
    assert tensor.shape[1:] == tuple(model.spec.input.shape[1:])
'''

README = """\
# $dist

A modelzoo model plugin providing `$name`, scaffolded by `zoo new-plugin`.

    pip install -e .
    zoo list                 # $name is listed at once
    zoo run $name INPUT --model MODEL.onnx   # runs with an ONNX file until build_onnx is written
    pytest tests             # modelzoo's checks for every model, and yours

Replace each TODO in `$package/__init__.py`.
"""

TASKS = {
    "video-classification": {
        "model_class": "VideoClassifier",
        "pre_class": "VideoPreprocessing",
        "pre_value": (
            "VideoPreprocessing(\n    clip_len=16,\n    target_fps=15.0,\n    resize=(128, 171),\n    crop=(112, 112),\n"
            "    mean=(0.5, 0.5, 0.5),\n    std=(0.5, 0.5, 0.5),\n)"
        ),
        "input_shape": '("N", 3, 16, 112, 112)',
        "layout": "NCTHW",
        "output_spec": 'TensorSpec("logits", ("N", 2), "float32", "NC"),',
        "metric": "acc@1",
    },
    "image-classification": {
        "model_class": "ImageClassifier",
        "pre_class": "ImagePreprocessing",
        "pre_value": (
            "ImagePreprocessing(\n    resize=256,\n    crop=(224, 224),\n    mean=(0.5, 0.5, 0.5),\n"
            "    std=(0.5, 0.5, 0.5),\n)"
        ),
        "input_shape": '("N", 3, 224, 224)',
        "layout": "NCHW",
        "output_spec": 'TensorSpec("logits", ("N", 2), "float32", "NC"),',
        "metric": "acc@1",
    },
    "object-detection": {
        "model_class": "Detector",
        "pre_class": "DetectionPreprocessing",
        "pre_value": "DetectionPreprocessing(size=(640, 640), pad_value=114, center=True)",
        "input_shape": '("N", 3, 640, 640)',
        "layout": "NCHW",
        "metric": "mAP50-95",
        "output_spec": (
            'TensorSpec("output0", ("N", 4 + 2, 8400), "float32"),  # per candidate: cx, cy, w, h, a score per label'
        ),
    },
}
