"""The server's counters and latency histograms, rendered in the Prometheus text format (no client library)."""

from __future__ import annotations

import threading
from collections import defaultdict

# Seconds; wide enough for a video clip on a CPU.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Histogram:
    def __init__(self):
        self.counts = [0] * len(BUCKETS)
        self.total = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.total += 1
        self.sum += seconds
        for index, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.counts[index] += 1

    def lines(self, name: str, labels: dict) -> list:
        lines = [
            f"{name}_bucket{_labels({**labels, 'le': _number(bound)})} {count}"
            for bound, count in zip(BUCKETS, self.counts)
        ]
        lines.append(f"{name}_bucket{_labels({**labels, 'le': '+Inf'})} {self.total}")
        lines.append(f"{name}_sum{_labels(labels)} {_number(self.sum)}")
        lines.append(f"{name}_count{_labels(labels)} {self.total}")
        return lines


class Metrics:
    """Request counts and latencies by route, inference latencies and queue rejections by model."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests = defaultdict(int)  # (method, route, status) -> count
        self.request_seconds = defaultdict(Histogram)  # (method, route) -> Histogram
        self.inference_seconds = defaultdict(Histogram)  # model -> Histogram
        self.predictions = defaultdict(int)  # (model, outcome) -> count
        self.rejected = defaultdict(int)  # model -> requests refused with 503
        self.streams_started = defaultdict(int)  # model -> streams started
        self.streams_ended = defaultdict(int)  # (model, status) -> streams ended
        self.streams_rejected = 0  # streams refused past --max-streams
        self.stream_windows = defaultdict(int)  # (model, outcome) -> window records
        self.stream_latency = defaultdict(Histogram)  # model -> a window's last frame to its result

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, str(status))] += 1
            self.request_seconds[(method, route)].observe(seconds)

    def observe_inference(self, model: str, seconds: float, ok: bool) -> None:
        with self._lock:
            self.inference_seconds[model].observe(seconds)
            self.predictions[(model, "ok" if ok else "error")] += 1

    def observe_rejected(self, model: str) -> None:
        with self._lock:
            self.rejected[model] += 1

    def observe_stream_started(self, model: str) -> None:
        with self._lock:
            self.streams_started[model] += 1

    def observe_stream_end(self, model: str, status: str) -> None:
        with self._lock:
            self.streams_ended[(model, status)] += 1

    def observe_stream_rejected(self) -> None:
        with self._lock:
            self.streams_rejected += 1

    def observe_stream_window(self, model: str, latency_s: float | None) -> None:
        """A window's record: with its latency when it has a result, None when its inference failed."""
        with self._lock:
            self.stream_windows[(model, "error" if latency_s is None else "ok")] += 1
            if latency_s is not None:
                self.stream_latency[model].observe(latency_s)

    def render(self, queues: dict, streams: list = ()) -> str:
        """The text exposition; `queues` maps each served model to its InferenceQueue, `streams` lists
        (model, status, clients) of each stream the server lists."""
        out = []

        def family(name: str, kind: str, help_text: str, labels: tuple, values: dict) -> None:
            """One family: `values` maps each series' label values (in `labels`' order) to a number or Histogram."""
            out.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])
            for key, value in sorted(values.items()):
                named = dict(zip(labels, key if isinstance(key, tuple) else (key,)))
                out.extend(
                    value.lines(name, named) if isinstance(value, Histogram) else [f"{name}{_labels(named)} {value}"]
                )

        model, outcome = ("model",), ("model", "outcome")
        with self._lock:
            family(
                "zoo_http_requests_total",
                "counter",
                "HTTP requests answered, by method, route and status code.",
                ("method", "route", "status"),
                self.requests,
            )
            family(
                "zoo_http_request_duration_seconds",
                "histogram",
                "Time from the request's arrival to its response, by method and route.",
                ("method", "route"),
                self.request_seconds,
            )
            family(
                "zoo_inference_duration_seconds",
                "histogram",
                "Time a prediction holds its model (decode, preprocess, inference, postprocess), by model.",
                model,
                self.inference_seconds,
            )
            family(
                "zoo_predictions_total", "counter", "Predictions run, by model and outcome.", outcome, self.predictions
            )
            family(
                "zoo_queue_rejected_total",
                "counter",
                "Prediction requests refused with 503 because the model's queue was full.",
                model,
                {m: self.rejected.get(m, 0) for m in set(self.rejected) | set(queues)},
            )
            family(
                "zoo_streams_started_total",
                "counter",
                "Streams started (POST /v1/streams), by model.",
                model,
                self.streams_started,
            )
            family(
                "zoo_streams_ended_total",
                "counter",
                "Streams ended, by model and how: ended, lost, stopped or failed.",
                ("model", "status"),
                self.streams_ended,
            )
            family(
                "zoo_streams_rejected_total",
                "counter",
                "Streams refused with 503 because --max-streams already ran.",
                (),
                {(): self.streams_rejected},
            )
            family(
                "zoo_stream_windows_total",
                "counter",
                "Stream windows run, by model and outcome.",
                outcome,
                self.stream_windows,
            )
            family(
                "zoo_stream_latency_seconds",
                "histogram",
                "Time from a stream window's last frame to its result, by model.",
                model,
                self.stream_latency,
            )
        active = defaultdict(int)
        for name, status, _clients in streams:
            active[name] += status in ("starting", "running")
        family("zoo_streams_active", "gauge", "Streams starting or running, by model.", model, active)
        family(
            "zoo_stream_clients",
            "gauge",
            "Clients reading streams' events or video.",
            (),
            {(): sum(clients for _m, _s, clients in streams)},
        )
        states = {name: queue.state() for name, queue in queues.items()}
        family(
            "zoo_queue_depth",
            "gauge",
            "Prediction requests admitted and waiting for their model.",
            model,
            {m: s["waiting"] for m, s in states.items()},
        )
        family(
            "zoo_queue_limit",
            "gauge",
            "How many requests may wait for the model (zoo serve --queue).",
            model,
            {m: s["limit"] for m, s in states.items()},
        )
        family(
            "zoo_model_busy",
            "gauge",
            "1 while the model runs a prediction.",
            model,
            {m: int(s["busy"]) for m, s in states.items()},
        )
        return "\n".join(out) + "\n"


def _labels(labels: dict) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items()) + "}"


def _escape(value) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value))
