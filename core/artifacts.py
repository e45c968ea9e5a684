"""From a model name to a runnable file: fetch or import the weights, convert once, reuse the cache."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .errors import ZooError


@dataclass(frozen=True)
class Weights:
    path: Path
    sha256: str
    official: bool


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_weights(spec, config, cache, weights_file=None, progress=True) -> Weights:
    """The checkpoint to convert: --weights FILE, else the cached or freshly downloaded official one."""
    from .download import fetch_artifact, import_local

    artifact = spec.artifact("weights")
    if weights_file is not None:
        if artifact is None:
            path = Path(weights_file)
            return Weights(path, sha256_file(path), official=False)
        cached, official = import_local(spec, artifact, cache, Path(weights_file))
        return Weights(cached.path, cached.sha256, official)
    if artifact is None:
        raise ZooError(f"{spec.name} publishes no weights; pass --model FILE or --weights CHECKPOINT")
    override = config.model(spec.name)
    cached = fetch_artifact(
        spec, artifact, cache, url=override.weights_url, sha256=override.weights_sha256, progress=progress
    )
    return Weights(cached.path, cached.sha256, cached.official)


def resolve_onnx(spec, registry, weights: Weights, cache, log=None) -> tuple:
    """The ONNX converted from `weights`, cached by the checkpoint's sha256. Returns (path, converted_now)."""
    filename = f"{spec.name}.onnx"
    target = cache.derived_path(spec.name, weights.sha256, filename)
    if target.is_file():
        return target, False
    if log:
        log(f"converting {weights.path.name} to ONNX (once; cached by checkpoint hash)")
    from .checkpoint import load_state_dict

    state_dict = load_state_dict(weights.path)
    model = registry.model_hook(spec, "zoo_build_onnx")(state_dict=state_dict)
    if model is None:
        raise ZooError(f"plugin {spec.plugin!r} cannot build an ONNX graph for {spec.name}; pass --model FILE.onnx")
    payload = model.SerializeToString()
    path = cache.add_derived(spec.name, weights.sha256, filename, lambda handle: handle.write(payload))
    return Path(getattr(path, "path", path)), True
