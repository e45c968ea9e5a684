"""An ONNX file the user exported with the model's own tooling, imported with `zoo fetch MODEL --onnx FILE`.

It is checked against the model (`Model.check_onnx`) before anything is cached, cached under its
sha256 like any imported file, and recorded as the model's ONNX in this cache: `zoo run` and the
board commands use it when no --model is given, until it is imported anew or the cache is cleaned.
It is for models that publish no checkpoint zoo converts (their ONNX comes from elsewhere).
"""

from __future__ import annotations

from pathlib import Path

from modelzoo.core.artifacts.artifacts import check_onnx_of, check_onnx_size, chosen_file
from modelzoo.core.artifacts.cache import CachedFile, sha256_file
from modelzoo.core.errors import InputError

ARTIFACT = "onnx"


def import_onnx(model, cache, path) -> CachedFile:
    """Check `path` against `model`, copy it into the cache and use it from now on; returns its cache entry."""
    import onnx

    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file; pass the .onnx file you exported")
    check_onnx_size(path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise InputError(
            f"{path} is not an ONNX model ({type(exc).__name__}); pass the .onnx file you exported"
        ) from None
    if not proto.graph.node:
        raise InputError(f"{path} is not an ONNX model (its graph is empty); pass the .onnx file you exported")
    external = [t.name for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise InputError(
            f"{path} keeps its weights in separate files ({len(external)} external tensors); "
            "export it as one self-contained .onnx file"
        )
    check_onnx_of(model, proto, path.name)
    sha256 = sha256_file(path)
    cached = cache.add_file(model.name, ARTIFACT, path, path.resolve().as_uri(), sha256, verified=False, official=False)
    cache.select(model.name, ARTIFACT, cached)
    return cached


def imported_onnx(model, cache) -> Path | None:
    """The ONNX imported for `model` with `zoo fetch MODEL --onnx FILE`, or None; a missing or damaged one is said."""
    if cache is None:
        return None
    entry = chosen_file(cache, model.name, ARTIFACT, "ONNX")
    return entry.path if entry is not None else None
