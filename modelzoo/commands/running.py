"""zoo run / preprocess / export: the model pipeline on this host."""

from __future__ import annotations

from pathlib import Path

import click

from modelzoo.options import board_scheduling, scheduling_options
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


def task_option_flags(command):
    """The built-in tasks' options (--clips, --top-k), and -O KEY=VALUE for any task's."""
    command = click.option(
        "--option", "-O", "extra_options", multiple=True, callback=_option_pairs,
        help="A task option as KEY=VALUE (repeatable), for plugin tasks' options.",
    )(command)  # fmt: skip
    command = click.option("--top-k", type=click.IntRange(min=1), help="How many predictions to print (default 5).")(
        command
    )
    return click.option(
        "--clips", type=click.IntRange(min=1), help="Clips sampled from a video (video models; default 1, or zoo.yaml)."
    )(command)


def given_options(clips=None, top_k=None, extra_options=None) -> dict:
    return {**(extra_options or {}), **{k: v for k, v in (("clips", clips), ("top_k", top_k)) if v is not None}}


@click.command()
@click.argument("model")
@click.argument("positional_input", metavar="[INPUT]", required=False)
@click.option("--input", "-i", "input_path", help="Video, image, or .npy (raw frames, image or preprocessed tensor).")
@click.option(
    "--model", "model_path", help="Run this model file (.onnx, or .hbm on the board) instead of the converted weights."
)
@click.option("--weights", help="Local checkpoint to convert instead of the official weights.")
@task_option_flags
@click.option("--backend", help="auto, onnxruntime, hbm, or a plugin's backend (default auto, or zoo.yaml).")
@click.option("--threads", type=click.IntRange(min=1), help="Inference threads (onnxruntime intra-op).")
@board_scheduling
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def run(
    session,
    model,
    positional_input,
    input_path,
    model_path,
    weights,
    clips,
    top_k,
    extra_options,
    backend,
    threads,
    priority,
    bpu_cores,
    as_json,
):
    """Run a model on one input: decode, preprocess, infer, print the result and timings."""
    from modelzoo.core.errors import InputError
    from modelzoo.core.runner import RunRequest
    from modelzoo.core.runner import run as run_pipeline

    if input_path and positional_input:
        raise InputError(f"two inputs given ({positional_input} and --input {input_path}); pass one")
    input_path = input_path or positional_input
    if not input_path:
        raise InputError(f"no input; pass one: `zoo run {model} INPUT` (see `zoo info {model}` for what it takes)")
    options = scheduling_options(priority, bpu_cores)
    request = RunRequest(
        model, input_path, model_path, weights, backend, threads, given_options(clips, top_k, extra_options), options
    )
    result = run_pipeline(request, session.registry, session.config, session.cache, log=notice)
    if as_json:
        emit_json(result.to_dict())
        return
    task = session.registry.task_of(session.registry.get_model(result.model))
    details = ", ".join([*getattr(result.result, "details", list)(), result.backend])
    click.echo(f"{result.model} on {result.input} ({details})")
    click.echo(task.format_result(result.result))
    click.echo("timing: " + ", ".join(f"{k} {v:.1f} ms" for k, v in result.timing_ms.items()))


@click.command()
@click.argument("model")
@click.option("--input", "-i", "input_path", required=True, help="Video, image, or .npy of RGB frames or an image.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Where to write the .npy.")
@task_option_flags
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def preprocess(session, model, input_path, output, clips, top_k, extra_options, as_json):
    """Write the exact float32 tensor `zoo run` would feed the model, e.g. to run it on the board."""
    from modelzoo.core.inputs.tensor_file import save_npy
    from modelzoo.core.runner import prepare_input, task_options

    found = session.registry.get_model(model)
    given = {k: v for k, v in given_options(clips, None, extra_options).items()}
    options = task_options(session.registry, found, session.config, given)
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
@click.option("--weights", help="Local checkpoint to convert instead of the official weights.")
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
