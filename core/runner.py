"""The main.py-style pipeline: input -> preprocess -> backend -> Top-k, with timings."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from modelzoo.core.artifacts.artifacts import converted_onnx, existing_model_file
from modelzoo.core.backends.backend import ignored_options
from modelzoo.core.errors import BackendError, PluginError
from modelzoo.core.inputs.inputs import open_input


@dataclass
class RunRequest:
    model: str
    input: str
    model_path: str | None = None
    weights: str | None = None
    clips: int | None = None
    top_k: int | None = None
    backend: str | None = None
    threads: int | None = None
    backend_options: dict = field(default_factory=dict)


@dataclass
class RunResult:
    model: str
    input: str
    backend: str
    clips: int
    predictions: list
    timing_ms: dict
    model_file: str
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "input": self.input,
            "backend": self.backend,
            "clips": self.clips,
            "predictions": [p.to_dict() for p in self.predictions],
            "timing_ms": {k: round(v, 3) for k, v in self.timing_ms.items()},
            "model_file": self.model_file,
            "warnings": self.warnings,
        }


def prepare_input(registry, spec, input_path, clips: int):
    """Open and preprocess an input exactly as `run` does; returns (tensor, source)."""
    source = open_input(input_path, spec.input.shape)
    return preprocess_source(registry, spec, source, clips), source


def preprocess_source(registry, spec, source, clips: int):
    """The plugin's preprocessing, checked against the spec's input."""
    tensor = registry.model_hook(spec, "zoo_preprocess")(source=source, clips=clips)
    if tensor is None:
        raise PluginError(f"plugin {spec.plugin!r} has no zoo_preprocess for {spec.name}")
    expected = tuple(spec.input.shape[1:])
    if tuple(tensor.shape[1:]) != expected or str(tensor.dtype) != spec.input.dtype:
        raise PluginError(
            f"plugin {spec.plugin!r} produced {tensor.dtype} {list(tensor.shape)} for {spec.name}, "
            f"expected {spec.input.dtype} [K, {', '.join(map(str, expected))}]"
        )
    return tensor


def pick_backend(registry, spec, config, cache, *, backend=None, model_path=None, weights=None, options=None, log=None):
    """The Backend class for --backend (or zoo.yaml's default_backend), warning about options it ignores."""
    requested = backend or config.default_backend
    try:
        backend_cls = registry.select_backend(
            spec, requested, model_path, cache, from_weights=bool(weights and not model_path)
        )
    except BackendError as exc:
        if backend is None and config.path is not None and requested != "auto":
            raise BackendError(f"{exc} (default_backend in {config.path})") from None
        raise
    if log:
        for warning in ignored_options(backend_cls, options or {}):
            log(f"warning: {warning}")
    return backend_cls


def resolve_model_file(registry, spec, backend_cls, config, cache, *, model_path=None, weights=None, log=None) -> Path:
    """--model FILE, else the backend's own default (e.g. a fetched .hbm), else ONNX from the weights."""
    if model_path:
        return existing_model_file(model_path)
    default = None if weights else backend_cls.default_model(spec, cache)
    if default is not None:
        return Path(default)
    return converted_onnx(spec, registry, config, cache, weights, log)[0]


def run(request: RunRequest, registry, config, cache, log=None) -> RunResult:
    spec = registry.get_model(request.model)
    model_config = config.model(spec.name)
    clips = request.clips or model_config.clips or 1
    top_k = request.top_k or model_config.top_k or 5
    threads = request.threads or config.threads
    backend_cls = pick_backend(
        registry,
        spec,
        config,
        cache,
        backend=request.backend,
        model_path=request.model_path,
        weights=request.weights,
        options=request.backend_options,
        log=log,
    )
    source = open_input(request.input, spec.input.shape)  # a missing file fails before any download
    model_file = resolve_model_file(
        registry, spec, backend_cls, config, cache, model_path=request.model_path, weights=request.weights, log=log
    )

    # Loading the model and decoding the video do not depend on each other: overlap them.
    # numpy is imported here first: its extension module cannot be initialised by two threads at once.
    import numpy  # noqa: F401

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="zoo-load") as pool:
        loading = pool.submit(_timed, backend_cls, model_file, threads=threads, **request.backend_options)
        started = time.perf_counter()
        tensor = preprocess_source(registry, spec, source, clips)
        prepared_ms = (time.perf_counter() - started) * 1000
        backend, load_ms = _loaded(loading, model_file, cache, spec)
    if source.tensor is not None and request.clips and request.clips != tensor.shape[0]:
        source.warnings.append(
            f"--clips {request.clips} ignored: {request.input} already holds {tensor.shape[0]} preprocessed clip(s)"
        )
    for warning in source.warnings:
        if log:
            log(f"warning: {warning}")

    started = time.perf_counter()
    logits = backend.run(tensor)
    inference_ms = (time.perf_counter() - started) * 1000
    predictions = registry.model_hook(spec, "zoo_postprocess")(logits=logits, top_k=top_k)
    if predictions is None:
        raise PluginError(f"plugin {spec.plugin!r} has no zoo_postprocess for {spec.name}")
    decode_ms = source.timings.get("decode", 0.0)
    timing = {
        "decode": decode_ms,
        "preprocess": source.timings.get("preprocess", prepared_ms - decode_ms),
        "load": load_ms,
        "inference": inference_ms,
    }
    return RunResult(
        model=spec.name,
        input=str(request.input),
        backend=backend.describe(),
        clips=int(tensor.shape[0]),
        predictions=predictions,
        timing_ms=timing,
        model_file=str(model_file),
        warnings=list(source.warnings),
    )


def _timed(factory, *args, **kwargs):
    started = time.perf_counter()
    result = factory(*args, **kwargs)
    return result, (time.perf_counter() - started) * 1000


def _loaded(loading, model_file: Path, cache, spec):
    """The loaded backend; a cached file that fails to load is named as such, with the way out."""
    try:
        return loading.result()
    except BackendError as exc:
        if cache is not None and Path(cache.root).resolve() in Path(model_file).resolve().parents:
            raise BackendError(
                f"{exc}. It is a cached file: check it with `zoo cache verify`, remove it with "
                f"`zoo cache clean {spec.name}`, and run again"
            ) from None
        raise
