"""Many inputs through one loaded model: decoding and preprocessing in worker threads, overlapped
with inference, with a bounded number of inputs in flight so memory stays flat however many there are
(`prefetch`, which `zoo eval` shares).

Each input gives one record: the `zoo run --json` result, or {"input", "error"} for an input that
failed (the run goes on). Records carry the input file's size and mtime so `--resume` can skip what
an earlier run already recorded.
"""

from __future__ import annotations

import glob
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from modelzoo.core.errors import InputError, ZooError


@dataclass
class Summary:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    total: int = 0
    started: float = field(default_factory=time.perf_counter)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def throughput(self) -> float:
        return (self.done + self.failed) / self.elapsed if self.elapsed > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.done} done, {self.failed} failed, {self.skipped} skipped of {self.total} input(s) "
            f"in {self.elapsed:.1f} s ({self.throughput:.2f} inputs/s)"
        )

    def to_dict(self) -> dict:
        return {
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "total": self.total,
            "seconds": round(self.elapsed, 3),
            "inputs_per_second": round(self.throughput, 3),
        }


def is_many(specs: list) -> bool:
    """More than one input, or one that names several (a folder, a glob, @list.txt)."""
    if len(specs) != 1:
        return True
    spec = str(specs[0])
    return spec.startswith("@") or Path(spec).is_dir() or (glob.has_magic(spec) and not Path(spec).exists())


def expand_inputs(specs: list, suffixes, _lists: tuple = ()) -> list:
    """Files as given; folders recursively, keeping the files with one of `suffixes` (the task's);
    globs; and `@list.txt` (one input per line, # comments). Order kept, duplicates dropped.
    Symlinked folders are not followed inside a folder or a `**` glob, so a link loop ends."""
    suffixes = {s.lower() for s in suffixes}
    found: list = []
    for spec in specs:
        text = str(spec)
        if text.startswith("@"):
            found.extend(expand_inputs(_list_lines(Path(text[1:]), _lists), suffixes, (*_lists, _list_key(text[1:]))))
        elif Path(text).is_dir():
            files = sorted(p for p in Path(text).rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
            if not files:
                raise InputError(f"{text} holds no input files this model takes ({', '.join(sorted(suffixes))})")
            found.extend(str(p) for p in files)
        elif glob.has_magic(text) and not Path(text).exists():
            matches = _glob_files(text)
            if not matches:
                raise InputError(f"no file matches {text}")
            found.extend(matches)
        else:
            found.append(text)  # checked when it is opened: a missing file is that input's error record
    return list(dict.fromkeys(found))


MAX_LIST_LINE = 65536  # characters in one line of an @list: paths are at most a few thousand


def _list_key(path: str) -> str:
    return os.path.realpath(path)


def _list_lines(listing: Path, lists: tuple) -> list:
    """The inputs an @list names, read line by line (a binary file given by mistake is not loaded whole)."""
    if not listing.is_file():
        raise InputError(f"input list {listing} does not exist; check the path after @")
    if _list_key(str(listing)) in lists:
        raise InputError(f"input list {listing} names itself (directly or through another @list); remove that line")
    lines = []
    with open(listing, encoding="utf-8", errors="replace") as handle:
        for line in iter(lambda: handle.readline(MAX_LIST_LINE + 1), ""):
            if len(line) > MAX_LIST_LINE:  # a video or other binary given after @ by mistake
                raise InputError(
                    f"input list {listing} is not a list of paths (a line longer than {MAX_LIST_LINE:,} characters)"
                )
            line = line.strip()
            if line and not line.startswith("#"):
                lines.append(line)
    if not lines:  # as a folder with nothing this model takes: the run would do nothing and say "done"
        raise InputError(f"input list {listing} names no inputs (one path a line; # starts a comment)")
    return lines


def _glob_files(pattern: str) -> list:
    """Files matching `pattern`, `**` included, without following symlinked folders (glob.glob follows
    them, so a link to a parent folder matched the same files again at every depth). Hidden names
    match only where the pattern names them, as with glob.glob."""
    parts = Path(pattern).parts
    fixed = 0
    while fixed < len(parts) and not glob.has_magic(parts[fixed]):
        fixed += 1
    root, rest = Path(*parts[:fixed]) if fixed else Path("."), parts[fixed:]
    if not root.is_dir():
        return []
    if rest[-1] == "**":  # glob.glob's `DIR/**` is every file below; pathlib's, every folder
        rest = (*rest, "*")
    dotted = any(part.startswith(".") for part in rest)
    matches = []
    for match in root.glob(str(Path(*rest))):
        relative = match.relative_to(root).parts
        if (dotted or not any(part.startswith(".") for part in relative)) and match.is_file():
            matches.append(str(match) if fixed else str(match.relative_to(".")))
    return sorted(matches)


def file_stamp(path) -> dict | None:
    """Size and mtime of an input file, so a resumed run can tell it is the same file."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return {"size": stat.st_size, "mtime": round(stat.st_mtime, 6)}


@dataclass
class RunPlan:
    """What every input of a run shares, checked once before any input is touched."""

    model: object
    options: dict
    threads: int | None
    backend_cls: type
    inputs: list
    model_file: Path | None  # None: no input to run can be opened, so nothing was downloaded or converted
    unusable: dict = field(default_factory=dict)  # input -> the ZooError that opening it raised


def plan_run(request, inputs: list, registry, config, cache, *, log=None, skip=None) -> RunPlan:
    """Model, options, backend and inputs checked, then the model file made: only once an input to run
    (not one `skip` leaves out) opens, so a run of unusable inputs downloads and converts nothing.
    Shared by every engine."""
    from modelzoo.core import runner

    model = registry.get_model(request.model)
    options = runner.task_options(registry, model, config, request.options)
    backend_cls = runner.pick_backend(
        registry, model, config, cache, backend=request.backend, model_path=request.model_path,
        weights=request.weights, options=request.backend_options, log=log,
    )  # fmt: skip
    inputs = expand_inputs(inputs, registry.task_of(model).input_suffixes)  # before any download
    runnable, unusable = _first_usable(registry, model, inputs, skip, save=request.save)
    threads = request.threads or config.threads
    if not runnable:
        return RunPlan(model, options, threads, backend_cls, inputs, None, unusable)
    model_file = runner.resolve_model_file(
        registry, model, backend_cls, config, cache, model_path=request.model_path, weights=request.weights,
        precision=request.precision, log=log, force=request.force,
    )  # fmt: skip
    return RunPlan(model, options, threads, backend_cls, inputs, model_file, unusable)


def _first_usable(registry, model, inputs: list, skip, save=None) -> tuple[bool, dict]:
    """Open the inputs to run, in order, until one opens (the check a single run makes before any
    download: a video's first frame read, an image decoded, a .npy validated, a --save the task cannot
    write refused). Returns whether one did, and the errors of those that did not. Usually the first
    input opens: one extra open."""
    from modelzoo.core import runner

    unusable = {}
    for path in inputs:
        if skip is not None and skip(path, file_stamp(path)):
            continue
        try:
            source = runner.open_source(registry, model, path)
        except ZooError as exc:
            unusable[path] = _detached(exc)
            continue
        if save:  # the run's own error, as for one input without --output: before any download
            runner.check_save(registry, model, source, save)
        return True, unusable
    return False, unusable


def _detached(exc: ZooError) -> ZooError:
    """The error without its traceback and chained errors: kept per unusable input, they would keep each
    failed open's frames alive (2 kB an input: 2 GB for an @list of a million missing files)."""
    exc.__context__ = exc.__cause__ = None
    return exc.with_traceback(None)


def runnable_plan(request, inputs: list, registry, config, cache, *, skip, summary: Summary, on_record, log=None):
    """`plan_run` and the inputs still to run: (plan, todo), or None when there is no model to load, since
    nothing is left to run (all recorded already) or no input opens (each gets its error record, and
    nothing was downloaded or converted). Shared by every engine."""
    plan = plan_run(request, inputs, registry, config, cache, log=log, skip=skip)
    todo = pending_inputs(plan.inputs, skip, summary)
    if plan.model_file is not None:
        return plan, todo
    if todo and log:
        log(f"none of the {len(todo)} input(s) can be opened: the model was not loaded")
    for path, stamp in todo:
        record_outcome(summary, on_record, plan.model.name, path, stamp, error=plan.unusable.get(path))
    return None


def record_outcome(summary: Summary, on_record, model_name: str, path, stamp, result=None, error=None) -> None:
    """One input's record, counted in `summary`: the RunResult's dict, or the input's error."""
    if result is None:
        record = {"model": model_name, "input": str(path), "error": str(error)}
        summary.failed += 1
    else:
        record = result.to_dict()
        summary.done += 1
    record["source"] = stamp
    on_record(record, result)


def pending_inputs(inputs: list, skip, summary: Summary) -> list:
    """(path, stamp) of the inputs to run; those `skip` says are recorded already are counted as skipped."""
    todo = []
    for path in inputs:
        stamp = file_stamp(path)
        if skip is not None and skip(path, stamp):
            summary.skipped += 1
        else:
            todo.append((path, stamp))
    summary.total = len(inputs)
    return todo


_END = object()  # the end of prefetch's items (None may be an item)


def prefetch(items, prepare, *, workers: int = 1, in_flight: int | None = None):
    """(item, prepare(item), None), or (item, None, the ZooError it raised), per item in order, with
    `prepare` running ahead in `workers` threads so decoding overlaps whatever the caller does with
    each item. At most `in_flight` items (default two per worker) are held at once, the caller's
    included: an item counts from its submission until the caller asks for the next one."""
    import numpy  # noqa: F401  (its extension module is initialised once, before the workers import it)

    workers = max(1, workers)
    in_flight = max(2, in_flight or 2 * workers)  # 2: one item being used while the next one decodes
    pending: deque = deque()
    queue = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zoo-prep") as pool:

        def refill(limit: int) -> None:
            while len(pending) < limit:
                item = next(queue, _END)
                if item is _END:
                    return
                pending.append((item, pool.submit(prepare, item)))

        refill(in_flight)
        try:
            while pending:
                item, future = pending.popleft()
                try:
                    prepared, error = future.result(), None
                except ZooError as exc:  # that item's failure, not the run's
                    prepared, error = None, exc
                refill(in_flight - 1)  # the next items decode while the caller uses this one
                yield item, prepared, error
        finally:  # the caller stopped early (an error, Ctrl-C): no decoding left to wait for
            for _, future in pending:
                future.cancel()


def run_inputs(
    request, inputs: list, registry, config, cache, *, on_record, log=None, workers: int = 1,
    in_flight: int | None = None, skip=None, summary: Summary | None = None,
) -> Summary:  # fmt: skip
    """Run `request`'s model on every input (files, folders, globs, @lists); `on_record(record, run_result_or_None)`
    gets each record as it finishes, in input order.

    `skip(path, stamp) -> bool` leaves out inputs already recorded (resume). A user error about the
    run itself (unknown model, bad option, no model file) is raised before any input is touched.
    """
    from modelzoo.core import runner

    summary = summary or Summary()
    runnable = runnable_plan(
        request, inputs, registry, config, cache, skip=skip, summary=summary, on_record=on_record, log=log
    )
    if runnable is None:
        return summary
    plan, todo = runnable
    model, options, model_file = plan.model, plan.options, plan.model_file

    started = time.perf_counter()
    backend = runner.load_backend(
        plan.backend_cls, model_file, model, cache, threads=plan.threads, **request.backend_options
    )
    load_ms = (time.perf_counter() - started) * 1000

    def prepare(path):
        if path in plan.unusable:  # found unusable by the plan's check: not opened twice
            raise plan.unusable[path]
        begun = time.perf_counter()
        source = runner.open_source(registry, model, path)
        tensor = runner.preprocess_source(model, source, options)
        return source, tensor, (time.perf_counter() - begun) * 1000

    decoded = prefetch(todo, lambda item: prepare(item[0]), workers=workers, in_flight=in_flight)
    for (path, stamp), prepared, error in decoded:
        result = None
        if error is None:
            source, tensor, prepared_ms = prepared
            try:
                result = runner.finish_run(
                    registry, model, replace(request, input=path), backend, source, tensor, options, model_file,
                    prepared_ms, load_ms, log=None,
                )  # fmt: skip
            except ZooError as exc:
                error = exc
        if result is not None:
            load_ms = 0.0  # the model loaded once, for the first record
        record_outcome(summary, on_record, model.name, path, stamp, result, error)
    return summary


def read_records(path: Path) -> dict:
    """What `--resume` needs of an earlier run's JSON Lines output, by input (its absolute path, so
    `./v/a.avi` and `v/a.avi` are one input): (model, source stamp, failed). Only that is kept, not the
    records, so a million-input output costs tens of MB, not its size. A torn last line is ignored."""
    import json

    records = {}
    if not path.is_file():
        return records
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "input" in record:
                records[input_key(record["input"])] = (
                    str(record.get("model")),
                    record.get("source"),
                    "error" in record,
                )
    return records


def input_key(path) -> str:
    """How `--resume` matches an input with its record: the absolute, normalised path (links not resolved)."""
    return os.path.abspath(str(path))


def drop_torn_line(path: Path) -> None:
    """An interrupted run may have left half a line: cut it, so appended records start on a line of their own."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as handle:
        data = handle.read()
        if data.endswith(b"\n"):
            return
        handle.truncate(data.rfind(b"\n") + 1)
