"""Printing for the CLI: JSON for machines, aligned tables and notices for people."""

from __future__ import annotations

import json

import click


def emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def table(headers: list, rows: list) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def progress(length: int, label: str):
    """A progress bar on stderr when a person watches it; silent in pipes and logs."""
    import contextlib
    import sys

    if sys.stderr.isatty():
        return click.progressbar(length=length, label=label, file=sys.stderr, show_pos=True)

    class _Silent:
        def update(self, _steps: int) -> None:
            pass

    return contextlib.nullcontext(_Silent())


def notice(message: str) -> None:
    """Progress and warnings go to stderr so that --json output stays parseable."""
    click.echo(message, err=True)
