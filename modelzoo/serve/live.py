"""Live streams of `zoo serve`: each runs `core.streams.run_stream` on a thread of its own, with the served
model's loaded backend and its turn (so streams and predictions share one loaded model), and hands its
window records to SSE and WebSocket clients and its frames, with the current result drawn by the task's
`draw` (what `--save-video` writes), to MJPEG clients. Everything is bounded: the streams at once, the
clients of each, their queues, the frames encoded per second, and the ended streams kept for listing."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from urllib.parse import urlsplit, urlunsplit

from modelzoo.core.errors import ZooError
from modelzoo.serve.channels import Channel
from modelzoo.serve.errors import TooManyStreams, UnknownStream

MAX_VIEWERS = 16  # clients of one stream's events, and as many of its video
EVENT_QUEUE = 64  # events waiting for a slow client before its oldest are dropped
HISTORY = 32  # recent events a new client gets first
MJPEG_FPS = 10.0  # frames encoded per second for a stream's video clients
MJPEG_MAX_WIDTH = 1280  # wider frames are scaled down before encoding
MJPEG_QUALITY = 80
KEEP_ENDED = 16  # ended streams still listed (with their summary) until deleted
ACTIVE = ("starting", "running")


def shown_input(text: str) -> str:
    """The input as clients see it: a password inside a URL (rtsp://user:pass@camera/) replaced by ***."""
    parts = urlsplit(text)
    if "@" not in parts.netloc or parts.password is None:
        return text
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class LiveStream:
    """One running (or ended) stream: its thread, its state for listing, and its two channels."""

    def __init__(self, stream_id, served, request, options, shown, settings, context, metrics, log=None):
        self.id = stream_id
        self.served = served
        self.model = served.name
        self.request = request  # a RunRequest whose input is the URL, camera or resolved file
        self.options = options  # core.streams.StreamOptions
        self.input = shown  # what clients see as its input
        self.settings = settings  # the options the client gave, for listing
        self.context = context  # (registry, config, cache)
        self.metrics = metrics
        self.log = log
        self.status = "starting"
        self.error: str | None = None
        self.exception: BaseException | None = None
        self.summary = None  # core.streams.StreamSummary, live once running
        self.last: dict | None = None  # the latest window record
        self.created = time.time()
        self.ended: float | None = None
        self.stop = threading.Event()
        self.settled = threading.Event()  # running, or ended before it ran
        self.events = Channel(history=HISTORY, queue=EVENT_QUEUE, limit=MAX_VIEWERS)
        self.video = Channel(history=1, queue=1, limit=MAX_VIEWERS, what="video")
        self._draw = context[0].task_of(served.model).draw
        self._draw_failed = False
        self._last_frame = 0.0
        self.thread = threading.Thread(target=self._run, name=f"zoo-stream-{stream_id}", daemon=True)

    @property
    def viewers(self) -> int:
        """Clients reading its events or its video."""
        return self.events.subscribers + self.video.subscribers

    def info(self) -> dict:
        """The stream as `GET /v1/streams` lists it."""
        from modelzoo.core.streams import StreamSummary

        counts = self._counts() or {**StreamSummary(self.input).to_dict(), "seconds": 0.0}
        base = f"/v1/streams/{self.id}"
        return {
            "id": self.id,
            "model": self.model,
            "input": self.input,
            "status": self.status,
            "error": self.error,
            "options": self.settings,
            "started_at": round(self.created, 3),
            **counts,
            "viewers": self.viewers,
            "last": self.last,
            "links": {"events": f"{base}/events", "ws": f"{base}/ws", "video": f"{base}/video"},
        }

    def _run(self) -> None:
        from modelzoo.core.streams import StreamHooks, run_stream

        registry, config, cache = self.context
        hooks = StreamHooks(
            stop=self.stop, on_start=self._started, on_frame=self._frame, loaded=self.served.loaded,
            turn=self.served.queue.turn,
        )  # fmt: skip
        status = "failed"
        try:
            self.summary = run_stream(
                self.request, registry, config, cache, options=self.options, on_record=self._record, log=self._log,
                hooks=hooks,
            )  # fmt: skip
            status = "stopped" if self.stop.is_set() else "lost" if self.summary.lost else "ended"
        except ZooError as exc:
            self.exception, self.error = exc, self._shown(str(exc))
        except Exception as exc:  # a bug: this stream fails, the server goes on and logs the traceback
            self.exception = exc
            self.error = f"unexpected {type(exc).__name__}: {exc} (the traceback is in the server's log)"
            logging.getLogger("modelzoo.serve").exception("stream %s failed", self.id)
        finally:
            self.status = status
            self.ended = time.time()
            if self.metrics is not None:
                self.metrics.observe_stream_end(self.model, status)
            self.events.publish("end", self.end_event())
            self.events.close()
            self.video.close()
            self.settled.set()

    def end_event(self) -> dict:
        """The last event: how the stream ended, with its summary (the CLI's `summary:` line too)."""
        summary = self.summary
        return {
            "id": self.id,
            "status": self.status,
            "error": self.error,
            "summary": self._counts(),
            "line": self._shown(summary.line()) if summary else self.error,
        }

    def halt(self, why: str) -> None:
        """End the clients' responses now (the server is stopping); the thread stops at its next frame."""
        self.stop.set()
        if self.status in ACTIVE:
            self.events.publish("end", {**self.end_event(), "status": "stopped", "line": why})
        self.events.close()
        self.video.close()

    def _counts(self) -> dict | None:
        if self.summary is None:
            return None
        counts = self.summary.to_dict()
        counts["end"] = self._shown(counts["end"])
        return counts

    def _shown(self, text: str) -> str:
        return text.replace(str(self.request.input), self.input)

    def _started(self, summary) -> None:
        self.summary = summary
        self.status = "running"
        self.settled.set()

    def _record(self, record: dict, _result) -> None:
        record["input"] = self.input
        if "error" in record:
            record["error"] = self._shown(record["error"])
        else:
            self.last = record
        if self.metrics is not None:
            latency = record.get("latency_ms")
            self.metrics.observe_stream_window(self.model, latency / 1000 if latency is not None else None)
        self.events.publish("window", record)

    def _log(self, message: str) -> None:
        message = self._shown(message)
        self.events.publish("notice", {"message": message})
        if self.log:
            self.log(f"stream {self.id}: {message}")

    def _frame(self, frame_bgr, result) -> None:
        """Encode the frame, with the current result drawn, for the video clients: only when there are
        some, and at most MJPEG_FPS times a second."""
        if not self.video.subscribers:
            return
        now = time.perf_counter()
        if now - self._last_frame < 1 / MJPEG_FPS:
            return
        self._last_frame = now
        from modelzoo.core.inputs.video import opencv

        cv2 = opencv()
        canvas = frame_bgr.copy()
        if result is not None and not self._draw_failed:
            try:
                canvas = self._draw(canvas, result)
            except Exception as exc:  # a plugin's drawing: the video goes on without it
                self._draw_failed = True
                self._log(f"warning: cannot draw {self.model}'s result on the video ({exc}); showing the frames alone")
        height, width = canvas.shape[:2]
        if width > MJPEG_MAX_WIDTH:
            size = (MJPEG_MAX_WIDTH, max(1, round(height * MJPEG_MAX_WIDTH / width)))
            canvas = cv2.resize(canvas, size, interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, MJPEG_QUALITY])
        if ok:
            self.video.publish("frame", jpeg.tobytes())


class LiveStreams:
    """The server's streams: at most `limit` starting or running at once; ended ones are kept (a few) until deleted."""

    def __init__(self, limit: int, metrics=None, log=None):
        self.limit = limit
        self.metrics = metrics
        self.log = log
        self._lock = threading.Lock()
        self._streams: dict = {}

    def start(self, served, request, options, shown, settings, context) -> LiveStream:
        """Start a stream on its thread; TooManyStreams (503) when `limit` already run."""
        with self._lock:
            running = sum(stream.status in ACTIVE for stream in self._streams.values())
            if running >= self.limit:
                if self.metrics is not None:
                    self.metrics.observe_stream_rejected()
                if not self.limit:
                    raise TooManyStreams("this server runs no streams (zoo serve --max-streams 0)")
                raise TooManyStreams(
                    f"{running} stream(s) already run here (zoo serve --max-streams {self.limit}); "
                    "stop one with DELETE /v1/streams/ID"
                )
            stream_id = secrets.token_hex(6)
            stream = LiveStream(stream_id, served, request, options, shown, settings, context, self.metrics, self.log)
            self._streams[stream_id] = stream
            self._forget_old()
        if self.metrics is not None:
            self.metrics.observe_stream_started(stream.model)
        stream.thread.start()
        return stream

    def _forget_old(self) -> None:
        ended = sorted((s for s in self._streams.values() if s.ended is not None), key=lambda s: s.ended)
        for stream in ended[: max(0, len(ended) - KEEP_ENDED)]:
            del self._streams[stream.id]

    def get(self, stream_id: str) -> LiveStream:
        with self._lock:
            stream = self._streams.get(stream_id)
        if stream is None:
            raise UnknownStream(f"no stream {stream_id!r} here; GET /v1/streams lists them")
        return stream

    def all(self) -> list:
        with self._lock:
            return sorted(self._streams.values(), key=lambda s: s.created)

    def remove(self, stream_id: str) -> LiveStream:
        """Stop the stream (when it runs) and forget it."""
        stream = self.get(stream_id)
        stream.stop.set()
        with self._lock:
            self._streams.pop(stream_id, None)
        return stream

    def discard(self, stream: LiveStream) -> None:
        with self._lock:
            self._streams.pop(stream.id, None)

    def close(self) -> None:
        """The server is stopping: every stream stops and its clients' responses end."""
        for stream in self.all():
            stream.halt("the server stopped")

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for stream in self.all():
            stream.thread.join(max(0.0, deadline - time.monotonic()))

    def gauges(self) -> list:
        """(model, status, viewers) of each listed stream, for /metrics."""
        return [(s.model, s.status, s.viewers) for s in self.all()]
