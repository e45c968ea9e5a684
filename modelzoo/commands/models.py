"""zoo list / info / plugins: what is installed, what runs here, what is cached."""

from __future__ import annotations

import click

from modelzoo.output import emit_json, table
from modelzoo.session import pass_session


def _backends_here(session, model) -> list:
    """Names of backends that could run `model` on this machine now (cheap: no backend import)."""
    names = []
    for name, backend in sorted(session.registry.backends.items()):
        if not backend.is_available():
            continue
        if backend.has_model_for(model, session.cache):
            names.append(name)
    return names


def _cache_status(session, spec):
    """What is cached for `spec`: the one answer both `zoo list` and `zoo info` show."""
    from modelzoo.core.artifacts.artifacts import cache_status

    return cache_status(session.cache, spec)


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def list_models(session, as_json):
    """List every model, what runs it here, and what is cached."""
    rows, summaries = [], {}
    for model in sorted(session.registry.models.values(), key=lambda m: m.name):
        spec = model.spec
        status = _cache_status(session, spec)
        summaries[spec.name] = status.summary()
        rows.append(
            {
                "name": spec.name,
                "task": spec.task,
                "input": {"name": spec.input.name, "shape": list(spec.input.shape), "dtype": spec.input.dtype},
                "backends": _backends_here(session, model),
                "cached": status.flags(),
                "plugin": spec.plugin,
            }
        )
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
    found = session.registry.get_model(model)
    spec = found.spec
    task = session.registry.task_of(found)
    data = spec.to_dict()
    data["preprocessing_summary"] = task.describe_preprocessing(spec)
    data["options"] = [
        {"name": o.name, "type": o.type.__name__, "default": o.default, "help": o.help} for o in task.options
    ]
    data["board_input"] = found.board_input()
    status = _cache_status(session, spec)
    for artifact in data["artifacts"]:
        cached = status.official.get(artifact["name"])
        artifact["cached_path"] = str(cached.path) if cached else None
    data["cached"] = status.flags()
    in_use = status.weights_in_use
    data["custom_weights"] = [
        {"path": str(e.path), "sha256": e.sha256, "from": e.origin, "in_use": e == in_use}
        for e in status.custom_weights
    ]
    data["backends_here"] = _backends_here(session, found)
    config = session.config
    data["config"] = {"path": str(config.path.absolute()) if config.path else None, "found_by": config.found_by}
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
    click.echo(f"  onnx: {'converted, cached' if data['cached']['onnx'] else 'not converted yet'}")
    if spec.metrics:
        click.echo("\nreference accuracy:")
        click.echo(
            table(
                ["metric", "value", "dataset", "protocol"],
                [[m.name, m.value, m.dataset, m.protocol] for m in spec.metrics],
            )
        )
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
