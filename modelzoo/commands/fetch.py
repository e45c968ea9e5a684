"""zoo fetch: put a model's published files (or the user's own copy) into the cache."""

from __future__ import annotations

from pathlib import Path

import click

from modelzoo.output import emit_json, notice
from modelzoo.session import pass_session


@click.command()
@click.argument("model")
@click.option(
    "--weights",
    "local_file",
    type=click.Path(dir_okay=False),
    help="Import this local file instead of downloading (with --hbm: a local .hbm).",
)
@click.option("--hbm", is_flag=True, help="Fetch the prebuilt board model instead of the weights.")
@click.option(
    "--onnx",
    "onnx_file",
    type=click.Path(dir_okay=False),
    help="Import this ONNX, exported with the model's own tooling, as the model's file (models zoo does not convert).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def fetch(session, model, local_file, hbm, onnx_file, as_json):
    """Download a model's weights (or prebuilt board model) into the cache and verify them."""
    from modelzoo.core.artifacts.artifact_fetch import fetch_artifact, import_local
    from modelzoo.core.errors import InputError

    found = session.registry.get_model(model)
    spec = found.spec
    if onnx_file is not None:
        _import_onnx(session, found, onnx_file, local_file, hbm, as_json)
        return
    name = "hbm" if hbm else "weights"
    artifact = spec.artifact(name)
    if artifact is None:
        hint = spec.how_to_get if name == "weights" and spec.how_to_get else f"see `zoo info {spec.name}`"
        raise InputError(f"{spec.name} publishes no {name} artifact; {hint}")
    cache = session.cache
    if local_file is not None:
        cached, official = import_local(spec, artifact, cache, Path(local_file))
        status = "imported"
        if artifact.sha256 is not None and not official:
            notice(
                f"note: {local_file} is not the official {spec.name} {name} file "
                f"(sha256 {cached.sha256}, official {artifact.sha256}); cached as custom {name}, not as official"
            )
        elif artifact.sha256 is None:
            notice(f"note: {spec.name} publishes no checksum for {artifact.filename}; {local_file} is cached as custom")
        if not official and name == "weights":
            notice(f"note: later commands use these weights; `zoo fetch {spec.name}` goes back to the official ones")
    else:
        override = session.config.model(spec.name) if name == "weights" else None
        url = override.weights_url if override else None
        sha256 = override.weights_sha256 if override else None
        events = []
        cached = fetch_artifact(
            spec,
            artifact,
            cache,
            url=url,
            sha256=sha256,
            progress=not as_json,
            on_download=lambda: events.append("downloaded"),
        )
        status = events[0] if events else "cached"
        if not cached.verified:
            notice(
                f"warning: {cached.path.name} could not be verified: no checksum is published for it. "
                f"Observed sha256 {cached.sha256} (recorded in the cache manifest)"
            )
        elif not cached.official:
            notice(f"note: {cached.path.name} matched the checksum from {session.config.path}; cached as custom {name}")
    if as_json:
        emit_json({"status": status, **cached.to_dict()})
        return
    label = "official" if cached.official else "custom"
    check = "sha256 verified" if cached.verified else "sha256 not verified"
    click.echo(f"{spec.name} {name}: {status}, {label}, {check}")
    click.echo(f"  {cached.path} ({cached.size / 1e6:.1f} MB, sha256 {cached.sha256})")


def _import_onnx(session, model, onnx_file, local_file, hbm, as_json) -> None:
    """`zoo fetch MODEL --onnx FILE`: check the file against the model, cache it, use it from now on."""
    from modelzoo.core.artifacts.onnx_import import import_onnx
    from modelzoo.core.errors import InputError

    spec = model.spec
    if local_file is not None or hbm:
        raise InputError("--onnx imports a model file on its own; leave out --weights and --hbm")
    if spec.artifact("weights") is not None:
        raise InputError(
            f"{spec.name} converts its own checkpoint; run an ONNX of it with --model FILE.onnx, "
            f"or import other weights with `zoo fetch {spec.name} --weights FILE`"
        )
    cached = import_onnx(model, session.cache, Path(onnx_file))
    if as_json:
        emit_json({"status": "imported", **cached.to_dict()})
        return
    click.echo(f"{spec.name} onnx: imported, checked against the spec (input and output names and shapes)")
    click.echo(f"  {cached.path} ({cached.size / 1e6:.1f} MB, sha256 {cached.sha256})")
    notice(f"note: `zoo run {spec.name} INPUT` uses it from now on; importing another ONNX replaces it")
