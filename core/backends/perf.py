"""`hrt_model_exec perf`-style measurement with any backend: N threads share F frames of random input.

The rows have the board tool's columns, so host and board numbers read the same way:
total latency is the sum of per-frame latencies, average latency is that over frames, and FPS is
frames over wall time (which `hrt_model_exec` prints as roughly threads x 1000 / average latency).
All threads share one loaded model, as `hrt_model_exec perf --thread_num N` does.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class PerfRow:
    threads: int
    frames: int
    total_latency_ms: float
    avg_latency_ms: float
    fps: float
    wall_ms: float

    def to_dict(self) -> dict:
        return {
            "threads": self.threads,
            "frames": self.frames,
            "total_latency_ms": round(self.total_latency_ms, 3),
            "avg_latency_ms": round(self.avg_latency_ms, 3),
            "fps": round(self.fps, 3),
            "wall_ms": round(self.wall_ms, 3),
        }


def random_clip(shape: tuple, seed: int):
    """One float32 input of `shape` with the batch set to 1; roughly the range of normalized pixels."""
    import numpy as np

    shape = (1, *(int(d) for d in shape[1:]))
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def measure(backend, input_shape: tuple, threads: int, frames: int, on_frame=None) -> PerfRow:
    """Run `frames` single-clip inferences spread over `threads` threads; each thread takes the next
    frame until all are done. Errors in a worker are re-raised here. `on_frame()` (progress) is
    called after each frame, one thread at a time."""
    counter = iter(range(frames))
    lock = threading.Lock()
    latencies: list = []
    errors: list = []

    def worker(seed: int) -> None:
        clip = random_clip(input_shape, seed)
        own = []
        try:
            while True:
                with lock:
                    if next(counter, None) is None:
                        break
                started = time.perf_counter()
                backend.run(clip)
                own.append((time.perf_counter() - started) * 1000)
                if on_frame:
                    with lock:
                        on_frame()
        except BaseException as exc:  # surfaced in the calling thread
            errors.append(exc)
        with lock:
            latencies.extend(own)

    workers = [threading.Thread(target=worker, args=(seed,), name=f"zoo-perf-{seed}") for seed in range(threads)]
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    wall_ms = (time.perf_counter() - started) * 1000
    if errors:
        raise errors[0]
    total = sum(latencies)
    done = len(latencies)
    return PerfRow(
        threads=threads,
        frames=done,
        total_latency_ms=total,
        avg_latency_ms=total / done if done else 0.0,
        fps=done / (wall_ms / 1000) if wall_ms > 0 else 0.0,
        wall_ms=wall_ms,
    )


def run_perf(
    backend, input_shape: tuple, thread_counts, frames: int, *, warmup: int = 1, on_row=None, progress=None
) -> list:
    """One PerfRow per thread count, after `warmup` untimed inferences (first-run allocations).

    `progress(threads)` may return a context manager with `update(1)`, shown while a row runs.
    """
    import contextlib

    clip = random_clip(input_shape, seed=1234)
    for _ in range(warmup):
        backend.run(clip)
    rows = []
    for threads in thread_counts:
        with progress(int(threads)) if progress else contextlib.nullcontext() as bar:
            row = measure(
                backend, input_shape, int(threads), int(frames), on_frame=(lambda: bar.update(1)) if bar else None
            )
        rows.append(row)
        if on_row:
            on_row(row)
    return rows


def published_rows(spec) -> list:
    """The spec's published board measurements, labelled as such (not measured here)."""
    return [
        {
            "device": p.device,
            "march": p.march,
            "threads": p.threads,
            "avg_latency_ms": p.avg_latency_ms,
            "fps": p.fps,
            "source": p.source,
            "published": True,
        }
        for p in spec.board_perf
    ]
