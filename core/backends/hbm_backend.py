"""The RDK S100 board: `.hbm` models through hbm_runtime.HB_HBMRuntime.

hbm_runtime ships with the board image; on a host it is missing, or its import raises
RuntimeError because the board libraries are absent. Both mean "no board here".
Model, input and output names come from the runtime's metadata, never from assumptions.
"""

from __future__ import annotations

from modelzoo.core.backends.backend import Backend
from modelzoo.core.errors import BackendError

BOARD_PACKAGE_HINT = (
    "hbm_runtime comes with the RDK S100 system image (its aarch64 wheel needs the board's "
    "libhbucp.so and libdnn.so); run .hbm models on the board, and the ONNX model with --backend onnxruntime elsewhere"
)
_QUANTIZED_DTYPES = {"S8", "U8", "S16", "U16", "S32", "U32"}


def _name(value) -> str:
    """Runtime enums (dtype, quant type) expose `.name`; accept plain strings too."""
    return str(getattr(value, "name", value)).rsplit(".", 1)[-1].upper()


def _import_runtime():
    """The hbm_runtime module, or (None, reason) when it cannot be used here."""
    try:
        import hbm_runtime
    except ImportError as exc:
        return None, f"hbm_runtime is not installed ({exc})"
    except RuntimeError as exc:  # installed, but the board libraries are missing
        return None, f"hbm_runtime is installed but cannot load the board libraries ({exc})"
    return hbm_runtime, None


def dequantize(array, quant, dtype):
    """`(q - zero_point) * scale` for S8/S32-style outputs whose quant type is SCALE, per tensor or along `axis`."""
    import numpy as np

    if quant is None or _name(dtype) not in _QUANTIZED_DTYPES or _name(getattr(quant, "quant_type", None)) != "SCALE":
        return np.asarray(array)
    scale = np.asarray(quant.scale, dtype=np.float32).reshape(-1)
    zero_point = np.asarray(getattr(quant, "zero_point", 0), dtype=np.float32).reshape(-1)
    values = np.asarray(array).astype(np.float32)
    if scale.size == 1:
        return (values - zero_point[0]) * scale[0]
    axis = int(getattr(quant, "axis", -1))
    axis = axis + values.ndim if axis < 0 else axis
    shape = [1] * values.ndim
    shape[axis] = scale.size
    if zero_point.size == 1:
        zero_point = np.full(scale.size, zero_point[0], np.float32)
    return (values - zero_point.reshape(shape)) * scale.reshape(shape)


class HbmBackend(Backend):
    name = "hbm"
    model_suffixes = (".hbm",)
    package = "hbm_runtime"
    install_hint = BOARD_PACKAGE_HINT
    auto_priority = 20  # on the board the BPU beats the CPU
    options = ("priority", "bpu_cores")

    @classmethod
    def can_load(cls) -> bool:
        return cls.is_available() and _import_runtime()[0] is not None

    @classmethod
    def unavailable_message(cls) -> str:
        _, reason = _import_runtime()
        return f"backend 'hbm' is not available here: {reason or 'hbm_runtime is not installed'}; {BOARD_PACKAGE_HINT}"

    @classmethod
    def default_model(cls, spec, cache):
        """The prebuilt .hbm, once `zoo fetch` has put it in the cache."""
        cached = cache.find(spec.name, "hbm") if cache is not None else None
        return cached.path if cached is not None else None

    def __init__(self, model_path, *, threads=None, priority=None, bpu_cores=None, **options):
        super().__init__(model_path, threads=threads, **options)
        runtime_module, reason = _import_runtime()
        if runtime_module is None:
            raise BackendError(f"backend 'hbm' is not available here: {reason}; {BOARD_PACKAGE_HINT}")
        try:
            self.runtime = runtime_module.HB_HBMRuntime(str(self.model_path))
        except Exception as exc:
            raise BackendError(
                f"hbm_runtime cannot load {self.model_path}: {exc}; check that it is an .hbm for this board"
            ) from None
        names = list(self.runtime.model_names)
        if len(names) != 1:
            raise BackendError(
                f"{self.model_path.name} holds {len(names)} models ({', '.join(names)}); zoo runs single-model .hbm files"
            )
        self.model_name = names[0]
        inputs = list(self.runtime.input_names[self.model_name])
        if len(inputs) != 1:
            raise BackendError(
                f"{self.model_path.name} has {len(inputs)} inputs ({', '.join(inputs)}); this model takes one clip tensor"
            )
        self.input_name = inputs[0]
        self.input_shape = tuple(int(d) for d in self.runtime.input_shapes[self.model_name][self.input_name])
        self.input_dtype = _name(self.runtime.input_dtypes[self.model_name][self.input_name])
        # The enum's spelling is not documented (F32, FLOAT32, ...): refuse only what is clearly not a float tensor.
        if self.input_dtype in _QUANTIZED_DTYPES or self.input_dtype.startswith(("INT", "UINT", "NV12", "Y", "UV")):
            raise BackendError(
                f"{self.model_path.name} takes {self.input_dtype} input, but zoo feeds the float32 clip it preprocesses; "
                "compile with input_type_rt featuremap and norm_type no_preprocess (see `zoo compile`)"
            )
        # The first output is the logits: single-output classifiers are what the zoo compiles.
        self.output_name = list(self.runtime.output_names[self.model_name])[0]
        self.output_dtype = self.runtime.output_dtypes[self.model_name][self.output_name]
        self.output_quant = (
            (getattr(self.runtime, "output_quants", None) or {}).get(self.model_name, {}).get(self.output_name)
        )
        self.run_options = {}
        if priority is not None:
            self.run_options["priority"] = int(priority)
        if bpu_cores is not None:
            self.run_options["bpu_cores"] = [int(c) for c in bpu_cores]

    def run(self, batch):
        """One inference per clip: the board model's batch is fixed (1 for the published .hbm)."""
        import numpy as np

        batch = np.ascontiguousarray(batch, dtype=np.float32)
        per_call = self.input_shape[0] if self.input_shape else 1
        if tuple(batch.shape[1:]) != self.input_shape[1:] or per_call < 1 or batch.shape[0] % per_call:
            raise BackendError(
                f"{self.model_path.name} expects input {list(self.input_shape)}, got {list(batch.shape)}; "
                "the .hbm does not match this model's preprocessing"
            )
        outputs = []
        for start in range(0, batch.shape[0], per_call):
            feed = {self.model_name: {self.input_name: batch[start : start + per_call]}}
            try:
                result = self.runtime.run(feed, **self.run_options)
            except ValueError as exc:
                raise BackendError(f"hbm_runtime rejected the input for {self.model_path.name}: {exc}") from None
            raw = result[self.model_name][self.output_name]
            logits = dequantize(raw, self.output_quant, self.output_dtype)
            outputs.append(logits.reshape(per_call, -1).astype(np.float32, copy=False))
        return np.concatenate(outputs, axis=0)

    def describe(self) -> str:
        version = ""
        try:
            version = f" {self.runtime.version()}"
        except Exception:  # version() is informative only
            pass
        return f"hbm_runtime{version} ({self.model_name} on the BPU)"
