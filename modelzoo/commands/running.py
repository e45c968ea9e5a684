"""zoo run / preprocess / export: the model pipeline on this host."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from modelzoo.options import CONVERT_WEIGHTS, board_scheduling, model_source, scheduling_options
from modelzoo.output import emit_json, notice
from modelzoo.session import pass_session


def _option_pairs(_ctx, _param, values):
    """-O key=value pairs for a plugin task's options; numbers become numbers."""
    options = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{value!r} is not KEY=VALUE, e.g. -O conf=0.5")
        options[key.strip().replace("-", "_")] = _scalar(raw.strip())
    return options


def _scalar(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


# The built-in tasks' options, as flags; any task's option also works as -O KEY=VALUE.
TASK_FLAGS = (
    ("clips", click.IntRange(min=1), "Clips sampled from a video (video models; default 1, or zoo.yaml)."),
    ("top_k", click.IntRange(min=1), "How many predictions to print (classifiers; default 5)."),
    ("conf", click.FloatRange(0, 1), "Confidence threshold (detectors; default 0.25)."),
    ("iou", click.FloatRange(0, 1), "NMS IoU threshold (detectors; default 0.7)."),
    ("max_det", click.IntRange(min=1), "Most detections kept (detectors; default 300)."),
)


def _finite(_ctx, param, value):
    """click's FloatRange lets NaN through (every comparison with it is false)."""
    import math

    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number", param=param)
    return value


def task_option_flags(command):
    """Adds the task option flags and -O KEY=VALUE; the command gets them as one dict, `task_options`,
    holding only what was given (the model's task then checks each and fills in the rest)."""

    @functools.wraps(command)
    def collected(*args, extra_options, **kwargs):
        options = dict(extra_options)
        for name, _kind, _help in TASK_FLAGS:
            value = kwargs.pop(name)
            if value is not None:
                options[name] = value
        return command(*args, task_options=options, **kwargs)

    for name, kind, text in reversed(TASK_FLAGS):
        collected = click.option("--" + name.replace("_", "-"), name, type=kind, help=text)(collected)
    return click.option(
        "--option", "-O", "extra_options", multiple=True, callback=_option_pairs,
        help="A task option as KEY=VALUE (repeatable), for plugin tasks' options.",
    )(collected)  # fmt: skip


def stream_option_flags(command):
    """Adds --stream, --stride, --fps, --reconnect and --save-video; the command gets them as one dict, `stream`."""

    @functools.wraps(command)
    def collected(*args, stream_flag, stride, sample_fps, reconnect, save_video, **kwargs):
        stream = {"stream_flag": stream_flag, "stride": stride, "fps": sample_fps, "reconnect": reconnect}
        return command(*args, stream={**stream, "save_video": save_video}, **kwargs)

    for option in reversed((
        click.option("--stream", "stream_flag", is_flag=True, help="Play a video file as a live stream, at its own rate."),
        click.option("--stride", type=click.IntRange(min=1), help="Streams: model frames between windows (default: a clip)."),
        click.option("--fps", "sample_fps", type=click.FloatRange(min=0, max=1000, min_open=True), callback=_finite,
                     help="Streams, image models: frames run per second (default 1)."),
        click.option("--reconnect", type=click.IntRange(min=0), help="Network streams: attempts after a drop (default 3)."),
        click.option("--save-video", type=click.Path(dir_okay=False),
                     help="Write the video (file or stream) with the current result drawn on each frame (.mp4)."),
    )):  # fmt: skip
        collected = option(collected)
    return collected


@click.command()
@click.argument("model")
@click.argument("positional_inputs", metavar="[INPUT]...", nargs=-1)
@click.option(
    "--input", "-i", "input_paths", multiple=True,
    help="Video, image or .npy; a folder, a glob or @list.txt runs each input in it (repeatable).",
)  # fmt: skip
@model_source("Run this model file (.onnx, or .hbm on the board) instead of the converted weights.")
@click.option(
    "--force",
    is_flag=True,
    help="Run a --model ONNX that records another model's architecture (a warning, not an error).",
)
@task_option_flags
@click.option("--backend", help="auto, onnxruntime, hbm, or a plugin's backend (default auto, or zoo.yaml).")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "int8"]),
    help="Host precision: int8 runs the quantized ONNX (`zoo quantize`).",
)
@click.option("--threads", type=click.IntRange(min=1), help="Inference threads (onnxruntime intra-op).")
@click.option(
    "--save",
    "save_path",
    type=click.Path(dir_okay=False),
    help="Write the input annotated with the result to this image.",
)
@board_scheduling
@click.option(
    "--output", "-o", "output_path", type=click.Path(dir_okay=False),
    help="Also write every input's record to this .jsonl or .csv file.",
)  # fmt: skip
@click.option("--resume", is_flag=True, help="With --output FILE.jsonl: skip inputs it already records.")
@click.option("--retry-failed", is_flag=True, help="With --resume: run again the inputs recorded with an error.")
@click.option("--workers", type=click.IntRange(min=1), help="Threads decoding inputs while the model runs (default 1).")
@click.option(
    "--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
    help="Where the inputs run: this machine's threads, or Ray Data tasks and actors (pip install 'modelzoo[ray]').",
)  # fmt: skip
@click.option("--ray-address", help="With --engine ray: a running cluster's HOST:PORT (default: start Ray here).")
@stream_option_flags
@click.option("--json", "as_json", is_flag=True, help="Print JSON (JSON Lines, one per input, for several inputs).")
@pass_session
def run(
    session, model, positional_inputs, input_paths, model_path, weights, force, task_options, backend, precision,
    threads, save_path, priority, bpu_cores, output_path, resume, retry_failed, workers, engine, ray_address, as_json,
    stream,
):  # fmt: skip
    """Run a model on inputs: decode, preprocess, infer, print each result and timings.

    Several inputs (or a folder, a glob, @list.txt) load the model once and stream a record per
    input; an input that fails is recorded with its error and the run goes on (exit 1 at the end).
    """
    from modelzoo.core.errors import InputError
    from modelzoo.core.pipeline import is_many
    from modelzoo.core.runner import RunRequest
    from modelzoo.core.runner import run as run_pipeline
    from modelzoo.core.streams import stream_kind

    inputs = [*input_paths, *positional_inputs]
    if not inputs:
        raise InputError(f"no input; pass one: `zoo run {model} INPUT` (see `zoo info {model}` for what it takes)")
    if (resume or retry_failed) and not output_path:
        raise InputError("--resume reads what an earlier run wrote: pass the same --output FILE.jsonl")
    if retry_failed and not resume:  # without --resume the run would start --output afresh, erasing it
        raise InputError("--retry-failed reruns the failures --output records: add --resume")
    if ray_address and engine != "ray":
        raise InputError("--ray-address is for --engine ray")
    options = scheduling_options(priority, bpu_cores)
    request = RunRequest(
        model, inputs[0], model_path, weights, backend, threads, task_options, options,
        precision=precision, save=save_path, force=force,
    )  # fmt: skip
    if stream["stream_flag"] or any(stream_kind(path) for path in inputs):  # a URL, a camera, --stream FILE
        refused = {"--save": save_path, "--resume": resume, "--engine ray": engine == "ray"}
        code = _run_stream(session, request, inputs, stream, output_path, as_json, refused)
        click.get_current_context().exit(code)
    given = [f"--{name}" for name in ("stride", "fps", "reconnect") if stream[name] is not None]
    if given:
        raise InputError(f"{', '.join(given)}: for streams only (a URL, a camera index, /dev/videoN, or --stream FILE)")
    if is_many(inputs) or output_path or engine == "ray":
        if stream["save_video"]:
            raise InputError("--save-video writes one video: give one input, without --output or --engine ray")
        if save_path and is_many(inputs):
            raise InputError("--save writes one annotated image; give one input")
        code = _run_many(
            session, request, inputs, output_path, resume, retry_failed, workers, as_json, engine, ray_address
        )
        click.get_current_context().exit(code)
    if stream["save_video"]:  # checked before any download or inference, as --save is
        from modelzoo.core.runner import open_source
        from modelzoo.core.streams import check_save_video

        check_save_video(stream["save_video"], input_path=inputs[0])
        registry = session.registry
        check_save_video(stream["save_video"], open_source(registry, registry.get_model(model), inputs[0]))
    result = run_pipeline(request, session.registry, session.config, session.cache, log=notice)
    if stream["save_video"]:
        _save_video(session, result, stream["save_video"])
    if as_json:
        emit_json(result.to_dict())
        return
    _echo_result(session, result)


def _echo_result(session, result) -> None:
    task = session.registry.task_of(session.registry.get_model(result.model))
    details = ", ".join([*getattr(result.result, "details", list)(), result.backend])
    click.echo(f"{result.model} on {result.input} ({details})")
    click.echo(task.format_result(result.result))
    click.echo("timing: " + ", ".join(f"{k} {v:.1f} ms" for k, v in result.timing_ms.items()))


def _save_video(session, result, path) -> None:
    from modelzoo.core.runner import open_source
    from modelzoo.core.streams import save_annotated_video

    source = open_source(session.registry, session.registry.get_model(result.model), result.input)
    notice(f"wrote {save_annotated_video(session.registry, result, source, path)}")


def _run_stream(session, request, inputs, stream, output_path, as_json, refused) -> int:
    """Windows of a live stream through one loaded model: a record per window, the summary at the end."""
    import json

    from modelzoo.core.errors import InputError
    from modelzoo.core.streams import DEFAULT_RECONNECT, StreamOptions, run_stream
    from modelzoo.records import RecordFile

    if len(inputs) != 1:
        raise InputError("a stream runs alone; give one input")
    for name, given in refused.items():
        if given:
            raise InputError(f"{name} does not apply to a stream" + ("; use --save-video" if name == "--save" else ""))
    if stream["reconnect"] is None:
        stream = {**stream, "reconnect": DEFAULT_RECONNECT}
    sink = RecordFile(output_path, resume=False) if output_path else None

    def on_record(record, result) -> None:
        if sink:
            sink.write(record)
        if as_json:
            click.echo(json.dumps(record, default=str))
            return
        window = record["window"]
        place = f"window {window['index']} {window['start_s']:.2f}-{window['end_s']:.2f} s"
        if result is None:
            click.echo(f"{place}: error: {record['error']}")
            return
        caption = getattr(result.result, "caption", None)
        shown = caption() if callable(caption) else json.dumps(result.result.to_dict(), default=str)
        click.echo(f"{place}: {shown} (latency {record['latency_ms']:.0f} ms)")

    try:
        summary = run_stream(
            request, session.registry, session.config, session.cache, options=StreamOptions(**stream),
            on_record=on_record, log=notice,
        )  # fmt: skip
        if sink:
            sink.finish()  # a stream ends, lost or stopped with Ctrl-C, with every record whole
    finally:
        if sink:
            sink.close()
    notice(f"summary: {summary.line()}")
    if summary.lost:
        notice(f"error: {summary.end}")
    return 130 if summary.interrupted else 1 if summary.lost or summary.failed else 0


def _run_many(
    session, request, inputs, output_path, resume, retry_failed, workers, as_json, engine="local", ray_address=None
) -> int:
    """Every input through one loaded model; records stream to stdout and --output; the summary to stderr."""
    import json
    import sys

    from modelzoo.core.pipeline import Summary, run_inputs
    from modelzoo.progress import RunProgress
    from modelzoo.records import RecordFile, resume_filter

    registry = session.registry
    skip = None
    if resume:
        model_name = registry.get_model(request.model).name
        skip = resume_filter(output_path, retry_failed=retry_failed, model=model_name)
    sink = RecordFile(output_path, resume=resume) if output_path else None
    summary = Summary()
    progress = RunProgress(summary, sys.stderr)

    def on_record(record, result) -> None:
        if sink:
            sink.write(record)
        progress.clear()  # a record printed on the terminal starts on a clean line
        if as_json:
            click.echo(json.dumps(record, default=str))
        elif result is not None:
            _echo_result(session, result)
        else:
            click.echo(f"{record['input']}: error: {record['error']}")
        for warning in record.get("warnings", []):
            notice(f"warning: {record['input']}: {warning}")
        progress.update()

    run_engine = run_inputs
    if engine == "ray":  # the same records, from Ray Data tasks and actors
        from modelzoo.core.engines.ray_engine import run_inputs as run_on_ray

        run_engine = functools.partial(run_on_ray, address=ray_address)
    try:
        run_engine(
            request, inputs, registry, session.config, session.cache, on_record=on_record, log=notice,
            workers=workers or 1, skip=skip, summary=summary,
        )  # fmt: skip
        if sink:
            sink.finish()
    except KeyboardInterrupt:
        progress.close()
        if sink and sink.replacing:
            notice(
                f"{output_path} was left as it was; the {sink.written} record(s) of this run were dropped "
                "(add --resume to append to an output instead of replacing it)"
            )
        elif sink and sink.written:  # its whole lines are kept: say how to go on from them
            resumable = " (add --resume to go on from it)" if sink.format == "jsonl" else ""
            notice(f"{output_path} keeps the {sink.written} record(s) written before the interruption{resumable}")
        raise
    finally:
        progress.close()
        if sink:
            sink.close()
    notice(f"summary: {summary.line()}")
    return 1 if summary.failed else 0


@click.command()
@click.argument("model")
@click.option("--input", "-i", "input_path", required=True, help="Video, image, or .npy of RGB frames or an image.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Where to write the .npy.")
@task_option_flags
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def preprocess(session, model, input_path, output, task_options, as_json):
    """Write the exact float32 tensor `zoo run` would feed the model, for running it on the board."""
    from modelzoo.core.inputs.tensor_file import save_npy
    from modelzoo.core.runner import prepare_input
    from modelzoo.core.runner import task_options as resolve_task_options

    found = session.registry.get_model(model)
    options = resolve_task_options(session.registry, found, session.config, task_options)
    tensor, source = prepare_input(session.registry, found, input_path, options)
    for warning in source.warnings:
        notice(f"warning: {warning}")
    save_npy(Path(output), tensor)
    data = {
        "model": found.name,
        "input": input_path,
        "output": output,
        "shape": list(tensor.shape),
        "dtype": str(tensor.dtype),
    }
    if as_json:
        emit_json(data)
    else:
        click.echo(f"wrote {output}: {tensor.dtype} {list(tensor.shape)}")


@click.command()
@click.argument("model")
@click.option("--weights", help=CONVERT_WEIGHTS)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Where to write the .onnx (default MODEL.onnx).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def export(session, model, weights, output, as_json):
    """Convert the model's checkpoint to ONNX (no PyTorch needed)."""
    import shutil

    from modelzoo.core.artifacts.artifacts import converted_onnx
    from modelzoo.core.atomic import atomic_write

    found = session.registry.get_model(model)
    spec = found.spec
    cached, resolved, converted = converted_onnx(
        found, session.registry, session.config, session.cache, weights, log=notice
    )
    target = Path(output or f"{spec.name}.onnx")
    with atomic_write(target) as handle, open(cached, "rb") as source:
        shutil.copyfileobj(source, handle)
    data = {
        "model": spec.name,
        "output": str(target),
        "weights_sha256": resolved.sha256,
        "official": resolved.official,
        "converted": converted,
    }
    if as_json:
        emit_json(data)
    else:
        click.echo(
            f"wrote {target} ({'converted' if converted else 'from cache'}, weights sha256 {resolved.sha256[:12]}…)"
        )
