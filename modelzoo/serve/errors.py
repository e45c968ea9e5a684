"""What a request can be refused for, each with its HTTP status; the message is the CLI's kind of one line."""

from __future__ import annotations

from modelzoo.core.errors import ZooError


class RequestError(ZooError):
    """A request the server cannot take as sent (no file, a malformed form or JSON body)."""

    status = 400


class PathRefused(RequestError):
    """A server-side path outside the --allow-paths folders, or any path when there are none."""

    status = 403


class BodyTooLarge(RequestError):
    """The request body is over --max-body."""

    status = 413


class UploadStalled(RequestError):
    """The body stopped arriving, or took too long: its place in the queue goes to others."""

    status = 408


class ServerStopping(RequestError):
    """The server began to stop while the request's body was still arriving."""

    status = 503


class UploadNotStored(RequestError):
    """The server could not write the upload (a full disk, ...): the server's side, not the client's."""

    status = 507


class UnsupportedBody(RequestError):
    """Neither multipart/form-data nor JSON."""

    status = 415


class QueueFull(RequestError):
    """The model's queue is full; the client should retry after `retry_after` seconds."""

    status = 503

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class UnknownStream(RequestError):
    """No stream has this id (never started, or deleted)."""

    status = 404


class TooManyStreams(RequestError):
    """--max-streams streams already run."""

    status = 503


class TooManyViewers(RequestError):
    """A stream already has as many clients reading it as it serves."""

    status = 503
