"""What `zoo list --json` and `zoo info --json` say about a model, built in one place so that the
CLI and `zoo serve` (GET /v1/models, /v1/models/{name}) answer alike.

Cheap to import and to call: `zoo list` reads manifests and small JSON records only, and imports
no numpy, onnx, onnxruntime or model code.
"""

from __future__ import annotations

from modelzoo.core.errors import CacheError


def backends_here(registry, cache, model) -> list:
    """Names of backends that could run `model` on this machine now, without --model (cheap: no backend import).

    A plugin backend whose checks raise is left out with one warning naming its plugin: one plugin's bug
    must not take the listing of every model down with it.
    """
    return [
        name
        for name, backend in sorted(registry.backends.items())
        if _checked(registry, name, lambda b=backend: b.is_available() and _has_model(b, model, cache))
    ]


def _checked(registry, name: str, check) -> bool:
    from modelzoo.output import notice

    try:
        return bool(check())
    except Exception as exc:
        plugin = registry.backend_plugins.get(name, "?")
        if (plugin, name) not in registry.reported_failures:  # once per command, not once per model
            registry.reported_failures.add((plugin, name))
            notice(
                f"warning: plugin {plugin!r} failed in backend {name!r} checking what it runs here: "
                f"{type(exc).__name__}: {exc}; left out of the listing; report it to the plugin's author"
            )
        return False


def _has_model(backend, model, cache) -> bool:
    try:
        return backend.has_model_for(model, cache)
    except CacheError:  # its file is gone or damaged: it runs nothing until that is mended (`zoo info` says how)
        return False


def imported_onnx(cache, model) -> dict | None:
    """The ONNX imported with `zoo fetch MODEL --onnx FILE`, or None. A missing or damaged one is
    not cached; `problem` says why and what to do (the listing goes on; `zoo run` refuses it)."""
    from modelzoo.core.artifacts.cache import origin_of
    from modelzoo.core.artifacts.onnx_import import ARTIFACT
    from modelzoo.core.artifacts.onnx_import import imported_onnx as imported_path

    try:
        record = cache.selection(model.name, ARTIFACT)
    except CacheError as exc:
        return {"path": None, "sha256": None, "from": None, "problem": str(exc)}
    if record is None:
        return None
    try:
        path, problem = imported_path(model, cache), None
    except CacheError as exc:
        path, problem = None, str(exc)
    return {
        "path": str(path) if path is not None else None,
        "sha256": record["sha256"],
        "from": origin_of(record.get("from")),
        "problem": problem,
    }


class _Cached:
    """The cache status of one model (core's CacheStatus) with its imported ONNX added."""

    def __init__(self, cache, model):
        from modelzoo.core.artifacts.artifacts import cache_status

        self.status = cache_status(cache, model.spec)
        self.imported = imported_onnx(cache, model)
        self.onnx_imported = self.imported is not None and self.imported["path"] is not None

    def flags(self) -> dict:
        data = self.status.flags()
        data["onnx"] = self.status.onnx or self.onnx_imported  # converted or imported: `zoo run` needs no --model
        return data

    def summary(self) -> str:
        summary = self.status.summary()
        if not self.onnx_imported:
            return summary
        return "onnx (imported)" if summary == "-" else f"{summary},onnx (imported)"


def list_row(registry, cache, model) -> dict:
    """One row of `zoo list --json`."""
    return _row(registry, cache, model, _Cached(cache, model))


def list_rows(registry, cache) -> tuple:
    """Every model's row, by name, and the text column `zoo list` shows for what is cached."""
    rows, summaries = [], {}
    for model in sorted(registry.models.values(), key=lambda m: m.name):
        cached = _Cached(cache, model)
        rows.append(_row(registry, cache, model, cached))
        summaries[model.name] = cached.summary()
    return rows, summaries


def _row(registry, cache, model, cached: _Cached) -> dict:
    spec = model.spec
    return {
        "name": spec.name,
        "task": spec.task,
        "input": {"name": spec.input.name, "shape": list(spec.input.shape), "dtype": spec.input.dtype},
        "backends": backends_here(registry, cache, model),
        "cached": cached.flags(),
        "plugin": spec.plugin,
    }


def info_data(registry, cache, config, model) -> dict:
    """`zoo info MODEL --json`: the spec, what is cached, the rows measured here, where the config is."""
    from modelzoo.core.accuracy.measured import measured_rows
    from modelzoo.core.contract.registry import blamed_on

    spec = model.spec
    task = registry.task_of(model)
    data = spec.to_dict()
    with blamed_on(registry.plugin_of_task(task.name), f"describe_preprocessing for {spec.name}"):
        data["preprocessing_summary"] = task.describe_preprocessing(spec)
    data["options"] = [
        {"name": o.name, "type": o.type.__name__, "default": o.default, "help": o.help} for o in task.options
    ]
    with blamed_on(model.plugin, f"board_input for {model.name}"):
        data["board_input"] = model.board_input()
    cached = _Cached(cache, model)
    for artifact in data["artifacts"]:
        entry = cached.status.official.get(artifact["name"])
        artifact["cached_path"] = str(entry.path) if entry else None
    data["cached"] = cached.flags()
    in_use = cached.status.weights_in_use
    data["custom_weights"] = [
        {"path": str(e.path), "sha256": e.sha256, "from": e.origin, "in_use": e == in_use}
        for e in cached.status.custom_weights
    ]
    data["imported_onnx"] = cached.imported
    data["measured"] = measured_rows(cache, spec.name)
    data["backends_here"] = backends_here(registry, cache, model)
    data["config"] = {"path": str(config.path.absolute()) if config.path else None, "found_by": config.found_by}
    return data
