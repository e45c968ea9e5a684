"""The core's own plugin: the built-in tasks, backends and marches, the two generic forms of labelled
set, and the default backend choice, through the same hooks as any other plugin."""

from __future__ import annotations

from modelzoo.core.backends.backend import choose_backend
from modelzoo.core.contract.hookspecs import HOOKSPEC_VERSION, hookimpl

ZOO_HOOKSPEC_VERSION = HOOKSPEC_VERSION


@hookimpl
def zoo_register_tasks(register):
    from modelzoo.core.tasks.detection import DetectionTask
    from modelzoo.core.tasks.image_classification import ImageClassificationTask
    from modelzoo.core.tasks.video_classification import VideoClassificationTask

    register(VideoClassificationTask())
    register(ImageClassificationTask())
    register(DetectionTask())


@hookimpl
def zoo_register_backends(register):
    from modelzoo.core.backends.hbm_backend import HbmBackend
    from modelzoo.core.backends.onnxruntime_backend import OnnxRuntimeBackend

    register(OnnxRuntimeBackend)
    register(HbmBackend)


@hookimpl
def zoo_register_marches(register):
    from modelzoo.core.board.march_rules import nash_e

    register(nash_e())


@hookimpl
def zoo_register_dataset_formats(register):
    from modelzoo.core.accuracy.generic_formats import ClassFolders, PathLabelCsv

    register(ClassFolders())
    register(PathLabelCsv())


@hookimpl(trylast=True)
def zoo_select_backend(model, requested, model_path, backends, cache):
    return choose_backend(model, requested, model_path, backends, cache)
