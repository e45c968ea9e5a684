"""docs/plugins.md stays true: its tutorials' plugins are built from the doc's own code blocks,
installed offline, and the doc's own `zoo` commands are run on them and compared with the output
it shows. The reference must have one section per hook and per Model method, with real signatures.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from onnx_models import tiny_image_classifier

from modelzoo.core.contract import hookspecs
from modelzoo.core.contract.model import Model

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
TITLED_BLOCK = re.compile(r'^```(\w+) title="([^"]+)"\n(.*?)^```', re.MULTILINE | re.DOTALL)
CONSOLE_BLOCK = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)
PYTHON_BLOCK = re.compile(r"^( *)```python[^\n]*\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
TREE_BLOCK = re.compile(r"^```text\n(zoo-[\w-]+/\n.*?)^```", re.MULTILINE | re.DOTALL)

# The tutorials' distributions (installed) and the scripts they run beside them.
DISTRIBUTIONS = ("zoo-colors", "zoo-brightness", "zoo-yolo-nms", "zoo-extras")
MODULES = (
    "zoo-colors/zoo_colors/__init__.py",
    "zoo-brightness/zoo_brightness/__init__.py",
    "zoo-yolo-nms/zoo_yolo_nms/__init__.py",
    "zoo-extras/zoo_extras/__init__.py",
)
SCRIPTS = {"make_colors_weights.py", "make_brightness_weights.py"}
WHITE = 240  # the gray level of white.png; the doc's probabilities are for it


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


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


def doc_trees(text: str) -> dict:
    """{distribution: set of file paths} drawn by the doc's ```text layout trees."""
    trees = {}
    for block in TREE_BLOCK.findall(text):
        lines = block.splitlines()
        root = lines[0].rstrip("/")
        stack, files = [], set()
        for line in lines[1:]:
            start = next(i for i, c in enumerate(line) if c.isalnum() or c == "_")
            depth = start // 4 - 1
            name = line[start:].split()[0]
            stack = stack[:depth] + [name.rstrip("/")]
            if not name.endswith("/"):
                files.add("/".join(stack))
        trees[root] = files
    return trees


def shell(args, env, cwd, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    """The tutorials' distributions, written from the doc and pip-installed offline into private folders:
    zoo-colors and zoo-brightness together, zoo-extras apart (it adds a backend every listing would show)."""
    text = doc_text()
    root = tmp_path_factory.mktemp("tutorial")
    work = root / "work"
    work.mkdir()
    files = doc_files(text)
    for title, body in files.items():
        target = (root if title.split("/")[0] in DISTRIBUTIONS else work) / title
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding="utf-8")

    env = {k: v for k, v in os.environ.items() if k not in ("ZOO_PLUGINS", "ZOO_CONFIG", "ZOO_DEBUG", "PYTHONPATH")}
    env.update(ZOO_HOME=str(root / "home"), PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "--target"]
    for site, projects in (("site", ["zoo-colors", "zoo-brightness", "zoo-yolo-nms"]), ("site_extras", ["zoo-extras"])):
        installed = shell([*pip, root / site, *(root / p for p in projects)], env, root, timeout=300)
        assert installed.returncode == 0, installed.stderr
    extras_env = {**env, "PYTHONPATH": os.pathsep.join([str(root / "site"), str(root / "site_extras")])}
    env["PYTHONPATH"] = str(root / "site")

    # Reproduce the tutorials' other steps: the weights scripts, and the inputs they classify.
    for script in sorted(SCRIPTS):
        made = shell([sys.executable, script], env, work, timeout=60)
        assert made.returncode == 0, made.stderr
    write_red_video(work / "red.mp4")
    import cv2

    cv2.imwrite(str(work / "white.png"), np.full((48, 64, 3), WHITE, np.uint8))
    (work / "photos").mkdir()
    for index in range(4):  # "here four"
        photo = np.random.default_rng(index).integers(0, 256, (60 + 10 * index, 80, 3), dtype=np.uint8)
        cv2.imwrite(str(work / "photos" / f"photo{index}.png"), photo)
    return {"text": text, "files": files, "root": root, "work": work, "env": env, "extras_env": extras_env}


def write_red_video(path: Path) -> None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (96, 72))
    assert writer.isOpened()
    for _ in range(30):
        writer.write(np.full((72, 96, 3), (0, 0, 255), np.uint8))  # BGR red
    writer.release()


def zoo(tutorial, args, *, extras=False, home=None) -> subprocess.CompletedProcess:
    assert args[0] == "zoo"
    env = dict(tutorial["extras_env" if extras else "env"])
    if home is not None:
        env["ZOO_HOME"] = str(home)
    return shell([sys.executable, "-m", "modelzoo", *args[1:]], env, tutorial["work"])


STDERR_PREFIXES = ("using ", "converting ", "patched ", "warning: ", "note: ")


def normalized(tutorial, text: str) -> list:
    """Output lines as the doc writes them: its folder is /home/you, hashes and versions vary."""
    text = text.replace(str(tutorial["work"]), "/home/you")
    text = re.sub(r"sha256 [0-9a-f]{12}…", "sha256 <hash>…", text)
    text = re.sub(r"\b(onnxruntime|opencv) \d[\w.]*", r"\1 <version>", text)
    return text.splitlines()


def split_shown(shown: list) -> tuple:
    """The doc shows a command's stderr notices and its stdout together: (stdout lines, stderr lines)."""
    return [line for line in shown if not line.startswith(STDERR_PREFIXES)], [
        line for line in shown if line.startswith(STDERR_PREFIXES)
    ]


def assert_table_as_shown(real: list, shown: list) -> None:
    """Header, rule and rows of a Top-k table as the doc shows them; probabilities to the printed digits."""
    real_rows, doc_rows = [line.split() for line in real], [line.split() for line in shown]
    assert len(real_rows) == len(doc_rows), (real, shown)
    assert [row[:3] for row in real_rows] == [row[:3] for row in doc_rows]
    for got, doc in zip(real_rows[2:], doc_rows[2:]):  # codecs may differ in the last digit
        assert float(got[3]) == pytest.approx(float(doc[3]), abs=2e-4)


@pytest.fixture(scope="module")
def brightness_onnx(tutorial):
    """`zoo export brightness ...` as the doc runs it: the file later commands pass as --model."""
    args, shown = doc_command(tutorial["text"], "zoo export brightness")
    result = zoo(tutorial, args)
    assert result.returncode == 0, result.stderr
    return {"args": args, "shown": shown, "result": result, "path": tutorial["work"] / args[args.index("-o") + 1]}


# -- the layout ------------------------------------------------------------------------------------


def test_doc_blocks_make_exactly_the_layouts_the_tutorials_show(tutorial):
    files = tutorial["files"]
    trees = doc_trees(tutorial["text"])
    assert set(trees) == {"zoo-colors", "zoo-brightness"}
    for dist, drawn in trees.items():
        written = {title.split("/", 1)[1] for title in files if title.startswith(dist + "/")}
        assert written == drawn, dist
    assert {title for title in files if title.split("/")[0] not in DISTRIBUTIONS} == SCRIPTS
    assert "zoo-extras/pyproject.toml" in files
    for module in MODULES:
        compile(files[module], module, "exec")
        assert f"ZOO_HOOKSPEC_VERSION = {hookspecs.HOOKSPEC_VERSION}" in files[module]
        assert hookspecs.HOOKSPEC_VERSION == 2


def test_every_python_example_compiles_and_imports_what_exists():
    """Untitled examples are not run, but they must be Python and name only what modelzoo provides."""
    import modelzoo
    import modelzoo.plugin
    import modelzoo.testing

    modules = {"modelzoo": modelzoo, "modelzoo.plugin": modelzoo.plugin, "modelzoo.testing": modelzoo.testing}
    blocks = PYTHON_BLOCK.findall(doc_text())
    assert len(blocks) > 20
    for _indent, body in blocks:
        tree = ast.parse(textwrap.dedent(body))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                for alias in node.names:
                    assert hasattr(modules[node.module], alias.name), f"{node.module} has no {alias.name}"
                    if node.module == "modelzoo.plugin":
                        assert alias.name in modelzoo.plugin.__all__, alias.name


# -- tutorial 1: the video classifier -----------------------------------------------------------------


def test_zoo_list_shows_the_tutorial_models_as_the_doc_does(tutorial):
    args, shown = doc_command(tutorial["text"], "zoo list")
    result = zoo(tutorial, args)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    real = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:]}
    assert shown[0].split() == result.stdout.splitlines()[0].split()
    doc_row = next(line.split() for line in shown if line.startswith("colors "))
    assert real["colors"] == doc_row
    assert real["brightness"][:3] == ["brightness", "image-classification", "float32[N,3,32,32]"]

    plugins = zoo(tutorial, ["zoo", "plugins", "--json"])
    infos = {p["name"]: p for p in json.loads(plugins.stdout)}
    for name in ("colors", "brightness"):
        info = infos[name]
        assert info["error"] is None and info["version"] == "0.1.0" and info["models"] == [name]
        assert info["hooks"] == ["zoo_register_models"]  # everything else is a method of the model


def test_zoo_run_colors_prints_the_top_k_the_doc_shows(tutorial, tmp_path):
    args, shown = doc_command(tutorial["text"], "zoo run colors")
    result = zoo(tutorial, args, home=tmp_path / "home")  # a fresh cache: the first run converts
    assert result.returncode == 0, result.stderr
    shown_out, shown_err = split_shown(normalized(tutorial, "\n".join(shown)))
    assert normalized(tutorial, result.stderr) == shown_err  # "using custom weights ...", "converting ..."
    out = normalized(tutorial, result.stdout)
    assert out[0] == shown_out[0] == "colors on red.mp4 (1 clip, onnxruntime <version> (CPUExecutionProvider))"
    assert_table_as_shown(out[1:6], shown_out[1:6])
    assert out[6].startswith("timing: decode") and shown_out[6].startswith("timing: decode")
    assert len(out) == len(shown_out)

    again = zoo(tutorial, args + ["--json"], home=tmp_path / "home")
    assert again.returncode == 0, again.stderr
    data = json.loads(again.stdout)
    assert data["predictions"][0]["label"] == "red" and data["clips"] == 1
    assert "converting" not in again.stderr  # "the first run converts the weights (once)"


def test_zoo_compile_colors_patches_and_writes_the_config_the_doc_describes(tutorial, tmp_path):
    import onnx
    import yaml

    home = tmp_path / "home"
    ran = zoo(tutorial, doc_command(tutorial["text"], "zoo run colors")[0], home=home)  # the tutorial's order
    assert ran.returncode == 0, ran.stderr
    args, shown = doc_command(tutorial["text"], "zoo compile colors")
    result = zoo(tutorial, args, home=home)
    assert result.returncode == 0, result.stderr
    shown_out, shown_err = split_shown(shown)
    assert normalized(tutorial, result.stderr) == normalized(tutorial, "\n".join(shown_err))
    assert normalized(tutorial, result.stdout) == shown_out

    workdir = tutorial["work"] / "colors_nash-e"
    config = yaml.safe_load((workdir / "colors_nash-e.yaml").read_text())
    assert config["input_parameters"]["input_shape"] == "1x3x8x64x64"  # as the doc says
    assert config["input_parameters"]["input_type_rt"] == "featuremap"
    assert config["input_parameters"]["input_name"] == "video"
    ops = [node.op_type for node in onnx.load(str(workdir / "colors_nash-e.onnx")).graph.node]
    assert "ReduceMean" in ops and "GlobalAveragePool" not in ops


def test_zoo_calib_colors_writes_one_sample_per_clip(tutorial):
    command = re.search(r"`(zoo calib colors [^`]+)` writes `red_clip0.npy` and `red_clip1.npy`", tutorial["text"])
    args = shlex.split(command.group(1))
    args[args.index("-o") + 1] = "calib_colors"  # `calib` is the brightness tutorial's folder
    result = zoo(tutorial, args)
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in (tutorial["work"] / "calib_colors").iterdir())
    assert written == ["red_clip0.npy", "red_clip1.npy"]
    assert np.load(tutorial["work"] / "calib_colors" / "red_clip0.npy").shape == (1, 3, 8, 64, 64)


# -- tutorial 2: the image classifier -------------------------------------------------------------------


def test_zoo_export_and_run_brightness_as_the_doc_shows(tutorial, brightness_onnx):
    result = brightness_onnx["result"]
    shown_out, shown_err = split_shown(normalized(tutorial, "\n".join(brightness_onnx["shown"])))
    assert normalized(tutorial, result.stderr) == shown_err
    assert normalized(tutorial, result.stdout) == shown_out  # "wrote brightness.onnx (converted, ...)"
    assert brightness_onnx["path"].is_file()

    args, shown = doc_command(tutorial["text"], "zoo run brightness")
    assert "--model" in args and "brightness.onnx" in args
    run = zoo(tutorial, args)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    out, shown = normalized(tutorial, run.stdout), normalized(tutorial, "\n".join(shown))
    assert out[0] == shown[0] == "brightness on white.png (onnxruntime <version> (CPUExecutionProvider))"
    assert_table_as_shown(out[1:5], shown[1:5])
    assert out[5].startswith("timing: ") and len(out) == len(shown)

    black = tutorial["work"] / "black.npy"
    np.save(black, np.full((40, 40, 3), 10, np.uint8))
    dark = zoo(tutorial, ["zoo", "run", "brightness", black, "--model", brightness_onnx["path"], "--json"])
    assert json.loads(dark.stdout)["predictions"][0]["label"] == "dark"  # the model is not a constant


def test_any_onnx_with_the_specs_interface_runs_with_model(tutorial):
    tiny = tiny_image_classifier(tutorial["work"] / "tiny.onnx", size=32, classes=2)
    result = zoo(tutorial, ["zoo", "run", "brightness", "white.png", "--model", tiny, "--top-k", "2", "--json"])
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model_file"] == str(tiny) and data["backend"].startswith("onnxruntime")
    assert sorted(p["label"] for p in data["predictions"]) == ["bright", "dark"]
    assert sum(p["score"] for p in data["predictions"]) == pytest.approx(1.0)


def test_zoo_info_brightness_is_what_the_doc_shows(tutorial):
    args, shown = doc_command(tutorial["text"], "zoo info brightness")
    result = zoo(tutorial, args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[: len(shown)] == shown


def test_zoo_calib_and_compile_brightness_as_the_doc_shows(tutorial, brightness_onnx):
    import yaml

    args, shown = doc_command(tutorial["text"], "zoo calib brightness")
    calib = zoo(tutorial, args)
    assert calib.returncode == 0, calib.stderr
    assert calib.stdout.splitlines() == shown[:1]
    assert calib.stderr.splitlines() == shown[1:]
    out_dir = tutorial["work"] / args[args.index("-o") + 1]
    samples = sorted(out_dir.glob("*.npy"))
    assert [p.name for p in samples] == [f"photo{i}.npy" for i in range(4)]
    # one sample per image, exactly what `zoo preprocess` (and so `zoo run`) feeds the model
    preprocess = zoo(tutorial, ["zoo", "preprocess", "brightness", "--input", "photos/photo2.png", "-o", "p2.npy"])
    assert preprocess.returncode == 0, preprocess.stderr
    sample = np.load(out_dir / "photo2.npy")
    assert sample.dtype == np.float32 and sample.shape == (1, 3, 32, 32)
    np.testing.assert_array_equal(sample, np.load(tutorial["work"] / "p2.npy"))

    args, shown = doc_command(tutorial["text"], "zoo compile brightness")
    compiled = zoo(tutorial, args)
    assert compiled.returncode == 0, compiled.stderr
    shown_out, shown_err = split_shown(shown)
    assert normalized(tutorial, compiled.stderr) == shown_err  # nothing patched, no warning
    assert normalized(tutorial, compiled.stdout) == shown_out
    workdir = tutorial["work"] / args[args.index("-o") + 1]
    config = yaml.safe_load((workdir / "brightness_nash-e.yaml").read_text())
    doc_yaml = re.search(r"^```yaml\n(input_parameters:.*?)^```", tutorial["text"], re.MULTILINE | re.DOTALL)
    assert config["input_parameters"] == yaml.safe_load(doc_yaml.group(1))["input_parameters"]
    assert config["calibration_parameters"]["cal_data_dir"] == "calibration"
    assert config["calibration_parameters"]["calibration_type"] == "default"
    assert len(list((workdir / "calibration").glob("*.npy"))) == 4


def test_the_brightness_plugins_own_tests_pass_as_the_doc_shows(tutorial):
    args, shown = doc_command(tutorial["text"], "pytest zoo-brightness")
    env = {**tutorial["env"], "ZOO_HOME": str(tutorial["root"] / "pytest_home")}
    result = shell(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args[1:]], env, tutorial["root"], timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert shown[-1] in result.stdout.strip().splitlines()[-1]  # "2 passed"


def test_the_tutorial_plugins_pass_check_pending_and_check_model(tutorial):
    check = shell(
        [
            sys.executable,
            "-c",
            "import tempfile\n"
            "from modelzoo.core.contract.registry import get_registry\n"
            "from modelzoo.testing import check_model\n"
            "r = get_registry(); r.pm.check_pending()\n"
            "assert all(i.error is None for i in r.plugins.values()), r.plugins\n"
            "for name in ('colors', 'brightness', 'yolo11n_nms', 'tinyembed'):\n"
            "    with tempfile.TemporaryDirectory() as d:\n"
            "        print(name, check_model(name, d))\n",
        ],
        tutorial["extras_env"],
        tutorial["work"],
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
    assert [line.split()[0] for line in check.stdout.splitlines()] == [
        "colors",
        "brightness",
        "yolo11n_nms",
        "tinyembed",
    ]
    assert all("runs_end_to_end" in line and "board_config" in line for line in check.stdout.splitlines())


# -- tutorial 3: a detector with its own decode ---------------------------------------------------------------


def write_nms_export(path: Path) -> Path:
    """An ONNX of the `nms=True` export's layout ([1, 300, 6] rows), holding the two detections the doc shows
    on a 1280x720 image (letterboxed at half size, 140 rows of padding above) and one below the threshold."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rows = np.zeros((1, 300, 6), np.float32)
    rows[0, 0] = (100, 160, 300, 400, 0.92, 0)  # person: image box (200, 40, 600, 520)
    rows[0, 1] = (400, 300, 560, 380, 0.81, 2)  # car: image box (800, 320, 1120, 480)
    rows[0, 2] = (20, 150, 60, 200, 0.2, 16)  # a dog below --conf 0.25
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
            helper.make_node("Reshape", ["mean", "shape"], ["mean3"]),
            helper.make_node("Mul", ["mean3", "zero"], ["nothing"]),
            helper.make_node("Add", ["nothing", "rows"], ["output0"]),
        ],
        "nms_export",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 300, 6])],
        [
            numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape"),
            numpy_helper.from_array(np.array(0, np.float32), "zero"),
            numpy_helper.from_array(rows, "rows"),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def test_the_detector_with_its_own_decode_runs_as_the_doc_shows(tutorial):
    import cv2

    work = tutorial["work"]
    write_nms_export(work / "yolo11n_nms.onnx")
    cv2.imwrite(str(work / "street.jpg"), np.full((720, 1280, 3), 90, np.uint8))

    args, shown = doc_command(tutorial["text"], "zoo run yolo11n_nms")
    result = zoo(tutorial, args)
    assert result.returncode == 0, result.stderr
    out, shown = normalized(tutorial, result.stdout), normalized(tutorial, "\n".join(shown))
    assert out[:5] == shown[:5]  # the heading, and the table exactly
    assert out[5].startswith("timing: ") and shown[5].startswith("timing: ") and len(out) == len(shown) == 6
    saved = cv2.imread(str(work / args[args.index("--save") + 1]))
    assert saved.shape == (720, 1280, 3) and (np.abs(saved.astype(int) - 90).max(axis=2) > 60).sum() > 1000

    data = json.loads(
        zoo(tutorial, ["zoo", "run", "yolo11n_nms", "street.jpg", "--model", "yolo11n_nms.onnx", "--json"]).stdout
    )
    assert [d["label"] for d in data["detections"]] == ["person", "car"]
    assert data["detections"][1]["box"] == [800.0, 320.0, 1120.0, 480.0]
    person = zoo(
        tutorial, ["zoo", "run", "yolo11n_nms", "street.jpg", "--model", "yolo11n_nms.onnx", "--conf", "0.9", "--json"]
    )
    assert [d["label"] for d in json.loads(person.stdout)["detections"]] == [
        "person"
    ]  # "--conf 0.9 keeps the person only"

    args, shown = doc_command(tutorial["text"], "zoo run yolo11n street.jpg")
    refused = zoo(tutorial, args)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.splitlines() == shown  # one error line naming the mismatch


# -- extending zoo ----------------------------------------------------------------------------------------


def test_the_extras_plugin_adds_a_task_a_backend_a_rule_and_a_command(tutorial):
    args, shown = doc_command(tutorial["text"], "zoo tasks")
    result = zoo(tutorial, args, extras=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == shown

    plugins = zoo(tutorial, ["zoo", "plugins", "--json"], extras=True)
    info = {p["name"]: p for p in json.loads(plugins.stdout)}["extras"]
    assert info["error"] is None and info["models"] == ["tinyembed"] and info["tasks"] == ["embedding"]
    assert set(info["hooks"]) == {
        "zoo_register_tasks",
        "zoo_register_models",
        "zoo_register_backends",
        "zoo_register_marches",
        "zoo_register_commands",
    }

    def commands(extras):
        listed = zoo(tutorial, ["zoo", "--help"], extras=extras).stdout.split("Commands:")[1]
        return {line.split()[0] for line in listed.splitlines() if line.strip()}

    assert "tasks" in commands(True) and "tasks" not in commands(False)


def test_the_embedding_task_runs_as_the_doc_shows(tutorial):
    args, shown = doc_command(tutorial["text"], "zoo run tinyembed")
    model = tiny_image_classifier(
        tutorial["work"] / args[args.index("--model") + 1], classes=4, output_name="embedding"
    )
    result = zoo(tutorial, args, extras=True)
    assert result.returncode == 0, result.stderr
    real, doc = json.loads(result.stdout), json.loads("\n".join(shown))
    assert list(real) == list(doc)  # the task's keys, where the doc shows them
    assert real["dim"] == doc["dim"] == 4 and real["model_file"] == doc["model_file"] == model.name
    assert real["embedding"] == pytest.approx(doc["embedding"], abs=2e-6)
    assert np.linalg.norm(real["embedding"]) == pytest.approx(1.0, abs=1e-5)

    raw = zoo(tutorial, [*args, "-O", "normalize=false"], extras=True)
    assert raw.returncode == 0, raw.stderr
    assert np.linalg.norm(json.loads(raw.stdout)["embedding"]) != pytest.approx(1.0, abs=1e-3)

    text = zoo(tutorial, [a for a in args if a != "--json"], extras=True)
    assert text.stdout.splitlines()[1].startswith("embedding (4 values): ")  # the task's format_result


def test_the_opencv_backend_runs_as_the_doc_shows(tutorial, brightness_onnx):
    args, shown = doc_command(tutorial["text"], "zoo run brightness white.png --model brightness.onnx --backend opencv")
    result = zoo(tutorial, args, extras=True)
    assert result.returncode == 0, result.stderr
    out, shown = normalized(tutorial, result.stdout), normalized(tutorial, "\n".join(shown))
    assert out[0] == shown[0] == "brightness on white.png (opencv <version>)"
    assert_table_as_shown(out[1:5], shown[1:5])
    assert len(out) == len(shown)
    # auto keeps choosing onnxruntime, as the doc says
    auto = zoo(tutorial, ["zoo", "run", "brightness", "white.png", "--model", "brightness.onnx", "--json"], extras=True)
    assert json.loads(auto.stdout)["backend"].startswith("onnxruntime")


def test_the_march_rule_flags_einsum_in_zoo_check(tutorial):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Einsum", ["image", "w"], ["scaled"], name="mix", equation="nchw,c->nchw"),
            helper.make_node("GlobalAveragePool", ["scaled"], ["pooled"], name="pool"),
            helper.make_node("Flatten", ["pooled"], ["logits"], name="flatten"),
        ],
        "einsum",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(np.ones(3, np.float32), "w")],
    )
    path = tutorial["work"] / "einsum.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))

    flagged = zoo(tutorial, ["zoo", "check", "brightness", "--model", path, "--json"], extras=True)
    assert flagged.returncode == 1, flagged.stderr
    (finding,) = json.loads(flagged.stdout)["findings"]
    assert finding["node"] == "mix" and finding["message"] == "our deployment does not allow Einsum"
    assert finding["fix"] == "export the model with MatMul instead"
    assert zoo(tutorial, ["zoo", "check", "brightness", "--model", path]).returncode == 0  # without the plugin


# -- the scaffold ------------------------------------------------------------------------------------------


def test_zoo_new_plugin_prints_what_the_doc_shows(tutorial, tmp_path):
    from modelzoo.commands.scaffold import new_plugin

    args, shown = doc_command(tutorial["text"], "zoo new-plugin")
    result = shell([sys.executable, "-m", "modelzoo", *args[1:]], tutorial["env"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == shown
    module = (tmp_path / "zoo-my-model" / "zoo_my_model" / "__init__.py").read_text()
    assert "ImageClassifier" in module and "def build_onnx" in module and "def zoo_register_models" in module
    (task,) = [p for p in new_plugin.params if p.name == "task"]
    choices = list(task.type.choices)
    assert choices == ["video-classification", "image-classification", "object-detection"]
    listed = ", ".join(f"`{c}`" for c in choices[1:-1])
    sentence = f"`--task` is `{choices[0]}` (the default), {listed} or `{choices[-1]}`;"
    assert " ".join(sentence.split()) in " ".join(tutorial["text"].split())


# -- the reference -----------------------------------------------------------------------------------------


def section(text: str, heading: str) -> str:
    return text.split(heading, 1)[1].split("\n### ", 1)[0]


def test_reference_has_one_section_per_hook_with_its_real_signature():
    text = doc_text()
    sections = dict(re.findall(r"^### `(zoo_\w+)\(([^)]*)\)`", text, re.MULTILINE))
    hooks = {
        name: ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        for name in dir(hookspecs)
        if name.startswith("zoo_")
    }
    assert sections == hooks
    for name in hooks:
        body = section(text, f"### `{name}(")
        for part in ("**When:**", "**Arguments:**", "**Returns:**", "**Example:**"):
            assert part in body, f"{name}: no {part}"
    # a broadcast hook is documented as such, the one firstresult hook as choosing
    assert "First\n  non-`None` result wins" in section(text, "### `zoo_select_backend(")


def test_reference_has_one_section_per_model_method_with_its_real_signature():
    text = doc_text()
    sections = dict(re.findall(r"^### `Model\.(\w+)\(([^)]*)\)`", text, re.MULTILINE))
    methods = {
        name: ", ".join(
            str(p.replace(annotation=inspect.Parameter.empty))
            for p in inspect.signature(member).parameters.values()
            if p.name != "self"
        )
        for name, member in vars(Model).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }
    assert sections == methods
    for name in methods:
        body = section(text, f"### `Model.{name}(")
        for part in ("**Called by:**", "**Arguments:**", "**Returns:**", "**Default:**", "**Example:**"):
            assert part in body, f"Model.{name}: no {part}"
