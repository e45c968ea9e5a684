"""The plugin contract. A plugin module sets ZOO_HOOKSPEC_VERSION and implements some of these hooks.

Per-model hooks (preprocess, postprocess, build_onnx, compile_config) are called only on the
plugin that registered the model. zoo_patch_graph is called on every plugin, in order.
"""

from __future__ import annotations

import pluggy

HOOKSPEC_VERSION = 1
"""Bumped when a hook changes incompatibly; plugins declaring another version are not loaded."""

hookspec = pluggy.HookspecMarker("modelzoo")
hookimpl = pluggy.HookimplMarker("modelzoo")


@hookspec
def zoo_register_models(register):
    """Called once at load. Call `register(spec)` with a ModelSpec for each model the plugin provides."""


@hookspec
def zoo_register_backends(register):
    """Called once at load. Call `register(backend_class)` for each Backend class the plugin provides."""


@hookspec(firstresult=True)
def zoo_select_backend(spec, requested, model_path, backends, cache):
    """Pick the Backend class that runs `spec` for `--backend requested` ("auto" or a name).

    `model_path` is the user's `--model` file or None; `backends` maps names to registered classes;
    `cache` is the ArtifactCache, to see which prebuilt models are already there.
    Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def zoo_preprocess(spec, source, clips):
    """Turn an InputSource (a video file, raw RGB frames, or a preprocessed tensor) into the model input.

    Returns float32 [clips, *spec.input.shape[1:]]. Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def zoo_postprocess(spec, logits, top_k):
    """Turn per-clip logits [clips, classes] into a list of Prediction, best first.

    Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def zoo_build_onnx(spec, state_dict):
    """Build an onnx.ModelProto from a state dict of numpy arrays in the checkpoint's key layout.

    Stops at the first non-None result.
    """


@hookspec
def zoo_patch_graph(spec, model, march):
    """Rewrite `model` (an onnx.ModelProto, in place) so that the `march` toolchain accepts it.

    Called on every plugin in order; return a list of human-readable changes, or None.
    """


@hookspec(firstresult=True)
def zoo_compile_config(spec, march, onnx_path, calib_dir, working_dir):
    """Return the hb_compile config (a dict ready for YAML) for `spec` on `march`.

    Stops at the first non-None result.
    """
