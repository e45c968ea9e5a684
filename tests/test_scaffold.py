"""`zoo new-plugin`: the scaffold installs offline, is listed at once, and says which hook to fill in."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from onnx_models import tiny_video_classifier
from zoo_cli import zoo

from modelzoo.core.contract import hookspecs


def shell(args, env, cwd, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def hook_names() -> set:
    return {name for name in dir(hookspecs) if name.startswith("zoo_") and callable(getattr(hookspecs, name))}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`zoo new-plugin my_model`, then a real offline pip install into a private target folder."""
    root = tmp_path_factory.mktemp("scaffold")
    env = {k: v for k, v in os.environ.items() if k not in ("ZOO_PLUGINS", "ZOO_CONFIG")}
    env.update(ZOO_HOME=str(root / "home"), PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    made = shell(
        [sys.executable, "-m", "modelzoo", "new-plugin", "my_model", "-o", root / "zoo-my-model", "--json"], env, root
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
            root / "zoo-my-model",
        ],
        env,
        root,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    env["PYTHONPATH"] = str(target)
    return {"root": root, "project": root / "zoo-my-model", "env": env, "files": json.loads(made.stdout)["files"]}


def test_scaffold_writes_a_plugin_distribution(installed):
    assert installed["files"] == sorted(
        ["README.md", "pyproject.toml", "tests/test_my_model.py", "zoo_my_model/__init__.py", "zoo_my_model/labels.txt"]
    )
    pyproject = (installed["project"] / "pyproject.toml").read_text()
    assert '[project.entry-points.modelzoo]\nmy_model = "zoo_my_model"' in pyproject
    module = ast.parse((installed["project"] / "zoo_my_model/__init__.py").read_text())
    defined = {node.name for node in module.body if isinstance(node, ast.FunctionDef)}
    assert hook_names() <= defined, f"hooks missing from the scaffold: {hook_names() - defined}"


def test_installed_scaffold_is_listed_immediately_with_every_hook(installed):
    listed = shell([sys.executable, "-m", "modelzoo", "list", "--json"], installed["env"], installed["root"])
    assert listed.returncode == 0, listed.stderr
    assert "warning" not in listed.stderr
    model = {m["name"]: m for m in json.loads(listed.stdout)}["my_model"]
    assert model["plugin"] == "my_model" and model["task"] == "video-classification"

    plugins = shell([sys.executable, "-m", "modelzoo", "plugins", "--json"], installed["env"], installed["root"])
    info = {p["name"]: p for p in json.loads(plugins.stdout)}["my_model"]
    assert info["error"] is None and info["version"] == "0.1.0"
    assert set(info["hooks"]) == hook_names()


def test_zoo_run_on_the_scaffold_names_the_hook_to_fill_in(installed):
    clip = installed["root"] / "clip.npy"
    np.save(clip, np.zeros((3, 16, 112, 112), np.float32))
    model = tiny_video_classifier(installed["root"] / "tiny.onnx")
    run = shell(
        [sys.executable, "-m", "modelzoo", "run", "my_model", "--input", clip, "--model", model],
        installed["env"],
        installed["root"],
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    (line,) = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert "fill in zoo_preprocess" in line and "zoo_my_model/__init__.py" in line


def test_the_scaffolds_own_tests_are_its_to_do_list(installed):
    tests = shell(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        installed["env"],
        installed["project"],
    )
    summary = tests.stdout.strip().splitlines()[-1]
    assert "2 failed, 1 passed" in summary, tests.stdout
    assert "fill in zoo_preprocess" in tests.stdout and "fill in zoo_postprocess" in tests.stdout


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
