"""zoo serve: the zoo as a local HTTP service with a web page (FastAPI and uvicorn, the `serve` extra)."""

from __future__ import annotations

import click

from modelzoo.options import board_scheduling, model_source, scheduling_options
from modelzoo.output import notice
from modelzoo.session import pass_session


@click.command()
@click.argument("models", metavar="[MODEL]...", nargs=-1)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on; non-loopback needs --api-key."
)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option("--backend", help="auto, onnxruntime, hbm, or a plugin's backend (default auto, or zoo.yaml).")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), help="Host precision, as in `zoo run`.")
@model_source(
    "Serve this model file (.onnx, or .hbm on the board); one MODEL.",
    "Local checkpoint to convert instead of the official weights; one MODEL.",
)
@click.option(
    "--force", is_flag=True, help="Serve a --model ONNX that records another model's architecture (a warning)."
)
@click.option("--threads", type=click.IntRange(min=1), help="Inference threads (onnxruntime intra-op).")
@board_scheduling
@click.option(
    "--allow-paths", multiple=True, type=click.Path(file_okay=False),
    help='Folder whose files clients may name with {"path": ...} (repeatable; none by default).',
)  # fmt: skip
@click.option(
    "--api-key", envvar="ZOO_API_KEY", show_envvar=True,
    help="Key every request must present (Authorization: Bearer KEY or X-API-Key), except /healthz.",
)  # fmt: skip
@click.option("--insecure", is_flag=True, help="Listen on a non-loopback address without an API key.")
@click.option(
    "--max-body", type=click.FloatRange(min=0, min_open=True), default=100.0, show_default=True,
    help="Largest request body, in MB (413 beyond).",
)  # fmt: skip
@click.option(
    "--queue", type=click.IntRange(min=0), default=8, show_default=True,
    help="Requests that may wait for each model; beyond, 503 with Retry-After.",
)  # fmt: skip
@click.option(
    "--max-streams", type=click.IntRange(min=0), default=2, show_default=True,
    help="Live streams (POST /v1/streams) that may run at once; beyond, 503. 0: none.",
)  # fmt: skip
@pass_session
def serve(
    session, models, host, port, backend, precision, model_path, weights, force, threads, priority, bpu_cores, allow_paths,
    api_key, insecure, max_body, queue, max_streams,
):  # fmt: skip
    """Serve models over HTTP: JSON predictions (as `zoo run --json`), /metrics, and a web page at /.

    With MODEL names, those models are loaded now and only they are served; without, every model is,
    each loaded on its first request. It listens on 127.0.0.1 unless --host says otherwise.
    """
    from modelzoo.core.errors import ZooError
    from modelzoo.serve.access import check_listen, is_loopback

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401

        _import_multipart()
    except ImportError as exc:
        raise ZooError(
            f"zoo serve needs FastAPI, uvicorn and python-multipart ({exc}): pip install 'modelzoo[serve]'"
        ) from None
    check_listen(host, api_key, insecure)
    if insecure and not api_key and not is_loopback(host):
        notice(f"warning: serving on {host} without an API key (--insecure): anyone who can reach it can use it")

    from modelzoo.serve.app import create_app

    app = create_app(
        models, host=host, backend=backend, precision=precision, model_path=model_path, weights=weights,
        threads=threads, backend_options=scheduling_options(priority, bpu_cores), allow_paths=allow_paths,
        api_key=api_key, max_body=int(max_body * 2**20), queue=queue, max_streams=max_streams, force=force,
        config_path=session.config_path, log=notice,
    )  # fmt: skip
    served = ", ".join(models) or "every model, each loaded on first use"
    shown = f"[{host}]" if ":" in host else host
    notice(f"zoo serve: {served} on http://{shown}:{port}/ (API under /v1/models; Ctrl-C stops)")
    if max_streams and not _has_websockets():
        notice("warning: no WebSocket library (pip install websockets): stream events come as SSE only, not over /ws")
    _run_until_stopped(app, host, port)


class _Stopped(Exception):
    pass


def _run_until_stopped(app, host: str, port: int) -> None:
    """Serve until Ctrl-C or SIGTERM. uvicorn stops gracefully (in-flight requests finish) and then
    raises the signal again: that is how a server ends, not an error, so it ends the command quietly."""
    import signal
    import threading

    from modelzoo.core.errors import ZooError
    from modelzoo.serve.server import ZooServer

    def stop(_signum, _frame):
        raise _Stopped

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if main_thread and hasattr(signal, "SIGTERM") else None
    server = ZooServer(app, host, port, log_level="info")
    stopped = False
    try:
        server.run()
    except (_Stopped, KeyboardInterrupt):
        stopped = True
    except SystemExit:  # uvicorn's way to say it could not start: said below as one error line
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if not server.started and not stopped:
        raise ZooError(f"could not listen on {host} port {port} (the reason is above); choose another --port or --host")
    notice("zoo serve: stopped")


def _has_websockets() -> bool:
    import importlib.util

    return any(importlib.util.find_spec(name) for name in ("websockets", "wsproto"))


def _import_multipart() -> None:
    try:
        import python_multipart  # noqa: F401
    except ImportError:  # python-multipart before 0.0.13
        import multipart  # noqa: F401
