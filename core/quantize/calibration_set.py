"""The calibration set host INT8 is calibrated on: the float32 samples `zoo calib` writes for hb_compile
(one `[1, ...]` .npy each, exactly what `zoo run` feeds the model), or the inputs to make them from.

Its digest is part of the quantized model's cache key, so another set gives another cache entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from modelzoo.core.errors import InputError


@dataclass(frozen=True)
class Sample:
    """One calibration sample: a whole `[1, ...]` (or batch-less) .npy, or one row of a `[K, ...]` one."""

    path: Path
    row: int | None = None
    batched: bool = True  # False: the file holds one sample without the batch axis

    def load(self):
        """The sample as the model takes it: float32 [1, ...]."""
        import numpy as np

        # memory-mapped: one row of a [K, ...] file is read, not the whole file once per row
        array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        if self.row is not None:
            array = array[self.row : self.row + 1]
        elif not self.batched:
            array = array[None]
        return np.array(array, order="C")  # a copy in memory, so the file is not held open

    @property
    def name(self) -> str:
        return self.path.name if self.row is None else f"{self.path.name}[{self.row}]"


@dataclass(frozen=True)
class CalibrationSet:
    """A --calib folder: `kind` is "samples" (.npy files from `zoo calib`) or "inputs" (videos or
    images that are preprocessed into samples when the model is quantized)."""

    directory: Path
    kind: str
    digest: str
    files: tuple
    samples: tuple = ()  # the Samples, for kind "samples"
    count: int = 100  # for kind "inputs": at most this many samples are made

    @property
    def size(self) -> int:
        return len(self.samples) if self.kind == "samples" else min(self.count, len(self.files))

    def to_dict(self) -> dict:
        return {
            "dir": str(self.directory.absolute()),  # the report names it from anywhere
            "kind": self.kind,
            "sha256": self.digest,
            "files": len(self.files),
            **({"samples": len(self.samples)} if self.kind == "samples" else {"max_samples": self.count}),
        }


def open_calibration_set(registry, model, directory, *, count: int = 100) -> CalibrationSet:
    """Check a --calib folder and hash its content; nothing is preprocessed or quantized yet."""
    from modelzoo.core.artifacts.cache import sha256_file
    from modelzoo.core.board.calibration import find_sources
    from modelzoo.core.version import zoo_version

    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(
            f"calibration folder {directory} is not a directory; make one with "
            f"`zoo calib {model.name} --input VIDEOS_OR_IMAGES -o {directory}`"
        )
    arrays = sorted(directory.glob("*.npy"))
    if arrays:
        samples = []
        for path in arrays:
            samples.extend(_samples_of(path, model))
        digest = hashlib.sha256()
        for path in arrays:  # the content decides the calibration, not the file names
            digest.update(sha256_file(path).encode())
        return CalibrationSet(directory, "samples", digest.hexdigest(), tuple(arrays), tuple(samples))
    suffixes = registry.task_of(model).input_suffixes
    if not any(p.is_file() and p.suffix.lower() in suffixes for p in directory.rglob("*")):
        raise InputError(
            f"calibration folder {directory} holds no .npy samples and no inputs {model.name} takes "
            f"({', '.join(sorted(suffixes))}); write samples into it with "
            f"`zoo calib {model.name} --input VIDEOS_OR_IMAGES -o {directory}`"
        )
    sources = find_sources([directory], suffixes)
    described = {
        "model": model.name,
        "count": count,
        "zoo": zoo_version(),  # preprocessing is the zoo's: another version may make other samples
        "inputs": [[str(p.relative_to(directory)), sha256_file(p)] for p in sources],
    }
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()
    return CalibrationSet(directory, "inputs", digest, tuple(sources), count=count)


def _samples_of(path: Path, model) -> list:
    """The samples in one .npy: float32 of the model's input shape, with a batch axis of any size or none."""
    import numpy as np

    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise InputError(f"calibration file {path} is not a readable .npy ({exc})") from None
    expected = tuple(model.spec.input.shape[1:])
    shape = tuple(array.shape)
    fits = array.dtype == np.float32 and (
        _matches(shape, expected) or (len(shape) == len(expected) + 1 and _matches(shape[1:], expected))
    )
    if not fits or array.size == 0:
        dims = ", ".join(map(str, expected))
        raise InputError(
            f"calibration file {path} holds {array.dtype} {list(shape)}, {model.name} takes float32 [1, {dims}]; "
            f"write calibration data with `zoo calib {model.name}`"
        )
    if len(shape) == len(expected):
        return [Sample(path, batched=False)]
    if shape[0] == 1:
        return [Sample(path)]
    return [Sample(path, row) for row in range(shape[0])]


def check_finite(samples, model) -> None:
    """Refuse NaN or infinity: the activation ranges would be NaN, the INT8 model and its report meaningless.
    Done when quantizing, not when a cached model is looked up, since it reads every sample."""
    import numpy as np

    for sample in samples:
        if not np.isfinite(sample.load()).all():
            where = f" (sample {sample.row})" if sample.row is not None else ""
            raise InputError(
                f"calibration file {sample.path}{where} holds NaN or infinite values; calibration needs real "
                f"inputs: write calibration data with `zoo calib {model.name}`"
            )


def _matches(shape: tuple, expected: tuple) -> bool:
    return len(shape) == len(expected) and all(not isinstance(e, int) or e == s for s, e in zip(shape, expected))


@contextlib.contextmanager
def calibration_samples(registry, model, calibration: CalibrationSet, log=None, progress=None):
    """The set's Samples; inputs are preprocessed into a temporary folder first (as `zoo calib` would),
    shown on `progress(label, total)`'s bar when given."""
    if calibration.kind == "samples":
        check_finite(calibration.samples, model)
        yield list(calibration.samples)
        return
    import tempfile

    from modelzoo.core.board.calibration import write_calibration
    from modelzoo.core.quantize.host import progress_bar

    if log:
        log(f"preprocessing {len(calibration.files)} input(s) in {calibration.directory} into calibration samples")
    with tempfile.TemporaryDirectory(prefix="zoo-calib-") as folder:
        with progress_bar(progress, "preprocessing", calibration.size) as bar:
            report = write_calibration(
                registry, model, list(calibration.files), folder, count=calibration.count,
                on_source=lambda _source, _error: bar.update(1),
            )  # fmt: skip
        for source, reason in report.skipped:
            if log:
                log(f"skipped {source}: {reason}")
        yield [Sample(path) for path in report.written]
