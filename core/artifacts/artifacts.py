"""From a model name to a runnable file: fetch or import the weights, convert once, reuse the cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelzoo.core.artifacts.cache import sha256_file
from modelzoo.core.errors import CheckpointError, ConversionError, DownloadError, InputError, PluginError
from modelzoo.core.version import zoo_version


@dataclass(frozen=True)
class Weights:
    path: Path
    sha256: str
    official: bool


def resolve_weights(spec, config, cache, weights_file=None, progress=True) -> Weights:
    """The checkpoint to convert: --weights FILE, else the cached or freshly downloaded official one."""
    from modelzoo.core.artifacts.artifact_fetch import fetch_artifact, import_local

    artifact = spec.artifact("weights")
    if weights_file is not None:
        if artifact is None:
            path = Path(weights_file)
            return Weights(path, sha256_file(path), official=False)
        cached, official = import_local(spec, artifact, cache, Path(weights_file))
        return Weights(cached.path, cached.sha256, official)
    if artifact is None:
        raise InputError(f"{spec.name} publishes no weights; pass --model FILE or --weights CHECKPOINT")
    override = config.model(spec.name)
    try:
        cached = fetch_artifact(
            spec, artifact, cache, url=override.weights_url, sha256=override.weights_sha256, progress=progress
        )
    except DownloadError as exc:
        custom = cache.find(spec.name, "weights")
        if custom is None:
            raise
        # custom weights are never used in place of the official ones unless asked for
        raise DownloadError(
            f"{exc}. Custom weights are cached but used only when named: --weights {custom.path}"
        ) from None
    return Weights(cached.path, cached.sha256, cached.official)


def resolve_onnx(model, registry, weights: Weights, cache, log=None) -> tuple:
    """The ONNX converted from `weights`, cached by checkpoint hash. Returns (path, converted_now).

    A file made by another zoo or plugin version is converted again: a converter fix must reach
    users who already have a cached model.
    """
    from modelzoo.core.contract.registry import blamed_on

    spec = model.spec
    plugin = registry.plugins.get(spec.plugin)
    filename = f"{spec.name}-{plugin.version if plugin and plugin.version else 'dev'}.onnx"
    hit = cache.find_derived(spec.name, weights.sha256, filename)
    if hit is not None and hit.zoo_version == zoo_version():
        return hit.path, False
    if log:
        log(f"converting {weights.path.name} to ONNX (once; cached by checkpoint hash)")
    from modelzoo.core.artifacts.checkpoint import load_state_dict

    try:
        state_dict = load_state_dict(weights.path)
        with blamed_on(spec.plugin, f"build_onnx for {spec.name}"):
            graph = model.build_onnx(state_dict)
    except (CheckpointError, ConversionError):
        if not weights.official:  # a custom file that is not this model's checkpoint must not stay cached
            cache.discard(spec.name, weights.sha256)
        raise
    if graph is None:
        raise PluginError(f"plugin {spec.plugin!r} cannot build an ONNX graph for {spec.name}; pass --model FILE.onnx")
    payload = graph.SerializeToString()
    path = cache.add_derived(spec.name, weights.sha256, filename, lambda handle: handle.write(payload)).path
    cache.prune_derived(spec.name, weights.sha256, keep=filename, stem=f"{spec.name}-")
    return path, True


def converted_onnx(model, registry, config, cache, weights_file=None, log=None) -> tuple:
    """The ONNX of the official or --weights checkpoint, converted once: (path, Weights, converted_now)."""
    weights = resolve_weights(model.spec, config, cache, weights_file)
    if not weights.official and log:
        log(f"using custom weights {weights.path.name} (sha256 {weights.sha256[:12]}…), not the official checkpoint")
    path, converted = resolve_onnx(model, registry, weights, cache, log=log)
    return path, weights, converted


def onnx_source(model, registry, config, cache, model_path=None, weights_file=None, log=None) -> Path:
    """The ONNX to prepare for a board: --model FILE.onnx, else the converted checkpoint."""
    if model_path:
        path = existing_model_file(model_path, model=model, weights=weights_file)
        if path.suffix.lower() != ".onnx":
            raise InputError(f"{path.name} is not an .onnx file; board preparation starts from ONNX (see `zoo export`)")
        return path
    return converted_onnx(model, registry, config, cache, weights_file, log)[0]


def existing_model_file(model_path, *, model=None, weights=None) -> Path:
    """The user's --model file, checked to exist (`model` and `weights` are the run's, for further checks)."""
    path = Path(model_path)
    if not path.is_file():
        raise InputError(f"model file {path} does not exist; check --model")
    return path


def load_onnx(path):
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise InputError(f"cannot read {path} as ONNX ({exc}); pass a valid .onnx file") from None


def save_onnx(model, path) -> None:
    from modelzoo.core.atomic import atomic_write

    payload = model.SerializeToString()
    with atomic_write(path) as handle:
        handle.write(payload)
