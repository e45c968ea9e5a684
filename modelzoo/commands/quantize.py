"""zoo quantize: INT8 on the host, calibrated on the samples `zoo calib` writes for the board."""

from __future__ import annotations

from pathlib import Path

import click

from modelzoo.core.quantize.host import DEFAULT_METHOD, METHODS, NODE_SAMPLES
from modelzoo.options import calibration_count, model_source
from modelzoo.output import emit_json, notice, progress, table
from modelzoo.session import pass_session


def calibration_dir(session, model, given) -> Path:
    """--calib DIR, else `calib:` in zoo.yaml's section for the model; else an error saying how to make one."""
    from modelzoo.core.quantize.host import QuantizationError, configured_calibration_dir

    if given:
        return Path(given)
    configured = configured_calibration_dir(session.config, model.name)
    if configured is not None:
        return configured
    raise QuantizationError(
        f"no calibration set for {model.name}: make one from inputs like the deployment data with "
        f"`zoo calib {model.name} --input VIDEOS_OR_IMAGES -o calib`, then pass --calib calib "
        f"(or set `calib: DIR` under models.{model.name} in zoo.yaml)"
    )


@click.command()
@click.argument("model")
@click.option(
    "--calib",
    "calib_dir",
    type=click.Path(file_okay=False),
    help="Calibration .npy files from `zoo calib` (or inputs to make them from); default: zoo.yaml's `calib`.",
)
@model_source("Quantize this .onnx instead of the converted weights.")
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default=DEFAULT_METHOD,
    show_default=True,
    help="Calibration method for activation ranges.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Also write the INT8 .onnx here.")
@calibration_count
@click.option(
    "--node-samples",
    type=click.IntRange(min=0),
    default=NODE_SAMPLES,
    show_default=True,
    help="Samples the per-node comparison runs (it keeps every activation of both models).",
)
@click.option("--nodes", type=click.IntRange(min=0), default=10, show_default=True, help="Rows of the per-node table.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def quantize(session, model, calib_dir, model_path, weights, method, output, count, node_samples, nodes, as_json):
    """Quantize the model to INT8 for onnxruntime (static QDQ), and report how far it is from fp32.

    Cached by model file, calibration set and settings: the same command again does no work.
    `zoo run/eval --precision int8` then run it.
    """
    from modelzoo.core.artifacts.artifacts import onnx_source
    from modelzoo.core.atomic import atomic_write, check_writable, same_file
    from modelzoo.core.quantize.calibration_set import open_calibration_set
    from modelzoo.core.quantize.host import QuantizeSettings
    from modelzoo.core.quantize.host import quantize as quantize_model

    if output:
        check_writable(Path(output))
        if model_path and same_file(output, model_path):
            from modelzoo.core.errors import OutputError

            raise OutputError(f"-o {output} is the fp32 --model file; name another file for the INT8 model")
    registry = session.registry
    found = registry.get_model(model)
    calibration = open_calibration_set(registry, found, calibration_dir(session, found, calib_dir), count=count)
    source = onnx_source(found, registry, session.config, session.cache, model_path, weights, log=notice)
    result = quantize_model(
        registry, found, session.cache, source, calibration, QuantizeSettings(method=method), report=True,
        node_samples=node_samples, log=notice, progress=lambda label, total: progress(total, label),
    )  # fmt: skip
    if output:
        with open(result.path, "rb") as reader, atomic_write(Path(output)) as handle:
            import shutil

            shutil.copyfileobj(reader, handle)
    report = dict(result.report)
    data = {
        **report,
        "int8_file": str(result.path),
        "output": str(output) if output else None,
        "cached": not result.quantized_now,
        "report_cached": not result.reported_now,
    }
    if as_json:
        emit_json(data)
        return
    _echo_report(data, nodes)


def _echo_report(data: dict, nodes: int) -> None:
    settings = data["settings"]
    calibration = data["calibration"]
    state = "from the cache, nothing quantized" if data["cached"] else "quantized now"
    click.echo(
        f"{data['model']} INT8 ({settings['quant_format'].upper()}, {settings['weight_type']} per-channel weights, "
        f"{settings['activation_type']} activations, {settings['method']} calibration): {data['int8_file']} ({state})"
    )
    if data.get("output"):
        click.echo(f"  copied to {data['output']}")
    if data.get("kept_fp32_nodes"):
        click.echo(f"  kept in fp32 (faster than INT8 there): {', '.join(data['kept_fp32_nodes'])}")
    if data.get("float_tail_nodes"):
        click.echo(f"  kept in fp32 (after the last weighted layer): {', '.join(data['float_tail_nodes'])}")
    click.echo(
        f"  calibration: {calibration['dir']} ({data['samples']} sample(s), sha256 {calibration['sha256'][:12]}…); "
        f"fp32 model {Path(data['fp32_file']).name} (sha256 {data['fp32_sha256'][:12]}…)"
    )
    click.echo(f"\ncosine similarity, fp32 vs INT8 outputs on the {data['samples']} calibration sample(s):")
    click.echo(
        table(
            ["output", "cosine similarity", "lowest per sample", "max |difference|"],
            [
                [o["name"], f"{o['cosine']:.6f}", f"{o['min_sample_cosine']:.6f}", f"{o['max_abs_diff']:.4g}"]
                for o in data["outputs"]
            ],
        )
    )
    top1 = data.get("top1_agreement")
    if top1:
        click.echo(
            f"Top-1 agreement with fp32 ({top1['output']}): {top1['agree']}/{top1['samples']} "
            f"({100 * top1['fraction']:.1f} %)"
        )
    rows = data.get("nodes") or []
    if nodes and rows:
        click.echo(
            f"\nnodes whose outputs drift most (activations vs fp32 on the first {data['node_samples']} calibration "
            f"sample(s); {len(rows)} compared; SQNR in dB, higher is closer):"
        )
        click.echo(
            table(
                ["node", "op", "tensor", "cosine vs fp32", "SQNR dB vs fp32"],
                [[r["node"], r["op_type"], r["tensor"], f"{r['cosine']:.6f}", _db(r["sqnr_db"])] for r in rows[:nodes]],
            )
        )
    elif not data["node_samples"]:
        click.echo("\nper-node comparison skipped (--node-samples 0)")


def _db(value) -> str:
    return "inf" if value is None else f"{value:.1f}"
