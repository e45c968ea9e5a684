"""zoo eval: accuracy on a labelled set, for one or several precisions and backends in one pass."""

from __future__ import annotations

import sys

import click

from modelzoo.options import model_source
from modelzoo.output import emit_json, notice, table
from modelzoo.session import pass_session


def _names(value: str | None, option: str, allowed=None) -> list:
    if value is None:
        return []
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.BadParameter(f"{value!r} names nothing", param_hint=option)
    bad = [n for n in names if allowed is not None and n not in allowed]
    if bad:
        raise click.BadParameter(f"{', '.join(bad)}: choose from {', '.join(allowed)}", param_hint=option)
    return list(dict.fromkeys(names))


@click.command("eval")
@click.argument("model")
@click.option(
    "--dataset",
    required=True,
    type=click.Path(),
    help="A folder with one sub-folder per class (named after the labels), a CSV of path,label, "
    "or a set in a format a plugin registers (e.g. a Kinetics annotation CSV).",
)
@click.option(
    "--format",
    "format_name",
    metavar="NAME",
    help="The dataset's format: folders, csv, or one a plugin registers (`zoo plugins --json` lists them); "
    "default: recognised from --dataset.",
)
@click.option(
    "--precision",
    "precisions",
    help="fp32, int8, or several comma-separated (fp32,int8): all run on the same decoded inputs (default zoo.yaml's, else fp32).",
)
@click.option(
    "--backend",
    "backends",
    help="Backend, or several comma-separated (onnxruntime,hbm); default auto, or zoo.yaml.",
)
@model_source("Evaluate this model file instead of the converted weights.")
@click.option(
    "--clips", type=click.IntRange(min=1), help="Clips per video (video models; default: the published protocol's)."
)
@click.option("--threads", type=click.IntRange(min=1), help="Inference threads (onnxruntime intra-op).")
@click.option(
    "--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Threads decoding inputs ahead."
)
@click.option("--confused", type=click.IntRange(min=0), default=5, show_default=True, help="Most confused pairs shown.")
@click.option("--save", is_flag=True, help="Record the results in the cache; `zoo info` shows them as measured here.")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False), help="Write per-sample predictions (.jsonl, .json or .csv)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def evaluate(
    session, model, dataset, format_name, precisions, backends, model_path, weights, clips, threads, workers,
    confused, save, output, as_json,
):  # fmt: skip
    """Measure Top-1, Top-5 and mean per-class accuracy on a labelled set, with the protocol used.

    Several --precision / --backend values are evaluated in one pass and compared with the first.
    """
    from modelzoo.core.accuracy.dataset import open_labelled_set
    from modelzoo.core.accuracy.evaluate import (
        check_predictions_path,
        eval_options,
        evaluate,
        prepare_variants,
        write_predictions,
    )
    from modelzoo.core.atomic import same_file
    from modelzoo.core.errors import OutputError
    from modelzoo.core.pipeline import Summary
    from modelzoo.core.runner import resolve_precision
    from modelzoo.progress import RunProgress

    if output:
        check_predictions_path(output)
        if same_file(output, dataset):
            raise OutputError(f"--output {output} is the --dataset file; name another file for the predictions")
    registry = session.registry
    found = registry.get_model(model)
    if not found.spec.scores_classes:
        from modelzoo.core.errors import InputError

        raise InputError(
            f"zoo eval measures the accuracy of classifiers, whose output is one score per class; {found.name} "
            f"({found.spec.task}) outputs [{','.join(map(str, found.spec.output.shape))}]; "
            f"`zoo perf {found.name} --save` records its speed"
        )
    config = session.config
    task = registry.task_of(found)
    chosen = _names(precisions, "--precision", ("fp32", "int8")) or [resolve_precision(config, found, None)]
    options, clips_source = eval_options(registry, found, config, clips)
    labelled = open_labelled_set(
        dataset, found.spec.labels, task.input_suffixes, registry.dataset_formats, format_name
    )  # unknown labels fail here, before any model file is made
    variants = prepare_variants(
        registry, found, config, session.cache, precisions=chosen, backends=_names(backends, "--backend") or [None],
        model_path=model_path, weights=weights, threads=threads or config.threads, log=notice,
    )  # fmt: skip
    notice(
        f"evaluating {found.name} on {len(labelled.items)} input(s) of {dataset} with "
        + ", ".join(v.label for v in variants)
    )
    summary = Summary(total=len(labelled.items))
    shown = RunProgress(summary, sys.stderr)  # a bar on a terminal, a `progress:` line every few s in a log

    def on_item(failed: bool) -> None:
        if failed:
            summary.failed += 1
        else:
            summary.done += 1
        shown.update()

    try:
        evaluation = evaluate(
            registry, found, labelled, variants, options, clips_source=clips_source, confused=confused,
            workers=workers, on_item=on_item,
        )  # fmt: skip
    finally:
        shown.close()
    data = evaluation.to_dict()
    if output:
        data["output"] = str(write_predictions(evaluation, output))
    if save:
        from modelzoo.core.accuracy.measured import evaluation_rows, record_measurements

        data["saved"] = str(record_measurements(session.cache, found.name, evaluation_rows(evaluation), log=notice))
    if as_json:
        emit_json(data)
        return
    _echo_evaluation(data)


def _echo_evaluation(data: dict) -> None:
    protocol = data["protocol"]
    dataset = data["dataset"]
    click.echo(
        f"{data['model']} on {dataset['path']} ({dataset['form']}, {len(dataset['classes'])} classes, "
        f"{dataset['files']} file(s))"
    )
    clips = f" (clips from {protocol['clips_from']})" if protocol.get("clips_from") else ""
    click.echo(f"protocol: {protocol['summary']}{clips}; {protocol['scores']}")
    click.echo(f"  preprocessing: {protocol['preprocessing']}")
    click.echo(
        table(
            ["precision", "backend", "acc@1 %", "acc@5 %", "mean per-class acc %", "protocol"],
            [
                [
                    r["precision"],
                    r["backend_detail"],
                    f"{r['acc@1']:.2f}",
                    f"{r['acc@5']:.2f}",
                    f"{r['mean_class_acc']:.2f}",
                    protocol["summary"],
                ]
                for r in data["results"]
            ],
        )
    )
    for r in data["results"]:  # which file each row measured: --precision int8 runs the newest INT8 model
        click.echo(f"  {r['precision']} {r['backend']} model file: {r['model_file']}")
    if data["published"]:
        click.echo("published (not measured here):")
        click.echo(
            table(
                ["metric", "value", "dataset", "protocol"],
                [[p["metric"], p["value"], p["dataset"], p["protocol"]] for p in data["published"]],
            )
        )
    for result in data["results"]:
        if result["confused"]:
            click.echo(f"most confused ({result['precision']} {result['backend']}; true -> predicted):")
            click.echo(
                table(
                    ["true", "predicted", "count"],
                    [[c["true"], c["predicted"], c["count"]] for c in result["confused"]],
                )
            )
    for agreement in data["agreement"]:
        click.echo(
            f"{agreement['variant']} vs {agreement['reference']} on the same {agreement['samples']} input(s): "
            f"Top-1 agreement {agreement['top1_agree']}/{agreement['samples']} ({agreement['top1_agreement']:.2f} %), "
            f"output cosine {agreement['output_cosine']:.6f} (per input: mean {agreement['output_cosine_mean']:.6f}, "
            f"lowest {agreement['output_cosine_min']:.6f})"
        )
    if protocol["skipped"]:
        click.echo(f"skipped {len(protocol['skipped'])} file(s):")
        for skipped in protocol["skipped"]:
            click.echo(f"  {skipped['input']}: {skipped['reason']}")
    if protocol["ignored_files"]:
        notice(f"note: {protocol['ignored_files']} file(s) of kinds {data['model']} does not take were ignored")
    if data.get("output"):
        notice(f"per-sample predictions: {data['output']}")
    if data.get("saved"):
        notice(f"recorded in {data['saved']} (`zoo info {data['model']}` shows it as measured here)")
