"""A folder of videos through one `zoo run` against the same inputs one process each, and against the ideal overlap.

Usage: python benchmarks/bench_many.py [--videos 8] [--seconds 4] [--repeats 3]
  - builds a random-weight R3D-18 ONNX (real architecture) and N copies of a 1280x720 25 fps video;
  - measures, in this run: the folder run (`zoo run FOLDER`), N separate `zoo run` processes, the
    model-only time on the N preprocessed clips, and the decode+preprocess CPU time of the N inputs
    (after one warm-up input, so first-use imports do not count as decoding);
  - prints folder / separate (target: at least 2x faster) and folder / ideal, where ideal is the
    model-only time plus decode+preprocess CPU divided by the cores (target: at most 1.10x).
    The model-only time is measured two ways: the same `zoo run` on a folder of the N preprocessed
    clips (.npy: the process start-up and model load that any run pays, no decoding), which is the
    baseline the target is read against, and a warm in-process session (inference alone), whose
    ratio also charges the folder run's start-up and model load to the pipeline.
Wall times measured here, on this machine; nothing is a board figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_run import ZOO, make_model, make_video, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the three runs, interleaved; medians")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "ZOO_HOME": str(tmp / "home")}
        model = tmp / "r3d_18.onnx"
        make_model(model)
        folder = tmp / "videos"
        folder.mkdir()
        make_video(folder / "v0.mp4", args.seconds, (1280, 720))
        for index in range(1, args.videos):
            shutil.copy(folder / "v0.mp4", folder / f"v{index}.mp4")

        import numpy as np

        import modelzoo
        from modelzoo.core.backends.onnxruntime_backend import OnnxRuntimeBackend

        modelzoo.preprocess("r3d_18", folder / "v0.mp4")  # warm-up: imports and first use
        started_cpu = time.process_time()
        clips = [modelzoo.preprocess("r3d_18", path) for path in sorted(folder.iterdir())]
        prep_cpu = time.process_time() - started_cpu
        backend = OnnxRuntimeBackend(model)
        backend.run(clips[0])  # warm-up
        started = time.perf_counter()
        for clip in clips:
            backend.run(np.ascontiguousarray(clip))
        model_only = time.perf_counter() - started
        ideal = model_only + prep_cpu / cores
        tensors = tmp / "tensors"
        tensors.mkdir()
        for index, clip in enumerate(clips):
            np.save(tensors / f"v{index}.npy", np.ascontiguousarray(clip))

        rounds = []
        for _ in range(args.repeats):  # interleaved, so background load hits the three alike
            tensors_s, _ = timed([*ZOO, "run", "r3d_18", str(tensors), "--model", str(model), "--json"], env)
            folder_s, _ = timed([*ZOO, "run", "r3d_18", str(folder), "--model", str(model), "--json"], env)
            separate_s = sum(
                timed([*ZOO, "run", "r3d_18", str(path), "--model", str(model), "--json"], env)[0]
                for path in sorted(folder.iterdir())
            )
            rounds.append((tensors_s, folder_s, separate_s))
        tensors_s, folder_s, separate_s = (statistics.median(r[i] for r in rounds) for i in range(3))
        ideal_run = tensors_s + prep_cpu / cores
    print(
        f"{args.videos} x {args.seconds:g} s 1280x720 videos, 1 clip each, {cores} cores, medians of {args.repeats} rounds"
    )
    for tensors_r, folder_r, separate_r in rounds:
        print(
            f"  round: .npy run {tensors_r:.2f} s, folder run {folder_r:.2f} s ({folder_r / (tensors_r + prep_cpu / cores):.2f}x ideal), "
            f"separate {separate_r:.2f} s ({separate_r / folder_r:.2f}x)"
        )
    print(f"  decode+preprocess CPU {prep_cpu:.2f} s over {cores} cores = {prep_cpu / cores:.2f} s")
    print(
        f"  `zoo run` on the {args.videos} preprocessed clips (.npy) {tensors_s:.2f} s -> ideal overlap {ideal_run:.2f} s"
    )
    print(f"  folder run {folder_s:.2f} s = {folder_s / ideal_run:.2f}x ideal (target <= 1.10x)")
    print(
        f"  (inference alone, warm, in process: {model_only:.2f} s -> {ideal:.2f} s; folder run {folder_s / ideal:.2f}x that,"
        " start-up and model load included)"
    )
    print(
        f"  {args.videos} separate runs {separate_s:.2f} s = {separate_s / folder_s:.2f}x the folder run (target >= 2x)"
    )
    sys.exit(0)


if __name__ == "__main__":
    main()
