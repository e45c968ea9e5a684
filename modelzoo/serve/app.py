"""The FastAPI app of `zoo serve`: the model listing, predictions (`zoo run --json` for an uploaded or
allowed file), live streams (`stream_routes`), health, metrics and the web page. Build it with `create_app(...)`."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from modelzoo import listing
from modelzoo.core.errors import ConfigError, InputError, UnknownModelError, ZooError
from modelzoo.serve import access
from modelzoo.serve.errors import QueueFull, RequestError
from modelzoo.serve.live import LiveStreams
from modelzoo.serve.metrics import Metrics
from modelzoo.serve.options import typed_options
from modelzoo.serve.responses import error_response, json_response
from modelzoo.serve.served import ServedModel
from modelzoo.serve.stream_routes import add_stream_routes, deny
from modelzoo.serve.uploads import UPLOADS_FOLDER, read_input, spool_folder, too_large

__all__ = ["create_app", "typed_options", "status_of"]
STOP_STREAMS_S = 10.0  # at shutdown, how long the stream threads get to end
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", None})  # None: a WebSocket handshake, checked above
# /metrics labels: any other method a client makes up counts as "other", or each new one would add series
COUNTED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "WEBSOCKET"})

# The page loads nothing from elsewhere (the board may be offline); its script and style are inline.
PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self' blob: data:; media-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def create_app(
    models=(),
    *,
    host: str = "127.0.0.1",
    backend: str | None = None,
    precision: str | None = None,
    model_path: str | None = None,
    weights: str | None = None,
    threads: int | None = None,
    backend_options: dict | None = None,
    allow_paths=(),
    api_key: str | None = None,
    max_body: int = 100 * 2**20,
    queue: int = 8,
    max_streams: int = 2,
    force: bool = False,
    config_path: str | None = None,
    warm_up: bool = True,
    log=None,
) -> FastAPI:
    """The app serving `models` (every registered model when empty, each loaded on first use).

    Named models are loaded now (by one run on their task's synthetic input) unless `warm_up` is
    False, so a bad model file or missing weights fail here rather than on the first request.
    `host` is where it will listen: a loopback server answers only requests addressed to a
    loopback name. `max_body` is in bytes; `queue` is how many requests may wait for each model;
    `max_streams` how many streams may run at once.
    """
    service = Service(
        models, host=host, backend=backend, precision=precision, model_path=model_path, weights=weights,
        threads=threads, backend_options=backend_options or {}, allow_paths=allow_paths, api_key=api_key,
        max_body=max_body, queue=queue, max_streams=max_streams, force=force, config_path=config_path, log=log,
    )  # fmt: skip
    if warm_up:
        service.warm_up(log)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        service.stop()  # the server stops: so do its streams and the uploads still arriving
        await anyio.to_thread.run_sync(service.live.join, STOP_STREAMS_S)

    app = FastAPI(title="zoo serve", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.zoo = service
    _add_routes(app, service)
    app.add_exception_handler(ZooError, _zoo_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(_Guard, service=service, routes=app.router.routes)
    return app


class Service:
    """What the app serves: the registry, config and cache, the served models, the limits and the metrics."""

    def __init__(
        self, models, *, host, backend, precision, model_path, weights, threads, backend_options, allow_paths,
        api_key, max_body, queue, max_streams=2, force=False, config_path=None, log=None,
    ):  # fmt: skip
        from modelzoo.core.runner import RunRequest
        from modelzoo.session import Session

        session = Session(config_path)
        self.registry, self.config, self.cache = session.registry, session.config, session.cache
        self.names = tuple(dict.fromkeys(models))
        for name in self.names:
            self.registry.get_model(name)  # an unknown name fails now
        if (model_path or weights) and len(self.names) != 1:
            flag = "--model FILE" if model_path else "--weights FILE"
            raise InputError(f"{flag} is for one model: name it, e.g. zoo serve MODEL {flag}")
        if api_key is not None and not api_key.strip():
            raise InputError("the API key is empty; pass a non-empty --api-key (or $ZOO_API_KEY)")
        if queue < 0 or max_body <= 0 or max_streams < 0:
            raise InputError("--queue and --max-streams must be 0 or more, and --max-body more than 0")
        self.allow_paths = tuple(_allowed_folder(folder) for folder in allow_paths)
        self.host = host
        self.loopback = access.is_loopback(host)
        self.api_key = api_key
        self.max_body = int(max_body)
        self.queue = queue
        self.template = RunRequest(
            model="", input="", model_path=model_path, weights=weights, backend=backend, threads=threads,
            backend_options=dict(backend_options), precision=precision, force=force,
        )  # fmt: skip
        self.uploads = Path(self.cache.root) / UPLOADS_FOLDER
        self.metrics = Metrics()
        self.live = LiveStreams(max_streams, self.metrics, log)
        self._served: dict = {}
        self._lock = threading.Lock()
        self._page: str | None = None
        self.stopping = threading.Event()

    def stop(self) -> None:
        """The server begins to stop: uploads still arriving end (503), and so do the streams and their clients."""
        self.stopping.set()
        self.live.close()

    def models(self) -> list:
        """The served Model objects: the named ones, else every registered model."""
        if self.names:
            return [self.registry.get_model(name) for name in self.names]
        return sorted(self.registry.models.values(), key=lambda m: m.name)

    def model(self, name: str):
        if self.names and name not in self.names:
            raise UnknownModelError(f"{name} is not served here; this server runs {', '.join(self.names)}")
        return self.registry.get_model(name)

    def served(self, name: str) -> ServedModel:
        """The ServedModel for `name`, made on first use (the loaded backend is then kept)."""
        with self._lock:
            if name not in self._served:
                model = self.model(name)
                self._served[name] = ServedModel(
                    model, self.registry, self.config, self.cache, replace(self.template, model=name),
                    self.queue, self.metrics,
                )  # fmt: skip
            return self._served[name]

    def queues(self) -> dict:
        with self._lock:
            return {name: served.queue for name, served in self._served.items()}

    def warm_up(self, log=None) -> None:
        for name in self.names:
            with spool_folder(self.uploads) as folder:
                loaded = self.served(name).warm_up(folder, log=log)
            if loaded and log:
                log(f"{name}: loaded")

    def page(self) -> str:
        if self._page is None:
            self._page = resources.files("modelzoo.serve").joinpath("page.html").read_text(encoding="utf-8")
        return self._page

    def refusal(self, scope) -> Response | None:
        """The answer to a request refused before it reaches a route: 403, 401 or 413; else None."""
        headers = dict(scope.get("headers") or [])
        if self.loopback and not access.host_header_allowed(headers):
            return error_response(403, "this server listens on a loopback address and answers only requests to it")
        if scope["type"] == "websocket" and not access.same_origin(headers):
            # browsers let any page open a WebSocket anywhere: only this server's own page may
            return error_response(
                403, "a WebSocket from another site's page is refused; open it from this server's page"
            )
        if scope.get("method") not in SAFE_METHODS and not access.same_origin(headers):
            # a form on any site can POST here (no preflight), with the browser's saved credentials
            return error_response(403, "a request from another site's page is refused; use this server's page")
        if (
            self.api_key
            and scope.get("path") not in access.OPEN_PATHS
            and not access.key_matches(headers, self.api_key)
        ):
            return error_response(
                401,
                "a valid API key is required: send `Authorization: Bearer KEY` or `X-API-Key: KEY`",
                {"WWW-Authenticate": 'Basic realm="zoo serve", charset="UTF-8"'},
            )
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body:
            exc = too_large(self.max_body)
            return error_response(exc.status, str(exc))
        return None


def _allowed_folder(folder) -> Path:
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise InputError(f"--allow-paths {folder} is not a folder; name an existing folder")
    return path.resolve()


def _add_routes(app: FastAPI, service: Service) -> None:
    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def page():
        return HTMLResponse(service.page(), headers={"Content-Security-Policy": PAGE_POLICY})

    @app.api_route("/healthz", methods=["GET", "HEAD"])  # HEAD: what many probes send
    async def healthz():
        return {"status": "ok"}

    @app.get("/metrics")
    def metrics():
        return PlainTextResponse(
            service.metrics.render(service.queues(), service.live.gauges()),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    # exactly `zoo list --json`'s rows and `zoo info --json`: built by the same functions
    @app.get("/v1/models")
    def list_models():
        return json_response([listing.list_row(service.registry, service.cache, m) for m in service.models()])

    @app.get("/v1/models/{name}")
    def model_info(name: str):
        return json_response(listing.info_data(service.registry, service.cache, service.config, service.model(name)))

    @app.post("/v1/models/{name}/predict")
    async def predict(name: str, request: Request):
        served = service.served(name)
        ticket = served.admit()  # before the body is read: a full queue costs no upload
        try:
            with spool_folder(service.uploads) as folder:
                try:
                    given = await read_input(request, folder, service.max_body, service.allow_paths, service.stopping)
                except ClientDisconnect:
                    raise RequestError("the client disconnected before its upload was complete") from None
                task = service.registry.task_of(served.model)
                options = typed_options(task, {**request.query_params, **given.options})
                try:
                    # Admission bounds these threads (queue + 1 per model); a limiter of their own keeps
                    # requests waiting for a busy model from taking the threads other endpoints use.
                    result = await anyio.to_thread.run_sync(
                        served.predict, ticket, given.path, options, limiter=anyio.CapacityLimiter(1)
                    )
                except ZooError as exc:
                    exc.args = (_without(str(exc), folder),)
                    raise
                data = result.to_dict()
                data["input"] = given.display
                data["warnings"] = [_without(w, folder) for w in data.get("warnings", [])]
        finally:
            ticket.release()
        return json_response(data)

    add_stream_routes(app, service)


def _without(message: str, folder: Path) -> str:
    """A message about a spooled upload, naming the file as the client sent it."""
    return message.replace(str(folder) + os.sep, "")


def status_of(exc: ZooError) -> int:
    """The HTTP status for a ZooError: the request's own, else 404 / 422 for what the client sent, else 500."""
    if isinstance(exc, RequestError):
        return exc.status
    if isinstance(exc, UnknownModelError):
        return 404
    if isinstance(exc, (InputError, ConfigError)):
        return 422
    return 500  # the server's side: a backend, a download, a plugin


async def _zoo_error(_request, exc: ZooError) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, QueueFull) else None
    return error_response(status_of(exc), str(exc), headers)


async def _http_error(_request, exc: HTTPException) -> Response:
    return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))


async def _unexpected_error(_request, exc: Exception) -> Response:
    # a bug: the client gets one line; the server logs the traceback (Starlette re-raises it to uvicorn)
    return error_response(500, f"unexpected {type(exc).__name__}: {exc} (the traceback is in the server's log)")


class _Guard:
    """The app's first layer: refuses what the Service refuses (WebSocket handshakes too), adds nosniff,
    and counts every request."""

    def __init__(self, app, service: Service, routes):
        self.app = app
        self.service = service
        self.routes = routes

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def answered(message):
            nonlocal status
            kind = message["type"].removeprefix("websocket.")
            if kind == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-content-type-options", b"nosniff")]
            elif kind == "accept":
                status = 101
            elif kind == "close" and status == 500:
                status = 403  # closed before the handshake completed: uvicorn answers 403
            await send(message)

        try:
            refusal = self.service.refusal(scope)
            if refusal is None:
                await self.app(scope, receive, answered)
            elif scope["type"] == "http":
                await refusal(scope, receive, answered)
            else:
                await _deny_socket(scope, receive, answered, refusal)
        finally:
            route = next((r.path for r in self.routes if r.matches(scope)[0] == Match.FULL), "unmatched")
            method = scope.get("method", "WEBSOCKET")
            method = method if method in COUNTED_METHODS else "other"
            self.service.metrics.observe_request(method, route, status, time.perf_counter() - started)


async def _deny_socket(scope, receive, send, refusal: Response) -> None:
    """A refused WebSocket handshake: the HTTP refusal where the server can send one, else a close (403)."""
    from starlette.websockets import WebSocket

    await deny(WebSocket(scope, receive, send), refusal.status_code, json.loads(refusal.body)["error"])
