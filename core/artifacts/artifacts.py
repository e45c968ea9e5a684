"""From a model name to a runnable file: fetch or import the weights, convert once, reuse the cache.

Which weights a command uses: `--weights FILE`, else the custom weights imported with `zoo fetch
MODEL --weights FILE` (recorded in the cache), else the published ones (or zoo.yaml's mirror).
Weights that are not the official checkpoint are always named in one notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelzoo.core.artifacts.cache import CachedFile, origin_of, sha256_file
from modelzoo.core.console import stderr_line
from modelzoo.core.errors import (
    CacheError,
    CheckpointError,
    ConversionError,
    DownloadError,
    InputError,
    PluginError,
    ZooError,
)
from modelzoo.core.version import zoo_version


@dataclass(frozen=True)
class Weights:
    path: Path
    sha256: str
    official: bool
    verified: bool = False  # checked against a known hash (published, or zoo.yaml's)
    note: str | None = None  # the one line that says these are not the official weights
    chosen: bool = False  # imported with `zoo fetch MODEL --weights FILE` and used since
    origin: str = ""  # where they came from, for messages


def resolve_weights(spec, config, cache, weights_file=None, progress=True, log=None) -> Weights:
    """The checkpoint to convert: --weights FILE, else the imported custom weights in use, else the
    cached or freshly downloaded official (or zoo.yaml's) ones."""
    from modelzoo.core.artifacts.artifact_fetch import fetch_artifact, import_local

    artifact = spec.artifact("weights")
    if weights_file is not None:
        path = Path(weights_file).expanduser()
        if not path.is_file():
            raise InputError(f"weights file {path} does not exist or is not a file; check --weights")
        if artifact is None:
            sha = sha256_file(path)
            return Weights(path, sha, official=False, note=_named_note(path, sha), origin=str(path))
        cached, official = import_local(spec, artifact, cache, path, use=False)
        note = None if official else _named_note(path, cached.sha256)
        return Weights(cached.path, cached.sha256, official, cached.verified, note, origin=str(path))
    if artifact is None:
        hint = spec.how_to_get or "pass --model FILE or --weights CHECKPOINT"  # a model's own way, when it has one
        raise InputError(f"{spec.name} publishes no weights; {hint}")
    chosen = _chosen_weights(spec, cache)
    if chosen is not None:
        return chosen
    override = config.model(spec.name)
    try:
        cached = fetch_artifact(
            spec, artifact, cache, url=override.weights_url, sha256=override.weights_sha256, progress=progress, log=log
        )
    except DownloadError as exc:
        custom = cache.find(spec.name, "weights")
        if custom is None or custom.official:
            raise
        # custom weights are never used in place of the official ones unless asked for
        raise DownloadError(
            f"{exc}. Custom weights are cached but used only when named: --weights {custom.path} "
            f"(or from now on: `zoo fetch {spec.name} --weights {custom.path}`)"
        ) from None
    note = None
    if not cached.official:
        where = f" ({config.path})" if config.path else ""
        note = f"using custom weights from {cached.origin}{where} (sha256 {cached.sha256[:12]}…), not the official checkpoint"
    return Weights(cached.path, cached.sha256, cached.official, cached.verified, note, origin=cached.origin)


def _named_note(path: Path, sha256: str) -> str:
    return f"using custom weights {path.name} (sha256 {sha256[:12]}…), not the official checkpoint"


def _chosen_weights(spec, cache) -> Weights | None:
    """The custom weights imported with `zoo fetch MODEL --weights FILE`, if that is what this cache uses."""
    undo = f"`zoo fetch {spec.name}` goes back to the official weights"
    entry = chosen_file(cache, spec.name, "weights", "custom weights", undo=undo)
    if entry is None:
        return None
    note = f"using custom weights imported from {entry.origin} (sha256 {entry.sha256[:12]}…); {undo}"
    return Weights(entry.path, entry.sha256, entry.official, entry.verified, note, chosen=True, origin=entry.origin)


def chosen_file(cache, model_name: str, artifact: str, what: str, undo: str = "") -> CachedFile | None:
    """The file imported with `zoo fetch MODEL --ARTIFACT FILE` and used since, or None. One that left
    the cache or is damaged is a CacheError: running something else in its place would surprise."""
    record = cache.selection(model_name, artifact)
    if record is None:
        return None
    entry = cache.find_by_sha(model_name, record["sha256"])
    origin = entry.origin if entry is not None else origin_of(record.get("from"))
    imported = f"the {what} file of {model_name} imported from {origin}"
    again = f"import it again with `zoo fetch {model_name} --{artifact} FILE`" + (f", or {undo}" if undo else "")
    if entry is None:
        raise CacheError(f"{imported} is no longer in the cache ({cache.root}); {again}")
    if entry.damage:
        raise CacheError(
            f"{imported} is damaged in the cache ({entry.damage}); remove it with `zoo cache clean {model_name}` "
            f"and {again}"
        )
    return entry


def resolve_onnx(model, registry, weights: Weights, cache, log=None) -> tuple:
    """The ONNX converted from `weights`, cached by checkpoint hash. Returns (path, converted_now).

    A file made by another zoo or plugin version is converted again: a converter fix must reach
    users who already have a cached model. A file lock makes a second process wait for the first
    one's conversion and reuse it; a cached file found damaged is converted again.
    """
    from filelock import FileLock

    from modelzoo.core.atomic import held

    spec = model.spec
    plugin = registry.plugins.get(spec.plugin)
    filename = f"{spec.name}-{plugin.version if plugin and plugin.version else 'dev'}.onnx"
    hit = _cached_onnx(cache, spec.name, weights.sha256, filename, log)
    if hit is not None:
        return hit.path, False
    target = cache.derived_path(spec.name, weights.sha256, filename)
    target.parent.mkdir(parents=True, exist_ok=True)
    # hidden, so that prune_derived (which removes "<model>-*") never deletes a lock another process holds
    lock = FileLock(str(target.with_name(f".{filename}.lock")))
    with held(lock, f"converting {weights.path.name} to ONNX", log):
        hit = _cached_onnx(cache, spec.name, weights.sha256, filename, log)
        if hit is not None:  # the process we waited for made it
            return hit.path, False
        return _convert(model, weights, cache, filename, log), True


def _cached_onnx(cache, model_name: str, sha256: str, filename: str, log) -> CachedFile | None:
    hit = cache.find_derived(model_name, sha256, filename)
    if hit is None or hit.zoo_version != zoo_version():
        return None
    if hit.damage:
        cache.set_aside(hit).unlink(missing_ok=True)  # derived: nothing to keep, it is made again
        if log:
            log(f"warning: the cached {hit.path.name} is damaged ({hit.damage}); converting it again")
        return None
    return hit


def _convert(model, weights: Weights, cache, filename: str, log) -> Path:
    from modelzoo.core.artifacts.checkpoint import load_state_dict
    from modelzoo.core.contract.registry import blamed_on

    spec = model.spec
    if log:
        log(f"converting {weights.path.name} to ONNX (once; cached by checkpoint hash)")
    try:
        state_dict = load_state_dict(weights.path)
        with blamed_on(spec.plugin, f"build_onnx for {spec.name}"):
            graph = model.build_onnx(state_dict)
    except (CheckpointError, ConversionError) as exc:
        if weights.chosen:  # the user's own file, chosen earlier: say how to stop using it
            raise type(exc)(
                f"{exc} (these are the custom weights imported from {weights.origin}: remove them with "
                f"`zoo cache clean {spec.name}`, or go back to the official weights with `zoo fetch {spec.name}`)"
            ) from None
        if not weights.verified:  # a custom file that is not this model's checkpoint must not stay cached
            cache.discard(spec.name, weights.sha256)
        raise
    if graph is None:
        raise PluginError(f"plugin {spec.plugin!r} cannot build an ONNX graph for {spec.name}; pass --model FILE.onnx")
    payload = graph.SerializeToString()
    path = cache.add_derived(spec.name, weights.sha256, filename, lambda handle: handle.write(payload)).path
    cache.prune_derived(spec.name, weights.sha256, keep=filename, stem=f"{spec.name}-")
    return path


def converted_onnx(model, registry, config, cache, weights_file=None, log=None) -> tuple:
    """The ONNX of the official, imported or --weights checkpoint, converted once: (path, Weights, converted_now).

    Verified weights that fail to load because they changed on disk are set aside and fetched again, once.
    """
    weights = resolve_weights(model.spec, config, cache, weights_file, log=log)
    if weights.note and log:
        log(weights.note)
    try:
        path, converted = resolve_onnx(model, registry, weights, cache, log=log)
    except (CheckpointError, ConversionError):
        if not (weights.verified and weights.path.is_file() and sha256_file(weights.path) != weights.sha256):
            raise
        entry = cache.find_by_sha(model.spec.name, weights.sha256)
        aside = cache.set_aside(entry) if entry is not None else None
        (log or stderr_line)(
            f"warning: the cached {weights.path.name} no longer matches its sha256 (changed on disk); "
            "set aside, fetching it again"
        )
        weights = resolve_weights(model.spec, config, cache, weights_file, log=log)
        path, converted = resolve_onnx(model, registry, weights, cache, log=log)
        if aside is not None:
            aside.unlink(missing_ok=True)  # a good copy is back
    return path, weights, converted


def onnx_source(model, registry, config, cache, model_path=None, weights_file=None, log=None) -> Path:
    """The ONNX to prepare for a board: --model FILE.onnx, else the converted checkpoint."""
    if model_path:
        path = existing_model_file(model_path, model=model, weights=weights_file)
        if path.suffix.lower() != ".onnx":
            raise InputError(f"{path.name} is not an .onnx file; board preparation starts from ONNX (see `zoo export`)")
        return path
    if weights_file is None and model.spec.artifact("weights") is None:  # an ONNX from `zoo fetch MODEL --onnx`
        from modelzoo.core.artifacts.onnx_import import imported_onnx

        path = imported_onnx(model, cache)
        if path is not None:
            return path
    return converted_onnx(model, registry, config, cache, weights_file, log)[0]


def existing_model_file(model_path, *, model=None, weights=None) -> Path:
    """The user's --model file: it exists, is not combined with --weights, and an ONNX that records
    which architecture it was converted from (zoo's converters do) is `model`'s."""
    if weights is not None:
        raise InputError(
            f"--model and --weights cannot be used together: --model runs {model_path} as it is, "
            "--weights converts a checkpoint; pass one of them"
        )
    path = Path(model_path)
    if not path.is_file():
        raise InputError(f"model file {path} does not exist; check --model")
    if path.suffix.lower() == ".onnx":
        check_onnx_size(path)  # no --force gets past this: onnxruntime would read it all first
        if model is not None:
            _check_recorded_model(model, path)
    return path


_CHECKED: set = set()  # (model, real path, size, mtime_ns) whose recorded architecture passed here


def _check_recorded_model(model, path: Path) -> None:
    """`model.check_onnx` on the file's graph (external weights not loaded), once per version of the file
    in a process: loading a large graph costs ~0.2 s and its size in memory on every `zoo serve` request."""
    stat = path.stat()
    key = (model.name, str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _CHECKED:
        return
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:
        return  # not readable as ONNX: the backend that loads it says so, in its own words
    check_onnx_of(model, proto, str(path))
    _CHECKED.add(key)  # only a passed check is remembered


def check_onnx_of(model, proto, where: str) -> None:
    """`model.check_onnx(proto)`: a file that is not the model's is the user's InputError, prefixed by
    `where`; the check itself failing is the plugin's PluginError."""
    from modelzoo.core.contract.registry import blamed_on

    try:
        with blamed_on(model.plugin, f"check_onnx for {model.name}"):
            model.check_onnx(proto)
    except PluginError:
        raise
    except ZooError as exc:
        raise InputError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class CacheStatus:
    """What is cached for one model: the one answer `zoo list` and `zoo info` both show."""

    official: dict  # artifact name -> the intact official CachedFile, or None
    custom_weights: tuple  # cached weights that are not the official checkpoint
    weights_in_use: CachedFile | None  # custom weights imported with `zoo fetch --weights`, used by default
    onnx: bool  # a converted ONNX is cached

    def flags(self) -> dict:
        data = {name: entry is not None for name, entry in self.official.items()}
        data["custom_weights"] = bool(self.custom_weights)
        data["custom_weights_in_use"] = self.weights_in_use is not None
        data["onnx"] = self.onnx
        return data

    def summary(self) -> str:
        parts = [name for name, entry in self.official.items() if entry is not None]
        if self.custom_weights:
            parts.append("custom weights (in use)" if self.weights_in_use is not None else "custom weights")
        if self.onnx:
            parts.append("onnx")
        return ",".join(parts) or "-"


def cache_status(cache, spec) -> CacheStatus:
    """What `cache` holds for `spec` (cheap: reads manifests, hashes only a verified file whose mtime changed)."""
    official = {}
    for artifact in spec.artifacts:
        hit = cache.find(spec.name, artifact.name)
        official[artifact.name] = hit if hit is not None and hit.official and not hit.damage else None
    entries = [e for e in cache.entries(spec.name) if e.model == spec.name]  # one model's manifests only
    custom = tuple(e for e in entries if e.artifact == "weights" and not e.official and e.path.is_file())
    try:
        record = cache.selection(spec.name, "weights")
    except CacheError:  # a garbled record: the commands that use the weights say so; a listing goes on
        record = None
    in_use = next((e for e in custom if record is not None and e.sha256 == record["sha256"]), None)
    return CacheStatus(official, custom, in_use, any(e.source_sha256 and e.path.is_file() for e in entries))


# protobuf cannot serialize a message over 2 GiB, so no single-file ONNX is larger: a bigger file is
# refused before onnx reads all of it into memory
MAX_ONNX_BYTES = 2 << 30


def check_onnx_size(path) -> None:
    """An InputError for a file too large to be one ONNX protobuf, before anything reads it."""
    try:
        size = Path(path).stat().st_size
    except OSError:
        return  # the reader says what is wrong, in its own words
    if size > MAX_ONNX_BYTES:
        raise InputError(
            f"{path} is {size / 2**30:.1f} GiB, more than the 2 GiB a single ONNX file can hold; "
            "pass the .onnx file itself (a larger model keeps its weights as external data)"
        )


def load_onnx(path):
    import onnx

    check_onnx_size(path)
    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise InputError(f"cannot read {path} as ONNX ({exc}); pass a valid .onnx file") from None


def save_onnx(model, path) -> None:
    from modelzoo.core.atomic import atomic_write

    payload = model.SerializeToString()
    with atomic_write(path) as handle:
        handle.write(payload)
