"""Where the core's notices go when its caller gave no `log`: standard error, a line each (standard
output is the result's, and under --json holds only JSON)."""

from __future__ import annotations

import sys


def stderr_line(message: str) -> None:
    print(message, file=sys.stderr)
