"""A many-input run's progress on stderr: one line redrawn in place on a terminal (a bar, done/total,
failures, rate and ETA), a plain line every few seconds in logs. Never on stdout, which under
`--json` holds only JSON lines."""

from __future__ import annotations

import sys
import time

TERMINAL_EVERY = 0.2  # s between redraws of the terminal line
LOG_EVERY = 3.0  # s between lines in a log or a pipe
BAR_WIDTH = 20


class RunProgress:
    """Draws `summary` (a core.pipeline.Summary, filled in as records arrive) on `stream`.

    Call `update()` after each record, `clear()` before printing anything else to the terminal (the
    line is redrawn by the next `update()`), and `close()` at the end."""

    def __init__(self, summary, stream=None, clock=time.monotonic):
        self.summary = summary
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock = clock
        self.started = clock()
        self.first_at = None  # when the first record arrived: the rate leaves model loading out
        self.first_count = 0
        self.last_shown = self.started
        self.width = 0  # of the line drawn on the terminal; 0 when none is shown

    def update(self) -> None:
        now = self.clock()
        finished = self.summary.done + self.summary.failed
        if self.first_at is None and finished:
            self.first_at, self.first_count = now, finished
        total = self.summary.total - self.summary.skipped
        shown = self.width > 0 or not self.tty  # a cleared terminal line is drawn again at once
        if shown and now - self.last_shown < (TERMINAL_EVERY if self.tty else LOG_EVERY) and finished < total:
            return
        self.last_shown = now
        if self.tty:
            text = f"{_bar(finished, total)} {self.text(now)}"
            self.stream.write("\r" + text.ljust(self.width))
            self.width = len(text)
        elif finished < total:  # the summary line says the rest
            self.stream.write(f"progress: {self.text(now)}\n")
        self.stream.flush()

    def text(self, now: float) -> str:
        finished = self.summary.done + self.summary.failed
        total = self.summary.total - self.summary.skipped
        words = f"{finished}/{total} done, {self.summary.failed} failed"
        measured = finished - self.first_count
        if self.first_at is None or measured <= 0 or now <= self.first_at:
            return f"{words}, ETA ?"
        rate = measured / (now - self.first_at)
        return f"{words}, {rate:.2f} inputs/s, ETA {_duration((total - finished) / rate)}"

    def clear(self) -> None:
        """Blank the terminal line so other output starts on a clean line."""
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0

    def close(self) -> None:
        self.clear()


def _bar(finished: int, total: int) -> str:
    filled = BAR_WIDTH * finished // total if total else BAR_WIDTH
    return "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
