"""The artifact cache: layout, manifests, lookups, derived files, verify and clean, and `zoo cache`."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from modelzoo.commands.cache import cache as cache_command
from modelzoo.core.artifacts.cache import ArtifactCache
from modelzoo.core.config import Config
from modelzoo.core.errors import CacheError
from modelzoo.session import Session


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path):
    return ArtifactCache(tmp_path / "home")


def _add(store, tmp_path, data: bytes, name="w.pth", artifact="weights", official=True, model="toy"):
    src = tmp_path / name
    src.write_bytes(data)
    return store.add_file(
        model, artifact, src, f"https://example.org/{name}", _sha(data), verified=official, official=official
    )


def test_layout_and_manifest(store, tmp_path):
    entry = _add(store, tmp_path, b"weights")

    assert entry.path == tmp_path / "home" / "models" / "toy" / _sha(b"weights") / "w.pth"
    assert entry.path.read_bytes() == b"weights"
    manifest = json.loads((entry.path.parent / "manifest.json").read_text())
    assert manifest["url"] == "https://example.org/w.pth"
    assert manifest["sha256"] == _sha(b"weights")
    assert manifest["size"] == 7
    assert manifest["created"].endswith("+00:00")
    assert manifest["zoo_version"]
    assert manifest["verified"] is True and manifest["official"] is True
    assert (tmp_path / "w.pth").exists()  # copied by default


def test_move_and_idempotent_add(store, tmp_path):
    src = tmp_path / "staged.bin"
    src.write_bytes(b"x" * 10)
    first = store.add_file("toy", "hbm", src, "u", _sha(b"x" * 10), verified=False, official=True, move=True)
    assert not src.exists()

    src.write_bytes(b"x" * 10)
    second = store.add_file("toy", "hbm", src, "u", _sha(b"x" * 10), verified=False, official=True, move=True)

    assert second.path == first.path and second.created == first.created
    assert len(store.entries()) == 1


def test_copy_with_wrong_hash_is_refused(store, tmp_path):
    src = tmp_path / "w.pth"
    src.write_bytes(b"actual")
    with pytest.raises(CacheError, match="expected sha256"):
        store.add_file("toy", "weights", src, None, _sha(b"claimed"), verified=True, official=True)
    assert store.entries() == []
    assert not store.file_path("toy", _sha(b"claimed"), "w.pth").exists()


def test_find_prefers_official_then_newest(store, tmp_path):
    official = _add(store, tmp_path, b"official", name="o.pth", official=True)
    custom = _add(store, tmp_path, b"custom", name="c.pth", official=False)

    assert store.find("toy", "weights") == official
    assert store.find("toy", "hbm") is None
    assert store.find_by_sha("toy", custom.sha256) == custom
    assert store.find_by_sha("toy", _sha(b"nothing")) is None
    assert store.find_by_sha("other", official.sha256) is None


def test_entry_without_manifest_is_not_cached(store, tmp_path):
    entry = _add(store, tmp_path, b"weights")
    (entry.path.parent / "manifest.json").unlink()

    assert store.find("toy", "weights") is None
    assert store.entries() == []


def test_derived_files_are_keyed_by_source_hash(store, tmp_path):
    source = _add(store, tmp_path, b"checkpoint")
    target = store.derived_path("toy", source.sha256, "toy.onnx")
    assert not target.exists()

    derived = store.add_derived("toy", source.sha256, "toy.onnx", lambda handle: handle.write(b"onnx bytes"))

    assert derived.path == target == tmp_path / "home" / "models" / "toy" / "derived" / source.sha256 / "toy.onnx"
    assert target.read_bytes() == b"onnx bytes"
    assert derived.source_sha256 == source.sha256 and derived.sha256 == _sha(b"onnx bytes")
    manifest = json.loads(target.with_name("toy.onnx.manifest.json").read_text())
    assert manifest["source_sha256"] == source.sha256
    assert store.find_derived("toy", source.sha256, "toy.onnx") == derived
    assert store.find("toy", "weights") == source  # derived files are not weights
    assert len(store.entries()) == 2


def test_failed_derived_write_leaves_nothing(store, tmp_path):
    sha = _sha(b"checkpoint")

    def broken(handle):
        handle.write(b"half")
        raise RuntimeError("conversion failed")

    with pytest.raises(RuntimeError):
        store.add_derived("toy", sha, "toy.onnx", broken)
    target = store.derived_path("toy", sha, "toy.onnx")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temp files either


def test_verify_detects_changed_and_missing_files(store, tmp_path):
    good = _add(store, tmp_path, b"good", name="g.pth")
    changed = _add(store, tmp_path, b"changed", name="c.pth")
    changed.path.write_bytes(b"tampered")

    results = {r.path: r for r in store.verify()}

    assert results[good.path].ok
    assert not results[changed.path].ok
    assert results[changed.path].expected == _sha(b"changed") and results[changed.path].actual == _sha(b"tampered")


def test_clean_one_model_or_all(store, tmp_path):
    _add(store, tmp_path, b"a" * 100, model="toy")
    other = _add(store, tmp_path, b"b" * 50, model="other")

    freed = store.clean("toy")
    assert freed >= 100
    assert [e.model for e in store.entries()] == ["other"]
    assert other.path.exists()

    assert store.clean() >= 50
    assert store.entries() == []
    assert store.clean() == 0


@pytest.mark.parametrize(
    "model, sha, name", [("../x", "a" * 64, "f"), ("toy", "nothex", "f"), ("toy", "a" * 64, "../f")]
)
def test_names_cannot_escape_the_cache(store, model, sha, name):
    with pytest.raises(CacheError):
        store.file_path(model, sha, name)


def test_root_follows_zoo_home_then_config(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zh"))
    assert Config(cache_dir=str(tmp_path / "cfg")).cache_root() == tmp_path / "zh"
    monkeypatch.delenv("ZOO_HOME")
    assert Config(cache_dir=str(tmp_path / "cfg")).cache_root() == tmp_path / "cfg"


# -- zoo cache --------------------------------------------------------------------------------------


def _invoke(store, args, input=None):
    session = Session()
    session.__dict__["cache"] = store
    session.__dict__["registry"] = SimpleNamespace()
    return CliRunner().invoke(cache_command, args, obj=session, input=input)


def test_cache_path(store):
    result = _invoke(store, ["path"])
    assert result.exit_code == 0
    assert result.stdout.strip() == str(store.root)


def test_cache_list(store, tmp_path):
    assert "empty" in _invoke(store, ["list"]).stdout
    entry = _add(store, tmp_path, b"weights")

    text = _invoke(store, ["list"]).stdout
    data = json.loads(_invoke(store, ["list", "--json"]).stdout)

    assert "toy" in text and "official, verified" in text and entry.sha256[:12] in text
    assert data == [entry.to_dict()]
    assert data[0]["path"] == str(entry.path)


def test_cache_verify(store, tmp_path):
    entry = _add(store, tmp_path, b"weights")
    ok = _invoke(store, ["verify", "--json"])
    assert ok.exit_code == 0
    assert json.loads(ok.stdout)[0]["ok"] is True

    entry.path.write_bytes(b"tampered")
    failed = _invoke(store, ["verify"])

    assert isinstance(failed.exception, CacheError)
    assert "FAILED (changed)" in failed.stdout and "0 of 1 files ok" in failed.stdout
    assert "`zoo cache clean toy`" in str(failed.exception)  # the command to run, not a MODEL placeholder


def test_cache_clean_asks_first(store, tmp_path):
    _add(store, tmp_path, b"weights")

    declined = _invoke(store, ["clean"], input="n\n")
    assert declined.exit_code == 0 and "nothing deleted" in declined.output and len(store.entries()) == 1

    nobody = _invoke(store, ["clean"], input="")  # stdin closed: cannot ask, so refuse and say how
    assert isinstance(nobody.exception, CacheError) and "--yes" in str(nobody.exception)
    assert len(store.entries()) == 1

    done = _invoke(store, ["clean", "toy", "--yes"])
    assert done.exit_code == 0 and "freed" in done.stdout
    assert store.entries() == []
    assert "nothing cached" in _invoke(store, ["clean", "--yes"]).stdout


@pytest.mark.parametrize(
    "edit",
    [
        {"size": "big"},
        {"size": -1},
        {"size": True},
        {"verified": "yes"},
        {"official": 1},
        {"sha256": None},
        {"url": 5},
        {"source_sha256": 7},
    ],
)
def test_a_manifest_with_wrong_types_is_not_an_entry_and_its_file_is_listed(store, tmp_path, edit):
    """A hand-edited or damaged manifest (`"size": "big"`) made `zoo cache list` an internal error, and
    `verified: "yes"` would count as verified; such an entry is not cached, and its file is shown as a leftover."""
    entry = _add(store, tmp_path, b"weights")
    manifest = entry.path.parent / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), **edit}))

    assert store.entries() == [] and store.find("toy", "weights") is None
    result = _invoke(store, ["list"])
    assert result.exit_code == 0, result.output
    assert "w.pth" in result.stdout and "no readable manifest" in result.stdout
    (left,) = json.loads(_invoke(store, ["list", "--json"]).stdout)
    assert left["path"] == str(entry.path) and "zoo cache clean" in left["status"]


def test_files_of_intact_entries_partial_downloads_and_locks_are_not_orphans(store, tmp_path):
    entry = _add(store, tmp_path, b"weights")
    (entry.path.parent / "w.pth.lock").write_text("")
    (entry.path.parent / "other.pth.part").write_bytes(b"par")
    statuses = [left.status for left in store.leftovers()]
    assert statuses == ["partial download (resumed by the next fetch)"]


def test_cache_verify_shows_progress_in_a_log_and_none_with_json(store, tmp_path, monkeypatch):
    """Re-hashing a cache of several checkpoints takes minutes: it was silent until the end."""
    import modelzoo.progress

    for n in range(3):
        _add(store, tmp_path, f"weights {n}".encode(), name=f"w{n}.pth", model=f"toy{n}")
    monkeypatch.setattr(modelzoo.progress, "LOG_EVERY", 0.0)
    result = _invoke(store, ["verify"])
    assert result.exit_code == 0, result.output
    assert "progress: verifying 1/3" in result.stderr and "progress: verifying 2/3" in result.stderr
    assert "3 of 3 files ok" in result.stdout
    quiet = _invoke(store, ["verify", "--json"])
    assert "progress" not in quiet.stderr and [r["ok"] for r in json.loads(quiet.stdout)] == [True] * 3
