"""`zoo perf --threads 1,2` on this host: the 2-thread row's FPS against the 1-thread row's (issue 10: >= 0.9x).

Usage: python benchmarks/bench_perf_threads.py [--threads 1,2] [--frames 24] [--arch r3d_18]

A random-weight model of the full architecture is converted to ONNX (no torch, no download) and
measured with the real command, `zoo perf MODEL --model FILE.onnx --threads 1,2 --json`, in a
subprocess with its own empty ZOO_HOME, so zoo.yaml's `threads` is unset. A frame is one inference
(for R3D-18 one [1,3,16,112,112] clip). The baseline is the first row, measured in the same run.

For comparison it then measures, in this process, what `zoo perf` did before: one onnxruntime
session with onnxruntime's default intra-op threads (every core) shared by all the row's threads.
Exits 1 if the last row's FPS is below 0.9x the first row's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import onnx
from random_weights import random_state_dict

from modelzoo.models.video_resnet.architecture import ARCHITECTURES, build_video_resnet

TARGET = 0.9


def zoo_perf(model: Path, arch: str, threads: str, frames: int, home: Path) -> dict:
    env = {**os.environ, "ZOO_HOME": str(home), "XDG_CONFIG_HOME": str(home / "config")}
    env.pop("ZOO_CONFIG", None)
    command = [sys.executable, "-m", "modelzoo", "perf", arch, "--model", str(model)]
    command += ["--threads", threads, "--frames", str(frames), "--json"]
    run = subprocess.run(command, capture_output=True, text=True, env=env, cwd=home)
    if run.returncode != 0:
        sys.exit(f"zoo perf failed ({run.returncode}):\n{run.stderr}")
    sys.stderr.write(run.stderr)
    return json.loads(run.stdout)


def shared_default_session(model: Path, shape: list, thread_counts: list, frames: int) -> list:
    """The former behaviour: one session, onnxruntime's default intra-op threads, shared by every row."""
    from modelzoo.core.backends.onnxruntime_backend import OnnxRuntimeBackend
    from modelzoo.core.backends.perf import run_perf

    backend = OnnxRuntimeBackend(model, threads=None)
    return [r.to_dict() for r in run_perf(backend, shape, thread_counts, frames)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=ARCHITECTURES, default="r3d_18")
    parser.add_argument("--threads", default="1,2", help="thread counts, as `zoo perf --threads`")
    parser.add_argument("--frames", type=int, default=24, help="inferences per row")
    parser.add_argument("--no-baseline", action="store_true", help="skip the former shared-session measurement")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_perf_") as folder:
        home = Path(folder)
        model = home / f"{args.arch}.onnx"
        onnx.save(build_video_resnet(random_state_dict(args.arch), args.arch), str(model))
        data = zoo_perf(model, args.arch, args.threads, args.frames, home)
        rows = data["rows"]
        print(f"{args.arch} (random weights), {data['backend']}, input {data['input_shape']}, {os.cpu_count()} cores")
        print(f"zoo perf --threads {args.threads} --frames {args.frames}:")
        for row in rows:
            print(
                f"  {row['threads']} thread(s): {row['avg_latency_ms']:8.1f} ms average  {row['fps']:6.2f} FPS  "
                f"{row['fps'] / rows[0]['fps']:.2f}x the {rows[0]['threads']}-thread row"
            )
        if not args.no_baseline:
            counts = [r["threads"] for r in rows]
            former = shared_default_session(model, data["input_shape"], counts, args.frames)
            print("former behaviour (one session, onnxruntime's default threads, shared by the row's threads):")
            for row in former:
                print(
                    f"  {row['threads']} thread(s): {row['avg_latency_ms']:8.1f} ms average  {row['fps']:6.2f} FPS  "
                    f"{row['fps'] / former[0]['fps']:.2f}x the {former[0]['threads']}-thread row"
                )
    ratio = rows[-1]["fps"] / rows[0]["fps"]
    verdict = "OK" if ratio >= TARGET else "BELOW TARGET"
    print(
        f"{rows[-1]['threads']}-thread FPS / {rows[0]['threads']}-thread FPS = {ratio:.3f} (target >= {TARGET}): {verdict}"
    )
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
