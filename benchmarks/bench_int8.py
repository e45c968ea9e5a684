"""How much faster is host INT8 than fp32 for R3D-18 on this CPU?

Usage: python benchmarks/bench_int8.py [--frames 6] [--rounds 5] [--calib-clips 16]
  - builds a random-weight R3D-18 ONNX (real architecture, no download) and synthetic videos;
  - `zoo calib` on them, then `zoo quantize --model` (the product path: pre-processing, QDQ, per-channel
    int8 weights, uint8 activations, minmax calibration);
  - latency: one worker using both cores (one inference at a time, 2 intra-op threads), INT8 vs fp32
    (target: INT8 >= 2.2x faster);
  - throughput: one worker per core (2 workers, 1 intra-op thread each), INT8 vs fp32 (target >= 2.6x);
  - fp32 and INT8 rounds alternate, so background load hits both alike; medians over rounds, and the
    best round (the least disturbed when other processes share the cores);
  - what this host's arithmetic allows: onnxruntime's fp32 MatMul against its u8s8 MatMulInteger on
    matrices shaped like R3D-18's convolutions (one thread). A network whose time is all in such
    products gains about that ratio from INT8, whatever the graph (a little more when fp32 is also
    held back by memory traffic); with AVX2 alone it is about 2x, with VNNI (AVX-VNNI, AVX512-VNNI) about 4x.
Measured here, in this run, on the same clip; nothing is a board figure.
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


def make_videos(folder: Path, count: int) -> None:
    """Smooth colour gradients sliding sideways, one seed per video: varied inputs for calibration."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(count):
        small = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
        wide = cv2.resize(small, (171 + 64, 128), interpolation=cv2.INTER_CUBIC)
        writer = cv2.VideoWriter(str(folder / f"v{seed:03d}.avi"), cv2.VideoWriter_fourcc(*"FFV1"), 25, (171, 128))
        for index in range(40):
            shift = (index * (seed % 4 + 1)) % 64
            writer.write(np.ascontiguousarray(wide[:, shift : shift + 171]))
        writer.release()


# (M, K, N) of im2col products in R3D-18: layer1 (3x3x3 x 64 channels), layer2, layer3, layer4
GEMM_SHAPES = ((6272, 1728, 64), (6272, 3456, 128), (784, 6912, 256), (98, 13824, 512))


def gemm_rate(kind: str, m: int, k: int, n: int, repeats: int = 5) -> float:
    """Multiply-accumulates per second of one onnxruntime MatMul (fp32) or MatMulInteger (u8 x s8), 1 thread."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if kind == "fp32":
        inits = [numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32), "w")]
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
        types, x = (TensorProto.FLOAT, TensorProto.FLOAT), rng.standard_normal((m, k), dtype=np.float32)
    else:
        inits = [
            numpy_helper.from_array(rng.integers(-127, 128, (k, n), dtype=np.int8), "w"),
            numpy_helper.from_array(np.array(128, np.uint8), "x_zero"),
            numpy_helper.from_array(np.array(0, np.int8), "w_zero"),
        ]
        node = helper.make_node("MatMulInteger", ["x", "w", "x_zero", "w_zero"], ["y"])
        types, x = (TensorProto.UINT8, TensorProto.INT32), rng.integers(0, 256, (m, k), dtype=np.uint8)
    graph = helper.make_graph(
        [node], "gemm", [helper.make_tensor_value_info("x", types[0], [m, k])],
        [helper.make_tensor_value_info("y", types[1], [m, n])], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    session.run(None, {"x": x})
    best = min(_timed(session, x) for _ in range(repeats))
    return m * k * n / best


def _timed(session, x) -> float:
    started = time.perf_counter()
    session.run(None, {"x": x})
    return time.perf_counter() - started


def arithmetic_ratio() -> tuple[float, list]:
    """(median u8s8/fp32 rate ratio over GEMM_SHAPES, [(shape, fp32 GMAC/s, u8s8 GMAC/s)])."""
    rows = [(shape, gemm_rate("fp32", *shape) / 1e9, gemm_rate("int8", *shape) / 1e9) for shape in GEMM_SHAPES]
    return statistics.median(int8 / fp32 for _, fp32, int8 in rows), rows


def int8_instructions() -> str:
    """The x86 INT8 dot-product extensions /proc/cpuinfo lists ("none" without them)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    found = [name for name in ("avx512_vnni", "avx_vnni", "amx_int8") if f" {name}" in flags]
    return ", ".join(found) or ("none (AVX2 only)" if " avx2" in flags else "none")


def zoo(args: list, env: dict) -> str:
    completed = subprocess.run([*ZOO, *map(str, args)], capture_output=True, text=True, env=env)
    if completed.returncode != 0:
        raise SystemExit(f"zoo {' '.join(map(str, args))} failed: {completed.stderr}")
    return completed.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6, help="inferences per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="alternating fp32/INT8 rounds; medians are reported")
    parser.add_argument("--calib-clips", type=int, default=16, help="calibration samples (one per synthetic video)")
    args = parser.parse_args()

    from modelzoo.core.backends.onnxruntime_backend import OnnxRuntimeBackend
    from modelzoo.core.backends.perf import measure, random_clip

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, ZOO_HOME=str(tmp / "home"))
        env.pop("ZOO_CONFIG", None)
        model, videos, calib = tmp / "r3d_18.onnx", tmp / "videos", tmp / "calib"
        make_model(model)
        make_videos(videos, args.calib_clips)
        zoo(["calib", "r3d_18", "--input", videos, "-o", calib, "--count", args.calib_clips], env)
        started = time.perf_counter()
        report = json.loads(
            zoo(["quantize", "r3d_18", "--model", model, "--calib", calib, "--node-samples", 0, "--json"], env)
        )
        quantize_s = time.perf_counter() - started
        int8 = Path(report["int8_file"])
        print(
            f"zoo quantize: {quantize_s:.0f} s for {report['samples']} calibration clips; logits cosine to fp32 "
            f"{report['outputs'][0]['cosine']:.6f}, Top-1 agreement {report['top1_agreement']['agree']}/{report['samples']}"
        )

        shape = (1, 3, 16, 112, 112)
        clip = random_clip(shape, seed=1234)
        files = {"fp32": model, "int8": int8}
        latency_backends = {p: OnnxRuntimeBackend(f, threads=2) for p, f in files.items()}  # one worker, both cores
        throughput_backends = {p: OnnxRuntimeBackend(f, threads=1) for p, f in files.items()}  # a worker per core
        for backend in [*latency_backends.values(), *throughput_backends.values()]:
            backend.run(clip)  # warm-up: first-run allocations
        latency = {p: [] for p in files}
        fps = {p: [] for p in files}
        for _ in range(args.rounds):
            for precision in files:
                latency[precision].append(measure(latency_backends[precision], shape, 1, args.frames).avg_latency_ms)
                fps[precision].append(measure(throughput_backends[precision], shape, 2, 2 * args.frames).fps)
        lat = {p: statistics.median(v) for p, v in latency.items()}
        thr = {p: statistics.median(v) for p, v in fps.items()}
        best_lat = {p: min(v) for p, v in latency.items()}
        best_thr = {p: max(v) for p, v in fps.items()}
        print(
            f"random-weight R3D-18, one clip [1,3,16,112,112], {os.cpu_count()} CPUs, {args.rounds} alternating rounds "
            "(median; best round in brackets, the least disturbed by other load):"
        )
        print(
            f"  latency, 1 worker x 2 intra-op threads: fp32 {lat['fp32']:.1f} ms [{best_lat['fp32']:.1f}], "
            f"INT8 {lat['int8']:.1f} ms [{best_lat['int8']:.1f}] -> INT8 {lat['fp32'] / lat['int8']:.2f}x faster "
            f"[{best_lat['fp32'] / best_lat['int8']:.2f}x] (target >= 2.2x)"
        )
        print(
            f"  throughput, 2 workers x 1 thread: fp32 {thr['fp32']:.2f} FPS [{best_thr['fp32']:.2f}], "
            f"INT8 {thr['int8']:.2f} FPS [{best_thr['int8']:.2f}] -> INT8 {thr['int8'] / thr['fp32']:.2f}x "
            f"[{best_thr['int8'] / best_thr['fp32']:.2f}x] (target >= 2.6x)"
        )
        ratio, rows = arithmetic_ratio()
        print(f"  this host's INT8 arithmetic (INT8 dot-product extensions: {int8_instructions()}), one thread:")
        for (m, k, n), fp32_rate, int8_rate in rows:
            print(
                f"    [{m}x{k}] x [{k}x{n}]: fp32 MatMul {fp32_rate:.1f} GMAC/s, u8s8 MatMulInteger "
                f"{int8_rate:.1f} GMAC/s ({int8_rate / fp32_rate:.2f}x)"
            )
        print(
            f"  INT8 over fp32 from arithmetic alone here: {ratio:.2f}x (median); the measured latency "
            f"{lat['fp32'] / lat['int8']:.2f}x and throughput {thr['int8'] / thr['fp32']:.2f}x are "
            f"{lat['fp32'] / lat['int8'] / ratio:.0%} and {thr['int8'] / thr['fp32'] / ratio:.0%} of it"
        )
        print(f"  load average after the run: {os.getloadavg()[0]:.2f} (other processes share these cores)")


if __name__ == "__main__":
    main()
