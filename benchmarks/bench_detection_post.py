"""Time of yolo11n's postprocessing on a busy scene (issue 9: under 5 ms): 8400 candidates, 1000 above
the confidence threshold.

Usage: python benchmarks/bench_detection_post.py [--repeat 200] [--passing 1000]

The output [1, 84, 8400] is made with numpy: 100 objects, each found by ~10 overlapping candidates
of one class (so NMS has real work), the other candidates' scores below the threshold and their
boxes anywhere. It is postprocessed as `zoo run` does it (`model.postprocess`: best class, threshold,
class-aware NMS, back through the letterbox of a 1280x720 image, labels, sorting). The baseline,
measured in the same run, is one pass over the class scores (their maximum per candidate): the least
work any decoder of this layout does, so the ratio travels between machines. Exits 1 over budget.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

TIME_BUDGET_MS = 5.0
CANDIDATES, CLASSES, OBJECTS = 8400, 80, 100


def busy_scene(passing: int, seed: int = 0) -> np.ndarray:
    """[1, 4 + 80, 8400]: `passing` candidates above 0.25 in clusters around OBJECTS objects, the rest below."""
    rng = np.random.default_rng(seed)
    out = np.zeros((1, 4 + CLASSES, CANDIDATES), np.float32)
    out[0, 4:] = rng.uniform(0.0, 0.2, (CLASSES, CANDIDATES))
    chosen = rng.choice(CANDIDATES, passing, replace=False)
    rest = np.setdiff1d(np.arange(CANDIDATES), chosen)
    out[0, :4, rest] = rng.uniform(0, 640, (rest.size, 4))
    centres, sizes = rng.uniform(40, 600, (OBJECTS, 2)), rng.uniform(16, 240, (OBJECTS, 2))
    classes = rng.integers(0, CLASSES, OBJECTS)
    owner = np.arange(passing) % OBJECTS
    out[0, 0, chosen] = centres[owner, 0] + rng.normal(0, 4, passing)
    out[0, 1, chosen] = centres[owner, 1] + rng.normal(0, 4, passing)
    out[0, 2, chosen] = sizes[owner, 0] * rng.uniform(0.9, 1.1, passing)
    out[0, 3, chosen] = sizes[owner, 1] * rng.uniform(0.9, 1.1, passing)
    out[0, 4 + classes[owner], chosen] = rng.uniform(0.3, 0.95, passing)
    return out


def timed_ms(fn, repeat: int) -> float:
    for _ in range(5):  # warm-up: first calls pay for imports and allocations
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--passing", type=int, default=1000, help="candidates above the confidence threshold")
    args = parser.parse_args(argv)

    import modelzoo
    from modelzoo.core.inputs.sources import InputSource

    model = modelzoo.get_model("yolo11n")
    output = busy_scene(args.passing)
    source = InputSource(path=None, image=np.zeros((720, 1280, 3), np.uint8))
    options = {"conf": 0.25, "iou": 0.7, "max_det": 300}
    above = int((output[0, 4:].max(axis=0) > options["conf"]).sum())
    kept = len(model.postprocess(output, source, options).detections)

    ours = timed_ms(lambda: model.postprocess(output, source, options), args.repeat)
    base = timed_ms(lambda: output[0, 4:].max(axis=0), args.repeat)
    print(f"yolo11n postprocess: {CANDIDATES} candidates, {above} above conf 0.25, {kept} detections after NMS")
    print(f"  postprocess (decode, NMS, letterbox, labels)  {ours:7.3f} ms (median of {args.repeat})")
    print(f"  baseline: max over the class scores            {base:7.3f} ms")
    print(f"  ratio postprocess/baseline                     {ours / base:7.1f}x")
    if ours > TIME_BUDGET_MS:
        print(f"  OVER BUDGET: {ours:.2f} ms > {TIME_BUDGET_MS} ms")
        return 1
    print(f"  within budget: {ours:.2f} ms <= {TIME_BUDGET_MS} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
