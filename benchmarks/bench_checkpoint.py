"""Time and memory of reading a full-size R3D-18 checkpoint without torch (budget: under 2 s).

Usage: python benchmarks/bench_checkpoint.py [--repeat 3] [--checkpoint FILE.pth]

Without --checkpoint, a random state dict with the R3D-18 key layout (~133 MB, as the
official file) is written with torch.save, so torch is needed for that (skipped otherwise).
The baseline, measured in the same run, is torch.load(weights_only=True) of the same file.
Each loader runs in its own fresh process, so peak RSS is its own and not the other's.
Exits 1 if the time budget is exceeded.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

TIME_BUDGET_S = 2.0

# Runs in a child process: {loader} is "zoo" or "torch".
_CHILD = r"""
import json, resource, statistics, sys, time, tracemalloc
loader, path, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
if loader == "zoo":
    from modelzoo.core.artifacts.checkpoint import load_state_dict as load
else:
    import torch
    load = lambda p: torch.load(p, weights_only=True)
def peak_kb():
    # VmHWM belongs to this process image; ru_maxrss would include the parent's peak from before exec.
    try:
        with open("/proc/self/status") as status:
            return int(next(l for l in status if l.startswith("VmHWM:")).split()[1])
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
before = peak_kb()
times, result = [], None
for _ in range(repeat):
    result = None  # never two results alive at once
    start = time.perf_counter()
    result = load(path)
    times.append(time.perf_counter() - start)
rss_mb = (peak_kb() - before) / 1024
traced_mb = None
if loader == "zoo":  # numpy reports its buffers to tracemalloc; torch's allocator does not
    result = None
    tracemalloc.start()
    result = load(path)
    traced_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
print(json.dumps({"median_s": statistics.median(times), "rss_mb": rss_mb, "traced_mb": traced_mb, "tensors": len(result)}))
"""


def write_random_checkpoint(path: str) -> float:
    """A torch.save'd state dict with the R3D-18 keys and shapes; returns its size in MB."""
    import torch
    from random_weights import random_state_dict

    state_dict = {}
    for key, array in random_state_dict("r3d_18").items():
        state_dict[key] = torch.from_numpy(array)
        if key.endswith(".running_var"):  # each BatchNorm ends with its step counter, as torchvision's do
            state_dict[key[: -len("running_var")] + "num_batches_tracked"] = torch.tensor(0)
    torch.save(state_dict, path)
    return os.path.getsize(path) / 1e6


def measure(loader: str, path: str, repeat: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, loader, path, str(repeat)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{loader} loader failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--checkpoint", help="a real .pth file (e.g. the official r3d_18-b3b3357e.pth)")
    args = parser.parse_args(argv)

    torch_available = importlib.util.find_spec("torch") is not None

    with tempfile.TemporaryDirectory() as tmp:
        path = args.checkpoint
        if path is None:
            if not torch_available:
                print("skipped: torch is needed to write the test checkpoint (pass --checkpoint FILE.pth instead)")
                return 0
            path = os.path.join(tmp, "r3d_18-random.pth")
            size_mb = write_random_checkpoint(path)
            print(f"r3d_18 random checkpoint: {size_mb:.1f} MB")
        else:
            print(f"checkpoint {path}: {os.path.getsize(path) / 1e6:.1f} MB")

        ours = measure("zoo", path, args.repeat)
        print(
            f"  zoo load_state_dict       {ours['median_s']:7.3f} s  peak RSS +{ours['rss_mb']:6.1f} MB"
            f"  (traced {ours['traced_mb']:.1f} MB, {ours['tensors']} tensors)"
        )
        if torch_available:
            base = measure("torch", path, args.repeat)
            print(f"  baseline: torch.load      {base['median_s']:7.3f} s  peak RSS +{base['rss_mb']:6.1f} MB")
            print(
                f"  ratio zoo/torch           {ours['median_s'] / base['median_s']:7.2f}x time, "
                f"{ours['rss_mb'] / max(base['rss_mb'], 1e-6):.2f}x memory"
            )

    if ours["median_s"] > TIME_BUDGET_S:
        print(f"  OVER BUDGET: {ours['median_s']:.2f} s > {TIME_BUDGET_S} s")
        return 1
    print(f"  within budget: {ours['median_s']:.2f} s <= {TIME_BUDGET_S} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
