"""A prediction request's input: an upload spooled to a private folder inside the cache (removed after the
request), or a path on the server that must lie in an --allow-paths folder. Bodies are counted as they
arrive and refused past the limit; nothing is held in memory but small form fields."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from starlette.requests import ClientDisconnect

from modelzoo.serve.errors import (
    BodyTooLarge,
    PathRefused,
    RequestError,
    ServerStopping,
    UnsupportedBody,
    UploadNotStored,
    UploadStalled,
)

FIELDS_LIMIT = 64 * 1024  # bytes of non-file form fields, and of a JSON body
MAX_PARTS = 64  # parts of a multipart form: the file and a few options
# A request holds its place in the model's queue while its body arrives: a client that stops sending
# (or trickles) must not keep it, or a few such clients make the server answer everyone else 503.
UPLOAD_IDLE_S = 30.0  # no body bytes for this long: 408
UPLOAD_MAX_S = 600.0  # the whole body within this (100 MB at 1.4 Mbit/s): 408
STOPPING_POLL_S = 0.25  # how often a request whose body is arriving checks the limits above and shutdown
UPLOADS_FOLDER = "serve-uploads"  # inside the cache root
NPY_MAGIC = b"\x93NUMPY"
NAME_BYTES = 100  # an upload's file name before its suffix, in UTF-8 bytes


@dataclass
class RequestInput:
    """What a prediction request names: the file to run, what to call it in the result, and options."""

    path: Path
    display: str  # the result's `input`: the upload's file name, or the path as the client gave it
    options: dict = field(default_factory=dict)


@contextlib.contextmanager
def spool_folder(root: Path):
    """A fresh private folder under `root` for one request's upload, removed with all it holds."""
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="request-", dir=root))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def safe_filename(name: str) -> str:
    """The upload's own file name, without any folder part or characters a file name should not hold."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C" and c not in '<>:"|?*').strip()
    if base.startswith("."):
        base = "upload" + base
    stem, dot, suffix = base.rpartition(".")
    if not dot or len(suffix) > 10:
        stem, suffix = base, ""
    # file systems count bytes (255 on most): 100 characters of CJK would be 300
    stem = _cut_utf8(stem, NAME_BYTES) or "upload"
    return stem + "." + suffix if dot and suffix else stem


def _cut_utf8(text: str, size: int) -> str:
    return text.encode("utf-8")[:size].decode("utf-8", "ignore")


def too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(
        f"the request body is larger than this server takes ({limit / 2**20:g} MB, zoo serve --max-body)"
    )


async def read_input(request, folder: Path, limit: int, allowed: tuple, stopping=None) -> RequestInput:
    """The request's input and form/JSON options; uploads are written into `folder`. The body ends early
    when the server begins to stop (`stopping`)."""
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        return await _read_multipart(request, content_type, folder, limit, stopping)
    if kind == "application/json":
        return await _read_json(request, min(limit, FIELDS_LIMIT), allowed, stopping)
    raise UnsupportedBody(
        "post the input as multipart/form-data with the file in field `file` "
        '(curl -F file=@INPUT), or as JSON {"path": ...} for a file in an --allow-paths folder'
    )


async def _chunks(request, limit: int, stopping=None):
    """The body's chunks as they arrive, refused past `limit` (413), when they stall (408), or when the
    server begins to stop (`stopping`, a threading.Event: 503)."""
    received = 0
    started = last = anyio.current_time()
    more = True
    while more:
        # receive() is waited for in short slices: cancelling the wait loses nothing (the data stays queued)
        message = None
        with anyio.move_on_after(STOPPING_POLL_S):
            message = await request.receive()
        if message is not None:
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk, more = message.get("body", b""), message.get("more_body", False)
            last = anyio.current_time()
            received += len(chunk)
            if received > limit:
                raise too_large(limit)
            if chunk:
                yield chunk  # outside the cancel scope: the caller's work between chunks is never cancelled
            continue
        if stopping is not None and stopping.is_set():
            raise ServerStopping("the server is stopping; send the request again once it is back")
        now = anyio.current_time()
        if now - started > UPLOAD_MAX_S:
            raise UploadStalled(f"the request body took longer than {UPLOAD_MAX_S:g} s to arrive")
        if now - last > UPLOAD_IDLE_S:
            raise UploadStalled(f"the request body stopped arriving (nothing for {UPLOAD_IDLE_S:g} s)")


async def read_json(request, limit: int = FIELDS_LIMIT, stopping=None):
    """The request's JSON body, read up to `limit` bytes (413 beyond)."""
    body = bytearray()
    async for chunk in _chunks(request, limit, stopping):
        body.extend(chunk)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"the JSON body is not valid JSON ({exc})") from None


async def _read_json(request, limit: int, allowed: tuple, stopping) -> RequestInput:
    data = await read_json(request, limit, stopping)
    if not isinstance(data, dict) or not isinstance(data.get("path"), str):
        raise RequestError('the JSON body must be an object with "path": a file in an --allow-paths folder')
    options = {k: v for k, v in data.items() if k != "path"}
    return RequestInput(resolve_allowed(data["path"], allowed), data["path"], options)


def resolve_allowed(text: str, allowed: tuple) -> Path:
    """`text` as a real path inside one of the `allowed` (resolved) folders; relative paths are taken
    from each folder in turn. `..`, absolute paths elsewhere and symlinks out of a folder are refused."""
    if not allowed:
        raise PathRefused(
            "this server reads no paths: upload the file as multipart field `file`, "
            "or start zoo serve with --allow-paths DIR"
        )
    if not text or "\x00" in text:
        raise RequestError('"path" is empty or not a file name')
    given = Path(text)
    candidates = [given] if given.is_absolute() else [folder / given for folder in allowed]
    inside = []
    for candidate in candidates:
        try:
            resolved = candidate.resolve()  # follows every symlink, removes `..`
        except (OSError, RuntimeError):  # a symlink loop
            continue
        if any(resolved == folder or folder in resolved.parents for folder in allowed):
            inside.append(resolved)
    if not inside:
        raise PathRefused(
            f"{text} is outside the folders this server may read ({', '.join(map(str, allowed))}, zoo serve --allow-paths)"
        )
    return next((path for path in inside if path.exists()), inside[0])


async def _read_multipart(request, content_type: str, folder: Path, limit: int, stopping) -> RequestInput:
    try:
        from python_multipart.multipart import MultipartParser, parse_options_header
    except ImportError:  # python-multipart before 0.0.13
        from multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise RequestError("the multipart/form-data body has no boundary; let the HTTP client build the form")
    form = _FormSpool(folder, parse_options_header)
    try:
        parser = MultipartParser(boundary, form.callbacks())
        async for chunk in _chunks(request, limit, stopping):
            parser.write(chunk)
        parser.finalize()
    except (RequestError, ClientDisconnect):
        raise
    except OSError as exc:  # writing the upload: no folder named, the client needs none
        raise UploadNotStored(f"the server could not store the upload ({exc.strerror or exc})") from None
    except Exception as exc:  # the parser's own errors: a malformed body
        raise RequestError(f"the multipart/form-data body is malformed ({exc})") from None
    finally:
        form.close()
    if form.upload is None:
        raise RequestError("no file: post the input as multipart field `file` (curl -F file=@INPUT)")
    return RequestInput(form.finish_upload(), form.filename, form.fields)


class _FormSpool:
    """python-multipart callbacks: the `file` part streams to disk, other fields are kept (bounded)."""

    def __init__(self, folder: Path, parse_options_header):
        self.folder = folder
        self.parse_options_header = parse_options_header
        self.fields: dict = {}
        self.upload: Path | None = None
        self.filename = ""
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._field: str | None = None
        self._data = bytearray()
        self._handle = None
        self._field_bytes = 0
        self._parts = 0
        self._head = b""

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": lambda data, start, end: self._add_header(name=data[start:end]),
            "on_header_value": lambda data, start, end: self._add_header(value=data[start:end]),
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def _add_header(self, name=b"", value=b"") -> None:
        self._header_name += name
        self._header_value += value
        if len(self._header_name) + len(self._header_value) > FIELDS_LIMIT:
            raise RequestError("a multipart header is too long")

    def on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise RequestError(f"the form has more than {MAX_PARTS} parts; send the file and its options only")
        self._disposition = b""
        self._field = None
        self._data = bytearray()

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, params = self.parse_options_header(self._disposition)
        name = params.get(b"name")
        if name is None:
            raise RequestError("a multipart part has no name; post the input as field `file`")
        self._field = name.decode("utf-8", "replace")
        if b"filename" not in params:
            return
        if self._field != "file":
            raise RequestError(f"unexpected file field {self._field!r}; post the input as field `file`")
        if self.upload is not None:
            raise RequestError("post one file per request, as field `file`")
        self.filename = safe_filename(params[b"filename"].decode("utf-8", "replace"))
        self.upload = self.folder / self.filename
        self._handle = open(self.upload, "xb")  # closed in on_part_end, or by close()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._handle is not None:
            if len(self._head) < len(NPY_MAGIC):
                self._head += chunk[: len(NPY_MAGIC) - len(self._head)]
            self._handle.write(chunk)
            return
        self._field_bytes += len(chunk)
        if self._field_bytes > FIELDS_LIMIT:
            raise RequestError(f"the form's fields are over {FIELDS_LIMIT // 1024} KB; only the file may be large")
        self._data.extend(chunk)

    def on_part_end(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        elif self._field is not None:
            self.fields[self._field] = self._data.decode("utf-8", "replace")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def finish_upload(self) -> Path:
        """The uploaded file; a .npy sent under another name keeps the suffix zoo recognises it by."""
        if self._head == NPY_MAGIC and self.upload.suffix.lower() != ".npy":
            renamed = self.upload.with_name(self.upload.name + ".npy")
            os.replace(self.upload, renamed)
            self.upload = renamed
        return self.upload
