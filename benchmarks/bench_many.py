"""A folder of videos through one `zoo run` against the same inputs one process each, and against the ideal overlap.

Usage: python benchmarks/bench_many.py [--videos 8] [--seconds 4]
  - builds a random-weight R3D-18 ONNX (real architecture) and N copies of a 1280x720 25 fps video;
  - measures, in this run: the folder run (`zoo run FOLDER`), N separate `zoo run` processes, the
    model-only time on the N preprocessed clips, and the decode+preprocess CPU time of the N inputs;
  - prints folder / separate (target: at least 2x faster) and folder / ideal, where ideal is the
    model-only time plus decode+preprocess CPU divided by the cores (target: at most 1.10x).
Wall times measured here, on this machine; nothing is a board figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench_run import ZOO, make_model, make_video, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
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

        folder_s, _ = timed([*ZOO, "run", "r3d_18", str(folder), "--model", str(model), "--json"], env)
        separate_s = sum(
            timed([*ZOO, "run", "r3d_18", str(path), "--model", str(model), "--json"], env)[0]
            for path in sorted(folder.iterdir())
        )
    print(f"{args.videos} x {args.seconds:g} s 1280x720 videos, 1 clip each, {cores} cores")
    print(f"  model only {model_only:.2f} s, decode+preprocess CPU {prep_cpu:.2f} s -> ideal overlap {ideal:.2f} s")
    print(f"  folder run {folder_s:.2f} s = {folder_s / ideal:.2f}x ideal (target <= 1.10x)")
    print(
        f"  {args.videos} separate runs {separate_s:.2f} s = {separate_s / folder_s:.2f}x the folder run (target >= 2x)"
    )
    sys.exit(0)


if __name__ == "__main__":
    main()
