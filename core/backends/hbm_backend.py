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
    def default_model(cls, model, cache):
        """The prebuilt .hbm, once `zoo fetch` has put it in the cache."""
        cached = cache.find(model.name, "hbm") if cache is not None else None
        return cached.path if cached is not None else None

    def __init__(self, model_path, *, threads=None, model=None, priority=None, bpu_cores=None, **options):
        super().__init__(model_path, threads=threads, model=model, **options)
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
        shapes = {name: tuple(int(d) for d in self.runtime.input_shapes[self.model_name][name]) for name in inputs}
        dtypes = {name: _name(self.runtime.input_dtypes[self.model_name][name]) for name in inputs}
        self.nv12 = _nv12_pair(inputs, shapes, dtypes)  # (y name, uv name) when the model takes NV12
        if self.nv12 is not None:
            if model is None or model.host_image(_probe_batch(model)) is None:
                raise BackendError(
                    f"{self.model_path.name} takes NV12 images, but {getattr(model, 'name', 'this model')} does not "
                    "preprocess images; compile it with input_type_rt featuremap (see `zoo compile`)"
                )
            y_shape = shapes[self.nv12[0]]
            self.input_shape = (y_shape[0], 3, y_shape[1], y_shape[2])  # what the host batch must look like
        else:
            if len(inputs) != 1:
                raise BackendError(
                    f"{self.model_path.name} has {len(inputs)} inputs ({', '.join(inputs)}); zoo feeds one tensor "
                    "or an NV12 pair (y, uv)"
                )
            self.input_name = inputs[0]
            self.input_shape = shapes[self.input_name]
            self.input_dtype = dtypes[self.input_name]
            # The enum's spelling is not documented (F32, FLOAT32, ...): refuse only what is clearly not a float tensor.
            if self.input_dtype in _QUANTIZED_DTYPES or self.input_dtype.startswith(("INT", "UINT", "NV12", "Y", "UV")):
                raise BackendError(
                    f"{self.model_path.name} takes {self.input_dtype} input, but zoo feeds the float32 tensor it "
                    "preprocesses; compile with input_type_rt featuremap and norm_type no_preprocess (see `zoo compile`)"
                )
        if any(d < 1 for d in self.input_shape):
            raise BackendError(
                f"{self.model_path.name} declares input {list(self.input_shape)}; zoo runs board models "
                "with a fixed input shape (compile with a static input_shape, see `zoo compile`)"
            )
        outputs = list(self.runtime.output_names[self.model_name])
        if not outputs:
            raise BackendError(f"{self.model_path.name} declares no outputs; check that it is an .hbm for this board")
        out_shapes = {
            name: tuple(int(d) for d in self.runtime.output_shapes[self.model_name][name]) for name in outputs
        }
        # The first output is the model's result when it has the spec's shape (extra outputs are ignored);
        # otherwise the model reads them all (e.g. a detector's split head) or the file is refused here.
        self.output_reader = _output_reader(model, self.model_path.name, out_shapes)
        self.output_names = [outputs[0]] if self.output_reader is None else outputs
        self.output_name = outputs[0]
        quants = (getattr(self.runtime, "output_quants", None) or {}).get(self.model_name, {})
        dtypes = self.runtime.output_dtypes[self.model_name]
        self.output_dtype = {name: dtypes[name] for name in self.output_names}
        self.output_quant = {name: quants.get(name) for name in self.output_names}
        # hbm_runtime takes scheduling as dicts keyed by model name, never bare values (docs/board.md).
        self.run_options = {}
        if priority is not None:
            self.run_options["priority"] = {self.model_name: int(priority)}
        if bpu_cores is not None:
            self.run_options["bpu_cores"] = {self.model_name: [int(c) for c in bpu_cores]}
        setter = getattr(self.runtime, "set_scheduling_params", None)
        if self.run_options and callable(setter):
            try:
                setter(**self.run_options)
            except (TypeError, ValueError) as exc:
                raise BackendError(f"hbm_runtime refused the scheduling options {self.run_options}: {exc}") from None
            self.run_options = {}  # set once for the whole run

    def _feeds(self, chunk) -> dict:
        if self.nv12 is None:
            return {self.input_name: chunk}
        from modelzoo.core.backends.nv12 import rgb_to_nv12

        images = self.model.host_image(chunk)
        pairs = [rgb_to_nv12(image) for image in images]
        import numpy as np

        return {self.nv12[0]: np.stack([y for y, _ in pairs]), self.nv12[1]: np.stack([uv for _, uv in pairs])}

    def run(self, batch):
        """One inference per input row: the board model's batch is fixed (1 for the published .hbm)."""
        import numpy as np

        batch = np.ascontiguousarray(batch, dtype=np.float32)
        per_call = self.input_shape[0] if self.input_shape else 1
        if tuple(batch.shape[1:]) != self.input_shape[1:] or per_call < 1 or batch.shape[0] % per_call:
            raise BackendError(
                f"{self.model_path.name} expects input {list(self.input_shape)}, got {list(batch.shape)}; "
                "the .hbm does not match this model's preprocessing"
            )
        outputs = []
        # Board models often give scores as [1, C, 1, 1] (D-Robotics' video sample's binding accepts any output
        # that squeezes to the class count): size-1 axes beyond the spec's output rank are dropped.
        rank = len(self.model.spec.output.shape) if self.model is not None else None
        for start in range(0, batch.shape[0], per_call):
            feed = {self.model_name: self._feeds(batch[start : start + per_call])}
            try:
                result = self.runtime.run(feed, **self.run_options)
            except (TypeError, ValueError) as exc:
                raise BackendError(f"hbm_runtime rejected the input for {self.model_path.name}: {exc}") from None
            # dequantized before reshaping: the quant axis is the raw tensor's
            values = {
                name: dequantize(result[self.model_name][name], self.output_quant[name], self.output_dtype[name])
                for name in self.output_names
            }
            if self.output_reader is not None:
                values = np.asarray(self.output_reader(values))
            else:
                values = values[self.output_names[0]]
                values = values.reshape(per_call, *values.shape[1:])
                if rank is not None and values.ndim > rank:
                    kept = [d for d in values.shape[1:] if d != 1]
                    if len(kept) == rank - 1:
                        values = values.reshape(per_call, *kept)
            outputs.append(values.astype(np.float32, copy=False))
        return np.concatenate(outputs, axis=0)

    def describe(self) -> str:
        # `version` is documented as a read-only string attribute; one stub declares a static method.
        version = getattr(self.runtime, "version", None) or getattr(type(self.runtime), "version", None)
        if callable(version):
            try:
                version = version()
            except Exception:  # informative only
                version = None
        return f"hbm_runtime{' ' + str(version) if version else ''} ({self.model_name} on the BPU)"


def _nv12_pair(inputs: list, shapes: dict, dtypes: dict):
    """(y name, uv name) when the inputs are an NV12 image as two uint8 tensors, y [N,H,W,1] and
    uv [N,H/2,W/2,2] (how hbm_runtime shows a model compiled with input_type_rt nv12), else None."""
    if len(inputs) != 2 or any(dtypes[name] not in ("U8", "UINT8") for name in inputs):
        return None
    by_channels = {shapes[name][-1]: name for name in inputs if len(shapes[name]) == 4}
    if set(by_channels) != {1, 2}:
        return None
    y, uv = by_channels[1], by_channels[2]
    (n, h, w, _), uv_shape = shapes[y], shapes[uv]
    if uv_shape[:3] != (n, h // 2, w // 2):
        return None
    return y, uv


def _output_reader(model, where: str, shapes: dict):
    """None when the first output is the spec's output (size-1 axes aside, as board models give scores as
    [1, C, 1, 1]); else the model's reader for all the outputs, or a BackendError saying what differs."""
    if model is None:
        return None
    wanted = model.spec.output.shape[1:]

    def matches(dims) -> bool:
        return len(dims) == len(wanted) and all(isinstance(w, str) or w == d for w, d in zip(wanted, dims))

    first = next(iter(shapes.values()))[1:]
    if matches(first) or matches([d for d in first if d != 1]):
        return None
    reader = getattr(model, "board_output_reader", None)
    if reader is not None:
        return reader(shapes, where)
    found = ", ".join(f"{name} {list(shape)}" for name, shape in shapes.items())
    raise BackendError(
        f"{where} gives {found}; {model.name} reads one output {[1, *model.spec.output.shape[1:]]}: "
        "the .hbm was not compiled from this model's ONNX"
    )


def _probe_batch(model):
    """A zero batch of the model's input, to ask whether it knows the images it came from."""
    import numpy as np

    shape = [1 if isinstance(d, str) else int(d) for d in model.spec.input.shape]
    shape[0] = 1
    return np.zeros(shape, np.float32)
