"""Printing for the CLI: JSON for machines, aligned tables and notices for people."""

from __future__ import annotations

import json

import click

from modelzoo.core.tables import table  # noqa: F401 (re-exported for the commands)


def emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


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
