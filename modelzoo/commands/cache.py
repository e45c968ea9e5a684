"""zoo cache list / verify / clean / path: see and manage the downloaded and converted files."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from modelzoo.core.errors import CacheError
from modelzoo.output import emit_json, notice, progress, table
from modelzoo.session import pass_session


@click.group()
def cache():
    """Manage the artifact cache ($ZOO_HOME, cache_dir in zoo.yaml, or the user cache dir)."""


@cache.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def list_cache(session, as_json):
    """List every cached file with its origin and checksum status, and partial downloads."""
    entries = session.cache.entries()
    leftovers = session.cache.leftovers()
    if as_json:
        emit_json([e.to_dict() for e in entries] + [left.to_dict() for left in leftovers])
        return
    if not entries and not leftovers:
        click.echo(f"the cache at {session.cache.root} is empty; `zoo fetch MODEL` downloads a model's weights")
        return
    rows = []
    for e in entries:
        if e.source_sha256:
            origin = f"from {e.source_sha256[:12]}"
        else:
            origin = ("official" if e.official else "custom") + (", verified" if e.verified else ", unverified")
        rows.append([e.model, e.artifact, e.path.name, _megabytes(e.size), e.sha256[:12], origin])
    for left in leftovers:
        rows.append([left.model, "-", left.path.name, _megabytes(left.size), "-", left.status])
    click.echo(table(["model", "artifact", "file", "size", "sha256", "status"], rows))
    total = sum(e.size for e in entries) + sum(left.size for left in leftovers)
    partial = f" (and {len(leftovers)} incomplete: see status)" if leftovers else ""
    click.echo(f"{len(entries)} files{partial}, {_megabytes(total)} in {session.cache.root}")


@cache.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def verify(session, as_json):
    """Re-hash every cached file against its manifest; exits 2 if any is missing or changed."""

    store = session.cache
    count = len(store.entries())
    # re-hashing gigabytes takes minutes: a bar on a terminal, a line every few seconds in a log
    with progress(count, "verifying") if count and not as_json else contextlib.nullcontext() as bar:
        results = store.verify(on_file=(lambda _entry: bar.update(1)) if bar else None)
    if as_json:
        emit_json([r.to_dict() for r in results])
    else:
        for r in results:
            status = "ok" if r.ok else f"FAILED ({r.problem})"
            click.echo(f"{status:16} {r.path}")
        click.echo(f"{sum(r.ok for r in results)} of {len(results)} files ok")
    failed = [r for r in results if not r.ok]
    if failed:
        models = sorted({_model_of(session.cache, r.path) for r in failed})
        clean = "; ".join(f"`zoo cache clean {m}`" for m in models)
        raise CacheError(
            f"{len(failed)} cached file(s) are missing or changed (first: {failed[0].path}); "
            f"run {clean} and fetch them again"
        )


def _model_of(store, path) -> str:
    """The model a cached file belongs to (<root>/models/<model>/...), or MODEL when it is elsewhere."""
    try:
        return Path(path).relative_to(store.models_dir).parts[0]
    except (ValueError, IndexError):
        return "MODEL"


@cache.command()
@click.argument("model", required=False)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def clean(session, model, yes, as_json):
    """Delete cached files: one model's, or everything."""
    store = session.cache
    what = f"{model}'s cached files" if model else "every cached file"
    size = store.size(model)
    if size and not yes:
        try:
            confirmed = click.confirm(f"delete {what} ({_megabytes(size)}) from {store.root}?", err=True)
        except click.Abort:  # no one to answer (stdin closed)
            notice("")  # end the unanswered prompt's line
            raise CacheError(
                f"nothing deleted: cannot ask for confirmation here; pass --yes to delete {what}"
            ) from None
        if not confirmed:
            notice("nothing deleted")
            return
    freed = store.clean(model) if size else 0
    if as_json:
        emit_json({"root": str(store.root), "model": model, "freed_bytes": freed})
    elif size == 0:
        click.echo(f"nothing cached{' for ' + model if model else ''} in {store.root}")
    else:
        click.echo(f"freed {_megabytes(freed)}")


@cache.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def path(session, as_json):
    """Print the cache directory."""
    if as_json:
        emit_json({"root": str(session.cache.root)})
    else:
        click.echo(str(session.cache.root))


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
