"""`zoo compile`: patched model, hb_compile YAML and calibration in WORKDIR; runs a (fake) hb_compile when on PATH."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import onnx
import pytest
import yaml
from onnx_models import FAKES, tiny_video_classifier, zoo_onnx
from videos import write_video
from zoo_cli import invoke

from modelzoo.core.board.hb_compile import parse_cosine_table


@pytest.fixture(scope="module")
def r3d_onnx(reference_model, tmp_path_factory):
    """A full-size zoo R3D-18 graph (input [N,3,16,112,112]) with the reference model's random weights."""
    return zoo_onnx(reference_model("r3d_18"), tmp_path_factory.mktemp("onnx") / "r3d_18.onnx")


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """R3D-18's input, output and 5-D GlobalAveragePool at a few ms per clip: patch verification stays fast."""
    return tiny_video_classifier(tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture
def calib_npys(tmp_path):
    folder = tmp_path / "calib"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        np.save(folder / f"{name}.npy", rng.standard_normal((1, 3, 16, 112, 112), dtype=np.float32))
    return folder


@pytest.fixture
def no_hb_compile(tmp_path, monkeypatch):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture
def fake_hb_compile(tmp_path, monkeypatch):
    """`hb_compile` on PATH: a shell wrapper around tests/fakes/fake_hb_compile.py."""
    bin_dir = tmp_path / "fake_bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "hb_compile"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKES / "fake_hb_compile.py"}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return wrapper


def test_config_yaml_without_hb_compile(capsys, tmp_path, r3d_onnx, calib_npys, no_hb_compile):
    workdir = tmp_path / "work"
    result = invoke(
        capsys, "compile", "r3d_18", "--march", "nash-e", "--model", r3d_onnx, "--calib", calib_npys, "-o", workdir
    )
    assert result.code == 0, result.err
    # the exact command to run inside OpenExplorer, and a notice that it was not run here
    assert f"cd {workdir} && hb_compile --config r3d_18_nash-e.yaml" in result.out
    assert "not found" in result.err and not result.error_lines

    config = yaml.safe_load((workdir / "r3d_18_nash-e.yaml").read_text())
    assert list(config) == ["model_parameters", "input_parameters", "calibration_parameters", "compiler_parameters"]
    assert config["model_parameters"] == {
        "onnx_model": "r3d_18_nash-e.onnx",
        "march": "nash-e",
        "working_dir": "model_output",
        "output_model_file_prefix": "r3d_18",
    }
    inputs = config["input_parameters"]
    assert inputs["input_name"] == "video"
    assert inputs["input_type_rt"] == inputs["input_type_train"] == "featuremap"
    assert inputs["input_layout_rt"] == inputs["input_layout_train"] == "NCHW"
    assert inputs["input_shape"] == "1x3x16x112x112"
    assert inputs["norm_type"] == "no_preprocess"
    assert config["calibration_parameters"] == {
        "cal_data_dir": "calibration",
        "cal_data_type": "float32",
        "calibration_type": "default",
    }
    compiler = config["compiler_parameters"]
    assert compiler["optimize_level"] == "O2" and compiler["compile_mode"] == "latency" and compiler["core_num"] == 1
    assert "jobs" not in compiler  # the host's core count says nothing about the OpenExplorer machine

    # the paths in the YAML resolve inside WORKDIR, and hold what hb_compile needs
    model = onnx.load(str(workdir / "r3d_18_nash-e.onnx"))
    assert "GlobalAveragePool" not in [n.op_type for n in model.graph.node]
    # the default rewrite: a Reshape to 4-D and a 2-D ReduceMean, as D-Robotics describes (docs/board.md)
    assert [n.op_type for n in model.graph.node][-4:] == ["Reshape", "ReduceMean", "Flatten", "Gemm"]
    assert "patched avgpool: GlobalAveragePool" in result.err and "not known" not in result.err
    copied = sorted(p.name for p in (workdir / "calibration").glob("*.npy"))
    assert copied == ["a.npy", "b.npy", "c.npy"]
    assert (np.load(workdir / "calibration" / "b.npy") == np.load(calib_npys / "b.npy")).all()


def test_compile_runs_the_fake_hb_compile(capsys, tmp_path, tiny_onnx, calib_npys, fake_hb_compile):
    workdir = tmp_path / "work"
    result = invoke(capsys, "compile", "r3d_18", "--model", tiny_onnx, "--calib", calib_npys, "-o", workdir, "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["ran"] is True
    hbm = workdir / "model_output" / "r3d_18.hbm"
    assert data["result"]["hbm"] == str(hbm) and hbm.is_file()
    # the fake writes hb_compile's published table format: per output, calibrated then quantized cosine
    assert data["result"]["completed"] is True
    assert data["result"]["outputs"] == [
        {"name": "logits", "calibrated_cosine": 0.999512, "quantized_cosine": 0.998765}
    ]
    assert data["calibration"] == {"dir": str(workdir / "calibration"), "samples": 3}
    assert "calibration with 3 samples" in result.err  # the tool's log is streamed to stderr

    text = invoke(capsys, "compile", "r3d_18", "--model", tiny_onnx, "--calib", calib_npys, "-o", workdir)
    assert text.code == 0, text.err
    assert str(hbm) in text.out and "0.998765" in text.out and "cosine similarity" in text.out


def test_fast_perf_maps_to_the_quick_check(capsys, tmp_path, tiny_onnx, fake_hb_compile):
    workdir = tmp_path / "work"
    result = invoke(capsys, "compile", "r3d_18", "--model", tiny_onnx, "-o", workdir, "--fast-perf", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["result"]["command"] == [
        "hb_compile",
        "--fast-perf",
        "--march",
        "nash-e",
        "--model",
        "r3d_18_nash-e.onnx",
        "--input-shape",
        "video",
        "1x3x16x112x112",  # the batch is dynamic in the ONNX: the documented command names the shape
    ]
    assert (workdir / "model_output" / "r3d_18_nash-e.hbm").is_file()
    assert data["config"] is None


def test_compile_with_the_5d_rewrite_warns_but_goes_on(capsys, tmp_path, tiny_onnx, calib_npys, fake_hb_compile):
    """--rewrite picks the march's other rewrite; its 5-D ReduceMean is only not known to be accepted."""
    from modelzoo.core.graph.onnx_shapes import tensor_ranks

    workdir = tmp_path / "work"
    result = invoke(
        capsys,
        "compile",
        "r3d_18",
        "--model",
        tiny_onnx,
        "--calib",
        calib_npys,
        "-o",
        workdir,
        "--rewrite",
        "reduce_mean_5d",
        "--json",
    )
    assert result.code == 0, result.err
    assert json.loads(result.out)["changes"] == [
        "avgpool: GlobalAveragePool (5-D input) -> ReduceMean(axes=[2, 3, 4], keepdims=1)"
    ]
    assert "warning: avgpool (ReduceMean, 5-D input)" in result.err and "not known to be accepted" in result.err
    model = onnx.load(str(workdir / "r3d_18_nash-e.onnx"))
    ranks = tensor_ranks(model)
    assert [(n.op_type, ranks[n.input[0]]) for n in model.graph.node if n.op_type == "ReduceMean"] == [
        ("ReduceMean", 5)
    ]

    invoke(capsys, "compile", "r3d_18", "--model", tiny_onnx, "--rewrite", "nope", "-o", workdir).assert_user_error(
        "no rewrite 'nope'", "reduce_mean_4d (default)", "reduce_mean_5d"
    )


def test_unpatched_model_is_what_the_fake_rejects(tmp_path, tiny_onnx, fake_hb_compile):
    """Guards the fake itself: it refuses the 5-D GlobalAveragePool like the real toolchain."""
    import subprocess

    run = subprocess.run(
        ["hb_compile", "--fast-perf", "--march", "nash-e", "--model", str(tiny_onnx)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 1 and "GlobalAveragePool" in run.stdout


def test_hb_compile_failure_is_one_error_line(capsys, tmp_path, tiny_onnx, calib_npys, fake_hb_compile, monkeypatch):
    monkeypatch.setenv("FAKE_HB_COMPILE_FAIL", "1")
    result = invoke(capsys, "compile", "r3d_18", "--model", tiny_onnx, "--calib", calib_npys, "-o", tmp_path / "w")
    result.assert_user_error("hb_compile failed", "exit code 1", "log")


def test_calib_dir_of_videos_and_bad_npys(capsys, tmp_path, tiny_onnx, no_hb_compile):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "archery.avi", 20, 15)
    workdir = tmp_path / "work"
    result = invoke(capsys, "compile", "r3d_18", "--model", tiny_onnx, "--calib", videos, "-o", workdir, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["calibration"]["samples"] == 1
    assert np.load(workdir / "calibration" / "archery.npy").shape == (1, 3, 16, 112, 112)

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    np.save(wrong / "x.npy", np.zeros((2, 3, 16, 112, 112), np.float32))
    invoke(capsys, "compile", "r3d_18", "--model", tiny_onnx, "--calib", wrong, "-o", workdir).assert_user_error(
        "x.npy", "[2, 3, 16, 112, 112]", "zoo calib"
    )


def test_a_bad_npy_among_good_ones_leaves_the_workdir_as_it_was(capsys, tmp_path, tiny_onnx, no_hb_compile):
    """One wrong sample after good ones: the model, the config and the calibration folder of the earlier
    run are untouched (no half-copied calibration set beside a new model), and a fresh WORKDIR stays empty."""
    good = tmp_path / "good"
    good.mkdir()
    np.save(good / "a.npy", np.full((1, 3, 16, 112, 112), 0.5, np.float32))
    workdir = tmp_path / "work"
    assert invoke(capsys, "compile", "r3d_18", "--model", tiny_onnx, "--calib", good, "-o", workdir).code == 0
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    np.save(mixed / "a.npy", np.zeros((1, 3, 16, 112, 112), np.float32))  # sorted first, valid
    np.save(mixed / "b.npy", np.zeros((1, 3, 16, 112, 112), np.float64))
    invoke(capsys, "compile", "r3d_18", "--model", tiny_onnx, "--calib", mixed, "-o", workdir).assert_user_error(
        "b.npy", "float64"
    )
    assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before

    fresh = tmp_path / "fresh"
    invoke(capsys, "compile", "r3d_18", "--model", tiny_onnx, "--calib", mixed, "-o", fresh).assert_user_error("b.npy")
    assert not fresh.exists() or not any(fresh.rglob("*"))


def test_a_cosine_the_log_gives_as_nan_is_shown_not_a_crash(capsys, tmp_path, tiny_onnx, monkeypatch):
    """hb_compile may print `nan` (or `--`) for a cosine; zoo read it as no value and then crashed formatting
    the table, an internal error after the whole compile had succeeded."""
    bin_dir = tmp_path / "nan_bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "hb_compile"
    wrapper.write_text(
        f'#!/bin/sh\n"{sys.executable}" "{FAKES / "fake_hb_compile.py"}" "$@" || exit $?\n'
        "echo '+------------+-------------------+------------------+'\n"
        "echo '| TensorName | Calibrated Cosine | Quantized Cosine |'\n"
        "echo '+------------+-------------------+------------------+'\n"
        "echo '| logits     | nan               | 0.971234         |'\n"
        "echo '+------------+-------------------+------------------+'\n"
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    workdir = tmp_path / "work"
    text = invoke(capsys, "compile", "r3d_18", "--model", tiny_onnx, "-o", workdir)
    assert text.code == 0, text.err
    row = next(line for line in text.out.splitlines() if line.startswith("logits"))
    assert row.split() == ["logits", "0.971234", "-"]
    data = json.loads(invoke(capsys, "compile", "r3d_18", "--model", tiny_onnx, "-o", workdir, "--json").out)
    assert data["result"]["outputs"] == [{"name": "logits", "calibrated_cosine": None, "quantized_cosine": 0.971234}]


def test_no_calibration_data_means_skip_with_a_warning(capsys, tmp_path, tiny_onnx, no_hb_compile):
    workdir = tmp_path / "work"
    result = invoke(capsys, "compile", "r3d_18", "--model", tiny_onnx, "-o", workdir)
    assert result.code == 0, result.err
    assert "random data" in result.err
    config = yaml.safe_load((workdir / "r3d_18_nash-e.yaml").read_text())
    assert config["calibration_parameters"]["calibration_type"] == "skip"


def test_parse_cosine_table_ignores_the_per_node_table():
    log = "\n".join(
        [
            "Node  ON   Subgraph  Type  Cosine Similarity  Threshold",
            "----------------------------------------------------------",
            "conv  BPU  id(0)     Conv  0.999              1.0",
            "The quantized model output:",
            "==========================================================",
            "Output  Cosine Similarity  L1 Distance",
            "----------------------------------------------------------",
            "logits  0.991000           0.100000",
            "prob    0.980000           0.200000",
            "2025-01-01 INFO done",
        ]
    )
    rows = parse_cosine_table(log)
    assert [(r.output, r.cosine_similarity, r.metrics) for r in rows] == [
        ("logits", 0.991, {"L1 Distance": 0.1}),
        ("prob", 0.98, {"L1 Distance": 0.2}),
    ]
    assert parse_cosine_table("no table here") == []


def test_an_earlier_runs_hbm_and_log_are_never_reported(
    capsys, tmp_path, tiny_onnx, calib_npys, fake_hb_compile, monkeypatch
):
    workdir = tmp_path / "work"
    assert invoke(capsys, "compile", "r3d_18", "--model", tiny_onnx, "--calib", calib_npys, "-o", workdir).code == 0
    assert (workdir / "model_output" / "r3d_18.hbm").is_file() and (workdir / "hb_compile.log").is_file()

    # now an hb_compile that succeeds but writes nothing: the old .hbm and log must not be taken for its output
    lazy_bin = tmp_path / "lazy_bin"
    lazy_bin.mkdir()
    (lazy_bin / "hb_compile").write_text("#!/bin/sh\necho compiling\nexit 0\n")
    (lazy_bin / "hb_compile").chmod(0o755)
    monkeypatch.setenv("PATH", f"{lazy_bin}{os.pathsep}{os.environ['PATH']}")
    stale = invoke(capsys, "compile", "r3d_18", "--model", tiny_onnx, "--calib", calib_npys, "-o", workdir)
    stale.assert_user_error("wrote no .hbm")
    assert "0.998765" not in stale.out + stale.err


def test_a_plugin_config_without_the_sections_is_the_plugins_error(
    capsys, tmp_path, tiny_onnx, no_hb_compile, monkeypatch
):
    from modelzoo.models.video_resnet import VideoResNet

    monkeypatch.setattr(VideoResNet, "compile_config", lambda *a, **k: {"model_parameters": {}})
    result = invoke(capsys, "compile", "r3d_18", "--model", tiny_onnx, "-o", tmp_path / "work")
    result.assert_user_error("r3d_18", "input_parameters")
