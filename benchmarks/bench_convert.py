"""Time and memory of turning a video-ResNet state dict into ONNX (issue 3: under 5 s and 1 GB for R3D-18).

Usage: python benchmarks/bench_convert.py [--arch r3d_18] [--repeat 3] [--checkpoint FILE.pth]

Without --checkpoint a random state dict of the full size is built with numpy (no torch, no
download). The baseline, measured in the same run, is copying the state dict's arrays once:
the least work any conversion has to do, so the ratios travel between machines.
Exits 1 if a budget is exceeded.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

import numpy as np
from random_weights import random_state_dict

from modelzoo.models.video_resnet.architecture import ARCHITECTURES, build_video_resnet

TIME_BUDGET_S = 5.0
MEMORY_BUDGET_MB = 1024.0


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        result = None  # so two results are never alive at once and the peak stays honest
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=ARCHITECTURES, default="r3d_18")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--checkpoint", help="a real .pth checkpoint, read with modelzoo's own loader")
    args = parser.parse_args(argv)

    load_s = 0.0
    if args.checkpoint:
        from modelzoo.core.artifacts.checkpoint import load_state_dict

        start = time.perf_counter()
        state_dict = load_state_dict(args.checkpoint)
        load_s = time.perf_counter() - start
    else:
        state_dict = random_state_dict(args.arch)
    size_mb = sum(np.asarray(v).nbytes for v in state_dict.values()) / 2**20
    resident_mb = rss_mb()

    # The first build is measured alone for the peak, before anything else allocates.
    start = time.perf_counter()
    model = build_video_resnet(state_dict, args.arch)
    first_build_s = time.perf_counter() - start
    serialize_s, data = timed(model.SerializeToString, args.repeat)
    peak_mb = peak_rss_mb()
    del model, data

    build_s, _ = timed(lambda: build_video_resnet(state_dict, args.arch), args.repeat)
    copy_s, _ = timed(lambda: {k: np.array(v, copy=True) for k, v in state_dict.items()}, args.repeat)

    convert_s = load_s + first_build_s + serialize_s
    print(f"{args.arch}: state dict {size_mb:.1f} MB ({'file ' + args.checkpoint if args.checkpoint else 'random'})")
    if args.checkpoint:
        print(f"  load checkpoint        {load_s:7.3f} s")
    print(f"  baseline: copy arrays  {copy_s:7.3f} s")
    print(
        f"  build_video_resnet     {build_s:7.3f} s  ({build_s / copy_s:5.1f}x baseline; "
        f"first call, with imports, {first_build_s:.3f} s)"
    )
    print(f"  serialize model        {serialize_s:7.3f} s  ({serialize_s / copy_s:5.1f}x baseline)")
    print(f"  peak RSS               {peak_mb:7.1f} MB (state dict resident before converting: {resident_mb:.1f} MB)")

    failures = []
    if convert_s > TIME_BUDGET_S:
        failures.append(f"conversion took {convert_s:.2f} s > {TIME_BUDGET_S} s")
    if peak_mb > MEMORY_BUDGET_MB:
        failures.append(f"peak RSS {peak_mb:.0f} MB > {MEMORY_BUDGET_MB:.0f} MB")
    for failure in failures:
        print(f"  OVER BUDGET: {failure}")
    if not failures:
        print(f"  within budget: {convert_s:.2f} s <= {TIME_BUDGET_S} s, {peak_mb:.0f} MB <= {MEMORY_BUDGET_MB:.0f} MB")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
