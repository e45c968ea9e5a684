"""The models a server runs: one loaded backend per (model, backend, precision), shared by every
request, one prediction at a time per model, and a bounded queue in front of it."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import replace

from modelzoo.serve.errors import QueueFull


class InferenceQueue:
    """One prediction at a time, and at most `limit` admitted requests waiting for their turn.

    A request is admitted before its body is read, so a full queue costs the client no upload and the
    server no memory or disk; the Ticket it gets waits for the turn when entered.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self._turn = threading.Condition()
        self._busy = False
        self._waiting = 0

    def admit(self) -> Ticket | None:
        """A place in the queue, or None when `limit` requests already wait behind a running one."""
        with self._turn:
            if self._waiting + self._busy > self.limit:
                return None
            self._waiting += 1
            return Ticket(self)

    def state(self) -> dict:
        with self._turn:
            return {"waiting": self._waiting, "busy": self._busy, "limit": self.limit}

    def _take_turn(self) -> None:
        """Wait until the model is free and take it; the caller holds `_turn`."""
        while self._busy:
            self._turn.wait()
        self._busy = True

    def _end_turn(self) -> None:
        with self._turn:
            self._busy = False
            self._turn.notify()

    @contextlib.contextmanager
    def turn(self):
        """The model's turn for a stream's window: waited for like a request's, but outside the limit
        (a stream holds one window at a time, and streams are bounded by --max-streams)."""
        with self._turn:
            self._take_turn()
        try:
            yield
        finally:
            self._end_turn()

    @contextlib.contextmanager
    def hold(self):
        """Take the model's turn outside a request (maintenance, tests): requests wait or get 503 meanwhile."""
        ticket = self.admit()
        if ticket is None:
            raise RuntimeError("the queue is full")
        with ticket:
            yield


class Ticket:
    """An admitted request's place: `with ticket:` waits for the turn and holds it; `release()` gives
    the place back if the request ends before its turn."""

    def __init__(self, queue: InferenceQueue):
        self._queue = queue
        self._state = "waiting"

    def __enter__(self):
        queue = self._queue
        with queue._turn:
            queue._take_turn()
            queue._waiting -= 1
            self._state = "running"
        return self

    def __exit__(self, *exc_info):
        self._state = "done"
        self._queue._end_turn()

    def release(self) -> None:
        with self._queue._turn:
            if self._state == "waiting":
                self._queue._waiting -= 1
                self._state = "done"


class ServedModel:
    """One model as the server runs it: the run settings it was started with, the backend it keeps
    loaded across requests (the runner's `loaded`, as `Model.predict` keeps it) and its queue."""

    def __init__(self, model, registry, config, cache, template, queue_limit: int, metrics=None):
        self.model = model
        self.registry = registry
        self.config = config
        self.cache = cache
        self.template = template  # a RunRequest: model, model file, weights, backend, precision, threads
        self.queue = InferenceQueue(queue_limit)
        self.metrics = metrics
        self.loaded: dict = {}  # the backends kept loaded (`runner.run`'s `loaded`), shared with its streams
        self._seconds = 1.0  # a running estimate of one prediction, for Retry-After

    @property
    def name(self) -> str:
        return self.model.name

    def admit(self):
        """A Ticket, or QueueFull (503) with how long to wait."""
        ticket = self.queue.admit()
        if ticket is not None:
            return ticket
        if self.metrics is not None:
            self.metrics.observe_rejected(self.name)
        state = self.queue.state()
        retry_after = max(1, math.ceil(self._seconds * (state["waiting"] + 1)))
        raise QueueFull(
            f"{self.name} is busy and {state['waiting']} request(s) already wait for it "
            f"(zoo serve --queue {state['limit']}); retry in {retry_after} s",
            retry_after,
        )

    def predict(self, ticket, input_path, options: dict, log=None):
        """Run `input_path` through the model when the ticket's turn comes; returns the RunResult."""
        from modelzoo.core.runner import run

        request = replace(self.template, input=str(input_path), options=dict(options))
        try:
            with ticket:
                started = time.perf_counter()
                ok = False
                try:
                    result = run(request, self.registry, self.config, self.cache, log=log, loaded=self.loaded)
                    ok = True
                    return result
                finally:
                    seconds = time.perf_counter() - started
                    self._seconds = 0.8 * self._seconds + 0.2 * seconds
                    if self.metrics is not None:
                        self.metrics.observe_inference(self.name, seconds, ok)
        finally:
            ticket.release()

    def warm_up(self, folder, log=None) -> bool:
        """Load the model (fetching or converting it if needed) by running it once on its task's
        synthetic input, so the first request does not pay for it; False when the task has none."""
        task = self.registry.task_of(self.model)
        try:
            path = task.synthetic_input(self.model.spec, folder)
        except NotImplementedError:
            return False
        ticket = self.admit()
        self.predict(ticket, path, {}, log=log)
        return True
