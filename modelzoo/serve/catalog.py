"""What GET /v1/models and /v1/models/{name} answer: exactly `zoo list --json`'s rows and `zoo info --json`.

These mirror modelzoo/commands/models.py, built from (registry, cache) instead of the CLI session;
tests/test_serve.py asserts they stay equal to the commands' output.
"""

from __future__ import annotations


def backends_here(registry, cache, model) -> list:
    """Names of backends that could run `model` on this machine now (cheap: no backend import)."""
    return [
        name
        for name, backend in sorted(registry.backends.items())
        if backend.is_available() and backend.has_model_for(model, cache)
    ]


def model_row(registry, cache, model) -> dict:
    """One row of `zoo list --json`."""
    from modelzoo.core.artifacts.artifacts import cache_status

    spec = model.spec
    return {
        "name": spec.name,
        "task": spec.task,
        "input": {"name": spec.input.name, "shape": list(spec.input.shape), "dtype": spec.input.dtype},
        "backends": backends_here(registry, cache, model),
        "cached": cache_status(cache, spec).flags(),
        "plugin": spec.plugin,
    }


def model_info(registry, cache, config, model) -> dict:
    """`zoo info MODEL --json`."""
    from modelzoo.core.artifacts.artifacts import cache_status

    spec = model.spec
    task = registry.task_of(model)
    data = spec.to_dict()
    data["preprocessing_summary"] = task.describe_preprocessing(spec)
    data["options"] = [
        {"name": o.name, "type": o.type.__name__, "default": o.default, "help": o.help} for o in task.options
    ]
    data["board_input"] = model.board_input()
    status = cache_status(cache, spec)
    for artifact in data["artifacts"]:
        cached = status.official.get(artifact["name"])
        artifact["cached_path"] = str(cached.path) if cached else None
    data["cached"] = status.flags()
    in_use = status.weights_in_use
    data["custom_weights"] = [
        {"path": str(e.path), "sha256": e.sha256, "from": e.origin, "in_use": e == in_use}
        for e in status.custom_weights
    ]
    data["backends_here"] = backends_here(registry, cache, model)
    data["config"] = {"path": str(config.path.absolute()) if config.path else None, "found_by": config.found_by}
    return data
