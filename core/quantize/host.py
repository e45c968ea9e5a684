"""Static INT8 quantization of a model's fp32 ONNX with onnxruntime, cached in the artifact cache.

The recipe, chosen by measurement with onnxruntime 1.32 on this project's 2-core AVX2 host (AMD EPYC,
no VNNI) with a random-weight 3-D video classifier (README, "INT8 on the host, and accuracy"):

- onnxruntime's pre-processing first (`quant_pre_process`: symbolic shape inference, which needs
  sympy, and graph optimisation), so the quantizer sees fused, fully shaped nodes;
- QDQ format; weights int8, symmetric, one scale per output channel;
- activations uint8 (asymmetric): onnxruntime's x86 kernels are u8s8. With int8 activations (the
  quantizer's default, per-channel or not) onnxruntime fused only 8 of the video classifier's 20 3-D convolutions
  into QLinearConv, 12 stayed float between DequantizeLinear/QuantizeLinear, and it ran 1.2-1.3x fp32;
  with uint8 all fuse and the residual Adds become QLinearAdd;
- 3-D convolutions on at most 4 input channels (a video model's stem) stay fp32: QLinearConv took
  127 ms there against the fp32 Conv's 55 ms on one core; the whole model went from 1.5x to 1.95x fp32
  (2 threads). 2-D stems are faster in INT8 (a 2-D image classifier's: 2.3 against 2.8 ms) and are quantized;
- no reduce_range: 7-bit weights lowered the logits cosine (0.99965 against 0.99986 at 8 bits);
- the float tail: the nodes after a model's last weighted layer (Conv, Gemm, MatMul) stay fp32. They
  only activate, rearrange and decode; in INT8 one scale would span values of different ranges, e.g. a
  detector's box pixels (0..640) and its class scores (0..1) concatenated into one output, where the
  scores all rounded to 0 and `--precision int8` found nothing;
- calibration minmax by default: on 32 synthetic clips, compared on 16 others, entropy and percentile
  gave the same logits cosine (0.99986) and Top-1 agreement and calibrate 3-5x slower; both are there
  (`--method`) for real data with outliers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from modelzoo.core.errors import ZooError

RECIPE = 2  # bump when the recipe changes, so models made by the old one are not reused
METHODS = ("minmax", "entropy", "percentile")
DEFAULT_METHOD = "minmax"
NODE_SAMPLES = 2  # samples the per-node comparison keeps every activation of (two models' worth)


class QuantizationError(ZooError):
    """No INT8 model is cached for this fp32 file and none can be made, or onnxruntime failed to make one."""


@dataclass(frozen=True)
class QuantizeSettings:
    """Everything besides the fp32 file and the calibration set that decides the INT8 model."""

    method: str = DEFAULT_METHOD
    activation_type: str = "uint8"
    weight_type: str = "int8"
    per_channel: bool = True
    reduce_range: bool = False
    thin_3d_convs_fp32: bool = True  # see thin_3d_convs
    float_tail: bool = True  # see float_tail_nodes
    quant_format: str = "qdq"
    recipe: int = RECIPE

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Quantized:
    """The outcome of `quantize`: the cached INT8 file, its report (None when not asked for) and what was done now."""

    path: Path
    fp32_path: Path
    fp32_sha256: str
    key: str
    settings: QuantizeSettings
    report: dict | None
    quantized_now: bool
    reported_now: bool


def cache_key(fp32_sha256: str, calibration_digest: str, settings: QuantizeSettings) -> str:
    described = {"fp32": fp32_sha256, "calibration": calibration_digest, "settings": settings.to_dict()}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def int8_filename(model_name: str, key: str) -> str:
    return f"{model_name}-int8-{key[:16]}.onnx"


def report_filename(model_name: str, key: str) -> str:
    return f"{model_name}-int8-{key[:16]}.report.json"


def cached_int8_models(cache, model_name: str, fp32_sha256: str, *, damaged: bool = False) -> list:
    """Every cached INT8 model made from this fp32 file (any calibration set or settings), oldest first;
    with `damaged`, the ones whose file no longer matches its manifest instead."""
    folder = cache.derived_path(model_name, fp32_sha256, "x").parent
    found = []
    for path in sorted(folder.glob(f"{model_name}-int8-*.onnx")) if folder.is_dir() else []:
        entry = cache.find_derived(model_name, fp32_sha256, path.name)
        if entry is not None and bool(getattr(entry, "damage", "")) == damaged:
            found.append(entry)
    return sorted(found, key=_age)


def _age(entry) -> tuple:
    """How new a cached entry is: its creation (to the second), then its file's mtime."""
    try:
        return entry.created, entry.path.stat().st_mtime
    except OSError:
        return entry.created, 0.0


def quantize(
    registry, model, cache, fp32_path, calibration, settings: QuantizeSettings | None = None, *,
    report: bool = True, node_samples: int = NODE_SAMPLES, log=None, progress=None,
) -> Quantized:  # fmt: skip
    """The INT8 model of `fp32_path` calibrated on `calibration` (a CalibrationSet), from the cache when
    it is there; with `report`, also the fp32-vs-INT8 report (cached beside it).

    A file lock makes a second process wait for the first one's work and reuse it.
    `progress(label, total)` may return a context manager with `update(n)`, shown while samples run.
    """
    from filelock import FileLock

    from modelzoo.core.artifacts.cache import sha256_file
    from modelzoo.core.atomic import held

    settings = settings or QuantizeSettings()
    fp32_path = Path(fp32_path)
    fp32_sha = sha256_file(fp32_path)
    key = cache_key(fp32_sha, calibration.digest, settings)
    name = model.name

    def cached():
        hit = _intact(cache, cache.find_derived(name, fp32_sha, int8_filename(name, key)), log)
        found = _read_report(cache, name, fp32_sha, key) if report and hit is not None else None
        if found is not None and found.get("node_samples_requested") != node_samples:
            found = None
        done = hit is not None and (not report or found is not None)
        return hit, found, done

    hit, found, done = cached()
    if done:
        return Quantized(hit.path, fp32_path, fp32_sha, key, settings, found, False, False)
    target = cache.derived_path(name, fp32_sha, int8_filename(name, key))
    target.parent.mkdir(parents=True, exist_ok=True)
    with held(FileLock(str(target.with_name(f".{target.name}.lock"))), "quantizing the same model", log):
        hit, found, done = cached()  # the process we waited for may have made it
        if done:
            return Quantized(hit.path, fp32_path, fp32_sha, key, settings, found, False, False)
        return _quantize_now(registry, model, cache, fp32_path, fp32_sha, key, calibration, settings, hit, report,
                             node_samples, log, progress)  # fmt: skip


def _quantize_now(
    registry, model, cache, fp32_path, fp32_sha, key, calibration, settings, hit, report, node_samples, log, progress
) -> Quantized:  # fmt: skip
    import tempfile

    from modelzoo.core.quantize.calibration_set import calibration_samples

    name = model.name
    quantized_now = hit is None
    with (
        tempfile.TemporaryDirectory(prefix="zoo-quantize-") as workdir,
        calibration_samples(registry, model, calibration, log=log, progress=progress) as samples,
    ):
        workdir = Path(workdir)
        started = time.perf_counter()
        if hit is None:
            if log:
                log(
                    f"quantizing {fp32_path.name} to INT8 ({settings.method} calibration on {len(samples)} sample(s); "
                    "once: cached by model, calibration set and settings)"
                )
            _need_samples(samples)
        # the quantizer and the per-node table both need its node names
        preprocessed = preprocess_onnx(fp32_path, workdir / "preprocessed.onnx", log=log)
        kept_fp32, tail = fp32_nodes(preprocessed, settings)
        if hit is None:
            made = workdir / "int8.onnx"
            quantize_preprocessed(fp32_path, preprocessed, samples, settings, made, kept_fp32, tail, log=log,
                                  progress=progress)  # fmt: skip
            hit = cache.add_derived(name, fp32_sha, int8_filename(name, key), lambda h: _copy_into(made, h))
        quantize_seconds = time.perf_counter() - started
        if not report:
            return Quantized(hit.path, fp32_path, fp32_sha, key, settings, None, quantized_now, False)
        from modelzoo.core.quantize.report import quantization_report

        if log:
            log(
                f"comparing fp32 and INT8 on {len(samples)} calibration sample(s); per node on the first "
                f"{min(node_samples, len(samples))}"
            )
        made_report = quantization_report(
            fp32_path, hit.path, preprocessed, samples, workdir, node_samples=node_samples, progress=progress
        )
    made_report.update(
        {
            "model": name,
            "fp32_file": str(fp32_path),
            "fp32_sha256": fp32_sha,
            "int8_file": str(hit.path),
            "settings": settings.to_dict(),
            "calibration": calibration.to_dict(),
            "kept_fp32_nodes": kept_fp32,
            "float_tail_nodes": tail,
            "node_samples_requested": node_samples,
            "quantize_seconds": round(quantize_seconds, 3) if quantized_now else None,
            "onnxruntime": _ort_version(),
        }
    )
    payload = json.dumps(made_report, indent=2).encode() + b"\n"
    cache.add_derived(name, fp32_sha, report_filename(name, key), lambda handle: handle.write(payload))
    return Quantized(hit.path, fp32_path, fp32_sha, key, settings, made_report, quantized_now, True)


def _intact(cache, entry, log):
    """A cached entry, or None when it is missing or damaged (then it is set aside, to be made again)."""
    if entry is None or not getattr(entry, "damage", ""):
        return entry
    if log:
        log(f"warning: the cached {entry.path.name} is damaged ({entry.damage}); making it again")
    cache.set_aside(entry).unlink(missing_ok=True)
    return None


def quantized_model_file(registry, model, config, cache, fp32_path, log=None) -> Path:
    """What `--precision int8` runs: the cached INT8 model of `fp32_path`. With `calib: DIR` in zoo.yaml's
    section for the model, that set's model (quantized now if it is not cached); otherwise the newest
    cached one, made by `zoo quantize`. Without either, a QuantizationError says how to make one."""
    from modelzoo.core.artifacts.cache import sha256_file

    folder = configured_calibration_dir(config, model.name)
    if folder is not None:
        from modelzoo.core.quantize.calibration_set import open_calibration_set

        calibration = open_calibration_set(registry, model, folder)
        return quantize(registry, model, cache, fp32_path, calibration, report=False, log=log).path
    fp32_sha = sha256_file(fp32_path)
    made = cached_int8_models(cache, model.name, fp32_sha)
    damaged = cached_int8_models(cache, model.name, fp32_sha, damaged=True)
    in_cache = Path(cache.root).resolve() in Path(fp32_path).resolve().parents
    source = "" if in_cache else f" --model {fp32_path}"
    newer_damaged = [e for e in damaged if not made or _age(e) > _age(made[-1])]
    if newer_damaged:
        # a damaged file must not pass for "none yet", nor an older model silently stand in for it
        entry = newer_damaged[-1]
        remake = _remake_command(model.name, source, entry.path)
        if not made:
            raise QuantizationError(
                f"the cached INT8 model of {model.name} for {Path(fp32_path).name}, {entry.path.name}, is damaged "
                f"({entry.damage}); make it again with `{remake}`"
            )
        if log:
            log(
                f"warning: the newest cached INT8 model, {entry.path.name}, is damaged ({entry.damage}); running "
                f"the older {made[-1].path.name} (make the newest again with `{remake}`)"
            )
    if made:
        return made[-1].path
    raise QuantizationError(
        f"no INT8 model of {model.name} for {Path(fp32_path).name} yet: make calibration data from inputs like "
        f"the deployment data with `zoo calib {model.name} --input VIDEOS_OR_IMAGES -o calib`, then run "
        f"`zoo quantize {model.name}{source} --calib calib` (or set `calib: DIR` under models.{model.name} in "
        "zoo.yaml to quantize on first use)"
    )


def _remake_command(model_name: str, source: str, int8_path: Path) -> str:
    """The `zoo quantize` command that made `int8_path`, from the report cached beside it when it is readable."""
    calib, method = "DIR", DEFAULT_METHOD
    try:
        made = json.loads(int8_path.with_name(int8_path.name[: -len(".onnx")] + ".report.json").read_text("utf-8"))
        calib = str(made["calibration"]["dir"])
        method = str(made["settings"]["method"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    extra = "" if method == DEFAULT_METHOD else f" --method {method}"
    return f"zoo quantize {model_name}{source} --calib {calib}{extra}"


def configured_calibration_dir(config, model_name: str) -> Path | None:
    """zoo.yaml's `calib: DIR` for the model; a relative DIR is relative to that zoo.yaml."""
    configured = config.model(model_name).options.get("calib")
    if not configured:
        return None
    folder = Path(str(configured)).expanduser()
    if not folder.is_absolute() and config.path is not None:
        folder = Path(config.path).parent / folder
    return folder


def preprocess_onnx(fp32_path: Path, target: Path, log=None) -> Path:
    """onnxruntime's quantization pre-processing (symbolic shape inference only when sympy is installed)
    into `target`, every node named: the quantizer excludes nodes, and the report lists them, by name."""
    import importlib.util

    from onnxruntime.quantization.shape_inference import quant_pre_process

    symbolic = importlib.util.find_spec("sympy") is not None
    if not symbolic and log:
        log("note: sympy is not installed: quantization pre-processing skips symbolic shape inference")
    try:
        with quiet():
            quant_pre_process(str(fp32_path), str(target), skip_symbolic_shape=not symbolic)
    except Exception as exc:  # an exotic graph: quantizing the model as it is still works
        if log:
            log(f"note: onnxruntime's quantization pre-processing failed ({exc}); quantizing the model as it is")
        _copy_file(fp32_path, target)
    name_nodes(target)
    return Path(target)


def name_nodes(onnx_path) -> None:
    """Give every unnamed node a unique name (`<op>_<index>`), in place; named nodes keep theirs."""
    import onnx

    model = onnx.load(str(onnx_path))
    nodes = model.graph.node
    if all(node.name for node in nodes):
        return
    taken = {node.name for node in nodes}
    for index, node in enumerate(nodes):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)
    onnx.save(model, str(onnx_path))


def quantize_onnx(fp32_path, samples: list, settings: QuantizeSettings, target, preprocessed, log=None, progress=None):
    """Pre-process `fp32_path` into `preprocessed`, then quantize it statically into `target`."""
    _need_samples(samples)
    preprocess_onnx(Path(fp32_path), Path(preprocessed), log=log)
    kept_fp32, tail = fp32_nodes(preprocessed, settings)
    return quantize_preprocessed(fp32_path, preprocessed, samples, settings, target, kept_fp32, tail, log=log,
                                 progress=progress)  # fmt: skip


def _need_samples(samples: list) -> None:
    if not samples:
        raise QuantizationError("the calibration set holds no sample; write one with `zoo calib`")


def fp32_nodes(preprocessed, settings: QuantizeSettings) -> tuple:
    """(the thin 3-D convolutions, the nodes after the last weighted layer) of the pre-processed model that
    `settings` keep in fp32: what the quantizer excludes and the report lists."""
    kept_fp32 = thin_3d_convs(preprocessed) if settings.thin_3d_convs_fp32 else []
    tail = float_tail_nodes(preprocessed) if settings.float_tail else []
    return kept_fp32, tail


def quantize_preprocessed(
    fp32_path, preprocessed, samples: list, settings: QuantizeSettings, target, kept_fp32: list, tail: list, *,
    log=None, progress=None,
):  # fmt: skip
    """Quantize the pre-processed model statically into `target`, keeping `kept_fp32` and `tail` in fp32."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    input_name = _input_name(preprocessed)
    if kept_fp32 and log:
        log(
            f"keeping {len(kept_fp32)} 3-D convolution(s) on few channels in fp32 (faster there): {', '.join(kept_fp32)}"
        )
    if tail and log:
        log(f"keeping the {len(tail)} node(s) after the last weighted layer in fp32: {', '.join(tail)}")
    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    with progress_bar(progress, "calibration", len(samples)) as bar:
        reader = SampleReader(input_name, samples, on_sample=lambda: bar.update(1))
        try:
            with quiet():
                quantize_static(
                    str(preprocessed),
                    str(target),
                    reader,
                    quant_format=QuantFormat.QDQ,
                    per_channel=settings.per_channel,
                    reduce_range=settings.reduce_range,
                    activation_type=types[settings.activation_type],
                    weight_type=types[settings.weight_type],
                    calibrate_method=methods[settings.method],
                    nodes_to_exclude=[*kept_fp32, *tail],
                    # Histogram methods keep every activation of the samples they are given at once:
                    # calibrating a few at a time bounds memory, with the same ranges.
                    extra_options={"CalibStridedMinMax": _stride(len(samples))},
                )
        except ZooError:
            raise
        except Exception as exc:
            raise QuantizationError(
                f"onnxruntime {ort.__version__} could not quantize {Path(fp32_path).name}: {exc}"
            ) from None
    return Path(target)


def thin_3d_convs(onnx_path, most_channels: int = 4) -> list:
    """Names of the 3-D convolutions that read at most `most_channels` channels per group (a video
    model's stem). onnxruntime's QLinearConv is slower there than the fp32 Conv (a video classifier's stem, 3 input
    channels, 3x7x7: 127 ms against 55 ms on one core), so they stay fp32; 2-D ones are faster in INT8."""
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    return [
        node.name
        for node in graph.node
        if node.op_type == "Conv"
        and node.name
        and len(node.input) > 1
        and len(shapes.get(node.input[1], ())) == 5
        and shapes[node.input[1]][1] <= most_channels
    ]


WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})


def float_tail_nodes(onnx_path) -> list:
    """Names of the nodes no weighted layer (Conv, ConvTranspose, Gemm, MatMul) reads from, directly or
    through other nodes: what follows a model's last weighted layer on the way to its outputs. Empty for
    a classifier ending in Gemm; a detector's decode (sigmoid, box arithmetic, the final concat) otherwise."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    readers: dict = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    feeds_weighted: dict = {}
    for index in range(len(graph.node) - 1, -1, -1):  # ONNX graphs are topologically sorted
        node = graph.node[index]
        feeds_weighted[id(node)] = any(
            reader.op_type in WEIGHTED_OPS or feeds_weighted.get(id(reader), False)
            for name in node.output
            for reader in readers.get(name, [])
        )
    return [
        node.name
        for node in graph.node
        if node.op_type not in WEIGHTED_OPS and not feeds_weighted[id(node)] and node.name
    ]


class SampleReader:
    """onnxruntime's CalibrationDataReader over Samples, loading one at a time; `set_range` for strided calibration."""

    def __init__(self, input_name: str, samples: list, on_sample=None):
        self.input_name = input_name
        self.samples = list(samples)
        self.on_sample = on_sample
        self.position, self.end = 0, len(self.samples)

    def get_next(self):
        if self.position >= self.end:
            return None
        sample = self.samples[self.position]
        self.position += 1
        data = {self.input_name: sample.load()}
        if self.on_sample:
            self.on_sample()
        return data

    def __iter__(self):
        return self

    def __next__(self):
        data = self.get_next()
        if data is None:
            raise StopIteration
        return data

    def __len__(self) -> int:
        return len(self.samples)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.position, self.end = start_index, min(end_index, len(self.samples))


def _stride(count: int, most: int = 4) -> int:
    """The largest chunk of at most `most` samples that divides `count` (onnxruntime requires it)."""
    return next(size for size in range(min(most, count), 0, -1) if count % size == 0)


def _read_report(cache, name: str, fp32_sha: str, key: str) -> dict | None:
    entry = cache.find_derived(name, fp32_sha, report_filename(name, key))
    if entry is None or getattr(entry, "damage", ""):  # a changed report is made again, not shown as measured
        return None
    try:
        return json.loads(entry.path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _input_name(onnx_path) -> str:
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise QuantizationError(f"{Path(onnx_path).name} has {len(inputs)} inputs; zoo quantizes single-input models")
    return inputs[0]


def _copy_into(path: Path, handle) -> None:
    import shutil

    with open(path, "rb") as source:
        shutil.copyfileobj(source, handle)


def _copy_file(source, target) -> None:
    import shutil

    shutil.copyfile(source, target)


def _ort_version() -> str:
    import onnxruntime as ort

    return ort.__version__


@contextlib.contextmanager
def progress_bar(progress, label: str, total: int):
    """`progress(label, total)`'s bar, or one that shows nothing when `progress` is None."""
    if progress is None:

        class _Silent:
            def update(self, _steps: int) -> None:
                pass

        yield _Silent()
        return
    with progress(label, total) as bar:
        yield bar


@contextlib.contextmanager
def quiet():
    """onnxruntime's quantizer prints progress to stdout and logs warnings from the sessions it makes:
    stdout stays for the command's own output (--json)."""
    import io
    import logging

    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)
