"""JSON answers: `zoo run --json`'s encoding, and errors as one line under "error"."""

from __future__ import annotations

import json

from starlette.responses import Response


def json_response(data, status: int = 200, headers: dict | None = None) -> Response:
    # `zoo run --json`'s encoding, so results read the same from the CLI and the service
    return Response(json.dumps(data, default=str), status_code=status, headers=headers, media_type="application/json")


def error_response(status: int, message: str, headers: dict | None = None) -> Response:
    return json_response({"error": " ".join(message.split())}, status, headers)
