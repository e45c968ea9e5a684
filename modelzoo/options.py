"""Command-line options that several commands share, defined once."""

from __future__ import annotations

import click


def _parse_cores(_ctx, _param, value):
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of core numbers, e.g. 0") from None


def board_scheduling(command):
    """--priority and --bpu-cores, passed to the hbm backend as `priority` and `bpu_cores`."""
    command = click.option(
        "--bpu-cores", callback=_parse_cores, help="Board BPU cores, comma separated (hbm backend)."
    )(command)
    return click.option("--priority", type=click.IntRange(0, 255), help="Board scheduling priority (hbm backend).")(
        command
    )


def scheduling_options(priority, bpu_cores) -> dict:
    return {k: v for k, v in (("priority", priority), ("bpu_cores", bpu_cores)) if v is not None}


CONVERT_WEIGHTS = "Local checkpoint to convert instead of the official weights."


def model_source(model_help: str, weights_help: str = CONVERT_WEIGHTS):
    """--model FILE (as `model_path`) and --weights CHECKPOINT: the file a command starts from instead
    of the model's own. `model_help` says what the command does with the file."""

    def decorate(command):
        command = click.option("--weights", help=weights_help)(command)
        return click.option("--model", "model_path", help=model_help)(command)

    return decorate


def calibration_count(command):
    """--count: how many samples to make when --calib names inputs rather than `zoo calib`'s .npy files."""
    return click.option(
        "--count",
        type=click.IntRange(min=1),
        default=100,
        show_default=True,
        help="Samples to make when --calib holds inputs.",
    )(command)
