"""The main.py-style pipeline, for every task: input -> model.preprocess -> backend -> model.postprocess,
with timings. The CLI's `zoo run` and the Python API's `Model.predict` both come through here."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from modelzoo.core.artifacts.artifacts import converted_onnx, existing_model_file
from modelzoo.core.backends.backend import ignored_options
from modelzoo.core.console import stderr_line
from modelzoo.core.contract.registry import blamed_on
from modelzoo.core.errors import BackendError, InputError, PluginError


@dataclass
class RunRequest:
    model: str
    input: str
    model_path: str | None = None
    weights: str | None = None
    backend: str | None = None
    threads: int | None = None
    options: dict = field(default_factory=dict)  # the task's options given on the command line (None = not given)
    backend_options: dict = field(default_factory=dict)
    precision: str | None = None  # "fp32" or "int8"; None: zoo.yaml's, else fp32
    save: str | None = None  # write the input annotated with the result here
    force: bool = False  # run a --model ONNX that records another architecture, with a warning


@dataclass
class RunResult:
    """One input's result: the task's Result plus where and how it ran. `to_dict()` is `zoo run --json`."""

    model: str
    input: str
    backend: str
    result: object  # the task's Result
    timing_ms: dict
    model_file: str
    warnings: list = field(default_factory=list)

    def __getattr__(self, name):
        # result.predictions, result.clips, ...: the task's fields read as the run's own
        if name == "result":
            raise AttributeError(name)
        return getattr(self.result, name)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "input": self.input,
            "backend": self.backend,
            **self.result.to_dict(),
            "timing_ms": {k: round(v, 3) for k, v in self.timing_ms.items()},
            "model_file": self.model_file,
            "warnings": self.warnings,
        }


def task_options(registry, model, config, given: dict | None = None) -> dict:
    """The task's options for `model`: given ones (not None), else zoo.yaml's per-model section, else defaults.

    A given option the task does not use is refused: it would be silently ignored otherwise.
    """
    task = registry.task_of(model)
    given = {k: v for k, v in (given or {}).items() if v is not None}
    unused = sorted(set(given) - task.option_names())
    if unused:
        names = ", ".join("--" + name.replace("_", "-") for name in unused)
        raise InputError(f"{names} does not apply to {model.name} ({task.name}); it takes: {_option_list(task)}")
    model_config = config.model(model.name)
    where = f"{config.path or 'zoo.yaml'}: models.{model.name}"
    configured = {k: v for k, v in model_config.options.items() if k in task.option_names()}
    return task.resolve_options(given, configured, where)


def _option_list(task) -> str:
    return ", ".join("--" + o.name.replace("_", "-") for o in task.options) or "no options"


def open_source(registry, model, input_path):
    """Check and classify the input file for the model's task: the first step of every run."""
    with blamed_on(model.plugin, f"opening the input for {model.name}"):
        return registry.task_of(model).open_input(input_path, model.spec)


def check_save(registry, model, source, path) -> None:
    """Refuse a --save target before any download or inference: the task cannot draw its results, or its
    own `check_save(path, source)` (the formats it writes, the inputs it draws on) refuses it."""
    from modelzoo.core.atomic import same_file
    from modelzoo.core.contract.task import Task

    task = registry.task_of(model)
    if getattr(source, "path", None) is not None and same_file(path, source.path):
        raise InputError(f"--save {path} is the input file: write the annotated copy to another file")
    if type(task).save_annotated is Task.save_annotated:
        raise InputError(f"--save is not supported for {task.name} models: they draw nothing on the input")
    with blamed_on(model.plugin, f"checking --save for {model.name}"):
        task.check_save(Path(path), source)


def preprocess_source(model, source, options: dict):
    """The model's preprocessing, checked against the spec's input."""
    spec = model.spec
    with blamed_on(spec.plugin, f"preprocess for {spec.name}"):
        tensor = model.preprocess(source, options)
    if tensor is None:
        raise PluginError(f"plugin {spec.plugin!r} returned no tensor from preprocess for {spec.name}")
    expected = tuple(spec.input.shape[1:])
    if tuple(getattr(tensor, "shape", ())[1:]) != expected or str(getattr(tensor, "dtype", "")) != spec.input.dtype:
        raise PluginError(
            f"plugin {spec.plugin!r} produced {getattr(tensor, 'dtype', '?')} {list(getattr(tensor, 'shape', []))} "
            f"for {spec.name}, expected {spec.input.dtype} [K, {', '.join(map(str, expected))}]"
        )
    return tensor


def prepare_input(registry, model, input_path, options: dict):
    """Open and preprocess an input exactly as `run` does; returns (tensor, source)."""
    source = open_source(registry, model, input_path)
    return preprocess_source(model, source, options), source


def pick_backend(
    registry, model, config, cache, *, backend=None, model_path=None, weights=None, options=None, log=None
):
    """The Backend class for --backend (or zoo.yaml's default_backend), warning about options it ignores."""
    requested = backend or config.default_backend
    try:
        backend_cls = registry.select_backend(
            model,
            requested,
            model_path,
            cache,
            from_weights=bool((weights or custom_weights_chosen(model, cache)) and not model_path),
        )
    except BackendError as exc:
        if backend is None and config.path is not None and requested != "auto":
            raise BackendError(f"{exc} (default_backend in {config.path})") from None
        raise
    if log:
        for warning in ignored_options(backend_cls, options or {}):
            log(f"warning: {warning}")
    return backend_cls


def resolve_model_file(
    registry, model, backend_cls, config, cache, *, model_path=None, weights=None, precision=None, log=None,
    force=False,
) -> Path:  # fmt: skip
    """--model FILE, else the backend's own default (e.g. a fetched .hbm), else ONNX from the weights;
    with precision int8, the host-quantized ONNX of that file. `force` runs a --model file recorded as
    another architecture's, with a warning."""
    precision = resolve_precision(config, model, precision)
    if model_path:
        path = user_model_file(model, model_path, weights=weights, force=force, log=log)
    else:
        chosen = weights or custom_weights_chosen(model, cache)  # converted weights, never a prebuilt file, then
        default = None if chosen else backend_cls.default_model(model, cache)
        path = Path(default) if default is not None else converted_onnx(model, registry, config, cache, weights, log)[0]
    if precision == "fp32":
        return path
    if not backend_cls.converts_weights:
        raise BackendError(f"--precision {precision} runs a host-quantized ONNX; the {backend_cls.name} backend cannot")
    from modelzoo.core.quantize.host import quantized_model_file

    return quantized_model_file(registry, model, config, cache, path, log=log)


def user_model_file(model, model_path, *, weights=None, force=False, log=None) -> Path:
    """The --model file, checked to be `model`'s; with `force`, a file recorded as another
    architecture's is run anyway and the refusal becomes a warning."""
    path = existing_model_file(model_path, weights=weights)  # it exists, and not with --weights
    try:
        existing_model_file(path, model=model)  # only the architecture the file records is left to check
    except InputError as exc:
        if not force:
            raise InputError(f"{exc}; --force runs it anyway") from None
        if log:
            log(f"warning: {exc} (running it anyway: --force)")
    return path


def custom_weights_chosen(model, cache) -> bool:
    """Whether the user made imported weights this model's weights (`zoo fetch MODEL --weights FILE`)."""
    return cache is not None and cache.selection(model.name, "weights") is not None


def resolve_precision(config, model, precision) -> str:
    """--precision, else zoo.yaml's per-model `precision`, else fp32."""
    chosen = precision or config.model(model.name).options.get("precision") or "fp32"
    if chosen not in ("fp32", "int8"):
        where = f"{config.path or 'zoo.yaml'}: models.{model.name}.precision"
        raise InputError(f"{where} is {chosen!r}; use fp32 or int8")
    return chosen


def load_backend(backend_cls, model_file: Path, model, cache, *, threads=None, **backend_options):
    """Load `model_file`; a cached file that fails to load is named as such, with the way out."""
    try:
        return backend_cls(model_file, threads=threads, model=model, **backend_options)
    except BackendError as exc:
        if cache is not None and Path(cache.root).resolve() in Path(model_file).resolve().parents:
            raise BackendError(
                f"{exc}. It is a cached file: check it with `zoo cache verify`, remove it with "
                f"`zoo cache clean {model.name}`, and run again"
            ) from None
        raise


def run(request: RunRequest, registry, config, cache, log=None, loaded=None) -> RunResult:
    """One input through the whole pipeline. `loaded` may hold a backend already loaded for this
    (model file, backend, threads) from an earlier call, which is then reused (and filled in)."""
    model = registry.get_model(request.model)
    options = task_options(registry, model, config, request.options)
    threads = request.threads or config.threads
    backend_cls = pick_backend(
        registry, model, config, cache, backend=request.backend, model_path=request.model_path,
        weights=request.weights, options=request.backend_options, log=log,
    )  # fmt: skip
    source = open_source(registry, model, request.input)  # a bad input fails before any download
    if request.save:
        check_save(registry, model, source, request.save)  # and a --save the task cannot write
    model_file = resolve_model_file(
        registry, model, backend_cls, config, cache, model_path=request.model_path, weights=request.weights,
        precision=request.precision, log=log, force=request.force,
    )  # fmt: skip
    key = backend_key(backend_cls, model_file, threads, request.backend_options)
    cached = loaded.get(key) if loaded is not None else None

    # Loading the model and decoding the input do not depend on each other: overlap them.
    # numpy is imported here first: its extension module cannot be initialised by two threads at once.
    import numpy  # noqa: F401

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="zoo-load") as pool:
        loading = None
        if cached is None:
            loading = pool.submit(
                _timed, load_backend, backend_cls, model_file, model, cache, threads=threads, **request.backend_options
            )
        started = time.perf_counter()
        tensor = preprocess_source(model, source, options)
        prepared_ms = (time.perf_counter() - started) * 1000
        backend, load_ms = (cached, 0.0) if loading is None else loading.result()
    if loaded is not None:
        loaded[key] = backend
    return finish_run(registry, model, request, backend, source, tensor, options, model_file, prepared_ms, load_ms, log)


def backend_key(backend_cls, model_file, threads, backend_options: dict) -> tuple:
    """What makes two loaded backends interchangeable: the key of a `loaded` dict kept between runs."""
    return (backend_cls, str(model_file), threads, tuple(sorted(backend_options.items(), key=str)))


def finish_run(registry, model, request, backend, source, tensor, options, model_file, prepared_ms, load_ms, log=None):
    """Inference, postprocessing and the RunResult for one preprocessed input."""
    if source.tensor is not None and request.options.get("clips") and request.options["clips"] != tensor.shape[0]:
        source.warnings.append(
            f"--clips {request.options['clips']} ignored: {request.input} already holds {tensor.shape[0]} preprocessed clip(s)"
        )
    started = time.perf_counter()
    output = backend.run(tensor)
    inference_ms = (time.perf_counter() - started) * 1000
    with blamed_on(model.plugin, f"postprocess for {model.name}"):
        result = model.postprocess(output, source, options)
    if result is None:
        raise PluginError(f"plugin {model.plugin!r} returned no result from postprocess for {model.name}")
    if request.save:
        with blamed_on(model.plugin, f"saving the annotated input of {model.name}"):
            registry.task_of(model).save_annotated(result, source, Path(request.save))
    for warning in source.warnings:
        if log:
            log(f"warning: {warning}")
    decode_ms = source.timings.get("decode", 0.0)
    timing = {
        "decode": decode_ms,
        "preprocess": source.timings.get("preprocess", prepared_ms - decode_ms),
        "load": load_ms,
        "inference": inference_ms,
    }
    return RunResult(
        model=model.name,
        input=str(request.input),
        backend=backend.describe(),
        result=result,
        timing_ms=timing,
        model_file=str(model_file),
        warnings=list(source.warnings),
    )


def predict(
    model, input, *, backend=None, model_path=None, weights=None, threads=None, precision=None, config=None, save=None,
    force=False, priority=None, bpu_cores=None, **options,
):  # fmt: skip
    """`Model.predict`: the CLI's run for programs, reusing the loaded backend between calls."""
    import os

    from modelzoo.core.artifacts.cache import open_cache
    from modelzoo.core.config import load_config
    from modelzoo.core.contract.registry import get_registry

    if not isinstance(input, str | os.PathLike):
        raise InputError(f"predict takes the path of an input file, not a {type(input).__name__}")
    registry = get_registry()
    settings = load_config(config)
    cache = open_cache(settings)
    loaded = model.__dict__.setdefault("_zoo_loaded_backends", {})
    board = {"priority": priority, "bpu_cores": bpu_cores}
    request = RunRequest(
        model.name, str(input), model_path=model_path, weights=weights, backend=backend, threads=threads,
        options=options, precision=precision, save=save, force=force,
        backend_options={k: v for k, v in board.items() if v is not None},
    )  # fmt: skip
    # notices (custom weights in use, a conversion) reach a program's stderr as they reach the CLI's
    return run(request, registry, settings, cache, log=stderr_line, loaded=loaded)


def _timed(factory, *args, **kwargs):
    started = time.perf_counter()
    result = factory(*args, **kwargs)
    return result, (time.perf_counter() - started) * 1000
