"""Does `zoo serve` keep up with `zoo perf` when 8 clients post clips at once, refuse past its queue,
and keep its memory flat?

Usage: python benchmarks/bench_serve.py [--requests 32] [--clients 8] [--frames 16] [--rounds 2] [--json]
  - builds a random-weight R3D-18 ONNX (real architecture, no download) and one preprocessed clip (.npy);
  - starts a real `zoo serve r3d_18 --model FILE` (uvicorn) on a free 127.0.0.1 port, with the
    onnxruntime threads `zoo perf`'s one-thread row uses (every core);
  - each round: `zoo perf --threads 1` on the same file, then `--clients` threads (httpx) posting the
    clip until `--requests` have been answered; throughput ratio = served/s over perf's FPS in the
    same round (median over rounds, so load from other processes hits both; target >= 0.90), and the
    clients' p50/p99 latency;
  - then a burst of queue + 1 + `--over` requests at once: those past the queue limit must get 503
    with Retry-After;
  - the server's RSS (/proc/PID/status VmRSS) when ready, after each round, after the burst, and its
    peak (sampled every 0.2 s).
Measured here, in this run, on 127.0.0.1 only; nothing is a board figure.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from random_weights import random_state_dict

ZOO = [sys.executable, "-m", "modelzoo"]
MODEL = "r3d_18"
CLIP = (3, 16, 112, 112)


def make_model(path: Path) -> None:
    from modelzoo.models.video_resnet.architecture import build_video_resnet

    path.write_bytes(build_video_resnet(random_state_dict(MODEL), MODEL).SerializeToString())


def clip_bytes() -> bytes:
    """One preprocessed clip as a .npy file's bytes (what a client that preprocesses itself posts)."""
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(0).standard_normal(CLIP, dtype=np.float32))
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class RssSampler(threading.Thread):
    """The server's peak RSS, sampled every `every` s until stopped."""

    def __init__(self, pid: int, every: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak = pid, every, 0.0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except (OSError, RuntimeError):
                return
            self._done.wait(self.every)

    def stop(self) -> float:
        self._done.set()
        self.join()
        return self.peak


def perf_fps(model: Path, frames: int, env: dict) -> float:
    """`zoo perf MODEL --model FILE --threads 1`: inferences per second, one at a time on every core."""
    args = [*ZOO, "perf", MODEL, "--model", str(model), "--threads", "1", "--frames", str(frames), "--json"]
    completed = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    if completed.returncode != 0:
        raise SystemExit(f"zoo perf failed: {completed.stderr}")
    return json.loads(completed.stdout)["rows"][0]["fps"]


def start_server(model: Path, port: int, threads: int, queue: int, env: dict, log: Path) -> subprocess.Popen:
    args = [*ZOO, "serve", MODEL, "--model", str(model), "--port", str(port), "--threads", str(threads)]
    args += ["--queue", str(queue)]
    with open(log, "wb") as handle:
        server = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"zoo serve exited ({server.returncode}): {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.terminate()
    raise SystemExit(f"zoo serve did not answer /healthz within 120 s: {log.read_text()[-2000:]}")


def post(client: httpx.Client, url: str, payload: bytes) -> tuple:
    """(status, seconds, Retry-After header) of one prediction request."""
    started = time.perf_counter()
    response = client.post(url, files={"file": ("clip.npy", payload, "application/octet-stream")})
    return response.status_code, time.perf_counter() - started, response.headers.get("retry-after")


def throughput(url: str, payload: bytes, clients: int, requests: int, deadline: float) -> dict:
    """`clients` threads posting until `requests` are answered (or the deadline): served/s and latencies."""
    lock = threading.Lock()
    started_count = [0]
    latencies, failures = [], []

    def client_loop() -> None:
        with httpx.Client(timeout=300) as client:
            while time.monotonic() < deadline:
                with lock:
                    if started_count[0] >= requests:
                        return
                    started_count[0] += 1
                status, seconds, _ = post(client, url, payload)
                with lock:
                    if status == 200:
                        latencies.append(seconds)
                    else:
                        failures.append(status)

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    return {"served": len(latencies), "failed": failures, "wall_s": wall, "per_s": len(latencies) / wall,
            "latencies_s": latencies}  # fmt: skip


def burst(url: str, payload: bytes, count: int) -> dict:
    """`count` requests released at once: how many were served, how many got 503 (with Retry-After)."""
    gate = threading.Barrier(count)
    results = []
    lock = threading.Lock()

    def one() -> None:
        with httpx.Client(timeout=300) as client:
            gate.wait()
            result = post(client, url, payload)
            with lock:
                results.append(result)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = [status for status, _, _ in results]
    return {
        "sent": count,
        "ok": statuses.count(200),
        "rejected_503": statuses.count(503),
        "503_with_retry_after": sum(1 for status, _, retry in results if status == 503 and retry),
        "other": sorted(s for s in statuses if s not in (200, 503)),
    }


def percentile(values: list, q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32, help="requests answered per round")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    parser.add_argument("--frames", type=int, default=16, help="`zoo perf` inferences per round")
    parser.add_argument("--rounds", type=int, default=2, help="perf and serve rounds, alternating; medians")
    parser.add_argument("--queue", type=int, default=8, help="zoo serve --queue (the default)")
    parser.add_argument("--over", type=int, default=16, help="burst requests past the queue limit")
    parser.add_argument("--timeout", type=float, default=600, help="seconds the client phases may take in all")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()

    from modelzoo.core.backends.perf import host_cores

    cores = host_cores()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, ZOO_HOME=str(tmp / "home"))
        env.pop("ZOO_CONFIG", None)
        model = tmp / f"{MODEL}.onnx"
        make_model(model)
        payload = clip_bytes()
        port = free_port()
        url = f"http://127.0.0.1:{port}/v1/models/{MODEL}/predict"
        server = start_server(model, port, cores, args.queue, env, tmp / "serve.log")
        try:
            report = measure(server, url, payload, model, env, args, cores)
        except SystemExit:
            print((tmp / "serve.log").read_text()[-3000:], file=sys.stderr)  # the server's side of it
            raise
        finally:
            server.terminate()
            server.wait(timeout=60)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)


def measure(server, url: str, payload: bytes, model: Path, env: dict, args, cores: int) -> dict:
    deadline = time.monotonic() + args.timeout
    rss = {"ready": rss_mb(server.pid)}
    sampler = RssSampler(server.pid)
    sampler.start()
    with httpx.Client(timeout=300) as client:  # one untimed request: first-run allocations, as perf's warm-up
        response = client.post(url, files={"file": ("clip.npy", payload, "application/octet-stream")})
        if response.status_code != 200:
            raise SystemExit(f"the warm-up request got HTTP {response.status_code}: {response.text}")
    rss["after_warm_up"] = rss_mb(server.pid)
    rounds = []
    for index in range(args.rounds):
        fps = perf_fps(model, args.frames, env)
        served = throughput(url, payload, args.clients, args.requests, deadline)
        rss[f"after_round_{index + 1}"] = rss_mb(server.pid)
        rounds.append({"perf_fps": fps, **served})
    over = burst(url, payload, args.queue + 1 + args.over)
    rss["after_burst"] = rss_mb(server.pid)
    rss["peak"] = sampler.stop()
    latencies = [s for r in rounds for s in r["latencies_s"]]
    for r in rounds:
        r["ratio"] = r["per_s"] / r["perf_fps"]
    perf = statistics.median(r["perf_fps"] for r in rounds)
    served = statistics.median(r["per_s"] for r in rounds)
    return {
        "model": f"random-weight {MODEL} ONNX, one preprocessed clip [1,{','.join(map(str, CLIP))}] per request",
        "cores": cores,
        "onnxruntime_threads": cores,
        "clients": args.clients,
        "queue": args.queue,
        "rounds": [{k: v for k, v in r.items() if k != "latencies_s"} for r in rounds],
        "perf_fps": perf,
        "served_per_s": served,
        "ratio": statistics.median(r["ratio"] for r in rounds),  # paired by round: load shifts hit both
        "target_ratio": 0.90,
        "latency_ms": {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "n": len(latencies)},
        "burst": {**over, "expected_503_at_least": args.over},
        "rss_mb": rss,
        "rss_growth_mb": rss["after_burst"] - rss["after_round_1"],
    }


def print_report(report: dict) -> None:
    print(
        f"{report['model']}; {report['cores']} cores, onnxruntime {report['onnxruntime_threads']} threads, "
        f"{report['clients']} clients, zoo serve --queue {report['queue']}"
    )
    for index, r in enumerate(report["rounds"], 1):
        print(
            f"  round {index}: zoo perf {r['perf_fps']:.2f} FPS; zoo serve {r['served']} answered in "
            f"{r['wall_s']:.1f} s = {r['per_s']:.2f}/s, {r['ratio']:.2f}x"
            + (f", failed {r['failed']}" if r["failed"] else "")
        )
    lat, over, rss = report["latency_ms"], report["burst"], report["rss_mb"]
    rows = [
        ("throughput", f"{report['served_per_s']:.2f}/s vs perf {report['perf_fps']:.2f} FPS; median ratio {report['ratio']:.2f}x",
         ">= 0.90x"),
        ("latency (client)", f"p50 {lat['p50']:.0f} ms, p99 {lat['p99']:.0f} ms over {lat['n']} requests",
         "reported"),
        ("burst past the queue", f"{over['sent']} at once: {over['ok']} served, {over['rejected_503']} x 503 "
         f"({over['503_with_retry_after']} with Retry-After)" + (f", other {over['other']}" if over["other"] else ""),
         f">= {over['expected_503_at_least']} x 503"),
        ("server RSS", f"ready {rss['ready']:.0f} MB, warmed {rss['after_warm_up']:.0f}, after round 1 "
         f"{rss['after_round_1']:.0f}, end {rss['after_burst']:.0f}, peak {rss['peak']:.0f}",
         f"flat (round 1 -> end {report['rss_growth_mb']:+.0f} MB)"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    for name, measured, target in rows:
        print(f"  {name:<{width}}  {measured}   [{target}]")


if __name__ == "__main__":
    main()
