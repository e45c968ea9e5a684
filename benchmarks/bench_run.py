"""How much does a real video cost over a preprocessed .npy, and how fast does `zoo` start?

Usage: python benchmarks/bench_run.py [--long]
  - builds a random-weight R3D-18 ONNX (real architecture, no download) and a 10 s 1280x720 25 fps video;
  - times `zoo run --clips 1` on the video against the same run on the equivalent .npy (target: <= +10 %);
  - reports decode+preprocess against inference from the run's own timings;
  - times `zoo --help` and `zoo list` (target: < 0.3 s) and checks they import no onnxruntime/OpenCV;
  - --long: peak RSS of `zoo run` on a 10-minute 1080p video (target: < 1 GB).
Wall times are medians of several runs measured here, in this run; nothing is a board figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from random_weights import random_state_dict

ZOO = [sys.executable, "-m", "modelzoo"]


def make_model(path: Path) -> None:
    from modelzoo.models.video_resnet.architecture import build_video_resnet

    path.write_bytes(build_video_resnet(random_state_dict("r3d_18"), "r3d_18").SerializeToString())


def make_video(path: Path, seconds: float, size: tuple, fps: float = 25) -> None:
    import cv2

    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    base = np.random.default_rng(1).integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    base = cv2.resize(base, (width, height), interpolation=cv2.INTER_LINEAR)
    for index in range(int(seconds * fps)):
        writer.write(np.roll(base, index * 4, axis=1))
    writer.release()


def timed(args: list, env: dict) -> tuple:
    started = time.perf_counter()
    completed = subprocess.run(args, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed: {completed.stderr}")
    return elapsed, completed.stdout


def median_run(args: list, env: dict, repeats: int) -> tuple:
    results = [timed(args, env) for _ in range(repeats)]
    return statistics.median(r[0] for r in results), results[-1][1]


def peak_rss_mb(args: list, env: dict) -> float:
    code = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env, check=True
    )
    return int(out.stdout.strip()) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", action="store_true", help="also measure peak memory on a 10-minute 1080p video")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, ZOO_HOME=str(tmp / "home"), ZOO_CONFIG="")
        env.pop("ZOO_CONFIG")
        model, video, clip = tmp / "r3d_18.onnx", tmp / "video.mp4", tmp / "clip.npy"
        make_model(model)
        make_video(video, 10, (1280, 720))
        subprocess.run(
            [*ZOO, "preprocess", "r3d_18", "--input", video, "-o", clip], check=True, env=env, capture_output=True
        )
        common = ["--model", model, "--clips", "1", "--threads", str(args.threads), "--json"]

        video_s, video_out = median_run([*ZOO, "run", "r3d_18", "--input", video, *common], env, args.repeats)
        npy_s, npy_out = median_run([*ZOO, "run", "r3d_18", "--input", clip, *common], env, args.repeats)
        timing = json.loads(video_out)["timing_ms"]
        assert json.loads(video_out)["predictions"] == json.loads(npy_out)["predictions"]
        print("zoo run, 10 s 1280x720 25 fps mp4v video, 1 clip, random-weight R3D-18 ONNX:")
        print(
            f"  decode {timing['decode']:.0f} ms + preprocess {timing['preprocess']:.0f} ms "
            f"vs inference {timing['inference']:.0f} ms  (ratio {(timing['decode'] + timing['preprocess']) / timing['inference']:.2f})"
        )
        print(
            f"  wall: video {video_s:.2f} s vs .npy {npy_s:.2f} s  -> video costs {100 * (video_s / npy_s - 1):+.1f} % (target <= +10 %)"
        )

        # A checkpoint given with --weights is converted on the first run only; the second is a cache hit.
        weights = tmp / "weights.npz"
        np.savez(weights, **random_state_dict("r3d_18"))
        first = subprocess.run(
            [*ZOO, "run", "r3d_18", "--input", clip, "--weights", weights, "--threads", str(args.threads)],
            capture_output=True,
            text=True,
            env=env,
        )
        started = time.perf_counter()
        second = subprocess.run(
            [*ZOO, "run", "r3d_18", "--input", clip, "--weights", weights, "--threads", str(args.threads)],
            capture_output=True,
            text=True,
            env=env,
        )
        second_s = time.perf_counter() - started
        print(
            f"zoo run --weights: first run converted: {'converting' in first.stderr}; "
            f"second run converted: {'converting' in second.stderr} ({second_s:.2f} s, vs --model run {npy_s:.2f} s)"
        )

        for name, command in (("zoo --help", [*ZOO, "--help"]), ("zoo list", [*ZOO, "list"])):
            seconds, _ = median_run(command, env, 5)
            baseline, _ = median_run([sys.executable, "-c", "pass"], env, 5)
            heavy = (
                subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        "import sys; sys.argv=['zoo'," + ",".join(repr(a) for a in command[3:]) + "]\n"
                        "from modelzoo.cli import main\ntry: main()\nexcept SystemExit: pass\n"
                        "print([m for m in ('onnxruntime','cv2','onnx','numpy','modelzoo.models.video_resnet.architecture') if m in sys.modules], file=sys.stderr)",
                    ],
                    capture_output=True,
                    text=True,
                    env=env,
                )
                .stderr.strip()
                .splitlines()[-1]
            )
            print(
                f"{name}: {seconds:.3f} s (bare python {baseline:.3f} s, ratio {seconds / baseline:.1f}); heavy modules imported: {heavy}"
            )

        if args.long:
            long_video = tmp / "long.mp4"
            started = time.perf_counter()
            make_video(long_video, 600, (1920, 1080))
            print(f"wrote the 10-minute 1080p video in {time.perf_counter() - started:.0f} s")
            for clips in (1, 5):
                rss = peak_rss_mb(
                    [*ZOO, "run", "r3d_18", "--input", long_video, *common[:2], "--clips", str(clips)], env
                )
                print(f"zoo run on 10-minute 1080p video, {clips} clip(s): peak RSS {rss:.0f} MB (target < 1024 MB)")


if __name__ == "__main__":
    main()
