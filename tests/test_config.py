"""zoo.yaml: lookup order, defaults, and errors that name the file, the key and the line."""

import json
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


def test_repo_zoo_yaml_documents_precision_and_calib_and_its_examples_work(tmp_path):
    from modelzoo.core.contract.registry import get_registry
    from modelzoo.core.quantize.host import configured_calibration_dir
    from modelzoo.core.runner import resolve_precision

    r3d = get_registry().get_model("r3d_18")
    text = (REPO / "zoo.yaml").read_text()
    shipped = load_config(REPO / "zoo.yaml")
    assert resolve_precision(shipped, r3d, None) == "fp32" and configured_calibration_dir(shipped, "r3d_18") is None
    # the values its comments suggest, set as they say
    assert "e.g. `precision: int8`" in text and "e.g. `calib: calib`" in text
    edited_text = text.replace("    precision: fp32\n", "    precision: int8\n")
    (tmp_path / "zoo.yaml").write_text(edited_text.replace("    calib: null\n", "    calib: calib\n"))
    edited = load_config(tmp_path / "zoo.yaml")
    assert resolve_precision(edited, r3d, None) == "int8"
    assert resolve_precision(edited, r3d, "fp32") == "fp32"  # --precision wins
    assert configured_calibration_dir(edited, "r3d_18") == tmp_path / "calib"  # relative to the file


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


# -- what the config sets that nothing uses, and `zoo config` ----------------------------------------


def _warnings(result) -> list:
    return [line for line in result.err.splitlines() if line.startswith("warning:")]


def test_a_misspelled_model_key_is_a_warning_naming_the_closest_model(tmp_path, capsys):
    (tmp_path / "zoo.yaml").write_text("models:\n  r3d18:\n    clips: 5\n")

    result = invoke(capsys, "list")

    assert result.code == 0
    (warning,) = _warnings(result)
    assert "zoo.yaml:2" in warning and "'models.r3d18' is not an installed model" in warning
    assert "the closest installed model is r3d_18" in warning and "plugin" in warning


def test_a_model_of_a_plugin_that_is_not_installed_still_gets_the_closest_one(tmp_path, capsys):
    (tmp_path / "zoo.yaml").write_text("models:\n  yolo11x:\n    conf: 0.5\n")
    (warning,) = _warnings(invoke(capsys, "info", "r3d_18"))
    assert "'models.yolo11x' is not an installed model (the closest installed model is " in warning


def test_a_setting_neither_zoo_nor_the_task_knows_is_a_warning(tmp_path, capsys):
    (tmp_path / "zoo.yaml").write_text(
        "models:\n  r3d_18:\n    clip: 5\n    precision: fp32\n    calib: calib/\n    weights: null\n    top_k: 3\n"
    )

    (warning,) = _warnings(invoke(capsys, "list"))

    assert "zoo.yaml:3" in warning and "'models.r3d_18.clip' is not a setting of r3d_18" in warning
    assert "did you mean 'clips'?" in warning and "clips, top_k" in warning


def test_a_valid_config_gives_no_warning(capsys):
    assert _warnings(invoke(capsys, "--config", REPO / "zoo.yaml", "list")) == []


def test_zoo_config_shows_the_active_file_and_each_settings_source(tmp_path, capsys):
    (tmp_path / "zoo.yaml").write_text("threads: 2\nmodels:\n  r3d_18:\n    clips: 3\n")

    result = invoke(capsys, "config")
    data = json.loads(invoke(capsys, "config", "--json").out)

    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == f"config: {tmp_path / 'zoo.yaml'} (zoo.yaml in the current folder)"
    sources = {row["key"]: (row["value"], row["source"]) for row in data["settings"]}
    assert sources["threads"] == (2, "zoo.yaml:1")
    assert sources["models.r3d_18.clips"] == (3, "zoo.yaml:4")
    assert sources["models.r3d_18.top_k"] == (5, "default (video-classification)")
    assert sources["default_backend"] == ("auto", "default")
    assert sources["cache_dir"] == (str(tmp_path / "home"), "$ZOO_HOME (wins over the config)")
    assert data["active"] == str(tmp_path / "zoo.yaml") and data["found_by"] == "./zoo.yaml"
    assert [c["where"] for c in data["looked_up"]] == ["--config", "$ZOO_CONFIG", "./zoo.yaml", "user config dir"]
    assert [c["active"] for c in data["looked_up"]] == [False, False, True, False]


def test_zoo_config_says_which_file_another_one_shadows(tmp_path, capsys, monkeypatch):
    from modelzoo.core.config import user_config_path

    user = user_config_path()
    user.parent.mkdir(parents=True)
    user.write_text("threads: 4\n")
    (tmp_path / "zoo.yaml").write_text("threads: 2\n")

    data = json.loads(invoke(capsys, "config", "--json").out)

    states = {c["where"]: (c["exists"], c["active"]) for c in data["looked_up"]}
    assert states["./zoo.yaml"] == (True, True) and states["user config dir"] == (True, False)
    assert "exists, not used" in invoke(capsys, "config").out


def test_zoo_config_without_a_file(capsys):
    result = invoke(capsys, "config")
    assert result.code == 0 and result.out.startswith("config: none found; the built-in defaults apply")


def test_zoo_config_check_turns_the_warnings_into_an_error(tmp_path, capsys):
    (tmp_path / "zoo.yaml").write_text("models:\n  r3d18:\n    clips: 5\n  r3d_18:\n    clip: 2\n")

    failed = invoke(capsys, "config", "--check")

    failed.assert_user_error("zoo.yaml", "2 thing(s) that zoo ignores")
    problems = [line for line in failed.err.splitlines() if line.startswith("problem:")]
    assert len(problems) == 2 and not _warnings(failed)
    (tmp_path / "zoo.yaml").write_text("models:\n  r3d_18:\n    clips: 2\n")
    ok = invoke(capsys, "config", "--check")
    assert ok.code == 0 and "config ok" in ok.out


def test_zoo_info_json_says_which_config_is_active(tmp_path, capsys, monkeypatch):
    assert json.loads(invoke(capsys, "info", "r3d_18", "--json").out)["config"] == {"path": None, "found_by": None}
    (tmp_path / "zoo.yaml").write_text("threads: 2\n")
    data = json.loads(invoke(capsys, "info", "r3d_18", "--json").out)
    assert data["config"] == {"path": str(tmp_path / "zoo.yaml"), "found_by": "./zoo.yaml"}
    other = tmp_path / "other.yaml"
    other.write_text("threads: 3\n")
    monkeypatch.setenv("ZOO_CONFIG", str(other))
    assert json.loads(invoke(capsys, "info", "r3d_18", "--json").out)["config"]["found_by"] == "$ZOO_CONFIG"
