"""Getting a model's artifacts into the cache, and deciding what they are: official (the published
hash, or its published prefix), verified (checked against any known hash), or custom.

A cached download found damaged (see `ArtifactCache`) is set aside and fetched again, once, with a
notice. A custom file imported with `zoo fetch MODEL --weights FILE` is used from then on, until the
published one is fetched again (`zoo fetch MODEL`) or the model's cache is cleaned.
"""

from __future__ import annotations

from pathlib import Path

from modelzoo.core.artifacts.cache import ArtifactCache, CachedFile, sha256_file
from modelzoo.core.artifacts.download import download
from modelzoo.core.console import stderr_line
from modelzoo.core.errors import DownloadError, InputError


def fetch_artifact(
    spec,
    artifact,
    cache: ArtifactCache,
    *,
    url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    on_download=None,
    log=None,
) -> CachedFile:
    """The cached copy of `artifact`, downloading it first if needed (`on_download()` is called then).

    `url`/`sha256` override the published ones (zoo.yaml). A file with no checksum to compare
    against is cached under its observed hash with `verified=False`; tell the user. The file
    fetched becomes the one used: custom weights imported in its place are no longer used.
    `log` gets notices (default: stderr).
    """
    cached = _fetch(spec, artifact, cache, url, sha256, progress, on_download, log or stderr_line)
    cache.select(spec.name, artifact.name, None)
    return cached


def _fetch(spec, artifact, cache, url, sha256, progress, on_download, log) -> CachedFile:
    source = url or artifact.url
    published = artifact.sha256.lower() if artifact.sha256 else None
    expected = (sha256 or published or "").lower() or None
    # With a hash, identical bytes are the official file wherever they came from; without one,
    # only the published URL is.
    official = expected == published if expected else source == artifact.url
    hint = f"download it by other means and run `{_manual_command(spec, artifact)}`"
    set_aside = []  # damaged copies moved out of the way: removed once a good one is cached
    if expected is not None:
        hit = _intact(cache, cache.find_by_sha(spec.name, expected), set_aside, log)
        if hit is not None:
            # the bytes match the expected hash, however they got here: that is verification
            return hit if hit.verified else cache.mark(hit, verified=True, official=hit.official or official)
        dest = cache.file_path(spec.name, expected, _filename(source, artifact))
        if on_download:
            on_download()
        # the published size bounds the download only when these must be the published bytes
        size = artifact.size if expected == published else None
        download(source, dest, expected, progress=progress, hint=hint, max_bytes=size, allow_file=url is not None)
        cached = cache.add_file(spec.name, artifact.name, dest, source, expected, verified=True, official=official)
        _remove(set_aside)
        return cached

    from filelock import FileLock

    hit = _intact(cache, cache.find_by_url(spec.name, artifact.name, source), set_aside, log)
    if hit is not None:
        return hit
    staging = cache.staging_dir(spec.name)
    staging.mkdir(parents=True, exist_ok=True)
    filename = _filename(source, artifact)
    # Held from download to add_file, so a second process never moves a file the first is moving.
    with FileLock(str(staging / f"{filename}.fetch.lock")):
        hit = _intact(cache, cache.find_by_url(spec.name, artifact.name, source), set_aside, log)
        if hit is not None:
            return hit
        staged = staging / filename
        if on_download:
            on_download()
        observed = download(source, staged, None, progress=progress, hint=hint, allow_file=url is not None)
        prefix_ok = _matches_prefix(artifact, observed)
        if prefix_ok is False:
            staged.unlink(missing_ok=True)
            raise DownloadError(
                f"{source} has sha256 {observed}, which does not start with the published prefix "
                f"{artifact.sha256_prefix}; the file is not the official one. {hint[0].upper()}{hint[1:]}"
            )
        cached = cache.add_file(
            spec.name,
            artifact.name,
            staged,
            source,
            observed,
            verified=bool(prefix_ok),
            official=official or bool(prefix_ok),
            move=True,
        )
        _remove(set_aside)
        return cached


def _intact(cache: ArtifactCache, hit: CachedFile | None, set_aside: list, log) -> CachedFile | None:
    """`hit` if its file is intact; a damaged download is set aside (appended to `set_aside`) for the
    caller to fetch again, once."""
    if hit is None or not hit.damage:
        return hit
    aside = cache.set_aside(hit)
    set_aside.append(aside)
    log(f"warning: the cached {hit.path.name} is damaged ({hit.damage}); set aside as {aside.name}, fetching it again")
    return None


def _remove(paths: list) -> None:
    """A good copy is back: the damaged ones set aside for it have served their purpose."""
    for path in paths:
        path.unlink(missing_ok=True)


def import_local(spec, artifact, cache: ArtifactCache, path, *, use: bool = True) -> tuple:
    """Copy a user-supplied file into the cache; returns (CachedFile, official).

    Only a file whose sha256 equals the published one is official. Any other checkpoint is
    accepted as custom weights after checking that zoo can read it. With `use` (`zoo fetch
    --weights`), imported weights are the ones used from then on: custom weights are recorded as
    chosen in this cache, official ones undo that.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file; pass the path of a downloaded {artifact.name} file")
    actual = sha256_file(path)
    official = (artifact.sha256 is not None and actual == artifact.sha256.lower()) or bool(
        _matches_prefix(artifact, actual)
    )
    hit = cache.find_by_sha(spec.name, actual)
    if hit is not None and not hit.damage and hit.artifact == artifact.name and hit.official == official:
        cached = hit  # imported before: already checked and copied
    else:
        if not official and artifact.format == "pytorch":
            from modelzoo.core.artifacts.checkpoint import load_state_dict

            load_state_dict(path)  # refuse an unreadable or unsafe file before it lands in the cache
        cached = cache.add_file(
            spec.name,
            artifact.name,
            path,
            path.resolve().as_uri(),
            actual,
            verified=official,
            official=official,
            filename=artifact.filename if official else path.name,
        )
    if use and artifact.name == "weights":
        cache.select(spec.name, artifact.name, None if official else cached)
    return cached, official


def _matches_prefix(artifact, observed: str):
    """True/False against a published hash prefix (as torch.hub checks), None when there is none."""
    prefix = artifact.sha256_prefix
    if artifact.sha256 or not prefix:
        return None
    return observed.lower().startswith(prefix.lower())


def _manual_command(spec, artifact) -> str:
    if artifact.name == "weights":
        return f"zoo fetch {spec.name} --weights FILE"
    return f"zoo fetch {spec.name} --{artifact.name} --weights FILE"


def _filename(url: str, artifact) -> str:
    name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return name if name and name not in (".", "..") else artifact.filename
