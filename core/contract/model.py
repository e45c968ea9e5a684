"""A model is an object: its spec plus the methods that take an input to a result and a checkpoint
to a board. Task base classes (e.g. a video classifier) and family base classes supply defaults,
so a plugin's model is a spec plus what differs."""

from __future__ import annotations

from typing import ClassVar

from modelzoo.core.errors import ConversionError


class Model:
    """Subclass a task's base class (or this), then register instances with `zoo_register_models`."""

    task: ClassVar[str] = ""  # set by a task's base class; must match spec.task

    def __init__(self, spec):
        self.spec = spec

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec.name} ({self.spec.task})>"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def plugin(self) -> str:
        return self.spec.plugin

    # -- from an input to a result -------------------------------------------------
    def preprocess(self, source, options: dict):
        """An opened InputSource -> the float model input [K, *spec.input.shape[1:]]."""
        raise NotImplementedError(f"{type(self).__name__} does not implement preprocess")

    def postprocess(self, output, source, options: dict):
        """The model's first output for the whole batch -> the task's Result."""
        raise NotImplementedError(f"{type(self).__name__} does not implement postprocess")

    def host_image(self, batch):
        """The uint8 RGB images [K,H,W,3] a preprocessed batch came from, for board models that take
        NV12 and normalize inside; None when the model's input is not an image."""
        return None

    # -- from a checkpoint to ONNX ---------------------------------------------------
    def build_onnx(self, state_dict):
        """A state dict of numpy arrays (checkpoint key layout) -> onnx.ModelProto."""
        raise ConversionError(
            f"{self.name} has no converter from a checkpoint; pass an ONNX file with --model FILE.onnx"
        )

    def check_onnx(self, onnx_model) -> None:
        """Refuse an ONNX file that is not this model (ConversionError); the default accepts any."""

    # -- to the board ----------------------------------------------------------------
    def patch_graph(self, onnx_model, march) -> list:
        """Rewrite `onnx_model` in place for `march` (a registered March); returns the changes as text."""
        return [str(change) for change in march.apply_rewrites(onnx_model)]

    def board_input(self) -> dict:
        """hb_compile input_parameters beyond name and shape; the default is a float featuremap
        normalized on the host, so the board takes exactly what `zoo preprocess` writes."""
        return {
            "input_type_rt": "featuremap",
            "input_type_train": "featuremap",
            "norm_type": "no_preprocess",
        }

    def compile_config(self, march, onnx_path, calib_dir, working_dir) -> dict:
        """The hb_compile config dict (ready for YAML) for `march`."""
        from modelzoo.core.board.compile_config import hb_compile_config

        return hb_compile_config(
            self.spec, march.name, onnx_path, calib_dir, working_dir, board_input=self.board_input()
        )

    def calibration_samples(self, tensor) -> list:
        """Split one input's model tensor into hb_compile calibration samples: one per batch row,
        each [1, ...] as the board model takes it."""
        return [tensor[index : index + 1] for index in range(tensor.shape[0])]

    # -- for programs ----------------------------------------------------------------
    def predict(self, input, **options):
        """Run the model on `input` as `zoo run` does; returns a RunResult (`.to_dict()` is `zoo run --json`).

        Keyword options: backend, model_path, weights, threads, config (a zoo.yaml path), and the
        task's options (e.g. top_k, clips). The loaded backend is kept for the next call.
        """
        from modelzoo.core.runner import predict

        return predict(self, input, **options)
