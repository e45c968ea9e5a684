"""Printing for the CLI: JSON for machines, aligned tables and notices for people."""

from __future__ import annotations

import json

import click

from modelzoo.core.tables import table  # noqa: F401 (re-exported for the commands)


def emit_json(data) -> None:
    """JSON on stdout; a NaN or infinity (a model whose outputs overflow) is written as null, which every
    JSON reader accepts, instead of Python's non-standard NaN."""
    try:
        text = json.dumps(data, indent=2, default=str, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(data), indent=2, default=str, allow_nan=False)
    click.echo(text)


def _finite(value):
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def progress(length: int, label: str):
    """A progress bar on stderr when a person watches it; in a log or a pipe a `progress: LABEL n/total`
    line every few seconds, as `zoo run` writes (long work is never silent)."""
    import sys

    if sys.stderr.isatty():
        return click.progressbar(length=length, label=label, file=sys.stderr, show_pos=True)
    return _LogLines(label, length)


class _LogLines:
    """`progress` in a log: a line per `modelzoo.progress.LOG_EVERY` seconds, none once done."""

    def __init__(self, label: str, total: int):
        import time

        self.label, self.total, self.done = label, total, 0
        self.clock = time.monotonic
        self.last = self.clock()

    def __enter__(self):
        return self

    def __exit__(self, *_exc) -> None:
        pass

    def update(self, steps: int) -> None:
        from modelzoo.progress import LOG_EVERY

        self.done += steps
        now = self.clock()
        if self.done < self.total and now - self.last >= LOG_EVERY:
            self.last = now
            notice(f"progress: {self.label} {self.done}/{self.total}")


def notice(message: str) -> None:
    """Progress and warnings go to stderr so that --json output stays parseable."""
    click.echo(message, err=True)
