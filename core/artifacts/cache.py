"""The artifact cache: one directory, files laid out by model and content hash, each with a manifest.

    <root>/models/<model>/<sha256>/<filename>            a downloaded or imported file
    <root>/models/<model>/<sha256>/manifest.json         where it came from, and whether it is official
    <root>/models/<model>/derived/<source_sha256>/<filename>              e.g. the ONNX of a checkpoint
    <root>/models/<model>/derived/<source_sha256>/<filename>.manifest.json
    <root>/models/<model>/selected.json                  custom files imported to be used from then on

A file counts as cached only once its manifest exists, and manifests are written last,
so readers never see a half-written entry. Lookups check that the file is still what its manifest
recorded (its size; its sha256 too when it has a known hash and changed since it was recorded) and
mark a file that is not as damaged, so the caller fetches or converts it again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from modelzoo.core.atomic import atomic_write
from modelzoo.core.errors import CacheError, OutputError
from modelzoo.core.version import zoo_version

MANIFEST = "manifest.json"
DERIVED = "derived"
SELECTED = "selected.json"
_DERIVED_SUFFIX = ".manifest.json"
PARTIAL_SUFFIX = ".part"
ASIDE_SUFFIX = ".damaged"


@dataclass(frozen=True)
class CachedFile:
    """A file in the cache and what its manifest says about it."""

    path: Path
    model: str
    artifact: str
    sha256: str
    size: int
    url: str | None
    created: str
    zoo_version: str
    verified: bool  # its checksum matched a published (or configured) one
    official: bool  # it is the model's published file, not custom weights
    source_sha256: str | None = None  # for derived files: the checkpoint they were made from
    extra: dict = field(default_factory=dict, compare=False)
    mtime_ns: int | None = None  # the file's mtime when its content was last checked
    damage: str = field(default="", compare=False)  # set by lookups: how the file differs from its manifest

    @property
    def origin(self) -> str:
        """Where the file came from, as people read it: the local path of an imported file, else its URL."""
        return origin_of(self.url)

    @property
    def manifest_path(self) -> Path:
        if self.source_sha256 is None:
            return self.path.parent / MANIFEST
        return self.path.with_name(self.path.name + _DERIVED_SUFFIX)

    def to_dict(self) -> dict:
        data = {
            "path": str(self.path),
            "model": self.model,
            "artifact": self.artifact,
            "filename": self.path.name,
            "sha256": self.sha256,
            "size": self.size,
            "url": self.url,
            "created": self.created,
            "zoo_version": self.zoo_version,
            "verified": self.verified,
            "official": self.official,
        }
        if self.source_sha256 is not None:
            data["source_sha256"] = self.source_sha256
        if self.mtime_ns is not None:
            data["mtime_ns"] = self.mtime_ns
        data.update(self.extra)
        return data


@dataclass(frozen=True)
class Leftover:
    """A file in the cache that is not a cached entry: a partial download, a damaged file set aside,
    or the temp file of a write a killed process never finished."""

    path: Path
    model: str
    size: int
    status: str

    def to_dict(self) -> dict:
        return {"path": str(self.path), "model": self.model, "filename": self.path.name, "size": self.size,
                "status": self.status}  # fmt: skip


@dataclass(frozen=True)
class VerifyResult:
    path: Path
    ok: bool
    expected: str
    actual: str | None  # None when the file is missing
    problem: str = ""

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "ok": self.ok,
            "expected": self.expected,
            "actual": self.actual,
            "problem": self.problem,
        }


class ArtifactCache:
    """Files by model and sha256 under `root`; see the module docstring for the layout."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def model_dir(self, model: str) -> Path:
        if not model or "/" in model or "\\" in model or model in (".", ".."):
            raise CacheError(f"{model!r} is not a valid model name for the cache")
        return self.models_dir / model

    def file_path(self, model: str, sha256: str, filename: str) -> Path:
        """Where a file with this content lives once cached (it may not exist yet)."""
        return self.model_dir(model) / _check_sha(sha256) / _check_filename(filename)

    def staging_dir(self, model: str) -> Path:
        """Where files whose hash is not known in advance are downloaded before they are added."""
        return self.model_dir(model) / ".incoming"

    # -- lookup ------------------------------------------------------------------------------

    def find(self, model: str, artifact_name: str) -> CachedFile | None:
        """The cached file for this artifact: official before custom, then the newest; an intact one
        before a damaged one (see `CachedFile.damage`)."""
        matches = [e for e in self._primary_entries(model) if e.artifact == artifact_name and e.path.is_file()]
        matches.sort(key=lambda e: (e.official, e.created, _mtime(e.manifest_path)), reverse=True)
        return self._first_intact(matches)

    def find_by_sha(self, model: str, sha256: str) -> CachedFile | None:
        """The file cached under this hash; check `.damage` before trusting it."""
        manifest = self.model_dir(model) / _check_sha(sha256.lower()) / MANIFEST
        entry = _read_manifest(manifest)
        if entry is None or not entry.path.is_file():
            return None
        return self._checked(entry)

    def find_by_url(self, model: str, artifact_name: str, url: str) -> CachedFile | None:
        """The newest cached file downloaded from `url`: how files without a published hash are found again."""
        matches = [
            e for e in self._primary_entries(model) if e.artifact == artifact_name and e.url == url and e.path.is_file()
        ]
        matches.sort(key=lambda e: (e.created, _mtime(e.manifest_path)), reverse=True)
        return self._first_intact(matches)

    def _first_intact(self, entries: list) -> CachedFile | None:
        """The first of `entries` whose file is intact, else the first (damaged) one, else None."""
        damaged = None
        for entry in entries:
            checked = self._checked(entry)
            if not checked.damage:
                return checked
            damaged = damaged or checked
        return damaged

    def _checked(self, entry: CachedFile) -> CachedFile:
        """`entry`, with `damage` saying how its file differs from what the manifest recorded.

        The size is always compared; the sha256 only for files whose hash is known to be right
        (verified downloads, derived files) and whose mtime changed since it was recorded, so an
        intact cache costs one stat per lookup.
        """
        try:
            stat = entry.path.stat()
        except OSError as exc:
            return dataclasses.replace(entry, damage=f"it cannot be read ({exc.strerror or exc})")
        if stat.st_size != entry.size:
            return dataclasses.replace(
                entry, damage=f"{stat.st_size} bytes on disk, {entry.size} when it was cached: truncated or changed"
            )
        if (entry.verified or entry.source_sha256 is not None) and stat.st_mtime_ns != entry.mtime_ns:
            actual = sha256_file(entry.path)
            if actual != entry.sha256:
                return dataclasses.replace(
                    entry,
                    damage=f"its content changed since it was cached (sha256 {actual[:12]}…, not {entry.sha256[:12]}…)",
                )
            try:  # checked: remember when, so the next lookup is a stat again
                return self._write_manifest(entry, mtime_ns=stat.st_mtime_ns)
            except (OSError, OutputError):  # a read-only shared cache: the check is repeated next time
                return entry
        return entry

    def set_aside(self, entry: CachedFile) -> Path:
        """Move a damaged file out of the way (<file>.damaged) and forget its manifest, so it can be
        fetched or made again; returns where it went. Remove that file once a good copy is back."""
        aside = entry.path.with_name(entry.path.name + ASIDE_SUFFIX)
        entry.manifest_path.unlink(missing_ok=True)
        try:
            os.replace(entry.path, aside)
        except FileNotFoundError:  # another process set it aside first
            pass
        return aside

    # -- custom files in use -----------------------------------------------------------------

    def select(self, model: str, artifact_name: str, entry: CachedFile | None) -> None:
        """Use `entry` (custom, e.g. imported weights) as the artifact from now on; None goes back to the published one.

        Recorded in this cache only, so another cache (another $ZOO_HOME) is unaffected.
        """
        path = self.model_dir(model) / SELECTED
        recorded = _read_json(path)
        if entry is None and recorded is not None and artifact_name not in recorded:
            return  # nothing to undo (the common case: every download passes here)
        chosen = {k: v for k, v in (recorded or {}).items() if isinstance(v, dict) and k != artifact_name}
        if entry is not None:
            chosen[artifact_name] = {"sha256": entry.sha256, "from": entry.url, "selected": _now()}
        if chosen:
            _write_json_atomic(path, chosen)
        elif path.exists() or path.is_symlink():
            path.unlink()

    def selection(self, model: str, artifact_name: str) -> dict | None:
        """{"sha256", "from", "selected"} of the custom file chosen for this artifact, or None.

        A record that cannot be read is a CacheError: guessing could run weights the user did not choose.
        """
        path = self.model_dir(model) / SELECTED
        if not path.exists():
            return None
        data = _read_json(path)
        record = data.get(artifact_name) if data is not None else None
        if data is not None and record is None:
            return None
        sha = record.get("sha256") if isinstance(record, dict) else None
        if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise CacheError(
                f"{path}, the record of the custom {artifact_name} {model} uses, is damaged; "
                f"`zoo fetch {model}` goes back to the official {artifact_name}, `zoo cache clean {model}` removes all"
            )
        return record

    def entries(self, model: str | None = None) -> list:
        """Every cached file (of one model, or all), downloaded and derived, sorted by model then path."""
        if model is not None:
            return self._primary_entries(model) + self._derived_entries(model)
        if not self.models_dir.is_dir():
            return []
        found = []
        for model_dir in sorted(p for p in self.models_dir.iterdir() if p.is_dir()):
            found.extend(self.entries(model_dir.name))
        return found

    def _primary_entries(self, model: str) -> list:
        base = self.model_dir(model)
        if not base.is_dir():
            return []
        entries = (_read_manifest(p) for p in sorted(base.glob(f"*/{MANIFEST}")))
        return [e for e in entries if e is not None]

    def _derived_entries(self, model: str) -> list:
        base = self.model_dir(model) / DERIVED
        if not base.is_dir():
            return []
        entries = (_read_manifest(p) for p in sorted(base.glob(f"*/*{_DERIVED_SUFFIX}")))
        return [e for e in entries if e is not None]

    # -- adding ------------------------------------------------------------------------------

    def add_file(
        self,
        model: str,
        artifact_name: str,
        src_path,
        url: str | None,
        sha256: str,
        verified: bool,
        official: bool,
        move: bool = False,
        filename: str | None = None,
    ) -> CachedFile:
        """Put `src_path` (whose content hashes to `sha256`) into the cache and write its manifest.

        A copy is hashed on the way and refused if it does not match. `src_path` may already be
        the final location (a download straight into the cache); then only the manifest is written.
        `filename` defaults to the source's name.
        """
        sha256 = _check_sha(sha256.lower())
        src = Path(src_path)
        existing = self.find_by_sha(model, sha256)
        if existing is not None and existing.damage:
            # these bytes (checked against `sha256` by the caller or the copy below) replace the damaged copy
            existing.manifest_path.unlink(missing_ok=True)
            if src.resolve() != existing.path.resolve():
                existing.path.unlink(missing_ok=True)
            existing = None
        if existing is not None:
            if src.resolve() != existing.path.resolve() and move:
                src.unlink(missing_ok=True)
            if (verified and not existing.verified) or (official and not existing.official):
                # Same bytes, now known to match a published hash: record that, keep the rest.
                return self._write_manifest(
                    existing,
                    verified=existing.verified or verified,
                    official=existing.official or official,
                    url=existing.url or url,
                )
            return existing
        target = self.file_path(model, sha256, filename or src.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.resolve() != target.resolve():
            if move:
                os.replace(src, target)
            else:
                _copy_checked(src, target, sha256)
        return self._record(target, model, artifact_name, sha256, url, verified=verified, official=official)

    def derived_path(self, model: str, source_sha256: str, filename: str) -> Path:
        """Where the file derived from checkpoint `source_sha256` lives (it may not exist yet)."""
        return self.model_dir(model) / DERIVED / _check_sha(source_sha256.lower()) / _check_filename(filename)

    def find_derived(self, model: str, source_sha256: str, filename: str) -> CachedFile | None:
        """The file made from checkpoint `source_sha256`; check `.damage` before trusting it."""
        target = self.derived_path(model, source_sha256, filename)
        entry = _read_manifest(target.with_name(target.name + _DERIVED_SUFFIX))
        return self._checked(entry) if entry is not None and entry.path.is_file() else None

    def add_derived(self, model: str, source_sha256: str, filename: str, write_fn) -> CachedFile:
        """Create a derived file atomically: `write_fn(handle)` writes to an open binary temp file."""
        target = self.derived_path(model, source_sha256, filename)
        with atomic_write(target) as handle:
            write_fn(handle)
        return self._record(
            target,
            model,
            DERIVED,
            sha256_file(target),
            None,
            verified=False,
            official=False,
            source_sha256=source_sha256.lower(),
        )

    def _record(self, path: Path, model: str, artifact: str, sha256: str, url, **flags) -> CachedFile:
        """Write the manifest of a file now in place; it is only cached once this is written."""
        stat = path.stat()
        entry = CachedFile(
            path=path,
            model=model,
            artifact=artifact,
            sha256=sha256,
            size=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
            url=url,
            created=_now(),
            zoo_version=zoo_version(),
            verified=bool(flags.pop("verified")),
            official=bool(flags.pop("official")),
            **flags,
        )
        return self._write_manifest(entry)

    def mark(self, entry: CachedFile, *, verified: bool, official: bool) -> CachedFile:
        """Record that a cached file was checked against a known hash."""
        return self._write_manifest(entry, verified=verified, official=official, mtime_ns=_mtime_ns(entry.path))

    def _write_manifest(self, entry: CachedFile, **changes) -> CachedFile:
        if changes:
            entry = dataclasses.replace(entry, **changes)
        data = entry.to_dict()
        del data["path"]  # the cache can be moved; paths are rebuilt on read
        _write_json_atomic(entry.manifest_path, data)
        return entry

    # -- maintenance -------------------------------------------------------------------------

    def verify(self, on_file=None) -> list:
        """Re-hash every cached file against its manifest; `on_file(entry)` after each (for a progress bar)."""
        results = []
        for entry in self.entries():
            if not entry.path.is_file():
                results.append(VerifyResult(entry.path, False, entry.sha256, None, "missing"))
            else:
                actual = sha256_file(entry.path)
                ok = actual == entry.sha256
                results.append(VerifyResult(entry.path, ok, entry.sha256, actual, "" if ok else "changed"))
            if on_file:
                on_file(entry)
        return results

    def clean(self, model: str | None = None) -> int:
        """Delete everything cached (for one model, or all); returns the bytes freed."""
        freed = self.size(model)
        target = self.model_dir(model) if model else self.models_dir
        if target.exists():
            shutil.rmtree(target)
        return freed

    def prune_derived(self, model: str, source_sha256: str, keep: str, stem: str) -> None:
        """Remove files derived from the same checkpoint by other converter versions (`stem`*, not `keep`)."""
        folder = self.derived_path(model, source_sha256, keep).parent
        for path in folder.glob(f"{stem}*"):
            if path.name not in (keep, keep + _DERIVED_SUFFIX):
                path.unlink(missing_ok=True)

    def discard(self, model: str, sha256: str) -> None:
        """Forget one downloaded or imported file (e.g. custom weights that turned out unusable)."""
        sha256 = _check_sha(sha256.lower())
        for artifact_name, record in (_read_json(self.model_dir(model) / SELECTED) or {}).items():
            if isinstance(record, dict) and record.get("sha256") == sha256:
                self.select(model, artifact_name, None)
        shutil.rmtree(self.model_dir(model) / sha256, ignore_errors=True)

    def leftovers(self, model: str | None = None) -> list:
        """Files that are not cached entries: partial downloads (resumed by the next fetch), damaged
        files set aside, and temp files of writes a killed process never finished."""
        base = self.model_dir(model) if model else self.models_dir
        if not base.is_dir():
            return []
        found = []
        for path in sorted(base.rglob("*")):
            name = path.name
            if name.endswith(PARTIAL_SUFFIX):
                status = "partial download (resumed by the next fetch)"
            elif name.endswith(ASIDE_SUFFIX):
                status = "damaged, set aside (fetched again)"
            elif name.startswith(".") and name.endswith(".tmp"):
                status = "unfinished write (left by a killed process)"
            elif self._orphan(path):
                status = "no readable manifest: not used (`zoo cache clean` removes it)"
            else:
                continue
            if path.is_file() and not path.is_symlink():
                owner = model or path.relative_to(self.models_dir).parts[0]
                found.append(Leftover(path, owner, path.stat().st_size, status))
        return found

    def _orphan(self, path: Path) -> bool:
        """A file in an entry's folder (<model>/<sha256>/) that no readable manifest claims."""
        if path.name in (MANIFEST,) or path.name.endswith(".lock") or path.parent.parent.parent != self.models_dir:
            return False
        try:
            _check_sha(path.parent.name)
        except CacheError:
            return False  # staging, derived files: not an entry's folder
        entry = _read_manifest(path.parent / MANIFEST)
        return entry is None or entry.path != path

    def size(self, model: str | None = None) -> int:
        target = self.model_dir(model) if model else self.models_dir
        if not target.exists():
            return 0
        return sum(p.stat().st_size for p in target.rglob("*") if p.is_file() and not p.is_symlink())


def open_cache(config) -> ArtifactCache:
    """The cache `config` points at (zoo.yaml's cache_dir, else $ZOO_HOME, else ~/.cache/modelzoo), refused
    with the setting to change when that path is a file."""
    import os

    from modelzoo.core.config import HOME_ENV
    from modelzoo.core.errors import CacheError

    root = config.cache_root()
    if root.exists() and not root.is_dir():
        where = f"${HOME_ENV}" if os.environ.get(HOME_ENV) else f"cache_dir in {config.path}"
        raise CacheError(f"the cache directory {root} is a file; point {where} at a directory")
    return ArtifactCache(root)


def origin_of(url: str | None) -> str:
    """A manifest's URL as people read it: a file:// URL is the local path it names."""
    if url and url.startswith("file:"):
        from urllib.parse import unquote, urlsplit

        return unquote(urlsplit(url).path)
    return url or "an unknown source"


def sha256_file(path, block_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(block_size):
            digest.update(block)
    return digest.hexdigest()


_FIELDS = ("model", "artifact", "sha256", "size", "url", "created", "zoo_version", "verified", "official")
_OPTIONAL = ("filename", "source_sha256", "path", "mtime_ns")


def _read_manifest(manifest: Path) -> CachedFile | None:
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        if manifest.name == MANIFEST:
            path = manifest.parent / _check_filename(data["filename"])
        else:
            path = manifest.with_name(manifest.name[: -len(_DERIVED_SUFFIX)])
        known = {key: data[key] for key in _FIELDS}
        if not _well_typed(known) or not isinstance(data.get("source_sha256"), (str, type(None))):
            return None  # edited by hand or damaged: its claims cannot be trusted, so it is not cached
        extra = {k: v for k, v in data.items() if k not in _FIELDS and k not in _OPTIONAL}
        mtime_ns = data.get("mtime_ns")
        return CachedFile(
            path=path,
            source_sha256=data.get("source_sha256"),
            extra=extra,
            mtime_ns=mtime_ns if isinstance(mtime_ns, int) else None,
            **known,
        )
    except (OSError, ValueError, KeyError, TypeError, CacheError):
        # A missing or half-edited manifest means "not cached"; `zoo cache clean` removes the rest.
        return None


def _well_typed(known: dict) -> bool:
    """Whether a manifest's fields have the types zoo writes (a size of "big" or `verified: "yes"` is damage)."""
    texts = ("model", "artifact", "sha256", "created", "zoo_version")
    size = known["size"]
    return (
        all(isinstance(known[key], str) for key in texts)
        and isinstance(size, int)
        and not isinstance(size, bool)
        and size >= 0
        and isinstance(known["url"], (str, type(None)))
        and isinstance(known["verified"], bool)
        and isinstance(known["official"], bool)
    )


def _read_json(path: Path) -> dict | None:
    """The JSON object in `path`, or None when it is absent, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json_atomic(path: Path, data: dict) -> None:
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")


def _copy_checked(src: Path, target: Path, sha256: str) -> None:
    """Copy into the cache through a temp file, hashing on the way, so a bad copy never lands."""
    digest = hashlib.sha256()
    with open(src, "rb") as reader, atomic_write(target) as writer:
        while block := reader.read(1 << 20):
            digest.update(block)
            writer.write(block)
        if digest.hexdigest() != sha256:
            raise CacheError(
                f"{src} changed while it was being copied into the cache "
                f"(expected sha256 {sha256}, got {digest.hexdigest()}); try again"
            )


def _check_sha(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise CacheError(f"{sha256!r} is not a sha256 hex digest")
    return sha256


def _check_filename(filename: str) -> str:
    if not filename or "/" in filename or "\\" in filename or filename in (".", "..") or filename == MANIFEST:
        raise CacheError(f"{filename!r} cannot be used as a file name in the cache")
    return filename


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _mtime_ns(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
