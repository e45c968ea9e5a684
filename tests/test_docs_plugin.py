"""docs/plugins.md stays true: its tutorial plugin is built from the doc's own code blocks, installed
offline, and the doc's own `zoo` commands are run on it and compared with the output it shows.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modelzoo.core.contract import hookspecs

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
TITLED_BLOCK = re.compile(r'^```(\w+) title="([^"]+)"\n(.*?)^```', re.MULTILINE | re.DOTALL)
CONSOLE_BLOCK = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)
DIST_FILES = {"pyproject.toml", "zoo_colors/__init__.py", "zoo_colors/labels.txt"}


def doc_files(text: str) -> dict:
    """{title: content}; blocks with the same title are concatenated in the order they appear."""
    files: dict = {}
    for _lang, title, body in TITLED_BLOCK.findall(text):
        files[title] = files[title] + "\n\n" + body if title in files else body
    return files


def doc_command(text: str, prefix: str) -> tuple:
    """The first `$ <prefix>...` command in a console block, and the output lines the doc shows for it."""
    for block in CONSOLE_BLOCK.findall(text):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            if line.startswith(f"$ {prefix}"):
                shown = []
                for following in lines[i + 1 :]:
                    if following.startswith("$ "):
                        break
                    shown.append(following)
                return shlex.split(line[2:].split(" #")[0]), shown
    raise AssertionError(f"docs/plugins.md shows no `{prefix}` command")


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    """The tutorial's distribution, written from the doc, pip-installed offline into a private folder."""
    text = DOC.read_text(encoding="utf-8")
    root = tmp_path_factory.mktemp("tutorial")
    project, work, site = root / "zoo-colors", root / "work", root / "site"
    work.mkdir()
    files = doc_files(text)
    for title, body in files.items():
        target = (project if title in DIST_FILES else work) / title
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding="utf-8")

    env = {k: v for k, v in os.environ.items() if k not in ("ZOO_PLUGINS", "ZOO_CONFIG", "PYTHONPATH")}
    env.update(ZOO_HOME=str(root / "home"), PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "--target",
            str(site),
            str(project),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    env["PYTHONPATH"] = str(site)
    # Reproduce the tutorial's other steps: the weights script, and a red video to classify.
    made = subprocess.run([sys.executable, "make_weights.py"], cwd=work, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    write_red_video(work / "red.mp4")
    return {"text": text, "files": files, "work": work, "env": env}


def write_red_video(path: Path) -> None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (96, 72))
    assert writer.isOpened()
    for _ in range(30):
        writer.write(np.full((72, 96, 3), (0, 0, 255), np.uint8))  # BGR red
    writer.release()


def zoo(tutorial, args) -> subprocess.CompletedProcess:
    assert args[0] == "zoo"
    return subprocess.run(
        [sys.executable, "-m", "modelzoo", *args[1:]],
        cwd=tutorial["work"],
        env=tutorial["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_doc_blocks_make_exactly_the_layout_the_tutorial_shows(tutorial):
    assert DIST_FILES | {"make_weights.py"} == set(tutorial["files"])
    compile(tutorial["files"]["zoo_colors/__init__.py"], "zoo_colors/__init__.py", "exec")
    assert "ZOO_HOOKSPEC_VERSION = 1" in tutorial["files"]["zoo_colors/__init__.py"]


def test_zoo_list_shows_the_tutorial_model_as_the_doc_does(tutorial):
    args, shown = doc_command(tutorial["text"], "zoo list")
    result = zoo(tutorial, args)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    real = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:]}
    doc_row = next(line.split() for line in shown if line.startswith("colors "))
    assert real["colors"] == doc_row

    plugins = zoo(tutorial, ["zoo", "plugins", "--json"])
    info = {p["name"]: p for p in json.loads(plugins.stdout)}["colors"]
    assert info["error"] is None and info["version"] == "0.1.0" and info["models"] == ["colors"]
    assert len(info["hooks"]) == 6  # "zoo plugins now lists all six hooks of colors"


def test_zoo_run_prints_the_top_k_the_doc_shows(tutorial):
    args, shown = doc_command(tutorial["text"], "zoo run colors")
    result = zoo(tutorial, args)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out[0].startswith("colors on red.mp4 (1 clip, onnxruntime")
    notices, shown = shown[:2], shown[2:]  # the doc shows stderr's notices first
    assert result.stderr.splitlines()[1] == notices[1]  # "converting colors.npz to ONNX (once; ...)"
    assert result.stderr.splitlines()[0].split("(")[0] == notices[0].split("(")[0]
    assert shown[0].startswith("colors on red.mp4 (1 clip, onnxruntime")
    # The table (header, rule, rows) must be what the doc prints; timings vary, so stop before them.
    real_rows, doc_rows = [line.split() for line in out[1:6]], [line.split() for line in shown[1:6]]
    assert [row[:3] for row in real_rows] == [row[:3] for row in doc_rows]
    for real, doc in zip(real_rows[2:], doc_rows[2:]):  # codecs may differ in the last digit
        assert float(real[3]) == pytest.approx(float(doc[3]), abs=2e-4)
    assert out[6].startswith("timing: decode") and shown[6].startswith("timing: decode")

    again = zoo(tutorial, args + ["--json"])
    assert json.loads(again.stdout)["predictions"][0]["label"] == "red"
    assert "converting" not in again.stderr  # "the first run converts the weights (once)"


def test_zoo_compile_writes_the_config_the_doc_describes(tutorial):
    import yaml

    args, _ = doc_command(tutorial["text"], "zoo compile colors")
    result = zoo(tutorial, args)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((tutorial["work"] / "colors_nash-e" / "colors_nash-e.yaml").read_text())
    assert config["input_parameters"]["input_shape"] == "1x3x8x64x64"
    assert config["input_parameters"]["input_name"] == "video"


def test_the_tutorial_plugin_passes_check_pending(tutorial):
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "from modelzoo.core.contract.registry import get_registry\n"
            "r = get_registry(); r.pm.check_pending(); print(sorted(r.models))",
        ],
        cwd=tutorial["work"],
        env=tutorial["env"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    assert "colors" in check.stdout


def test_reference_has_one_section_per_hook_with_its_real_signature():
    text = DOC.read_text(encoding="utf-8")
    sections = dict(re.findall(r"^### `(zoo_\w+)\(([^)]*)\)`", text, re.MULTILINE))
    hooks = {
        name: ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        for name in dir(hookspecs)
        if name.startswith("zoo_")
    }
    assert sections == hooks
    for name in hooks:
        body = text.split(f"### `{name}(", 1)[1].split("\n### ", 1)[0]
        for part in ("**When:**", "**Arguments:**", "**Returns:**", "**Example:**"):
            assert part in body, f"{name}: no {part}"
