"""`hrt_model_exec perf`-style measurement with any backend: N threads share F frames of random input.

A "frame" is what `hrt_model_exec` counts: one inference on one model input of batch 1 (for a video model
with 16-frame clips, a whole clip [1,3,16,112,112], not a video frame). The rows have the board tool's
columns, so host and board numbers read the same way: total latency is the sum of per-frame
latencies, average latency is that over frames, and FPS is frames over wall time (which
`hrt_model_exec` prints as roughly threads x 1000 / average latency). The threads of a row share
one loaded model, as `hrt_model_exec perf --thread_num N` does.

On a host the threads compete for the same cores as onnxruntime's own intra-op threads, so each
row loads the model with `cores // threads` intra-op threads (at least 1; `RowBackends`): one
thread uses every core, and N threads never ask for more than the cores, unless zoo.yaml fixes
`threads`. On the board the BPU runs the model and the backend ignores `threads`.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

DISTINCT_INPUTS = 8  # random inputs made per row at most, whatever the thread count
MAX_THREADS = 256  # per row: far above any BPU's cores or a host's, below what exhausts a process


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


def host_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


class RowBackends:
    """The backend for each row of a perf run, from `factory(threads)` (a loaded Backend).

    With `per_row` (host backends), a row of N worker threads gets `cores // N` intra-op threads,
    at least 1, unless `fixed` (zoo.yaml's `threads`) is set; otherwise every row gets `fixed`
    (None: the backend's own default). A loaded backend is reused while the number stays the same,
    and released before the next one is loaded.
    """

    def __init__(self, factory, *, per_row: bool = True, fixed: int | None = None, cores: int | None = None):
        self.factory = factory
        self.per_row = per_row and not fixed
        self.fixed = fixed
        self.cores = cores or host_cores()
        self.backend = None
        self._threads = None
        self.loads = 0

    def threads_for(self, workers: int) -> int | None:
        """The `threads=` a row of `workers` threads loads the backend with."""
        return max(1, self.cores // int(workers)) if self.per_row else self.fixed

    def __call__(self, workers: int):
        threads = self.threads_for(workers)
        if self.backend is None or threads != self._threads:
            self.backend = None  # one model in memory at a time
            self.backend = self.factory(threads)
            self._threads = threads
            self.loads += 1
        return self.backend


def measure(backend, input_shape: tuple, threads: int, frames: int, on_frame=None) -> PerfRow:
    """Run `frames` inferences (one batch-1 input each) spread over `threads` threads; each thread
    takes the next frame until all are done. Errors in a worker are re-raised here. `on_frame()`
    (progress) is called after each frame, one thread at a time."""
    counter = iter(range(frames))
    lock = threading.Lock()
    latencies: list = []
    errors: list = []

    def worker(clip) -> None:
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

    # made before the clock starts; a few distinct inputs, shared round-robin, so memory does not grow
    # with the thread count; a thread beyond the frames would have nothing to run
    clips = [random_clip(input_shape, seed) for seed in range(min(threads, frames, DISTINCT_INPUTS))]
    workers = [
        threading.Thread(target=worker, args=(clips[n % len(clips)],), name=f"zoo-perf-{n}")
        for n in range(min(threads, frames))
    ]
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
    """One PerfRow per thread count. `backend` is a loaded Backend shared by every row, or a
    callable `backend(threads)` returning the one for a row (e.g. a RowBackends); each backend
    runs `warmup` untimed inferences before each row (first-run allocations), outside its timing.

    `progress(threads)` may return a context manager with `update(1)`, shown while a row runs;
    `on_row(row)` is called as each row finishes, before the next one starts.
    """
    import contextlib

    load = backend if callable(backend) and not hasattr(backend, "run") else (lambda _threads: backend)
    clip = random_clip(input_shape, seed=1234)
    rows = []
    for threads in thread_counts:
        runner = load(int(threads))
        for _ in range(warmup):
            runner.run(clip)
        with progress(int(threads)) if progress else contextlib.nullcontext() as bar:
            row = measure(
                runner, input_shape, int(threads), int(frames), on_frame=(lambda: bar.update(1)) if bar else None
            )
        del runner  # the loader may release it before loading the next row's
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
