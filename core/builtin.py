"""The core's own plugin: built-in backends and the default backend choice, via the same hooks."""

from __future__ import annotations

from modelzoo.core.backends.backend import choose_backend
from modelzoo.core.contract.hookspecs import HOOKSPEC_VERSION, hookimpl

ZOO_HOOKSPEC_VERSION = HOOKSPEC_VERSION


@hookimpl
def zoo_register_backends(register):
    from modelzoo.core.backends.hbm_backend import HbmBackend
    from modelzoo.core.backends.onnxruntime_backend import OnnxRuntimeBackend

    register(OnnxRuntimeBackend)
    register(HbmBackend)


@hookimpl(trylast=True)
def zoo_select_backend(spec, requested, model_path, backends, cache):
    return choose_backend(spec, requested, model_path, backends, cache)
