"""onnxruntime on the CPU, or CUDA when that provider is installed."""

from __future__ import annotations

from modelzoo.core.backends.backend import Backend
from modelzoo.core.errors import BackendError


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    model_suffixes = (".onnx",)
    package = "onnxruntime"
    install_hint = "pip install onnxruntime"
    auto_priority = 10
    converts_weights = True
    max_batch = 4

    @classmethod
    def default_model(cls, model, cache):
        """The ONNX imported with `zoo fetch MODEL --onnx FILE` (models zoo does not convert), else None."""
        from modelzoo.core.artifacts.onnx_import import imported_onnx

        return imported_onnx(model, cache)

    def __init__(self, model_path, *, threads=None, model=None, **options):
        super().__init__(model_path, threads=threads, model=model, **options)
        import onnxruntime as ort

        session_options = ort.SessionOptions()
        # the graph is a chain: parallelism comes from inside each op
        session_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session_options.log_severity_level = 3  # errors reach the user as one `error:` line instead
        if threads:
            session_options.intra_op_num_threads = int(threads)
            session_options.inter_op_num_threads = 1
        available = ort.get_available_providers()
        self.providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.session = ort.InferenceSession(str(self.model_path), session_options, providers=self.providers)
        except Exception as exc:
            raise BackendError(
                f"onnxruntime cannot load {self.model_path}: {exc}; check that it is a valid ONNX model"
            ) from None
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_shape = tuple(model_input.shape)
        self.output_name = self.session.get_outputs()[0].name
        if model is not None:
            self._check_input_against(model.spec)

    def _check_input_against(self, spec) -> None:
        """Refuse at load a file whose input cannot take the model's preprocessed tensor, so a run over many
        inputs stops once (exit 2) instead of failing every input the same way."""
        wanted, got = tuple(spec.input.shape[1:]), self.input_shape[1:]
        if not got:  # an input declaring no shape (accepted with --force): onnxruntime decides at run time
            return
        if len(wanted) != len(got) or any(
            isinstance(g, int) and isinstance(w, int) and g != w for g, w in zip(got, wanted)
        ):
            raise BackendError(
                f"{self.model_path.name} expects input {list(self.input_shape)}, but {spec.name}'s preprocessing "
                f"gives [N, {', '.join(map(str, wanted))}]; the model file does not match this model"
            )

    def run(self, batch):
        import numpy as np

        batch = np.ascontiguousarray(batch, dtype=np.float32)
        expected = self.input_shape[1:]
        if any(isinstance(e, int) and e != a for e, a in zip(expected, batch.shape[1:])):
            raise BackendError(
                f"{self.model_path.name} expects input {list(self.input_shape)}, got {list(batch.shape)}; "
                "the model file does not match this model's preprocessing"
            )
        # A static batch takes one clip per call; a dynamic one takes a few, since activations
        # grow by tens of MB per clip and batching gains little on a CPU.
        step = 1 if self.input_shape and isinstance(self.input_shape[0], int) else self.max_batch
        outputs = [
            self.session.run([self.output_name], {self.input_name: batch[start : start + step]})[0]
            for start in range(0, len(batch), step)
        ]
        return np.concatenate(outputs, axis=0)

    def describe(self) -> str:
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__} ({self.providers[0]})"
