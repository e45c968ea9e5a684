"""fetch_artifact / import_local and `zoo fetch`: official, verified or custom, against a local HTTP server."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import pytest
from http_server import PAYLOAD, PAYLOAD_SHA, refused_url, toy_spec

from modelzoo.core.artifacts.artifact_fetch import fetch_artifact, import_local
from modelzoo.core.artifacts.cache import ArtifactCache
from modelzoo.core.errors import CheckpointError, DownloadError

# -- fetch_artifact / import_local ----------------------------------------------------------------


def test_fetch_records_a_manifest_and_reuses_it(server, tmp_path):
    cache = ArtifactCache(tmp_path / "home")
    spec = toy_spec(server.url("/toy-1234.pth"))

    cached = fetch_artifact(spec, spec.artifact("weights"), cache, progress=False)
    again = fetch_artifact(spec, spec.artifact("weights"), cache, progress=False)

    assert cached.path == tmp_path / "home" / "models" / "toy" / PAYLOAD_SHA / "toy-1234.pth"
    manifest = json.loads((cached.path.parent / "manifest.json").read_text())
    assert manifest["url"] == server.url("/toy-1234.pth")
    assert manifest["sha256"] == PAYLOAD_SHA and manifest["size"] == len(PAYLOAD)
    assert manifest["verified"] is True and manifest["official"] is True
    assert again == cached
    assert server.gets() == 1


def test_unverifiable_artifact_records_the_observed_hash(server, tmp_path):
    cache = ArtifactCache(tmp_path / "home")
    spec = toy_spec(server.url("/toy-1234.pth"), hbm_url=server.url("/toy.hbm"))

    cached = fetch_artifact(spec, spec.artifact("hbm"), cache, progress=False)
    again = fetch_artifact(spec, spec.artifact("hbm"), cache, progress=False)

    observed = hashlib.sha256(PAYLOAD[::-1]).hexdigest()
    assert cached.verified is False and cached.official is True
    assert cached.sha256 == observed and cached.path.read_bytes() == PAYLOAD[::-1]
    assert again.path == cached.path
    assert server.gets() == 1
    assert not list(cache.staging_dir("toy").glob("toy.hbm*[!k]"))  # nothing left in staging but locks


@pytest.mark.parametrize("matches", [True, False])
def test_published_hash_prefix_is_checked(server, tmp_path, matches):
    import dataclasses

    observed = hashlib.sha256(PAYLOAD[::-1]).hexdigest()
    prefix = observed[:8] if matches else ("0" if observed[0] != "0" else "1") + observed[1:8]
    cache = ArtifactCache(tmp_path / "home")
    spec = toy_spec(server.url("/toy-1234.pth"), hbm_url=server.url("/toy.hbm"))
    artifact = dataclasses.replace(spec.artifact("hbm"), sha256_prefix=prefix)
    if matches:
        cached = fetch_artifact(spec, artifact, cache, progress=False)
        assert cached.verified is True and cached.official is True and cached.sha256 == observed
    else:
        with pytest.raises(DownloadError, match=prefix):
            fetch_artifact(spec, artifact, cache, progress=False)
        assert cache.entries() == []
        assert not list(cache.staging_dir("toy").glob("toy.hbm*[!k]"))


def test_import_checks_a_published_hash_prefix(tmp_path):
    import dataclasses

    cache = ArtifactCache(tmp_path / "home")
    spec = toy_spec("http://127.0.0.1:9/toy-1234.pth")
    local = tmp_path / "toy.hbm"
    local.write_bytes(PAYLOAD[::-1])
    prefix = hashlib.sha256(PAYLOAD[::-1]).hexdigest()[:8]
    artifact = dataclasses.replace(spec.artifact("hbm"), sha256_prefix=prefix)
    assert import_local(spec, artifact, cache, local)[1] is True
    other = dataclasses.replace(artifact, sha256_prefix="f" * 8 if prefix != "f" * 8 else "e" * 8)
    assert import_local(spec, other, ArtifactCache(tmp_path / "home2"), local)[1] is False


def test_url_and_sha_override_is_honoured_and_not_official(server, tmp_path):
    other = b"fine-tuned weights" * 1000
    server.state.files["/mine.pth"] = other
    cache = ArtifactCache(tmp_path / "home")
    spec = toy_spec("http://127.0.0.1:9/never-used.pth")

    cached = fetch_artifact(
        spec,
        spec.artifact("weights"),
        cache,
        url=server.url("/mine.pth"),
        sha256=hashlib.sha256(other).hexdigest().upper(),
        progress=False,
    )

    assert cached.path.read_bytes() == other
    assert cached.verified is True and cached.official is False
    assert cache.find("toy", "weights") == cached


def test_override_url_with_the_official_hash_is_official(server, tmp_path):
    spec = toy_spec("http://127.0.0.1:9/unreachable.pth")
    cached = fetch_artifact(
        spec, spec.artifact("weights"), ArtifactCache(tmp_path), url=server.url("/toy-1234.pth"), progress=False
    )
    assert cached.official is True


def test_import_official_file(tmp_path):
    source = tmp_path / "download" / "whatever.pth"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    cache = ArtifactCache(tmp_path / "home")
    spec = toy_spec("http://127.0.0.1:9/toy-1234.pth")

    cached, official = import_local(spec, spec.artifact("weights"), cache, source)

    assert official is True and cached.official is True and cached.verified is True
    assert cached.path.name == "toy-1234.pth"  # the published name, whatever the user called it
    assert cached.path.read_bytes() == PAYLOAD
    assert source.exists()  # copied, not moved


def test_import_custom_weights_is_never_official(tmp_path):
    np = pytest.importorskip("numpy")
    source = tmp_path / "finetuned.npz"
    np.savez(source, **{"fc.weight": np.ones((2, 2), np.float32)})
    cache = ArtifactCache(tmp_path / "home")
    spec = toy_spec("http://127.0.0.1:9/toy-1234.pth")

    cached, official = import_local(spec, spec.artifact("weights"), cache, source)

    assert official is False and cached.official is False and cached.verified is False
    assert cached.path.name == "finetuned.npz"
    assert cache.find("toy", "weights") == cached


def test_import_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    source = tmp_path / "notes.pth"
    source.write_text("not weights")
    cache = ArtifactCache(tmp_path / "home")
    spec = toy_spec("http://127.0.0.1:9/toy-1234.pth")

    with pytest.raises(CheckpointError):
        import_local(spec, spec.artifact("weights"), cache, source)
    assert cache.entries() == []


# -- zoo fetch ------------------------------------------------------------------------------------


def _invoke(command, args, spec, tmp_path, config=None):
    from click.testing import CliRunner

    from modelzoo.core.config import Config
    from modelzoo.session import Session

    session = Session()
    session.__dict__["registry"] = SimpleNamespace(get_model=lambda name: SimpleNamespace(spec=spec, name=spec.name))
    session.__dict__["config"] = config or Config(cache_dir=str(tmp_path / "home"))
    session.__dict__["cache"] = ArtifactCache(tmp_path / "home")
    return CliRunner().invoke(command, args, obj=session)


def test_zoo_fetch_json(server, tmp_path):
    from modelzoo.commands.fetch import fetch

    spec = toy_spec(server.url("/toy-1234.pth"))
    first = _invoke(fetch, ["toy", "--json"], spec, tmp_path)
    second = _invoke(fetch, ["toy", "--json"], spec, tmp_path)

    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert data["status"] == "downloaded" and data["sha256"] == PAYLOAD_SHA and data["official"] is True
    assert json.loads(second.stdout)["status"] == "cached"
    assert server.gets() == 1


def test_zoo_fetch_honours_zoo_yaml_override(server, tmp_path):
    from modelzoo.commands.fetch import fetch
    from modelzoo.core.config import parse_config

    other = b"custom" * 100
    server.state.files["/custom.pth"] = other
    config = parse_config(
        f"models:\n  toy:\n    weights:\n      url: {server.url('/custom.pth')}\n"
        f"      sha256: {hashlib.sha256(other).hexdigest()}\n",
        tmp_path / "zoo.yaml",
    )
    result = _invoke(fetch, ["toy", "--json"], toy_spec("http://127.0.0.1:9/x.pth"), tmp_path, config=config)

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["url"] == server.url("/custom.pth") and data["official"] is False and data["verified"] is True


def test_zoo_fetch_hbm_says_it_could_not_verify(server, tmp_path):
    from modelzoo.commands.fetch import fetch

    spec = toy_spec(server.url("/toy-1234.pth"), hbm_url=server.url("/toy.hbm"))
    result = _invoke(fetch, ["toy", "--hbm"], spec, tmp_path)

    assert result.exit_code == 0, result.output
    observed = hashlib.sha256(PAYLOAD[::-1]).hexdigest()
    assert "could not be verified" in result.stderr and observed in result.stderr
    assert "sha256 not verified" in result.stdout


def test_zoo_fetch_local_custom_weights_gives_a_notice(tmp_path):
    np = pytest.importorskip("numpy")
    from modelzoo.commands.fetch import fetch

    source = tmp_path / "mine.npz"
    np.savez(source, w=np.zeros(3, np.float32))
    result = _invoke(fetch, ["toy", "--weights", str(source)], toy_spec("http://127.0.0.1:9/toy-1234.pth"), tmp_path)

    assert result.exit_code == 0, result.output
    assert "not the official toy weights" in result.stderr
    assert "custom" in result.stdout and "official," not in result.stdout


def test_zoo_fetch_without_network_names_the_way_out(tmp_path):
    from modelzoo.commands.fetch import fetch

    url = refused_url()
    result = _invoke(fetch, ["toy"], toy_spec(url), tmp_path)

    assert result.exit_code != 0
    assert isinstance(result.exception, DownloadError)
    assert url in str(result.exception) and "zoo fetch toy --weights FILE" in str(result.exception)
