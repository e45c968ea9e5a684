"""Does a many-input `zoo run` keep its memory flat however many inputs there are?

Usage: python benchmarks/bench_memory.py [--few 10] [--many 1000] [--kinds video,npy] [--distinct 4]
                                         [--seconds 2] [--size 1280x720] [--workers N] [--json]
  - writes `--distinct` short 25 fps mp4v videos with OpenCV (different content each), and for the
    `npy` kind the r3d_18 model input of each (`modelzoo.preprocess`, float32 [1,3,16,112,112]);
  - fills a folder of `--few` and one of `--many` inputs per kind with hard links to those files,
    taken in turn (the same kind and sizes of input in both folders);
  - runs a real `zoo run r3d_18 --input FOLDER --model STAND_IN.onnx --json --output OUT.jsonl`
    on each: the stand-in ONNX has R3D-18's input and output (`modelzoo.testing.write_stand_in_onnx`,
    a channel mean times a matrix), so decoding, clip sampling, resizing and normalizing run for
    real at full size while inference costs next to nothing;
  - peak RSS of the process tree: the kernel's high-water mark of the `zoo` process (wait4's
    ru_maxrss, exact; zoo is started by a small fresh launcher, since a child of this process would
    inherit this process's high-water mark), and the sum over the tree polled from /proc every 50 ms
    (the two agree when `zoo` starts no other process); also, in the large run, the RSS in each tenth
    of the records and the growth per input over the second half (a straight line fitted to RSS
    against records written), which a peak ratio hides under the fixed cost of Python, onnxruntime
    and the decoders;
  - prints, per kind, many / few peak (target: at most 1.2x).
Peak RSS does not depend on how busy the machine is; the seconds printed do.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ZOO = [sys.executable, "-m", "modelzoo"]
MODEL = "r3d_18"
TARGET = 1.2
POLL_S = 0.05


def make_video(path: Path, seconds: float, size: tuple, seed: int, fps: float = 25) -> None:
    """Random colour blocks sliding sideways: decodes like camera footage, not like a still."""
    import cv2
    import numpy as np

    width, height = size
    base = np.random.default_rng(seed).integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    base = cv2.resize(base, (width, height), interpolation=cv2.INTER_LINEAR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for index in range(int(seconds * fps)):
        writer.write(np.roll(base, index * (4 + seed), axis=1))
    writer.release()


def fill_folder(folder: Path, sources: list, count: int) -> Path:
    folder.mkdir(parents=True)
    for index in range(count):
        source = sources[index % len(sources)]
        os.link(source, folder / f"{index:05d}{source.suffix}")
    return folder


def descendants(root: int) -> list:
    """Pids of `root`'s children, their children, and so on (not `root`)."""
    parents: dict = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        parents.setdefault(int(stat[stat.rindex(b")") + 2 :].split()[1]), []).append(int(entry))
    found, stack = [], list(parents.get(root, []))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(parents.get(pid, []))
    return found


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            return next((int(line.split()[1]) for line in handle if line.startswith("VmRSS:")), 0)
    except OSError:
        return 0


# A fresh, small launcher waits for zoo: a child started straight from this process would inherit
# this process's RSS high-water mark (vfork + exec), hundreds of MB after numpy, OpenCV and the videos.
LAUNCHER = (
    "import os, subprocess, sys\n"
    "with open(sys.argv[2], 'wb') as err:\n"
    "    child = subprocess.Popen(sys.argv[3:], stdout=subprocess.DEVNULL, stderr=err)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "open(sys.argv[1], 'w').write(f'{usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}')\n"
)


def measure(command: list, env: dict, output: Path) -> dict:
    """Run `command` to the end, sampling the tree's RSS against the records written to `output`."""
    started = time.perf_counter()
    stderr, usage = output.with_suffix(".stderr"), output.with_suffix(".usage")
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(usage), str(stderr), *command], env=env)
    samples, seen, records, offset = [], set(), 0, 0
    while launcher.poll() is None:
        pids = descendants(launcher.pid)  # zoo and whatever it starts
        rss = sum(rss_kb(pid) for pid in pids)
        seen.update(pids)
        if output.exists():
            with open(output, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            records += chunk.count(b"\n")
            offset += len(chunk)
        if rss:
            samples.append((records, rss))
        time.sleep(POLL_S)
    seconds = time.perf_counter() - started
    maxrss_kb, code = map(int, usage.read_text().split())
    if code != 0:
        raise SystemExit(f"{' '.join(map(str, command))} exited {code}: {stderr.read_text()[-2000:]}")
    lines = output.read_text().splitlines()
    return {
        "records": len(lines),
        "errors": sum('"error"' in line for line in lines),
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(maxrss_kb / 1024, 1),  # Linux: kB; the zoo process and its waited children
        "tree_peak_rss_mb": round(max((rss for _, rss in samples), default=0) / 1024, 1),
        "processes": len(seen),
        "samples": samples,
    }


def growth_kb_per_input(samples: list, total: int) -> float | None:
    """Least-squares slope of RSS (kB) against records written, over the second half of the run."""
    half = [(n, rss) for n, rss in samples if total // 2 <= n < total]
    if len({n for n, _ in half}) < 2:
        return None
    mean_n = sum(n for n, _ in half) / len(half)
    mean_r = sum(r for _, r in half) / len(half)
    spread = sum((n - mean_n) ** 2 for n, _ in half)
    return sum((n - mean_n) * (r - mean_r) for n, r in half) / spread


def rss_after(samples: list, records: int) -> float | None:
    """Highest tree RSS (MB) sampled before `records` records were written (start-up and the first inputs)."""
    before = [rss for n, rss in samples if n <= records]
    return round(max(before) / 1024, 1) if before else None


def rss_by_tenth(samples: list, total: int) -> list:
    """Highest tree RSS (MB) sampled while each tenth of the records was being written."""
    tenths = []
    for tenth in range(10):
        low, high = total * tenth // 10, total * (tenth + 1) // 10
        inside = [rss for n, rss in samples if low <= n < high or (tenth == 9 and n == total)]
        tenths.append(round(max(inside) / 1024) if inside else None)
    return tenths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--few", type=int, default=10)
    parser.add_argument("--many", type=int, default=1000)
    parser.add_argument("--kinds", default="video,npy", help="comma-separated: video, npy")
    parser.add_argument("--distinct", type=int, default=4, help="distinct files the folders link to, in turn")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each video")
    parser.add_argument("--size", default="1280x720", help="video frame size WxH")
    parser.add_argument("--workers", type=int, help="passed to zoo run --workers (default: zoo's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the lines")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not set(kinds) <= {"video", "npy"}:
        parser.error("--kinds takes video and/or npy")
    size = tuple(int(v) for v in args.size.lower().split("x"))

    import numpy as np

    import modelzoo
    from modelzoo.testing import write_stand_in_onnx

    report: dict = {
        "model": f"{MODEL} stand-in ONNX (real input/output, trivial inference)",
        "cpus": os.cpu_count(),
        "few": args.few,
        "many": args.many,
        "distinct_files": args.distinct,
        "video": f"{size[0]}x{size[1]} 25 fps mp4v, {args.seconds:g} s",
        "target_ratio": TARGET,
        "kinds": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "ZOO_HOME": str(tmp / "home")}
        env.pop("ZOO_CONFIG", None)
        stand_in = write_stand_in_onnx(modelzoo.get_model(MODEL).spec, tmp / "stand_in.onnx")
        videos = []
        for seed in range(args.distinct):
            videos.append(tmp / "distinct" / f"v{seed}.mp4")
            videos[-1].parent.mkdir(exist_ok=True)
            make_video(videos[-1], args.seconds, size, seed)
        sources = {"video": videos}
        if "npy" in kinds:
            sources["npy"] = []
            for video in videos:
                sources["npy"].append(video.with_suffix(".npy"))
                np.save(sources["npy"][-1], modelzoo.preprocess(MODEL, str(video)))

        for kind in kinds:
            runs = {}
            for count in (args.few, args.many):
                folder = fill_folder(tmp / kind / str(count), sources[kind], count)
                output = tmp / f"{kind}_{count}.jsonl"
                command = [*ZOO, "run", MODEL, "--input", str(folder), "--model", str(stand_in), "--json"]
                command += ["--output", str(output)]
                if args.workers:
                    command += ["--workers", str(args.workers)]
                runs[count] = measure(command, env, output)
                if runs[count]["records"] != count or runs[count]["errors"]:
                    raise SystemExit(
                        f"{kind} x {count}: {runs[count]['records']} records, {runs[count]['errors']} errors"
                    )
            few, many = runs[args.few], runs[args.many]
            exact = few["processes"] == many["processes"] == 1
            peak = "peak_rss_mb" if exact else "tree_peak_rss_mb"
            report["kinds"][kind] = {
                "few": {k: v for k, v in few.items() if k != "samples"},
                "many": {k: v for k, v in many.items() if k != "samples"},
                "measure": "ru_maxrss of the zoo process" if exact else "polled RSS summed over the process tree",
                "ratio": round(many[peak] / few[peak], 3),
                "many_rss_mb_after_first_few": rss_after(many["samples"], args.few),
                "many_rss_mb_by_tenth": rss_by_tenth(many["samples"], args.many),
                "many_growth_kb_per_input_second_half": (
                    None if (g := growth_kb_per_input(many["samples"], args.many)) is None else round(g, 2)
                ),
            }
    report["load_average_after"] = round(os.getloadavg()[0], 2)

    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"zoo run {MODEL} --input FOLDER --json --output OUT.jsonl, {report['model']}; "
        f"{args.distinct} distinct files hard-linked in turn; {report['cpus']} CPUs (shared with other work)"
    )
    for kind, row in report["kinds"].items():
        few, many = row["few"], row["many"]
        what = report["video"] if kind == "video" else "preprocessed .npy, float32 [1,3,16,112,112]"
        print(f"  {kind} ({what}):")
        for count, run in ((args.few, few), (args.many, many)):
            print(
                f"    {count:>5} inputs: peak RSS {run['peak_rss_mb']:.0f} MB (tree, polled: "
                f"{run['tree_peak_rss_mb']:.0f} MB, {run['processes']} process(es)), {run['seconds']:.0f} s"
            )
        growth = row["many_growth_kb_per_input_second_half"]
        print(
            f"    {args.many} / {args.few} peak = {row['ratio']:.3f}x (target <= {TARGET}x); in the {args.many}-input run: "
            f"{row['many_rss_mb_after_first_few']} MB by record {args.few}, "
            f"{'n/a' if growth is None else f'{growth:+.1f} kB'} per input over the second half"
        )
        tenths = " ".join("-" if mb is None else str(mb) for mb in row["many_rss_mb_by_tenth"])
        print(f"    RSS (MB) in each tenth of the {args.many}-input run: {tenths}")
    print(f"  load average after the run: {report['load_average_after']} (peak RSS does not depend on it)")


if __name__ == "__main__":
    main()
