"""From weights to a cached ONNX: converted once per checkpoint, again when the converter changes."""

import json

import numpy as np

from modelzoo.core.artifacts.artifacts import Weights, resolve_onnx
from modelzoo.core.artifacts.cache import ArtifactCache, sha256_file
from modelzoo.core.contract.registry import get_registry
from modelzoo.models.video_resnet.architecture import expected_keys


def _checkpoint(path):
    rng = np.random.default_rng(0)
    state = {k: (rng.standard_normal(s) * 0.05).astype(np.float32) for k, s in expected_keys("mc3_18").items()}
    for key in state:
        if key.endswith("running_var"):
            state[key] = np.abs(state[key]) + 1.0
    np.savez(path, **state)
    return Weights(path, sha256_file(path), official=False)


def test_converted_once_then_reused_then_redone_for_a_new_zoo_version(tmp_path):
    registry = get_registry()
    spec = registry.get_model("mc3_18")
    cache = ArtifactCache(tmp_path / "home")
    weights = _checkpoint(tmp_path / "mc3.npz")
    messages = []

    first, converted = resolve_onnx(spec, registry, weights, cache, log=messages.append)
    assert converted and first.is_file() and len(messages) == 1
    again, converted = resolve_onnx(spec, registry, weights, cache, log=messages.append)
    assert again == first and not converted and len(messages) == 1

    manifest = first.with_name(first.name + ".manifest.json")
    data = json.loads(manifest.read_text())
    data["zoo_version"] = "0.0.1"  # as if an older zoo had converted it
    manifest.write_text(json.dumps(data))
    redone, converted = resolve_onnx(spec, registry, weights, cache, log=messages.append)
    assert converted and redone == first and len(messages) == 2


def test_an_older_plugin_versions_onnx_is_replaced_not_kept(tmp_path):
    registry = get_registry()
    spec = registry.get_model("mc3_18")
    cache = ArtifactCache(tmp_path / "home")
    weights = _checkpoint(tmp_path / "mc3.npz")
    path, _ = resolve_onnx(spec, registry, weights, cache)
    old = path.with_name("mc3_18-0.0.1.onnx")  # what an older plugin version left behind
    old.write_bytes(b"old model")
    path.with_name(old.name + ".manifest.json").write_text("{}")
    path.unlink()  # force a conversion, as a version change would
    resolve_onnx(spec, registry, weights, cache)
    kept = sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".lock"))  # the conversion lock stays
    assert kept == [path.name, path.name + ".manifest.json"]
