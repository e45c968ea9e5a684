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
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def fetch(session, model, local_file, hbm, as_json):
    """Download a model's weights (or prebuilt board model) into the cache and verify them."""
    from modelzoo.core.artifacts.artifact_fetch import fetch_artifact, import_local
    from modelzoo.core.errors import InputError

    spec = session.registry.get_model(model).spec
    name = "hbm" if hbm else "weights"
    artifact = spec.artifact(name)
    if artifact is None:
        raise InputError(f"{spec.name} publishes no {name} artifact; see `zoo info {spec.name}`")
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
