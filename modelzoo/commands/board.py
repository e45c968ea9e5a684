"""zoo patch / check / calib / compile / perf: taking a model to the RDK S100 board, one verb per stage."""

from __future__ import annotations

from pathlib import Path

import click

from modelzoo.options import board_scheduling, calibration_count, model_source, scheduling_options
from modelzoo.output import emit_json, notice, progress, table
from modelzoo.session import pass_session

DEFAULT_MARCH = "nash-e"


def _parse_threads(_ctx, _param, value):
    try:
        counts = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of positive thread counts, e.g. 1,2,4,8")
    from modelzoo.core.backends.perf import MAX_THREADS

    if max(counts) > MAX_THREADS:
        raise click.BadParameter(f"{max(counts)} threads in a row is more than zoo perf runs ({MAX_THREADS} at most)")
    return counts


def _cosine(value) -> str:
    """A cosine from the log; hb_compile may print `nan` or `--`, which zoo reads as no value."""
    return "-" if value is None else f"{value:.6f}"


def _source_onnx(session, model, model_path, weights) -> Path:
    from modelzoo.core.artifacts.artifacts import onnx_source

    return onnx_source(model, session.registry, session.config, session.cache, model_path, weights, log=notice)


def _describe_findings(findings) -> str:
    return table(
        ["node", "op", "rank", "severity", "problem", "fix"],
        [[f.node, f.op_type, f.rank if f.rank is not None else "?", f.severity, f.message, f.fix] for f in findings],
    )


def _rewrite_option(function):
    return click.option(
        "--rewrite",
        "rewrites",
        multiple=True,
        metavar="NAME",
        help="Apply this graph rewrite of the march instead of its default (repeatable); "
        "docs/board.md lists them (nash-e: reduce_mean_4d, the default, or reduce_mean_5d).",
    )(function)


def _target_march(session, found, name: str, rewrites):
    """The registered march, applying `rewrites` instead of its default ones when any are given.
    An unknown march or rewrite fails here, before any work."""
    target = session.registry.march(name)
    if not rewrites:
        return target
    target = target.with_rewrites(rewrites)
    from modelzoo.core.contract.model import Model

    if type(found).patch_graph is not Model.patch_graph:
        notice(
            f"note: {found.name} patches its graph its own way; --rewrite applies only to the march's "
            "rewrites it asks for (march.apply_rewrites)"
        )
    return target


def _march_option(function):
    return click.option(
        "--march", default=DEFAULT_MARCH, show_default=True, help="Board architecture (RDK S100: nash-e)."
    )(function)


@click.command()
@click.argument("model")
@model_source("Start from this .onnx instead of the converted weights.")
@_march_option
@_rewrite_option
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="Where to write the patched .onnx (default MODEL_MARCH.onnx).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def patch(session, model, model_path, weights, march, rewrites, output, as_json):
    """Rewrite the ONNX graph so the board toolchain accepts it, and prove the outputs did not change.

    By default the march's default rewrites (nash-e: reduce_mean_4d, a 4-D Reshape and a 2-D ReduceMean
    in place of a 5-D GlobalAveragePool); --rewrite NAME picks others.
    """
    from modelzoo.core.artifacts.artifacts import load_onnx, save_onnx
    from modelzoo.core.board.board_compile import patch_model

    found = session.registry.get_model(model)
    spec = found.spec
    target_march = _target_march(session, found, march, rewrites)
    source = _source_onnx(session, found, model_path, weights)
    patched, result = patch_model(found, load_onnx(source), target_march)
    target = Path(output or f"{spec.name}_{march}.onnx")
    save_onnx(patched, target)
    remaining = target_march.check(patched)
    if as_json:
        emit_json(
            {
                "model": spec.name,
                "march": march,
                "input": str(source),
                "output": str(target),
                "rewrites": list(target_march.chosen or target_march.default_rewrites()),
                **result.to_dict(),
                "remaining": [f.to_dict() for f in remaining],
            }
        )
    elif not result.changes:
        click.echo(f"nothing to change for {march} in {source.name}; wrote an unchanged copy to {target}")
    else:
        click.echo(f"patched {source.name} for {march} -> {target}")
        for change in result.changes:
            click.echo(f"  {change}")
        eq = result.equivalence
        click.echo(
            f"equivalent on random input {eq.input_shapes}: relative difference {eq.relative_diff:.3g} "
            f"(max |difference| {eq.max_abs_diff:.3g} over max |output| {eq.max_abs_output:.3g}; "
            f"tolerance {eq.tolerance:g} relative)"
        )
    rejected = [f for f in remaining if f.is_error]
    if rejected:
        notice(f"warning: {len(rejected)} node(s) still violate {march} constraints that have no automatic fix:")
        notice(_describe_findings(rejected))
    unconfirmed = [f for f in remaining if not f.is_error]
    if unconfirmed:
        notice(f"warning: {len(unconfirmed)} node(s) are not known to be accepted by {march}:")
        notice(_describe_findings(unconfirmed))


@click.command()
@click.argument("model")
@model_source("Start from this .onnx instead of the converted weights.")
@_march_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def check(session, model, model_path, weights, march, as_json):
    """Lint the ONNX against the march's known constraints. Exit 1 if a node is known to be rejected;
    nodes only not known to be accepted (severity "warning") are listed, and the exit code stays 0."""
    from modelzoo.core.artifacts.artifacts import load_onnx

    found = session.registry.get_model(model)
    spec = found.spec
    target_march = session.registry.march(march)
    source = _source_onnx(session, found, model_path, weights)
    command = target_march.patch_command(found.name, model_path=model_path, weights=weights)
    findings = target_march.check(load_onnx(source), patch_command=command)
    rejected = [f for f in findings if f.is_error]
    unconfirmed = [f for f in findings if not f.is_error]
    if as_json:
        emit_json(
            {
                "model": spec.name,
                "march": march,
                "input": str(source),
                "ok": not rejected,
                "findings": [f.to_dict() for f in findings],
            }
        )
    else:
        if rejected:
            click.echo(f"{source.name}: {len(rejected)} node(s) violate known {march} constraints")
        else:
            click.echo(f"{source.name}: OK, no known {march} constraint is violated")
        if unconfirmed:
            click.echo(f"{source.name}: warning: {len(unconfirmed)} node(s) are not known to be accepted by {march}")
        if findings:
            click.echo(_describe_findings(findings))
    if rejected:
        click.get_current_context().exit(1)  # a lint failure, not an error: no `error:` line


@click.command()
@click.argument("model")
@click.argument("more_inputs", metavar="[INPUT]...", nargs=-1)
@click.option(
    "--input",
    "-i",
    "inputs",
    multiple=True,
    help="Input file or directory of inputs the model takes (repeatable; more may follow as arguments).",
)
@click.option(
    "--output", "-o", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory for the .npy files."
)
@click.option(
    "--count", type=click.IntRange(min=1), default=100, show_default=True, help="Stop after this many samples."
)
@click.option("--clips", type=click.IntRange(min=1), help="Clips per video, one .npy each (video models; default 1).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def calib(session, model, more_inputs, inputs, out_dir, count, clips, as_json):
    """Write hb_compile calibration data: one float32 .npy per clip, exactly what `zoo run` feeds the model."""
    from modelzoo.core.board.calibration import find_sources, write_calibration
    from modelzoo.core.errors import InputError
    from modelzoo.core.runner import task_options

    found = session.registry.get_model(model)
    spec = found.spec
    task = session.registry.task_of(found)
    options = task_options(session.registry, found, session.config, {"clips": clips} if clips else {})
    all_inputs = [*inputs, *more_inputs]
    if not all_inputs:
        raise InputError(
            f"no calibration input; pass --input FILE_OR_DIR (inputs like the deployment data: {task.accepted()})"
        )
    sources = find_sources(all_inputs, task.input_suffixes)
    with progress(len(sources), "calibration") as bar:

        def advanced(_source, _error):
            bar.update(1)

        report = write_calibration(
            session.registry, found, sources, out_dir, count=count, options=options, on_source=advanced
        )
    if as_json:
        emit_json({"model": spec.name, **report.to_dict()})
    else:
        click.echo(
            f"wrote {len(report.written)} calibration sample(s) to {report.out_dir} "
            f"from {report.sources_used} input(s); skipped {len(report.skipped)}"
        )
    for source, reason in report.skipped:
        notice(f"skipped {source}: {reason}")
    if len(report.written) < count:
        notice(
            f"note: {len(report.written)} of --count {count} samples; hb_compile calibrates best with about 100 from inputs like the deployment data"
        )
    if report.stale:
        notice(
            f"note: {report.out_dir} also holds {len(report.stale)} other .npy file(s); "
            "hb_compile and zoo quantize will read them too"
        )


@click.command("compile")
@click.argument("model")
@model_source("Start from this .onnx instead of the converted weights.")
@_march_option
@_rewrite_option
@click.option(
    "--calib",
    "calib_dir",
    type=click.Path(file_okay=False),
    help="Calibration .npy files (from `zoo calib`) or inputs (videos, images) to make them from.",
)
@click.option(
    "--output", "-o", "workdir", type=click.Path(file_okay=False), help="Working directory (default MODEL_MARCH)."
)
@click.option("--fast-perf", is_flag=True, help="Only hb_compile's quick performance estimate (random calibration).")
@calibration_count
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def compile_model(session, model, model_path, weights, march, rewrites, calib_dir, workdir, fast_perf, count, as_json):
    """Patch, check and configure the model for hb_compile, then run it if it is on PATH.

    Without hb_compile (outside the OpenExplorer environment) it prints the command to run there.
    """
    from modelzoo.core.artifacts.artifacts import load_onnx
    from modelzoo.core.board import hb_compile
    from modelzoo.core.board.board_compile import prepare_compile, run_compile

    found = session.registry.get_model(model)
    spec = found.spec
    target_march = _target_march(session, found, march, rewrites)
    workdir = Path(workdir or f"{spec.name}_{march}")
    source = _source_onnx(session, found, model_path, weights)
    plan = prepare_compile(
        session.registry,
        found,
        load_onnx(source),
        target_march,
        workdir,
        calib_dir=calib_dir,
        count=count,
        fast_perf=fast_perf,
        log=notice,
    )
    for change in plan.changes:
        notice(f"patched {change}")
    for warning in plan.warnings:
        notice(f"warning: {warning}")
    data = plan.to_dict()

    if hb_compile.find_hb_compile() is None:
        data["ran"] = False
        if as_json:
            emit_json(data)
        else:
            _echo_prepared(data)
            click.echo("hb_compile is not on PATH: run this inside the OpenExplorer (OE 3.5) environment:")
            click.echo(f"  {plan.shell_line}")
        notice(f"note: {hb_compile.TOOL} not found; everything it needs is in {plan.workdir}")
        return

    notice(f"running: {plan.shell_line}")
    compiled = run_compile(plan, echo=notice)
    data["ran"] = True
    data["result"] = compiled.to_dict()
    if as_json:
        emit_json(data)
        return
    _echo_prepared(data)
    click.echo(f"hb_compile finished: {compiled.hbm or 'no .hbm written'} (log {compiled.log_path})")
    if not compiled.cosine and not fast_perf:
        notice(f"note: no cosine-similarity table recognised in {compiled.log_path}; read the log for accuracy")
    if compiled.cosine:
        click.echo("cosine similarity, float vs quantized model:")
        click.echo(
            table(
                ["output", "cosine similarity", *compiled.cosine[0].metrics],
                [
                    [r.output, _cosine(r.cosine_similarity), *(_cosine(v) for v in r.metrics.values())]
                    for r in compiled.cosine
                ],
            )
        )
    cpu = compiled.nodes_on_cpu
    if cpu:
        click.echo(
            f"{len(cpu)} node(s) run on the CPU, not the BPU: "
            + ", ".join(f"{n.name} ({n.node_type})" for n in cpu[:10])
        )
    lowest = compiled.lowest_cosine_nodes()
    if lowest:
        click.echo("lowest quantized cosine per node:")
        click.echo(
            table(
                ["node", "type", "on", "quantized cosine"],
                [[n.name, n.node_type, n.on, n.quantized_cosine] for n in lowest],
            )
        )
    estimate = compiled.estimate
    if estimate is not None and (estimate.fps or estimate.latency_ms):
        click.echo(
            f"toolchain estimate (predicted by hb_compile, not measured): {estimate.fps} FPS, {estimate.latency_ms} ms"
        )
    if not compiled.completed and not fast_perf:
        notice(f"warning: hb_compile did not log 'The hb_compile completes running.'; check {compiled.log_path}")


def _echo_prepared(data: dict) -> None:
    click.echo(f"{data['model']} for {data['march']} in {data['workdir']}")
    click.echo(
        f"  model:       {data['onnx']}" + (f" ({len(data['changes'])} node(s) patched)" if data["changes"] else "")
    )
    if data["config"]:
        click.echo(f"  config:      {data['config']}")
    if data["calibration"]:
        click.echo(f"  calibration: {data['calibration']['dir']} ({data['calibration']['samples']} samples)")


@click.command()
@click.argument("model")
@click.option("--backend", help="auto, onnxruntime, hbm, or a plugin's backend (default auto, or zoo.yaml).")
@model_source("Measure this model file (.onnx, or .hbm on the board).")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "int8"]),
    help="Host precision: int8 measures the host-quantized ONNX (default zoo.yaml's, else fp32).",
)
@click.option(
    "--threads",
    "thread_counts",
    default="1,2,4,8",
    show_default=True,
    callback=_parse_threads,
    help="Thread counts, one row each: threads running inferences at once, as hrt_model_exec --thread_num. "
    "On a host each row's model gets cores // threads onnxruntime threads (at least 1), unless zoo.yaml sets threads.",
)
@click.option(
    "--frames",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Frames per row, shared by the threads. A frame is one inference, as hrt_model_exec counts it: "
    "one model input (for R3D-18 a 16-frame clip), not one video frame.",
)
@board_scheduling
@click.option("--save", is_flag=True, help="Record the rows in the cache; `zoo info` shows them as measured here.")
@click.option(
    "--force", is_flag=True, help="Measure a --model ONNX that records another model's architecture (a warning)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def perf(
    session, model, backend, model_path, weights, precision, thread_counts, frames, priority, bpu_cores, save, force,
    as_json,
):  # fmt: skip
    """Measure latency and FPS like `hrt_model_exec perf`, on random input, with any backend.

    A frame is one inference on one model input (for R3D-18 a 16-frame clip), so FPS is inferences
    per second. Each row's threads share one loaded model; a line per row goes to stderr as it finishes.
    """
    from modelzoo.core.backends.perf import RowBackends, published_rows, run_perf
    from modelzoo.core.runner import load_backend, pick_backend, resolve_model_file

    found = session.registry.get_model(model)
    spec = found.spec
    if max(thread_counts) > frames:
        from modelzoo.core.errors import InputError

        raise InputError(
            f"--threads {max(thread_counts)} needs at least as many --frames (got {frames}): "
            f"each thread runs at least one frame; raise --frames or lower --threads"
        )
    options = scheduling_options(priority, bpu_cores)
    backend_cls = pick_backend(
        session.registry,
        found,
        session.config,
        session.cache,
        backend=backend,
        model_path=model_path,
        weights=weights,
        options=options,
        log=notice,
    )
    model_file = resolve_model_file(
        session.registry,
        found,
        backend_cls,
        session.config,
        session.cache,
        model_path=model_path,
        weights=weights,
        precision=precision,
        force=force,
        log=notice,
    )
    # Host backends (those running zoo's ONNX) share the cores between a row's threads and the
    # runtime's own intra-op threads; a board backend runs on its accelerator and ignores `threads`.
    loader = RowBackends(
        lambda threads: load_backend(backend_cls, model_file, found, session.cache, threads=threads, **options),
        per_row=backend_cls.converts_weights,
        fixed=session.config.threads,
    )
    first = loader(thread_counts[0])  # a file that does not load fails before any measurement
    shape = [1, *spec.input.shape[1:]]
    described = first.describe()
    del first
    notice(
        f"measuring {spec.name} with {described} on random input: {frames} frames per row, "
        f"a frame being one inference on a {shape} input"
    )
    if loader.per_row:
        notice(f"  each row loads the model with {loader.cores} cores // threads intra-op threads (at least 1)")
    elif loader.fixed and backend_cls.converts_weights:
        busy = [n for n in thread_counts if n * loader.fixed > loader.cores]
        if busy:
            notice(
                f"note: zoo.yaml sets threads: {loader.fixed}; rows with {', '.join(map(str, busy))} thread(s) ask "
                f"for more than the {loader.cores} cores, which slows every thread"
            )

    def row_line(r) -> None:
        inner = loader.threads_for(r.threads)
        inside = f" x {inner} intra-op thread(s)" if inner and backend_cls.converts_weights else ""
        notice(f"  {r.threads} thread(s){inside}: {r.avg_latency_ms:.2f} ms average, {r.fps:.2f} FPS")

    rows = run_perf(
        loader,
        spec.input.shape,
        thread_counts,
        frames,
        progress=lambda threads: progress(frames, f"{threads} thread(s)"),
        on_row=row_line,
    )
    published = published_rows(spec)
    saved = None
    if save:
        from modelzoo.core.accuracy.measured import measurement_environment, perf_rows, record_measurements
        from modelzoo.core.runner import resolve_precision

        measured = perf_rows(
            measurement_environment(session.registry, found, [described]), rows, input_shape=shape,
            backend=described, precision=resolve_precision(session.config, found, precision), model_file=model_file,
            intra_op={r.threads: loader.threads_for(r.threads) if backend_cls.converts_weights else None for r in rows},
        )  # fmt: skip
        saved = str(record_measurements(session.cache, spec.name, measured, log=notice))
    if as_json:
        emit_json(
            {
                "model": spec.name,
                "backend": described,
                "model_file": str(model_file),
                "input_shape": shape,
                "rows": [r.to_dict() for r in rows],
                "published": published,
                **({"saved": saved} if saved else {}),
            }
        )
        return
    click.echo(
        f"{spec.name} perf: {described}, {model_file.name}, random float32 input {shape}, one inference per frame"
    )
    click.echo(
        table(
            ["threads", "total frames", "total latency ms", "average latency ms", "FPS"],
            [
                [r.threads, r.frames, f"{r.total_latency_ms:.2f}", f"{r.avg_latency_ms:.2f}", f"{r.fps:.2f}"]
                for r in rows
            ],
        )
    )
    if published:
        first = published[0]
        click.echo(
            f"\npublished {first['device']} ({first['march']}) figures, for reference, not measured here ({first['source']}):"
        )
        click.echo(
            table(
                ["threads", "average latency ms", "FPS"],
                [[p["threads"], f"{p['avg_latency_ms']:.2f}", f"{p['fps']:.2f}"] for p in published],
            )
        )
    if saved:
        notice(f"recorded in {saved} (`zoo info {spec.name}` shows it as measured here)")
