"""The stream endpoints: `POST /v1/streams` starts one, `GET` lists them, `DELETE` stops one; a stream's
window records come as Server-Sent Events or over a WebSocket (each the record `zoo run --json` prints
for that window, then an `end` event with the summary), and its frames, annotated, as MJPEG."""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import replace

import anyio
from fastapi import FastAPI, Request, WebSocket
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocketDisconnect

from modelzoo.core.errors import InputError, ZooError
from modelzoo.core.streams import DEFAULT_RECONNECT, NETWORK_SCHEMES, StreamOptions, stream_kind
from modelzoo.serve.errors import RequestError, TooManyViewers, UnsupportedBody
from modelzoo.serve.live import shown_input
from modelzoo.serve.options import typed_options
from modelzoo.serve.responses import error_response, json_response
from modelzoo.serve.uploads import read_json, resolve_allowed

MAX_RECONNECT = 10
START_WAIT_S = 30.0  # POST waits this long for the stream to open and the model to load
KEEPALIVE_S = 15.0  # an SSE comment this often, so proxies keep the connection and a gone client is noticed
NOT_CACHED = {"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"}
BOUNDARY = "frame"


def add_stream_routes(app: FastAPI, service) -> None:
    @app.post("/v1/streams")
    async def start_stream(request: Request):
        if request.headers.get("content-type", "").split(";", 1)[0].strip().lower() != "application/json":
            raise UnsupportedBody(
                'post a JSON object: {"model": NAME, "input": URL or camera} (or "path": a video in an --allow-paths folder)'
            )
        served, run_request, options, shown, settings = stream_request(
            service, await read_json(request, stopping=service.stopping)
        )
        context = (service.registry, service.config, service.cache)
        stream = service.live.start(served, run_request, options, shown, settings, context)
        await anyio.to_thread.run_sync(stream.settled.wait, START_WAIT_S, limiter=anyio.CapacityLimiter(1))
        if stream.summary is None and stream.exception is not None:  # it could not start: the client is told why
            service.live.discard(stream)
            exc = stream.exception
            if isinstance(exc, ZooError):
                exc.args = (stream.error,)
                raise exc
            raise RuntimeError(stream.error)
        return json_response(stream.info(), 201, {"Location": f"/v1/streams/{stream.id}"})

    @app.get("/v1/streams")
    def list_streams():
        return json_response([stream.info() for stream in service.live.all()])

    @app.get("/v1/streams/{stream_id}")
    def stream_info(stream_id: str):
        return json_response(service.live.get(stream_id).info())

    @app.delete("/v1/streams/{stream_id}")
    async def stop_stream(stream_id: str):
        stream = service.live.remove(stream_id)
        await anyio.to_thread.run_sync(stream.thread.join, START_WAIT_S, limiter=anyio.CapacityLimiter(1))
        info = stream.info()
        if stream.thread.is_alive():
            info["status"] = "stopping"
        return json_response(info)

    @app.get("/v1/streams/{stream_id}/events")
    async def stream_events(stream_id: str, request: Request):
        stream = service.live.get(stream_id)
        after = _event_id(request.headers.get("last-event-id"))
        if stream.events.closed and not stream.events.has_after(after):
            return Response(status_code=204)  # ended and all read: tells EventSource not to reconnect
        stream.events.check_room()
        loop = asyncio.get_running_loop()

        async def body():
            try:
                subscriber = stream.events.subscribe(loop, after)
            except TooManyViewers as exc:  # others came in since check_room
                yield f"event: error\ndata: {json.dumps({'error': str(exc)})}\n\n".encode()
                return
            try:
                yield b"retry: 3000\n\n"
                async for seq, kind, data in subscriber.events(idle=KEEPALIVE_S):
                    if kind is None:
                        yield b": keep-alive\n\n"
                    else:
                        yield f"id: {seq}\nevent: {kind}\ndata: {json.dumps(data, default=str)}\n\n".encode()
            finally:
                subscriber.cancel()

        return StreamingResponse(body(), media_type="text/event-stream", headers=NOT_CACHED)

    @app.websocket("/v1/streams/{stream_id}/ws")
    async def stream_socket(websocket: WebSocket, stream_id: str):
        try:
            stream = service.live.get(stream_id)
            subscriber = stream.events.subscribe(asyncio.get_running_loop())
        except RequestError as exc:
            await deny(websocket, exc.status, str(exc))
            return
        try:
            await websocket.accept()
            async with anyio.create_task_group() as group:
                group.start_soon(_until_closed, websocket, group.cancel_scope)
                async for seq, kind, data in subscriber.events():
                    await websocket.send_text(json.dumps({"id": seq, "event": kind, "data": data}, default=str))
                await websocket.close(1000)
                group.cancel_scope.cancel()
        except (WebSocketDisconnect, anyio.ClosedResourceError, RuntimeError):
            pass  # the client went away (RuntimeError: Starlette's word for sending on a closed socket)
        finally:
            subscriber.cancel()

    @app.get("/v1/streams/{stream_id}/video")
    async def stream_video(stream_id: str):
        stream = service.live.get(stream_id)
        stream.video.check_room()
        loop = asyncio.get_running_loop()

        async def body():
            try:
                subscriber = stream.video.subscribe(loop)
            except TooManyViewers:  # others came in since check_room: an empty answer
                return
            try:
                async for _seq, _kind, jpeg in subscriber.events():
                    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    yield head.encode() + jpeg + b"\r\n"
            finally:
                subscriber.cancel()

        return StreamingResponse(
            body(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}", headers=NOT_CACHED
        )


async def deny(websocket: WebSocket, status: int, message: str) -> None:
    """Refuse a WebSocket handshake with an HTTP answer (the one-line JSON error) where the server can."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(status, message))
    else:
        await websocket.close(code=1008, reason=message[:120])


async def _until_closed(websocket: WebSocket, scope) -> None:
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass  # what the client sends is not read
    scope.cancel()


def _event_id(text: str | None) -> int | None:
    return int(text) if text and text.strip().isdigit() and len(text) < 20 else None


def stream_request(service, data) -> tuple:
    """(served model, RunRequest, StreamOptions, the input as shown, the settings as listed) from the JSON body."""
    example = '{"model": "NAME", "input": "rtsp://camera/live"}'
    if not isinstance(data, dict):
        raise RequestError(f"the JSON body must be an object, e.g. {example}")
    data = dict(data)
    name = data.pop("model", None)
    if not isinstance(name, str) or not name:
        raise RequestError(f'"model" names the model to run, e.g. {example}')
    served = service.served(name)
    given, path = data.pop("input", None), data.pop("path", None)
    if (given is None) == (path is None):
        raise RequestError(
            'give one of "input" (a URL or a camera: rtsp://..., http://..., 0, /dev/video0) and "path" (a video in '
            "an --allow-paths folder, played as a stream)"
        )
    if given is not None:
        text = str(given) if isinstance(given, int) and not isinstance(given, bool) else given
        if not isinstance(text, str) or stream_kind(text) not in ("network", "camera"):
            raise InputError(
                f"{given!r} is not a stream this server can open: give a URL ({', '.join(NETWORK_SCHEMES)}), a "
                'camera index or /dev/videoN; a video file in an --allow-paths folder is played with "path"'
            )
        target, shown = text, shown_input(text)
    else:
        if not isinstance(path, str):
            raise RequestError('"path" must be a string: a video in an --allow-paths folder')
        target, shown = str(resolve_allowed(path, service.allow_paths)), path
    stride = _number(data.pop("stride", None), "stride", int, 1, 10_000)
    fps = _number(data.pop("fps", None), "fps", float, 0.001, 1000.0)
    reconnect = _number(data.pop("reconnect", None), "reconnect", int, 0, MAX_RECONNECT)
    options = typed_options(service.registry.task_of(served.model), data)
    request = replace(service.template, model=name, input=target, options=options)
    stream_options = StreamOptions(
        stride=stride, fps=fps, reconnect=DEFAULT_RECONNECT if reconnect is None else reconnect,
        stream_flag=path is not None,
    )  # fmt: skip
    given_settings = {"stride": stride, "fps": fps, "reconnect": reconnect, **options}
    settings = {key: value for key, value in given_settings.items() if value is not None}
    return served, request, stream_options, shown, settings


def _number(value, name: str, kind: type, low: float, high: float):
    """A stream setting from JSON (a number, or its text), checked to lie in [low, high]; None when not given."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = None
    if isinstance(value, str):
        try:
            number = kind(value.strip())
        except ValueError:
            pass
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if kind is float or float(value).is_integer():
            number = kind(value)
    if number is not None and math.isfinite(number) and low <= number <= high:
        return number
    what = "an integer" if kind is int else "a number"
    raise InputError(f"{name}={value!r} must be {what} from {low:g} to {high:g}")
