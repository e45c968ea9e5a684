"""mc3_18 and r2plus1d_18 end to end: their plugins' hooks, `zoo run`, and torch on the same clip.

The builder itself is checked per architecture in test_video_resnet.py; here the checkpoint
goes through what a user runs: the plugin found by entry point, `--weights`, the cache and
onnxruntime, and the printed probabilities must match torch's.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from videos import write_video
from zoo_cli import zoo

from modelzoo.core.contract.registry import get_registry, reset_registry

FAMILY = ("mc3_18", "r2plus1d_18")
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo_home"))
    monkeypatch.delenv("ZOO_PLUGINS", raising=False)
    monkeypatch.delenv("ZOO_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./zoo.yaml from the repo
    reset_registry()
    yield
    reset_registry()


def softmax_mean(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    return (probs / probs.sum(axis=1, keepdims=True)).mean(axis=0)


@pytest.mark.parametrize("arch", FAMILY)
def test_zoo_run_on_a_video_matches_torch(arch, capsys, tmp_path, reference_model, reference_checkpoint):
    import torch

    video = write_video(tmp_path / "clip.mp4", 48, 25.0, codec="mp4v")
    code, _, err = zoo(capsys, "preprocess", arch, "--input", video, "-o", tmp_path / "x.npy")
    assert code == 0, err
    clip = np.load(tmp_path / "x.npy")
    assert clip.shape == (1, 3, 16, 112, 112) and clip.dtype == np.float32

    code, out, err = zoo(
        capsys,
        "run",
        arch,
        "--input",
        video,
        "--weights",
        reference_checkpoint(arch),
        "--top-k",
        5,
        "--threads",
        2,
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["model"] == arch and result["clips"] == 1

    with torch.no_grad():
        expected = softmax_mean(reference_model(arch)(torch.from_numpy(clip)).numpy())
    top = np.argsort(-expected, kind="stable")[:5]
    labels = Path(MODELS_DIR / "video_resnet" / "kinetics400_labels.txt").read_text().split("\n")
    predicted = result["predictions"]
    assert [p["class_id"] for p in predicted][0] == int(top[0])
    for p in predicted:
        assert abs(p["score"] - expected[p["class_id"]]) <= 1e-4
        assert p["label"] == labels[p["class_id"]]
    # Random weights give near-uniform probabilities: require a real margin so top-1 means something.
    assert expected[top[0]] > 1.5 / 400


@pytest.mark.parametrize("arch", FAMILY)
def test_build_onnx_hook_makes_the_plugins_own_architecture(arch, reference_checkpoint):
    from modelzoo.core.artifacts.checkpoint import load_state_dict

    registry = get_registry()
    spec = registry.get_model(arch).spec
    model = registry.get_model(arch).build_onnx(load_state_dict(reference_checkpoint(arch)))
    metadata = {p.key: p.value for p in model.metadata_props}
    assert metadata["architecture"] == arch
    assert [i.name for i in model.graph.input] == [spec.input.name]
    assert model.graph.output[0].type.tensor_type.shape.dim[1].dim_value == spec.num_classes


def test_a_checkpoint_of_another_family_member_is_one_error_line(capsys, tmp_path, reference_checkpoint):
    code, out, err = zoo(
        capsys,
        "run",
        "mc3_18",
        "--input",
        write_video(tmp_path / "v.mp4", 48, 25.0, codec="mp4v"),
        "--weights",
        reference_checkpoint("r2plus1d_18"),
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and "mc3_18" in lines[-1]
    assert "Traceback" not in err
    # the unusable custom checkpoint is not left behind in the cache as mc3_18 weights
    code, out, _ = zoo(capsys, "cache", "list", "--json")
    assert code == 0 and not [e for e in json.loads(out) if e["model"] == "mc3_18"]


@pytest.mark.parametrize("arch", FAMILY)
def test_plugin_is_independent_and_loads_alone(arch, monkeypatch):
    source = (MODELS_DIR / arch / "__init__.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    # Plugins depend on the public API and their family's shared code, never on another plugin.
    allowed = ("__future__", "pathlib", "modelzoo", "modelzoo.plugin", "modelzoo.models.video_resnet")
    assert all(m in allowed for m in imported), imported

    monkeypatch.setenv("ZOO_PLUGINS", arch)
    reset_registry()
    assert sorted(get_registry().models) == [arch]


@pytest.mark.parametrize("arch, prefix", [("mc3_18", "a90a0ba3"), ("r2plus1d_18", "91a641e6")])
def test_weights_declare_only_the_published_hash_prefix(arch, prefix):
    weights = get_registry().get_model(arch).spec.artifact("weights")
    assert weights.url == f"https://download.pytorch.org/models/{arch}-{prefix}.pth"
    assert weights.sha256 is None  # the full hash is not published; do not invent one
    assert weights.sha256_prefix == prefix


@pytest.mark.parametrize("arch", FAMILY)
def test_zoo_compile_patches_once_and_configures_the_board_input(arch, capsys, tmp_path, reference_checkpoint):
    import onnx
    import yaml

    code, out, err = zoo(
        capsys, "compile", arch, "--weights", reference_checkpoint(arch), "-o", tmp_path / "wd", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    # Every plugin's zoo_patch_graph runs, but only the model's own plugin may change its graph.
    (change,) = result["changes"]  # the default rewrite: a 4-D Reshape, then a 2-D ReduceMean (docs/board.md)
    assert change.startswith("avgpool: GlobalAveragePool (5-D input [N, 512, ")
    assert change.endswith("ReduceMean(axes=[2, 3], keepdims=1) (4-D input)")
    patched = onnx.load(result["onnx"])
    assert "GlobalAveragePool" not in {n.op_type for n in patched.graph.node}
    config = yaml.safe_load(Path(result["config"]).read_text())
    assert config["model_parameters"]["march"] == "nash-e"
    assert config["input_parameters"]["input_name"] == "video"
    assert config["input_parameters"]["input_shape"] == "1x3x16x112x112"
    assert config["input_parameters"]["norm_type"] == "no_preprocess"
