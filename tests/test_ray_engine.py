"""`zoo run --engine ray`: the same records as the local engine, from Ray Data tasks and actors on a
Ray head this module starts on 127.0.0.1 (and stops at the end). Skipped where Ray is not installed,
except the checks that zoo works, and says what to install, without it."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from onnx_models import tiny_video_classifier
from videos import video_folder
from zoo_cli import invoke

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed (pip install 'modelzoo[ray]')")
# Ray Data deep-copies its context, and setting its deprecated fields warns: Ray's own noise, not zoo's.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head on 127.0.0.1 with 2 CPUs and its dashboard (which serves the state API), every port
    and file of its own; token authentication with a token of the test's. Stopped at the end by
    ending its own process group, so no other Ray on the machine is touched."""
    if not HAS_RAY:
        pytest.skip("Ray is not installed (pip install 'modelzoo[ray]')")
    ray_cli = Path(sys.executable).with_name("ray")
    ray_cli = str(ray_cli) if ray_cli.exists() else shutil.which("ray")
    if not ray_cli:
        pytest.skip("the `ray` command is not installed")
    env = {
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keep 127.0.0.1: Ray would put the outward address in its place
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    port, dashboard = _free_port(), _free_port()
    temp_dir = tempfile.mkdtemp(prefix="zray")  # short: Ray's socket paths live under it
    log = open(Path(temp_dir) / "ray_start.log", "w")  # noqa: SIM115 (closed at the end)
    head = subprocess.Popen(
        [
            ray_cli, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
            "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
            f"--ray-client-server-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}",
            "--disable-usage-stats", f"--temp-dir={temp_dir}",
        ],
        env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)  # the client side (zoo's driver, the state API) in this process
    try:
        deadline = time.monotonic() + 120
        while not (_listening(port) and _listening(dashboard) and "block forever" in _text(log.name)):
            assert head.poll() is None, f"ray start failed:\n{_text(log.name)}"
            assert time.monotonic() < deadline, f"the Ray head did not come up in 120 s:\n{_text(log.name)}"
            time.sleep(0.5)
        from ray.util.state import list_nodes

        nodes = list_nodes(address=f"http://127.0.0.1:{dashboard}")
        assert [node.node_ip for node in nodes] == ["127.0.0.1"]  # the head kept the loopback address
        yield {"address": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dashboard}"}
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _stop_group(head)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _text(path) -> str:
    return Path(path).read_text(errors="replace")


def _stop_group(process) -> None:
    """End the head's processes: SIGTERM to the process group `ray start` leads, SIGKILL after 3 s."""
    for sig, wait in ((signal.SIGTERM, 3), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(process):
            time.sleep(0.2)
        if not _group_alive(process):
            return


def _group_alive(process) -> bool:
    process.poll()
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    # zombies (processes that ended, not yet reaped by whoever adopted them) still count as members
    members = subprocess.run(["ps", "-eo", "pgid=,stat="], capture_output=True, text=True).stdout.split("\n")
    return any(line.split()[0] == str(process.pid) and not line.split()[1].startswith("Z") for line in members if line)


@pytest.fixture
def folder(tmp_path):
    return video_folder(tmp_path / "videos")


@pytest.fixture
def onnx_file(tmp_path):
    return tiny_video_classifier(tmp_path / "tiny.onnx")


def lines(text: str) -> list:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def without_timings(records: list) -> list:
    return [{k: v for k, v in record.items() if k != "timing_ms"} for record in records]


def job_of(err: str) -> str:
    found = re.search(r"^ray: job (\w+) on 127\.0\.0\.1:\d+", err, re.MULTILINE)
    assert found, err
    return found.group(1)


@needs_ray
def test_ray_gives_the_local_engines_records(capsys, ray_head, folder, onnx_file):
    args = ("run", "r3d_18", folder, "--model", onnx_file, "--json", "--clips", "2")
    local = invoke(capsys, *args)
    on_ray = invoke(capsys, *args, "--engine", "ray", "--ray-address", ray_head["address"])
    assert local.code == on_ray.code == 1, on_ray.err  # the broken input failed, on both
    assert "summary: 3 done, 1 failed, 0 skipped of 4 input(s)" in on_ray.err
    # Record for record (in input order): the same predictions and scores, clips, warnings, backend,
    # model file and source stamp; and the same error for the file that is not a video.
    assert without_timings(lines(on_ray.out)) == without_timings(lines(local.out))
    errors = [r for r in lines(on_ray.out) if "error" in r]
    assert [r["input"] for r in errors] == [str(folder / "broken.mp4")] and "not a video" in errors[0]["error"]
    loads = [r["timing_ms"]["load"] for r in lines(on_ray.out) if "timing_ms" in r]
    assert loads[0] > 0 and loads[1:] == [0.0, 0.0]  # one actor (2 CPUs) loaded the model once


@needs_ray
def test_the_work_ran_as_ray_tasks_and_an_actor(capsys, ray_head, folder, onnx_file):
    from ray.util.state import list_actors, list_tasks

    result = invoke(
        capsys, "run", "r3d_18", folder, "--model", onnx_file, "--json", "--engine", "ray",
        "--ray-address", ray_head["address"],
    )  # fmt: skip
    assert result.code == 1 and len(lines(result.out)) == 4, result.err
    job = [("job_id", "=", job_of(result.err))]
    tasks = list_tasks(address=ray_head["dashboard"], filters=job, limit=10_000, raise_on_missing_output=False)
    prepared = [t for t in tasks if t.type == "NORMAL_TASK" and "_prepare" in t.name]
    inferred = [t for t in tasks if t.type == "ACTOR_TASK" and "_Inference" in t.name]
    # Reading and preprocessing: one Ray Data task per input, none of them in this process.
    assert len(prepared) == 4 and {t.state for t in prepared} == {"FINISHED"}, [(t.name, t.state) for t in tasks]
    assert os.getpid() not in {t.worker_pid for t in prepared}
    # Inference: calls on a pool of actors that each loaded the model once.
    actors = list_actors(address=ray_head["dashboard"], filters=job, limit=1_000, raise_on_missing_output=False)
    pool = [a for a in actors if "_Inference" in a.class_name]
    assert len(pool) >= 1 and inferred, [(a.class_name, a.state) for a in actors]
    assert os.getpid() not in {a.pid for a in pool}


@needs_ray
def test_ray_writes_output_files_and_resumes_like_the_local_engine(capsys, ray_head, folder, onnx_file, tmp_path):
    on_ray = ("--engine", "ray", "--ray-address", ray_head["address"])
    out = tmp_path / "out.jsonl"
    first = invoke(
        capsys, "run", "r3d_18", folder / "a.avi", folder / "b.avi", "--model", onnx_file, "-o", out, *on_ray
    )
    assert first.code == 0, first.err
    with open(out, "a") as handle:  # an interrupted run: half a record, no newline
        handle.write('{"model": "r3d_18", "input": "')
    resumed = invoke(capsys, "run", "r3d_18", folder, "--model", onnx_file, "-o", out, "--resume", "--json", *on_ray)
    assert resumed.code == 1
    assert sorted(r["input"] for r in lines(resumed.out)) == [str(folder / "broken.mp4"), str(folder / "more/c.avi")]
    assert "2 skipped" in resumed.err
    recorded = lines(out.read_text())
    assert out.read_text().endswith("\n") and len(recorded) == 4  # every line whole

    local_out = tmp_path / "local.jsonl"
    assert invoke(capsys, "run", "r3d_18", folder, "--model", onnx_file, "-o", local_out).code == 1
    by_input = {r["input"]: r for r in without_timings(recorded)}
    assert by_input == {r["input"]: r for r in without_timings(lines(local_out.read_text()))}

    again = invoke(capsys, "run", "r3d_18", folder, "--model", onnx_file, "-o", out, "--resume", "--json", *on_ray)
    assert again.code == 0 and again.out == "" and "4 skipped" in again.err  # nothing left: Ray is not started
    assert "ray: job" not in again.err


def test_without_ray_the_ray_engine_is_one_error_line(capsys, folder, onnx_file, monkeypatch):
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # restored after: the engine sets it for a local Ray
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails, as where it is not installed
    result = invoke(capsys, "run", "r3d_18", folder, "--model", onnx_file, "--engine", "ray")
    result.assert_user_error("--engine ray", "pip install 'modelzoo[ray]'")
    assert result.out == ""


@needs_ray
def test_an_unreachable_ray_address_is_a_user_error_before_any_work(capsys, folder, onnx_file, tmp_path):
    out = tmp_path / "out.jsonl"
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    result = invoke(
        capsys, "run", "r3d_18", folder, "--model", onnx_file, "-o", out, "--engine", "ray", "--ray-address", address
    )
    result.assert_user_error("cannot reach the Ray cluster", address)
    assert not out.exists()


def test_a_node_without_the_model_file_gets_it_from_the_object_store(tmp_path, monkeypatch):
    import hashlib
    import types

    from modelzoo.core.engines import ray_engine

    data = b"model A"
    shipped = {"path": str(tmp_path / "gone" / "model.onnx"), "size": len(data)}
    shipped.update(sha256=hashlib.sha256(data).hexdigest(), ref=[data])
    fetched = []
    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(get=lambda ref: fetched.append(ref) or ref))
    monkeypatch.setattr(ray_engine.tempfile, "gettempdir", lambda: str(tmp_path / "node_tmp"))
    copy = ray_engine._local_model_file(shipped)  # not at the driver's path on this "node": fetched once
    assert copy.read_bytes() == data and copy.suffix == ".onnx" and fetched == [data]
    assert ray_engine._local_model_file(shipped) == copy and len(fetched) == 1  # a second actor reuses the copy
    here = tmp_path / "here.onnx"
    here.write_bytes(data)
    assert ray_engine._local_model_file({**shipped, "path": str(here)}) == here  # the same file: used where it is
    here.write_bytes(b"model B")  # same size, other bytes
    assert ray_engine._local_model_file({**shipped, "path": str(here)}) == copy  # not the same file: the copy


def test_ray_address_needs_the_ray_engine(capsys, folder, onnx_file):
    invoke(capsys, "run", "r3d_18", folder, "--model", onnx_file, "--ray-address", "127.0.0.1:6379").assert_user_error(
        "--ray-address", "--engine ray"
    )


def test_zoo_imports_ray_only_for_the_ray_engine(folder, onnx_file):
    """A whole local many-input run, the `zoo run` command and the engine module itself import no Ray."""
    script = (
        "import sys\n"
        "from modelzoo.cli import main\n"
        "import modelzoo.commands.running, modelzoo.core.engines.ray_engine\n"
        "try:\n"
        f"    main(['run', 'r3d_18', {str(folder)!r}, '--model', {str(onnx_file)!r}, '--json'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 1, exc.code\n"
        "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'ray was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(lines(done.stdout)) == 4


def _session_processes(driver_pid: int) -> list:
    """Processes of the Ray session a driver started: their command lines name its folder, session_…_PID."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and re.search(rf"session_[\d_-]+_{driver_pid}\b", command):
            found.append(int(entry.name))
    return found


@needs_ray
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_sigterm_during_a_ray_run_stops_the_ray_it_started_and_exits_143(folder, onnx_file, tmp_path):
    """As the local engine: exit 143, one `error: terminated` line, the records written so far whole;
    and no process of the Ray the run started is left behind (zoo's handler exited without stopping it,
    Ray's own handler exited 15 with a native stack dump)."""
    many = tmp_path / "many"
    many.mkdir()
    for index in range(40):
        shutil.copy(folder / "a.avi", many / f"v{index:02d}.avi")
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "ZOO_HOME": str(tmp_path / "home"), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    command = [
        sys.executable,
        "-m",
        "modelzoo",
        "run",
        "r3d_18",
        many,
        "--model",
        onnx_file,
        "--engine",
        "ray",
        "-o",
        out,
    ]
    zoo = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and zoo.poll() is None and not (out.exists() and out.read_text()):
            time.sleep(0.2)
        assert zoo.poll() is None, zoo.communicate()[1]
        zoo.send_signal(signal.SIGTERM)
        _, err = zoo.communicate(timeout=60)
        assert zoo.returncode == 143, err
        assert "error: terminated" in err and "SIGTERM received" not in err, err
        assert all(line.endswith("}") for line in out.read_text().splitlines())
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _session_processes(zoo.pid):
            time.sleep(0.5)
        assert _session_processes(zoo.pid) == []
    finally:
        if zoo.poll() is None:
            zoo.kill()
        for pid in _session_processes(zoo.pid):  # what a failing run left: only this run's session
            os.kill(pid, signal.SIGKILL)
