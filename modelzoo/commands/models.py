"""zoo list / info / plugins: what is installed, what runs here, what is cached."""

from __future__ import annotations

import click

from modelzoo.output import emit_json, table
from modelzoo.session import pass_session


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def list_models(session, as_json):
    """List every model, what runs it here, and what is cached."""
    from modelzoo.listing import list_rows

    rows, summaries = list_rows(session.registry, session.cache)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no models installed; install a model plugin (see `zoo plugins`)")
        return
    click.echo(
        table(
            ["model", "task", "input", "backends here", "cached"],
            [
                [
                    r["name"],
                    r["task"],
                    f"{r['input']['dtype']}[{','.join(map(str, r['input']['shape']))}]",
                    ",".join(r["backends"]) or "-",
                    summaries[r["name"]],
                ]
                for r in rows
            ],
        )
    )


@click.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def info(session, model, as_json):
    """Show a model's specification, artifacts, accuracy and board performance."""
    from modelzoo.listing import info_data

    found = session.registry.get_model(model)
    spec = found.spec
    task = session.registry.task_of(found)
    data = info_data(session.registry, session.cache, session.config, found)
    if as_json:
        emit_json(data)
        return
    click.echo(f"{spec.name}: {spec.description}")
    click.echo(f"  task       {spec.task}   family {spec.family or '-'}   plugin {spec.plugin}")
    click.echo(
        f"  input      {spec.input.name} {spec.input.dtype}[{','.join(map(str, spec.input.shape))}] {spec.input.layout}"
    )
    labels = f", {len(spec.labels)} labels" if spec.labels else ""
    click.echo(f"  output     {spec.output.name} {spec.output.dtype}[{','.join(map(str, spec.output.shape))}]{labels}")
    click.echo(f"  preprocess {data['preprocessing_summary']}")
    if task.options:
        click.echo(
            "  options    " + ", ".join(f"--{o.name.replace('_', '-')} (default {o.default})" for o in task.options)
        )
    board = data["board_input"]
    click.echo(
        f"  board      input {board.get('input_type_rt', 'featuremap')}, normalization "
        f"{'on the host' if board.get('norm_type') == 'no_preprocess' else 'in the model (' + str(board.get('norm_type')) + ')'}"
    )
    if spec.params:
        click.echo(f"  parameters {spec.params:,}")
    click.echo(f"  license    {spec.license}")
    click.echo(f"  backends   {', '.join(data['backends_here']) or 'none here'}")
    where = data["config"]
    click.echo(f"  config     {where['path'] + ' (' + where['found_by'] + ')' if where['path'] else 'none (defaults)'}")
    click.echo("\nartifacts:")
    for artifact in data["artifacts"]:
        click.echo(f"  {artifact['name']}: {artifact['url']}")
        published = artifact["sha256"] or (
            f"prefix {artifact['sha256_prefix']}…" if artifact.get("sha256_prefix") else "not published"
        )
        click.echo(f"    sha256 {published}   cached {artifact['cached_path'] or 'no'}")
    for custom in data["custom_weights"]:
        use = "used instead of the official weights" if custom["in_use"] else "used only with --weights"
        click.echo(f"  custom weights: {custom['path']} (from {custom['from']}; {use})")
    click.echo(f"  onnx: {_onnx_line(spec, data)}")
    if spec.metrics:
        click.echo("\nreference accuracy:")
        click.echo(
            table(
                ["metric", "value", "dataset", "protocol"],
                [[m.name, m.value, m.dataset, m.protocol] for m in spec.metrics],
            )
        )
    click.echo("\nmeasured here (`zoo eval --save`, `zoo perf --save`):")
    if data["measured"]:
        from modelzoo.core.accuracy.measured import measured_table

        click.echo(measured_table(data["measured"]))
    else:
        how = f"zoo eval {spec.name} --dataset DIR --save" if spec.scores_classes else f"zoo perf {spec.name} --save"
        click.echo(f"  none measured yet (`{how}` records one)")
    if spec.board_perf:
        click.echo("\npublished board performance (not measured here):")
        click.echo(
            table(
                ["device", "march", "threads", "avg latency ms", "FPS"],
                [[p.device, p.march, p.threads, p.avg_latency_ms, p.fps] for p in spec.board_perf],
            )
        )
        click.echo(f"  source: {spec.board_perf[0].source}")
    rewrites = [march.describe_rewrites() for march in session.registry.marches.values()]
    if rewrites:
        click.echo("\nboard graph rewrites (zoo patch / zoo compile):")
        click.echo("\n".join(rewrites))


def _onnx_line(spec, data) -> str:
    """Which ONNX `zoo run` uses without --model: imported, converted, or what to do to get one."""
    imported = data["imported_onnx"]
    if imported is not None and imported["problem"]:
        return imported["problem"]
    if imported is not None:
        return (
            f"imported from {imported['from']} (sha256 {imported['sha256'][:12]}…), cached at {imported['path']}; "
            "`zoo run` uses it"
        )
    if data["cached"]["onnx"]:
        return "converted, cached"
    if not any(a["name"] == "weights" for a in data["artifacts"]) and spec.how_to_get:
        return f"none cached; {spec.how_to_get}"
    return "not converted yet"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def plugins(session, as_json):
    """List installed plugins with versions, hooks, models and load errors."""
    infos = list(session.registry.plugins.values())
    if as_json:
        emit_json([i.to_dict() for i in infos])
        return
    click.echo(
        table(
            ["plugin", "version", "models", "tasks", "hooks", "status"],
            [
                [
                    i.name,
                    i.version or "-",
                    ",".join(i.models) or "-",
                    ",".join(i.tasks) or "-",
                    ",".join(h.removeprefix("zoo_") for h in i.hooks) or "-",
                    f"error: {i.error}" if i.error else "ok",
                ]
                for i in infos
            ],
        )
    )
