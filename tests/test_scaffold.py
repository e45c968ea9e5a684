"""`zoo new-plugin`: the scaffold installs offline, is listed at once, and says which hook to fill in."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from zoo_cli import invoke, zoo

from modelzoo.core.contract import hookspecs


def shell(args, env, cwd, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def scaffold(root: Path, name: str, task: str) -> dict:
    """`zoo new-plugin NAME --task TASK`, then a real offline pip install into a private target folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("ZOO_PLUGINS", "ZOO_CONFIG")}
    env.update(ZOO_HOME=str(root / "home"), PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    project = root / f"zoo-{name}"
    made = shell(
        [sys.executable, "-m", "modelzoo", "new-plugin", name, "-o", project, "--task", task, "--json"], env, root
    )
    assert made.returncode == 0, made.stderr
    target = root / "site"
    pip = shell(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "--target",
            target,
            project,
        ],
        env,
        root,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    env["PYTHONPATH"] = str(target)
    return {"root": root, "project": project, "env": env, "files": json.loads(made.stdout)["files"], "name": name}


@pytest.fixture(scope="module", params=["video-classification", "image-classification", "object-detection"])
def installed(request, tmp_path_factory):
    return {**scaffold(tmp_path_factory.mktemp("scaffold"), "my_model", request.param), "task": request.param}


def test_scaffold_writes_a_plugin_distribution(installed):
    assert installed["files"] == sorted(
        ["README.md", "pyproject.toml", "tests/test_my_model.py", "zoo_my_model/__init__.py", "zoo_my_model/labels.txt"]
    )
    pyproject = (installed["project"] / "pyproject.toml").read_text()
    assert '[project.entry-points.modelzoo]\nmy_model = "zoo_my_model"' in pyproject
    module = ast.parse((installed["project"] / "zoo_my_model/__init__.py").read_text())
    classes = {node.name: node for node in module.body if isinstance(node, ast.ClassDef)}
    base = {
        "video-classification": "VideoClassifier",
        "image-classification": "ImageClassifier",
        "object-detection": "Detector",
    }[installed["task"]]
    assert [b.id for b in classes["Model"].bases] == [base]
    hooks = {node.name for node in module.body if isinstance(node, ast.FunctionDef)}
    assert hooks == {"zoo_register_models"} and hooks <= set(dir(hookspecs))


def test_installed_scaffold_is_listed_immediately(installed):
    listed = shell([sys.executable, "-m", "modelzoo", "list", "--json"], installed["env"], installed["root"])
    assert listed.returncode == 0, listed.stderr
    assert "warning" not in listed.stderr
    model = {m["name"]: m for m in json.loads(listed.stdout)}["my_model"]
    assert model["plugin"] == "my_model" and model["task"] == installed["task"]

    plugins = shell([sys.executable, "-m", "modelzoo", "plugins", "--json"], installed["env"], installed["root"])
    info = {p["name"]: p for p in json.loads(plugins.stdout)}["my_model"]
    assert info["error"] is None and info["version"] == "0.1.0" and info["hooks"] == ["zoo_register_models"]


def test_zoo_run_on_the_scaffold_works_with_an_onnx_file_and_says_what_is_missing(installed, tmp_path):
    from types import SimpleNamespace

    from modelzoo.core.contract.spec import TensorSpec
    from modelzoo.core.tasks.detection import DetectionTask
    from modelzoo.testing import write_stand_in_onnx

    task = installed["task"]
    sample = tmp_path / "input.npy"
    frames = {"video-classification": (40, 120, 160, 3)}.get(task, (120, 160, 3))
    np.save(sample, np.random.default_rng(0).integers(0, 256, frames, dtype=np.uint8))
    if task == "object-detection":  # random boxes and scores in [0, 1) over 8400 candidates of 4 + 2 rows
        spec = SimpleNamespace(
            input=TensorSpec("input", ("N", 3, 640, 640)), output=TensorSpec("output0", ("N", 6, 8400))
        )
        onnx_file = DetectionTask().stand_in_onnx(spec, tmp_path / "stand_in.onnx")
    else:
        shape = ("N", 3, 16, 112, 112) if task == "video-classification" else ("N", 3, 224, 224)
        spec = SimpleNamespace(input=TensorSpec("input", shape), output=TensorSpec("logits", ("N", 2)))
        onnx_file = write_stand_in_onnx(spec, tmp_path / "stand_in.onnx")
    env, root = installed["env"], installed["root"]
    run = shell(
        [sys.executable, "-m", "modelzoo", "run", "my_model", sample, "--model", onnx_file, "--json"], env, root
    )
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    labels = {p["label"] for p in found.get("predictions") or found["detections"]}
    assert labels == {"TODO: label of class 0", "TODO: label of class 1"}

    missing = shell([sys.executable, "-m", "modelzoo", "run", "my_model", sample], env, root)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    (line,) = [line for line in missing.stderr.splitlines() if line.startswith("error:")]
    assert "my_model publishes no weights" in line and "--model" in line


def test_the_scaffolds_own_tests_pass_modelzoo_checks(installed):
    tests = shell(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        installed["env"],
        installed["project"],
    )
    assert "2 passed" in tests.stdout.strip().splitlines()[-1], tests.stdout + tests.stderr


def test_new_plugin_refuses_bad_names_and_non_empty_directories(capsys, tmp_path):
    code, _, err = zoo(capsys, "new-plugin", "My-Model", "-o", tmp_path / "a")
    assert code == 2 and err.startswith("error: Invalid value for 'NAME': 'My-Model' is not a valid model name")
    assert not (tmp_path / "a").exists()

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("mine")
    code, _, err = zoo(capsys, "new-plugin", "my_model", "-o", tmp_path / "b")
    assert code == 2 and "already exists and is not empty" in err
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["keep.txt"]

    (tmp_path / "c").mkdir()  # an empty directory is fine to fill
    code, out, err = zoo(capsys, "new-plugin", "my_model", "-o", tmp_path / "c")
    assert code == 0, err
    assert (tmp_path / "c" / "zoo_my_model" / "__init__.py").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind


def test_new_plugin_refuses_the_name_of_an_installed_model(capsys, tmp_path):
    # installed as is, the plugin would be refused by the registry: "model 'resnet18' is already registered"
    result = invoke(capsys, "new-plugin", "resnet18", "-o", tmp_path / "zoo-resnet18")
    result.assert_user_error("a model named 'resnet18' is already installed (plugin 'resnet18')")
    assert not (tmp_path / "zoo-resnet18").exists()
