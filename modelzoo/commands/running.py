"""zoo run / preprocess / export: the model pipeline on this host."""

from __future__ import annotations

from pathlib import Path

import click

from modelzoo.options import board_scheduling, scheduling_options
from modelzoo.output import emit_json, notice, table
from modelzoo.session import pass_session


@click.command()
@click.argument("model")
@click.option(
    "--input", "-i", "input_path", required=True, help="Video file, or .npy of RGB frames or a preprocessed clip."
)
@click.option(
    "--model", "model_path", help="Run this model file (.onnx, or .hbm on the board) instead of the converted weights."
)
@click.option("--weights", help="Local checkpoint to convert instead of the official weights.")
@click.option("--clips", type=click.IntRange(min=1), help="Clips sampled from the video (default 1, or zoo.yaml).")
@click.option("--top-k", type=click.IntRange(min=1), help="How many predictions to print (default 5).")
@click.option("--backend", help="auto, onnxruntime, hbm, or a plugin's backend (default auto, or zoo.yaml).")
@click.option("--threads", type=click.IntRange(min=1), help="Inference threads (onnxruntime intra-op).")
@board_scheduling
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def run(session, model, input_path, model_path, weights, clips, top_k, backend, threads, priority, bpu_cores, as_json):
    """Classify a video: decode, sample clips, run the model, print the Top-k."""
    from modelzoo.core.runner import RunRequest
    from modelzoo.core.runner import run as run_pipeline

    options = scheduling_options(priority, bpu_cores)
    request = RunRequest(model, input_path, model_path, weights, clips, top_k, backend, threads, options)
    result = run_pipeline(request, session.registry, session.config, session.cache, log=notice)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(
        f"{result.model} on {result.input} ({result.clips} clip{'s' if result.clips > 1 else ''}, {result.backend})"
    )
    click.echo(
        table(
            ["rank", "class_id", "label", "probability"],
            [[rank, p.class_id, p.label, f"{p.score:.4f}"] for rank, p in enumerate(result.predictions, 1)],
        )
    )
    click.echo("timing: " + ", ".join(f"{k} {v:.1f} ms" for k, v in result.timing_ms.items()))


@click.command()
@click.argument("model")
@click.option("--input", "-i", "input_path", required=True, help="Video file or .npy of RGB frames.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Where to write the .npy.")
@click.option("--clips", type=click.IntRange(min=1), help="Clips sampled from the video (default 1, or zoo.yaml).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def preprocess(session, model, input_path, output, clips, as_json):
    """Write the exact float32 tensor `zoo run` would feed the model, e.g. to run it on the board."""
    from modelzoo.core.inputs.tensor_file import save_npy
    from modelzoo.core.runner import prepare_input

    spec = session.registry.get_model(model)
    clips = clips or session.config.model(spec.name).clips or 1
    tensor, source = prepare_input(session.registry, spec, input_path, clips)
    for warning in source.warnings:
        notice(f"warning: {warning}")
    save_npy(Path(output), tensor)
    data = {
        "model": spec.name,
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

    spec = session.registry.get_model(model)
    cached, resolved, converted = converted_onnx(
        spec, session.registry, session.config, session.cache, weights, log=notice
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
