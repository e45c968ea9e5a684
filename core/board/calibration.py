"""Calibration data for hb_compile: one float32 .npy per sample, exactly the tensor `zoo run` feeds the
ONNX model (on the S100 the calibration set is the float model's own input, normalized: docs/board.md).

The board model takes one sample per inference (batch 1), and hb_compile reads each .npy as one
sample of that shape. A model splits its [K,...] tensor into samples (`Model.calibration_samples`):
by default K files `<input>_clip<k>.npy`, each bitwise one row of it; with one row the file is
`<input>.npy`, equal to the whole of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modelzoo.core.errors import InputError, ZooError


@dataclass
class CalibrationReport:
    out_dir: Path
    written: list = field(default_factory=list)  # Paths of the .npy files
    skipped: list = field(default_factory=list)  # (source path, reason)
    sources_used: int = 0
    count: int = 0
    stale: list = field(default_factory=list)  # other .npy files already in out_dir

    def to_dict(self) -> dict:
        return {
            "out_dir": str(self.out_dir),
            "written": [str(p) for p in self.written],
            "samples": len(self.written),
            "requested": self.count,
            "sources_used": self.sources_used,
            "skipped": [{"input": str(p), "reason": r} for p, r in self.skipped],
            "other_npy_files": [str(p) for p in self.stale],
        }


def find_sources(inputs, suffixes) -> list:
    """Files as given, and the files with one of `suffixes` (the task's) inside given directories,
    recursively, sorted."""
    sources = []
    suffixes = {s.lower() for s in suffixes}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
            if not found:
                raise InputError(f"{path} holds no input files this model takes ({', '.join(sorted(suffixes))})")
            sources.extend(found)
        elif path.exists():
            sources.append(path)
        else:
            raise InputError(f"calibration input {path} does not exist; check the path")
    return list(dict.fromkeys(sources))


def sample_names(source: Path, clips: int, taken: set) -> list:
    """File names for one source's samples; a second source with the same stem gets a `-2` suffix."""
    stem, n = source.stem, 1
    while True:
        names = [f"{stem}.npy"] if clips == 1 else [f"{stem}_clip{k}.npy" for k in range(clips)]
        if not taken.intersection(names):
            taken.update(names)
            return names
        n += 1
        stem = f"{source.stem}-{n}"


def write_calibration(
    registry, model, inputs, out_dir, *, count: int = 100, options: dict | None = None, on_source=None
) -> CalibrationReport:
    """Preprocess sources into `out_dir` until `count` samples exist; bad sources are skipped, not fatal.

    `on_source(path, error_or_None)` is called after each source (for a progress bar).
    Raises InputError only when no sample at all could be written.
    """
    from modelzoo.core.config import Config
    from modelzoo.core.contract.registry import blamed_on
    from modelzoo.core.inputs.tensor_file import save_npy
    from modelzoo.core.runner import prepare_input, task_options

    out_dir = Path(out_dir)  # created by the first sample written, so a failed run leaves nothing
    report = CalibrationReport(out_dir=out_dir, count=count)
    sources = find_sources(inputs, registry.task_of(model).input_suffixes)
    if options is None:
        options = task_options(registry, model, Config())  # calibration ignores zoo.yaml's run settings
    before = set(out_dir.glob("*.npy"))
    taken: set = set()
    for source in sources:
        if len(report.written) >= count:
            break
        try:
            tensor, _ = prepare_input(registry, model, source, options)
        except ZooError as exc:  # an input that does not decode is reported, the run goes on
            report.skipped.append((source, str(exc)))
            if on_source:
                on_source(source, exc)
            continue
        with blamed_on(model.plugin, f"calibration_samples for {model.name}"):
            samples = list(model.calibration_samples(tensor))
        names = sample_names(source, len(samples), taken)
        for sample, name in zip(samples, names):
            if len(report.written) >= count:
                break
            target = out_dir / name
            save_npy(target, sample)
            report.written.append(target)
        report.sources_used += 1
        if on_source:
            on_source(source, None)
    report.stale = sorted(before - set(report.written))
    if not report.written:
        reasons = "; ".join(f"{p.name}: {r}" for p, r in report.skipped[:3])
        raise InputError(f"no calibration sample could be written from {len(sources)} input(s) ({reasons})")
    return report


def check_calibration_dir(registry, model, calib_dir) -> None:
    """Refuse a --calib folder with nothing usable in it, before anything is written."""
    calib_dir = Path(calib_dir)
    if not calib_dir.is_dir():
        raise InputError(f"--calib {calib_dir} is not a directory; make one with `zoo calib {model.name}`")
    if not any(calib_dir.glob("*.npy")):
        find_sources([calib_dir], registry.task_of(model).input_suffixes)


def check_calibration_arrays(model, calib_dir, shape: tuple) -> list:
    """The .npy files in `calib_dir`, each checked to hold float32 of the board input `shape` (headers
    only, mapped, never read whole); a bad one is an InputError naming it."""
    import numpy as np

    arrays = sorted(Path(calib_dir).glob("*.npy"))
    for path in arrays:
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise InputError(f"calibration file {path} is not a readable .npy ({exc})") from None
        found = f"{array.dtype} {list(array.shape)}"
        matches = array.dtype == np.float32 and tuple(array.shape) == tuple(shape)
        del array  # the mapping, before the file is copied or the run goes on
        if not matches:
            raise InputError(
                f"calibration file {path} holds {found}, the board input is float32 "
                f"{list(shape)}; write calibration data with `zoo calib {model.name}`"
            )
    return arrays


def collect_calibration(registry, model, calib_dir, target, shape: tuple, *, count: int = 100, log=None) -> int:
    """Make `target` hold exactly the calibration samples from `calib_dir`: its .npy files (checked
    against the board input `shape`, copied), else samples written from the inputs in it.

    `target` is a folder the zoo owns (WORKDIR/calibration): other .npy files there are removed,
    since hb_compile would read them too. Returns the number of samples.
    """
    import shutil

    from modelzoo.core.atomic import atomic_write

    calib_dir, target = Path(calib_dir), Path(target)
    check_calibration_dir(registry, model, calib_dir)
    arrays = check_calibration_arrays(model, calib_dir, shape)  # every one, before the first is copied
    target.mkdir(parents=True, exist_ok=True)
    if arrays:
        same_folder = calib_dir.resolve() == target.resolve()
        for path in arrays:
            if not same_folder:
                with open(path, "rb") as source, atomic_write(target / path.name) as handle:
                    shutil.copyfileobj(source, handle)
        names = {p.name for p in arrays}
    else:
        if log:
            log(f"preprocessing the inputs in {calib_dir} into calibration data")
        report = write_calibration(registry, model, [calib_dir], target, count=count)
        for source, reason in report.skipped:
            if log:
                log(f"skipped {source}: {reason}")
        names = {p.name for p in report.written}
    stale = [p for p in target.glob("*.npy") if p.name not in names]
    for path in stale:
        path.unlink()
    if stale and log:
        log(f"removed {len(stale)} old calibration file(s) from {target}")
    return len(names)
