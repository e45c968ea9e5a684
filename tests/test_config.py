"""zoo.yaml: lookup order, defaults, and errors that name the file, the key and the line."""

from pathlib import Path

import pytest
from zoo_cli import invoke

from modelzoo.core.config import Config, load_config
from modelzoo.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ZOO_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))


def test_repo_zoo_yaml_is_valid_and_states_the_defaults():
    config = load_config(REPO / "zoo.yaml")
    assert config.default_backend == Config().default_backend
    assert config.model("r3d_18").clips == 1 and config.model("r3d_18").top_k == 5
    assert config.model("r3d_18").weights_url is None


def test_no_file_means_defaults():
    config = load_config()
    assert config.path is None and config.default_backend == "auto"


def test_lookup_order(tmp_path, monkeypatch):
    (tmp_path / "zoo.yaml").write_text("default_backend: cwd\n")
    assert load_config().default_backend == "cwd"
    env_file = tmp_path / "env.yaml"
    env_file.write_text("default_backend: env\n")
    monkeypatch.setenv("ZOO_CONFIG", str(env_file))
    assert load_config().default_backend == "env"
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text("default_backend: explicit\n")
    assert load_config(explicit).default_backend == "explicit"


def test_user_config_dir_is_last(tmp_path):
    from modelzoo.core.config import user_config_path

    path = user_config_path()
    path.parent.mkdir(parents=True)
    path.write_text("threads: 3\n")
    assert load_config().threads == 3


def test_zoo_home_wins_over_cache_dir(tmp_path, monkeypatch):
    (tmp_path / "zoo.yaml").write_text(f"cache_dir: {tmp_path / 'configured'}\n")
    assert load_config().cache_root() == tmp_path / "home"
    monkeypatch.delenv("ZOO_HOME")
    assert load_config().cache_root() == tmp_path / "configured"


def test_weights_override_is_read(tmp_path):
    (tmp_path / "zoo.yaml").write_text(
        "models:\n  r3d_18:\n    weights:\n      url: http://127.0.0.1:1/w.pth\n      sha256: "
        + "AB" * 32
        + "\n    clips: 3\n"
    )
    model = load_config().model("r3d_18")
    assert model.weights_url == "http://127.0.0.1:1/w.pth"
    assert model.weights_sha256 == "ab" * 32 and model.clips == 3


@pytest.mark.parametrize(
    "text,line,fragment",
    [
        ("default_backend: auto\ncolour: red\n", 2, "'colour' is not a known setting"),
        ("threads: many\n", 1, "'threads' must be int"),
        ("models:\n  r3d_18:\n    top_k: 0\n", 3, "'models.r3d_18.top_k' must be at least 1"),
        ("models:\n  r3d_18:\n    weights:\n      sha: x\n", 4, "'models.r3d_18.weights.sha'"),
        ("models:\n  r3d_18:\n    weights:\n      sha256: abc\n", 4, "64 hexadecimal"),
        ("threads: [1\n", 2, "not valid YAML"),
        ("- a\n- b\n", 1, "must be a mapping"),
        ("threads: 2\ndefault_backend: auto\nthreads: 4\n", 3, "'threads' is set twice"),
    ],
)
def test_bad_config_names_file_key_and_line(tmp_path, text, line, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"{path}:{line}:" in message and fragment in message


def test_bad_config_is_one_error_line_on_the_cli(tmp_path, capsys):
    (tmp_path / "zoo.yaml").write_text("colour: red\n")
    result = invoke(capsys, "run", "r3d_18", "--input", "x.mp4")
    result.assert_user_error("zoo.yaml:1", "colour")


def test_missing_explicit_config(capsys):
    invoke(capsys, "--config", "nope.yaml", "list").assert_user_error("nope.yaml", "does not exist")
