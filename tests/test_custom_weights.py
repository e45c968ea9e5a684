"""The first hour: weights imported with `zoo fetch MODEL --weights FILE` are used from then on, recorded in
that cache only; every command that uses them says so in one line; `zoo fetch MODEL` or `zoo cache clean MODEL`
goes back to the official ones; `zoo list` and `zoo info` agree on what is cached."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from served_weights import gets, make_official, mc3_checkpoint_bytes, serve, write_clip
from zoo_cli import invoke

pytestmark = pytest.mark.usefixtures("in_tmp_dir")


@pytest.fixture(scope="module")
def official_bytes() -> bytes:
    return mc3_checkpoint_bytes(seed=0)


@pytest.fixture
def official(server, monkeypatch, official_bytes):
    make_official(monkeypatch, serve(server, official_bytes), official_bytes)
    return server


@pytest.fixture
def mine(tmp_path) -> Path:
    path = tmp_path / "finetuned.npz"
    path.write_bytes(mc3_checkpoint_bytes(seed=7))
    return path


def _custom_notes(result) -> list:
    return [line for line in result.err.splitlines() if "custom weights" in line]


def test_imported_weights_are_used_from_then_on_and_said_once_per_command(capsys, tmp_path, official, mine):
    fetched = invoke(capsys, "fetch", "mc3_18", "--weights", mine)
    assert fetched.code == 0, fetched.err
    assert "later commands use these weights; `zoo fetch mc3_18` goes back to the official ones" in fetched.err

    clip = write_clip(tmp_path / "clip.npy")
    for args in (("run", "mc3_18", clip), ("export", "mc3_18", "-o", tmp_path / "m.onnx"), ("check", "mc3_18")):
        result = invoke(capsys, *args)
        assert result.code in (0, 1), result.err  # check: 1 lists the board's findings
        (note,) = _custom_notes(result)
        assert note.startswith(f"using custom weights imported from {mine} (sha256 ")
    assert gets(official) == 0  # never downloaded: the imported weights were used
    assert not (tmp_path / "zoo.yaml").exists() and not list(Path(os.environ["XDG_CONFIG_HOME"]).rglob("*.yaml"))

    listed = {r["name"]: r for r in json.loads(invoke(capsys, "list", "--json").out)}["mc3_18"]["cached"]
    info = json.loads(invoke(capsys, "info", "mc3_18", "--json").out)
    assert (
        listed
        == info["cached"]
        == {
            "weights": False,
            "custom_weights": True,
            "custom_weights_in_use": True,
            "onnx": True,
        }
    )
    assert [(c["from"], c["in_use"]) for c in info["custom_weights"]] == [(str(mine), True)]
    row = next(line for line in invoke(capsys, "list").out.splitlines() if line.startswith("mc3_18 "))
    assert "custom weights (in use),onnx" in row
    assert "custom weights: " in invoke(capsys, "info", "mc3_18").out


def test_zoo_fetch_goes_back_to_the_official_weights(capsys, tmp_path, official, mine):
    assert invoke(capsys, "fetch", "mc3_18", "--weights", mine).code == 0
    assert invoke(capsys, "fetch", "mc3_18").code == 0 and gets(official) == 1

    result = invoke(capsys, "run", "mc3_18", write_clip(tmp_path / "clip.npy"))

    assert result.code == 0, result.err
    assert _custom_notes(result) == [] and gets(official) == 1
    cached = {r["name"]: r for r in json.loads(invoke(capsys, "list", "--json").out)}["mc3_18"]["cached"]
    assert cached["weights"] and cached["custom_weights"] and not cached["custom_weights_in_use"]


def test_zoo_cache_clean_goes_back_to_the_official_weights(capsys, tmp_path, official, mine):
    assert invoke(capsys, "fetch", "mc3_18", "--weights", mine).code == 0
    assert invoke(capsys, "cache", "clean", "mc3_18", "--yes").code == 0

    result = invoke(capsys, "run", "mc3_18", write_clip(tmp_path / "clip.npy"))

    assert result.code == 0, result.err
    assert _custom_notes(result) == [] and gets(official) == 1


def test_another_cache_is_unaffected(capsys, tmp_path, official, mine, monkeypatch):
    assert invoke(capsys, "fetch", "mc3_18", "--weights", mine).code == 0
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "another_home"))

    result = invoke(capsys, "run", "mc3_18", write_clip(tmp_path / "clip.npy"))

    assert result.code == 0, result.err
    assert _custom_notes(result) == [] and gets(official) == 1


def test_weights_named_once_with_run_are_not_used_afterwards(capsys, tmp_path, official, mine):
    clip = write_clip(tmp_path / "clip.npy")
    named = invoke(capsys, "run", "mc3_18", clip, "--weights", mine)
    assert named.code == 0, named.err
    (note,) = _custom_notes(named)
    assert note.startswith(f"using custom weights {mine.name} (sha256 ") and note.endswith(
        "not the official checkpoint"
    )

    later = invoke(capsys, "run", "mc3_18", clip)
    assert later.code == 0 and _custom_notes(later) == [] and gets(official) == 1


def test_imported_weights_that_do_not_fit_the_model_say_how_to_stop_using_them(capsys, tmp_path, official):
    import numpy as np

    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, **{"fc.weight": np.ones((2, 2), np.float32)})  # a readable checkpoint of something else
    assert invoke(capsys, "fetch", "mc3_18", "--weights", wrong).code == 0

    result = invoke(capsys, "run", "mc3_18", write_clip(tmp_path / "clip.npy"))

    result.assert_user_error(f"imported from {wrong}", "zoo cache clean mc3_18", "zoo fetch mc3_18")
    assert gets(official) == 0


def test_a_garbled_record_of_the_weights_in_use_is_an_error_not_a_guess(capsys, tmp_path, official, mine):
    assert invoke(capsys, "fetch", "mc3_18", "--weights", mine).code == 0
    record = Path(os.environ["ZOO_HOME"]) / "models" / "mc3_18" / "selected.json"
    record.write_text("{half a record")

    result = invoke(capsys, "run", "mc3_18", write_clip(tmp_path / "clip.npy"))

    result.assert_user_error("selected.json", "damaged", "zoo fetch mc3_18")
    assert gets(official) == 0
    assert invoke(capsys, "list").code == 0  # a listing still works
    assert invoke(capsys, "fetch", "mc3_18").code == 0 and not record.exists()  # the official fetch resets it
