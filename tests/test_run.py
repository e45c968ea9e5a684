"""`zoo run` end to end: a random-weight R3D-18 checkpoint, converted without torch, agrees with torch."""

import json

import numpy as np
import pytest
from videos import write_video
from zoo_cli import invoke

torch = pytest.importorskip("torch")


pytestmark = pytest.mark.usefixtures("in_tmp_dir")


@pytest.fixture
def video(tmp_path):
    return write_video(tmp_path / "archery.avi", 60, 30, size=(320, 240))


def torch_probabilities(model, clips):
    with torch.no_grad():
        logits = model(torch.from_numpy(clips))
    return torch.softmax(logits.double(), dim=1).mean(dim=0).numpy()


def test_run_matches_torch_for_the_same_weights(capsys, tmp_path, video, r3d18_checkpoint, reference_model):
    result = invoke(
        capsys,
        "run",
        "r3d_18",
        "--input",
        video,
        "--weights",
        r3d18_checkpoint,
        "--clips",
        "2",
        "--json",
        "--threads",
        "2",
    )
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert set(data) >= {"model", "input", "backend", "clips", "predictions", "timing_ms"}
    assert data["model"] == "r3d_18" and data["clips"] == 2 and len(data["predictions"]) == 5
    assert set(data["timing_ms"]) >= {"decode", "preprocess", "inference"}
    assert "custom weights" in result.err  # a random checkpoint is never labelled official

    assert (
        invoke(capsys, "preprocess", "r3d_18", "--input", video, "-o", tmp_path / "clip.npy", "--clips", "2").code == 0
    )
    expected = torch_probabilities(reference_model("r3d_18"), np.load(tmp_path / "clip.npy"))
    top5 = np.argsort(-expected)[:5]
    assert [p["class_id"] for p in data["predictions"]] == top5.tolist()
    for p in data["predictions"]:
        assert abs(p["score"] - expected[p["class_id"]]) <= 1e-4
        assert p["label"]
    assert data["predictions"][0]["label"] != data["predictions"][1]["label"]


def test_second_run_is_a_cache_hit(capsys, video, r3d18_checkpoint):
    first = invoke(capsys, "run", "r3d_18", "--input", video, "--weights", r3d18_checkpoint)
    assert first.code == 0, first.err
    assert "converting" in first.err
    second = invoke(capsys, "run", "r3d_18", "--input", video, "--weights", r3d18_checkpoint)
    assert second.code == 0, second.err
    assert "converting" not in second.err
    assert first.out.splitlines()[2:7] == second.out.splitlines()[2:7]


def test_table_output_and_model_option(capsys, tmp_path, video, r3d18_checkpoint):
    export = invoke(capsys, "export", "r3d_18", "--weights", r3d18_checkpoint, "-o", tmp_path / "r3d.onnx")
    assert export.code == 0, export.err
    result = invoke(capsys, "run", "r3d_18", "--input", video, "--model", tmp_path / "r3d.onnx", "--top-k", "3")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[1].split() == ["rank", "class_id", "label", "probability"]
    assert [line.split()[0] for line in lines[3:6]] == ["1", "2", "3"]
    assert lines[-1].startswith("timing: decode")


def test_preprocessed_npy_gives_the_same_answer_as_the_video(capsys, tmp_path, video, r3d18_checkpoint):
    assert invoke(capsys, "export", "r3d_18", "--weights", r3d18_checkpoint, "-o", tmp_path / "m.onnx").code == 0
    assert invoke(capsys, "preprocess", "r3d_18", "--input", video, "-o", tmp_path / "clip.npy").code == 0
    clip = np.load(tmp_path / "clip.npy")
    np.save(tmp_path / "single.npy", clip[0])  # the board sample's [3,16,112,112] layout
    runs = [
        json.loads(invoke(capsys, "run", "r3d_18", "--input", source, "--model", tmp_path / "m.onnx", "--json").out)
        for source in (video, tmp_path / "clip.npy", tmp_path / "single.npy")
    ]
    assert runs[0]["predictions"] == runs[1]["predictions"] == runs[2]["predictions"]


@pytest.fixture
def checkpoint_server(r3d18_checkpoint):
    """Serves the random checkpoint over HTTP on 127.0.0.1 and counts the GETs."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    gets = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self):
            gets.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(r3d18_checkpoint.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{r3d18_checkpoint.name}", gets
    server.shutdown()
    server.server_close()


def test_first_run_downloads_converts_and_caches(capsys, tmp_path, video, r3d18_checkpoint, checkpoint_server):
    """The fresh-machine path: no --weights, no --model; the weights come from a URL (a zoo.yaml mirror)."""
    from modelzoo.core.artifacts.cache import sha256_file

    url, gets = checkpoint_server
    (tmp_path / "zoo.yaml").write_text(
        f"models:\n  r3d_18:\n    weights:\n      url: {url}\n      sha256: {sha256_file(r3d18_checkpoint)}\n"
    )
    first = invoke(capsys, "run", "r3d_18", "--input", video, "--json")
    assert first.code == 0, first.err
    assert len(gets) == 1 and "converting" in first.err
    assert "custom weights" in first.err  # a mirror with another hash is never labelled official

    second = invoke(capsys, "run", "r3d_18", "--input", video, "--json")
    assert second.code == 0, second.err
    assert len(gets) == 1 and "converting" not in second.err  # neither downloaded nor converted again
    assert json.loads(first.out)["predictions"] == json.loads(second.out)["predictions"]
    listed = json.loads(invoke(capsys, "cache", "list", "--json").out)
    assert {e["artifact"] for e in listed if e["model"] == "r3d_18"} >= {"weights"}
