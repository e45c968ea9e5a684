"""The artifact cache: one directory, files laid out by model and content hash, each with a manifest.

    <root>/models/<model>/<sha256>/<filename>            a downloaded or imported file
    <root>/models/<model>/<sha256>/manifest.json         where it came from, and whether it is official
    <root>/models/<model>/derived/<source_sha256>/<filename>              e.g. the ONNX of a checkpoint
    <root>/models/<model>/derived/<source_sha256>/<filename>.manifest.json

A file counts as cached only once its manifest exists, and manifests are written last,
so readers never see a half-written entry.
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
from modelzoo.core.errors import CacheError
from modelzoo.core.version import zoo_version

MANIFEST = "manifest.json"
DERIVED = "derived"
_DERIVED_SUFFIX = ".manifest.json"


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
        data.update(self.extra)
        return data


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
        """The cached file for this artifact: official before custom, then the newest."""
        matches = [e for e in self._primary_entries(model) if e.artifact == artifact_name and e.path.is_file()]
        return max(matches, key=lambda e: (e.official, e.created, _mtime(e.manifest_path)), default=None)

    def find_by_sha(self, model: str, sha256: str) -> CachedFile | None:
        manifest = self.model_dir(model) / _check_sha(sha256.lower()) / MANIFEST
        entry = _read_manifest(manifest)
        if entry is None or not entry.path.is_file():
            return None
        return entry

    def find_by_url(self, model: str, artifact_name: str, url: str) -> CachedFile | None:
        """The newest cached file downloaded from `url`: how files without a published hash are found again."""
        matches = [
            e for e in self._primary_entries(model) if e.artifact == artifact_name and e.url == url and e.path.is_file()
        ]
        return max(matches, key=lambda e: (e.created, _mtime(e.manifest_path)), default=None)

    def entries(self) -> list:
        """Every cached file, downloaded and derived, sorted by model then path."""
        if not self.models_dir.is_dir():
            return []
        found = []
        for model_dir in sorted(p for p in self.models_dir.iterdir() if p.is_dir()):
            found.extend(self._primary_entries(model_dir.name))
            found.extend(self._derived_entries(model_dir.name))
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
        target = self.derived_path(model, source_sha256, filename)
        entry = _read_manifest(target.with_name(target.name + _DERIVED_SUFFIX))
        return entry if entry is not None and entry.path.is_file() else None

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
        entry = CachedFile(
            path=path,
            model=model,
            artifact=artifact,
            sha256=sha256,
            size=path.stat().st_size,
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
        return self._write_manifest(entry, verified=verified, official=official)

    def _write_manifest(self, entry: CachedFile, **changes) -> CachedFile:
        if changes:
            entry = dataclasses.replace(entry, **changes)
        data = entry.to_dict()
        del data["path"]  # the cache can be moved; paths are rebuilt on read
        _write_json_atomic(entry.manifest_path, data)
        return entry

    # -- maintenance -------------------------------------------------------------------------

    def verify(self) -> list:
        """Re-hash every cached file against its manifest."""
        results = []
        for entry in self.entries():
            if not entry.path.is_file():
                results.append(VerifyResult(entry.path, False, entry.sha256, None, "missing"))
                continue
            actual = sha256_file(entry.path)
            ok = actual == entry.sha256
            results.append(VerifyResult(entry.path, ok, entry.sha256, actual, "" if ok else "changed"))
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
        shutil.rmtree(self.model_dir(model) / _check_sha(sha256.lower()), ignore_errors=True)

    def size(self, model: str | None = None) -> int:
        target = self.model_dir(model) if model else self.models_dir
        if not target.exists():
            return 0
        return sum(p.stat().st_size for p in target.rglob("*") if p.is_file() and not p.is_symlink())


def sha256_file(path, block_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(block_size):
            digest.update(block)
    return digest.hexdigest()


_FIELDS = ("model", "artifact", "sha256", "size", "url", "created", "zoo_version", "verified", "official")


def _read_manifest(manifest: Path) -> CachedFile | None:
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        if manifest.name == MANIFEST:
            path = manifest.parent / _check_filename(data["filename"])
        else:
            path = manifest.with_name(manifest.name[: -len(_DERIVED_SUFFIX)])
        known = {key: data[key] for key in _FIELDS}
        extra = {k: v for k, v in data.items() if k not in _FIELDS and k not in ("filename", "source_sha256", "path")}
        return CachedFile(path=path, source_sha256=data.get("source_sha256"), extra=extra, **known)
    except (OSError, ValueError, KeyError, TypeError, CacheError):
        # A missing or half-edited manifest means "not cached"; `zoo cache clean` removes the rest.
        return None


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


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
