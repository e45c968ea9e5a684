"""`zoo run --engine ray`: the many-input run of `core/pipeline.py`, on Ray Data.

Reading and preprocessing are Ray Data tasks, one input per block, so they spread over the
cluster's CPUs; inference runs in a pool of actors that each load the model once and take one
input per call; the driver gets one small row per input back, in input order, and turns it into
exactly the record the local engine writes, through the same `on_record(record, run_result_or_None)`.
A bad input travels as data (its error), so it is one record and the run goes on.

What every node needs: modelzoo and the plugins in use installed, and the inputs at the same
paths (shared storage). The model file goes through Ray's object store to any node that does not
hold the same file at the driver's path.

Ray is optional (`pip install 'modelzoo[ray]'`): nothing here imports it before `run_inputs` runs.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import pickle
import signal
import socket
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from modelzoo.core.errors import InputError, ZooError

INSTALL_HINT = "pip install 'modelzoo[ray]'"
# Ray 2.x turns a loopback address into the machine's outward one unless this is "0" (its switch
# for clusters on one machine): a Ray zoo starts itself, or a head on 127.0.0.1, stays on loopback.
LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
FORWARDED_ENV = ("ZOO_PLUGINS",)  # the workers load the same plugins as the driver
ADDRESS_HINT = (
    "pass the head's HOST:PORT as --ray-address (what `ray start --head` printed), or leave it out to start Ray here"
)
MIN_OBJECT_STORE_BUDGET = 256 * 1024 * 1024  # bytes of preprocessed inputs the run may hold in Ray at once


def run_inputs(
    request, inputs: list, registry, config, cache, *, on_record, log=None, address: str | None = None,
    skip=None, summary=None, workers: int = 1,
):  # fmt: skip
    """`core.pipeline.run_inputs` on Ray: the same arguments and records, plus `address`, a running
    cluster's `host:port` (None: start Ray on this machine, on loopback, for this run).

    `workers` is the local engine's; Ray sizes its tasks and actor pool by the cluster's CPUs.
    """
    from modelzoo.core.pipeline import Summary, record_outcome, runnable_plan

    if request.save:
        raise InputError("--save writes one annotated file on this machine: leave out --engine ray")
    ray = _import_ray(address)  # first: without Ray, this is the one error
    _check_reachable(address)  # a wrong address is a user error before any work (Ray itself retries for minutes)
    summary = summary or Summary()
    # The run itself is checked and its model file made on the driver, once, as the local engine does.
    runnable = runnable_plan(
        request, inputs, registry, config, cache, skip=skip, summary=summary, on_record=on_record, log=log
    )
    if runnable is None:  # nothing to run, or no input opens: records only; no download, conversion or Ray
        return summary
    plan, todo = runnable

    with _SigtermUnwinds() as sigterm:
        started_ray = _connect(ray, address)
        sigterm.take()  # ray.init installed its own handler (exit 15, a native stack dump)
        rows = _run_on_ray(
            ray, request, plan.model, plan.options, plan.backend_cls, Path(plan.model_file), plan.threads, todo, log
        )
        try:
            for index, result_bytes, error, fatal in rows:
                if fatal:  # the run itself cannot go on (the model does not load there): as the local engine, stop
                    raise pickle.loads(fatal)
                path, stamp = todo[index]
                result = None if error else pickle.loads(result_bytes)
                record_outcome(summary, on_record, plan.model.name, path, stamp, result, error)
        finally:
            rows.close()  # Ray Data's iterator first: left to the garbage collector, it would start Ray again
            if started_ray:
                ray.shutdown()
    return summary


class _Terminated(BaseException):
    """SIGTERM during a Ray run: unwinds (not an Exception, so nothing swallows it) so that the Ray this
    run started is shut down before zoo's own SIGTERM handling exits."""


class _SigtermUnwinds:
    """While a Ray run is on: SIGTERM raises _Terminated in the main thread; afterwards the handler that
    was there (zoo's: temp files removed, exit 143) is put back and called. Without this, zoo's handler
    exits at once and leaves the Ray processes it started running, or Ray's exits 15 with a stack dump."""

    def __init__(self):
        self.previous = None
        self.active = False

    def _raise(self, signum, frame):
        raise _Terminated()

    def take(self) -> None:
        if self.active:
            signal.signal(signal.SIGTERM, self._raise)

    def __enter__(self):
        import threading

        self.active = hasattr(signal, "SIGTERM") and threading.current_thread() is threading.main_thread()
        if self.active:
            self.previous = signal.getsignal(signal.SIGTERM)
            self.take()
        return self

    def __exit__(self, kind, exc, tb):
        if not self.active:
            return False
        self.active = False
        signal.signal(signal.SIGTERM, self.previous)
        if kind is not None and issubclass(kind, _Terminated):
            if callable(self.previous):
                self.previous(signal.SIGTERM, None)
            raise SystemExit(128 + signal.SIGTERM)
        return False


def _run_on_ray(ray, request, model, options, backend_cls, model_file: Path, threads, todo, log):
    """Yields (index into `todo`, pickled RunResult or b"", the input's error or "", pickled fatal
    ZooError or b"") per input, in input order."""
    import ray.data

    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    actors = max(1, cpus // 2)  # the other half of the CPUs reads and preprocesses
    data = model_file.read_bytes()
    shipped = {
        "path": str(model_file),
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "ref": [ray.put(data)],  # in a list, so that Ray hands the actor the reference, not the bytes
    }
    del data
    if log:
        where = ray.get_runtime_context().gcs_address
        log(
            f"ray: job {ray.get_runtime_context().get_job_id()} on {where} ({cpus} CPUs): "
            f"{len(todo)} input(s) preprocessed as tasks, inference in up to {actors} actor(s)"
        )

    items = [{"index": index, "path": str(path)} for index, (path, _stamp) in enumerate(todo)]
    dataset = _from_items(ray.data, items)  # one input per block: each is its own task
    dataset = dataset.map(_prepare, fn_kwargs={"model_name": model.name, "options": options}, num_cpus=1)
    dataset = dataset.map_batches(
        _Inference,
        batch_size=1,  # preprocessed clips are MBs each: one at a time keeps an actor's memory flat
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
        num_cpus=1,
        # Reserving the loaded model's memory places actors where it fits; the two stages differing
        # in resources also keeps Ray Data from fusing preprocessing into the actors.
        memory=2 * shipped["size"] + 256 * 1024 * 1024,
        fn_constructor_kwargs={
            "request": request,
            "model_name": model.name,
            "options": options,
            "backend_cls": backend_cls,
            "shipped": shipped,
            "threads": threads,
        },
    )
    context = ray.data.DataContext.get_current()
    saved = (
        context.execution_options.preserve_order,
        context.enable_progress_bars,
        context.execution_options.resource_limits,
    )
    context.execution_options.preserve_order = True  # records come out in input order, as locally
    context.enable_progress_bars = False  # zoo prints its own progress line
    budget = max(MIN_OBJECT_STORE_BUDGET, 4 * cpus * _sample_bytes(model))
    context.execution_options.resource_limits = _with_object_store_limit(ray.data, saved[2], budget)
    data_logger = logging.getLogger("ray.data")
    level = data_logger.level
    data_logger.setLevel(max(level, logging.WARNING))  # Ray Data's plan and progress logs: zoo says its own
    iterator = iter(dataset.iter_rows())
    try:
        for row in iterator:
            yield int(row["index"]), row["result"], str(row["error"]), row["fatal"]
    finally:
        getattr(iterator, "close", lambda: None)()
        context.execution_options.preserve_order, context.enable_progress_bars = saved[:2]
        context.execution_options.resource_limits = saved[2]
        data_logger.setLevel(level)


def _prepare(row: dict, *, model_name: str, options: dict) -> dict:
    """A Ray Data task: open and preprocess one input. Errors travel as data: a bad input's as its
    `error`, one that stops the run (the model's plugin is missing on this node) as `fatal`."""
    from modelzoo.core import runner
    from modelzoo.core.contract.registry import get_registry

    out = {"index": row["index"], "path": row["path"], "payload": b"", "error": "", "fatal": b""}
    try:
        registry = get_registry()
        model = registry.get_model(model_name)
    except ZooError as exc:
        return {**out, "fatal": _pickled_error(exc)}
    begun = time.perf_counter()
    try:
        source = runner.open_source(registry, model, row["path"])
        tensor = runner.preprocess_source(model, source, options)
    except ZooError as exc:
        return {**out, "error": str(exc)}
    prepared_ms = (time.perf_counter() - begun) * 1000
    # One pickle for the source and its tensor: a tensor input's source holds the same array, sent once.
    return {**out, "payload": pickle.dumps((source, tensor, prepared_ms), protocol=5)}


class _Inference:
    """A Ray Data actor: loads the model once, then runs inference and postprocessing, one input a call."""

    def __init__(self, *, request, model_name, options, backend_cls, shipped, threads):
        from modelzoo.core import runner
        from modelzoo.core.contract.registry import get_registry

        self.request = request
        self.options = options
        self.model_file = shipped["path"]  # as the driver names it: the records say what the local engine says
        self.fatal = b""  # a model that does not load stops the run with its own message, not as an actor's death
        self.load_ms = 0.0
        try:
            self.registry = get_registry()
            self.model = self.registry.get_model(model_name)
            local_file = _local_model_file(shipped)
            started = time.perf_counter()
            self.backend = runner.load_backend(
                backend_cls, local_file, self.model, None, threads=threads, **request.backend_options
            )
            self.load_ms = (time.perf_counter() - started) * 1000  # reported in this actor's first record
        except ZooError as exc:
            self.fatal = _pickled_error(exc)

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        from modelzoo.core import runner

        results, errors, fatals = [], [], []
        for path, payload, error, fatal in zip(batch["path"], batch["payload"], batch["error"], batch["fatal"]):
            result_bytes, message, fatal = b"", str(error), fatal or self.fatal
            if not (message or fatal):
                source, tensor, prepared_ms = pickle.loads(payload)
                try:
                    result = runner.finish_run(
                        self.registry, self.model, replace(self.request, input=str(path)), self.backend, source,
                        tensor, self.options, self.model_file, prepared_ms, self.load_ms, log=None,
                    )  # fmt: skip
                    self.load_ms = 0.0
                    result_bytes = pickle.dumps(result, protocol=5)
                except ZooError as exc:
                    message = str(exc)
            results.append(result_bytes)
            errors.append(message)
            fatals.append(fatal)
        return {
            "index": np.asarray(batch["index"], dtype=np.int64),
            "result": np.array(results, dtype=object),
            "error": np.array(errors, dtype=object),
            "fatal": np.array(fatals, dtype=object),
        }


def _pickled_error(exc: ZooError) -> bytes:
    """The error, to raise again on the driver; as a plain ZooError with its message if it does not pickle."""
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
        return data
    except Exception:
        return pickle.dumps(ZooError(str(exc)))


def _local_model_file(shipped: dict) -> Path:
    """The driver's model file, if this node holds the same one at its path; else a copy from the object store."""
    path = Path(shipped["path"])
    if path.is_file() and path.stat().st_size == shipped["size"] and _sha256(path) == shipped["sha256"]:
        return path
    import ray

    from modelzoo.core.atomic import atomic_write

    copy = Path(tempfile.gettempdir()) / "modelzoo-ray" / f"{shipped['sha256'][:24]}{path.suffix}"
    if not (copy.is_file() and copy.stat().st_size == shipped["size"]):
        with atomic_write(copy) as handle:
            handle.write(ray.get(shipped["ref"][0]))
    return copy


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sample_bytes(model) -> int:
    """Bytes of one sample of the model's input (the batch axis left out), 0 if a dimension is symbolic."""
    import numpy as np

    dims = model.spec.input.shape[1:]
    if not all(isinstance(d, int) for d in dims):
        return 0
    return int(np.prod(dims)) * np.dtype(model.spec.input.dtype).itemsize


def _from_items(ray_data, items: list):
    import inspect

    if "override_num_blocks" in inspect.signature(ray_data.from_items).parameters:
        return ray_data.from_items(items, override_num_blocks=len(items))
    return ray_data.from_items(items, parallelism=len(items))  # Ray before 2.10


def _with_object_store_limit(ray_data, limits, budget: int):
    resources = ray_data.ExecutionResources
    if hasattr(resources, "for_limits"):
        return resources.for_limits(cpu=limits.cpu, gpu=limits.gpu, object_store_memory=budget)
    return resources(cpu=limits.cpu, gpu=limits.gpu, object_store_memory=budget)


def _import_ray(address):
    _keep_on_loopback(address)
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ZooError(f"--engine ray needs Ray with Ray Data: {INSTALL_HINT}") from None
    return ray


def _keep_on_loopback(address) -> None:
    if address is None:
        local = not os.environ.get("RAY_ADDRESS")
    else:
        host = str(address).split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
        try:
            local = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = False
    if local:
        os.environ.setdefault(LOOPBACK_SWITCH, "0")


def _connect(ray, address) -> bool:
    """Connect to `address` (None: start Ray here); True if this call did, so the run shuts it down."""
    if ray.is_initialized():
        return False
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    options = {"log_to_driver": False, "logging_level": logging.WARNING}
    if env:
        options["runtime_env"] = {"env_vars": env}
    if address is None:
        options["include_dashboard"] = False
    try:
        ray.init(address=address, **options)
    except ConnectionError as exc:
        raise ZooError(f"cannot reach the Ray cluster at {address}: {exc}; {ADDRESS_HINT}") from None
    return True


def _check_reachable(address) -> None:
    """A HOST:PORT --ray-address must accept a connection within a few seconds."""
    if address is None or address in ("auto", "local") or "://" in str(address):
        return
    host, _, port = str(address).rpartition(":")
    if not host or not port.isdigit():
        raise ZooError(f"--ray-address {address} is not HOST:PORT; {ADDRESS_HINT}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            pass
    except OSError as exc:
        raise ZooError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); {ADDRESS_HINT}") from None
