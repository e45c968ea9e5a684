"""Settings from zoo.yaml: where they are looked up, their defaults, and strict validation."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from modelzoo.core.errors import ConfigError

CONFIG_ENV = "ZOO_CONFIG"
HOME_ENV = "ZOO_HOME"

# key -> expected type; a dict is a nested section. Defaults live in the dataclasses below.
_MODEL_SCHEMA = {
    "weights": {"url": str, "sha256": str},
}
# Any other per-model key is a run option of the model's task (clips, top_k, conf, ...): a scalar
# here, checked against the task's declared type when the model runs.
_OPTION_TYPES = (int, float, str, bool)
_SCHEMA = {
    "cache_dir": str,
    "default_backend": str,
    "threads": int,
    "models": None,  # name -> _MODEL_SCHEMA, checked separately
}


@dataclass(frozen=True)
class ModelConfig:
    weights_url: str | None = None
    weights_sha256: str | None = None
    options: dict = field(default_factory=dict)  # the task's run options, by name

    @property
    def clips(self) -> int | None:
        return self.options.get("clips")

    @property
    def top_k(self) -> int | None:
        return self.options.get("top_k")


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    cache_dir: str | None = None
    default_backend: str = "auto"
    threads: int | None = None
    models: dict = field(default_factory=dict)

    def model(self, name: str) -> ModelConfig:
        return self.models.get(name, ModelConfig())

    def cache_root(self) -> Path:
        """$ZOO_HOME, else the configured cache_dir, else the platform's user cache dir."""
        if os.environ.get(HOME_ENV):
            return Path(os.environ[HOME_ENV]).expanduser()
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        import platformdirs

        return Path(platformdirs.user_cache_dir("modelzoo"))


def user_config_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("modelzoo")) / "zoo.yaml"


def find_config(explicit: str | os.PathLike | None = None) -> Path | None:
    """`--config FILE`, then $ZOO_CONFIG, then ./zoo.yaml, then the user config dir."""
    for candidate, must_exist in (
        (explicit, True),
        (os.environ.get(CONFIG_ENV) or None, True),
        ("zoo.yaml", False),
        (user_config_path(), False),
    ):
        if candidate is None:
            continue
        path = Path(candidate).expanduser()
        if path.is_file():
            return path
        if must_exist:
            how = "fix --config" if candidate is explicit else f"fix or unset ${CONFIG_ENV}"
            state = "is not a file" if path.exists() else "does not exist"
            raise ConfigError(f"config file {path} {state}; {how}")
    return None


def load_config(explicit: str | os.PathLike | None = None) -> Config:
    path = find_config(explicit)
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the config as UTF-8 YAML") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc.strerror}); check the path and permissions") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)}); fix the file") from None
    if data is None:
        return Config(path=path)
    try:
        lines = _key_lines(root)
    except _DuplicateKey as dup:
        raise ConfigError(f"{path}:{dup.line}: '{'.'.join(map(str, dup.key_path))}' is set twice; keep one") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the config must be a mapping of settings; see zoo.yaml in the repo")

    def fail(key_path: tuple, message: str):
        line = lines.get(key_path, 1)
        raise ConfigError(f"{path}:{line}: '{'.'.join(map(str, key_path))}' {message}")

    _check_section(data, _SCHEMA, (), fail)
    models = {}
    raw_models = data.get("models") or {}
    if not isinstance(raw_models, dict):
        fail(("models",), "must be a mapping of model name to settings")
    for name, settings in raw_models.items():
        settings = settings or {}
        if not isinstance(settings, dict):
            fail(("models", name), "must be a mapping")
        _check_section({k: v for k, v in settings.items() if k in _MODEL_SCHEMA}, _MODEL_SCHEMA, ("models", name), fail)
        options = {k: v for k, v in settings.items() if k not in _MODEL_SCHEMA}
        for key, value in options.items():
            if value is not None and not isinstance(value, _OPTION_TYPES):
                fail(("models", name, key), f"must be a number, text or true/false, not {type(value).__name__}")
        weights = settings.get("weights") or {}
        sha = weights.get("sha256")
        if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha)):
            fail(("models", name, "weights", "sha256"), "must be 64 hexadecimal digits")
        for key in ("clips", "top_k"):  # the built-in tasks' counts, checked early for a line number
            value = options.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                fail(("models", name, key), f"must be int, not {type(value).__name__}")
            if value is not None and value < 1:
                fail(("models", name, key), "must be at least 1")
        models[name] = ModelConfig(
            weights_url=weights.get("url"),
            weights_sha256=sha.lower() if sha else None,
            options={k: v for k, v in options.items() if v is not None},
        )
    threads = data.get("threads")
    if threads is not None and threads < 1:
        fail(("threads",), "must be at least 1")
    return Config(
        path=path,
        cache_dir=data.get("cache_dir"),
        default_backend=data.get("default_backend") or "auto",
        threads=threads,
        models=models,
    )


def _check_section(data: dict, schema: dict, prefix: tuple, fail) -> None:
    for key, value in data.items():
        key_path = prefix + (key,)
        if key not in schema:
            fail(key_path, f"is not a known setting (known: {', '.join(schema)})")
        rule = schema[key]
        if rule is None or value is None:
            continue
        if isinstance(rule, dict):
            if not isinstance(value, dict):
                fail(key_path, "must be a mapping")
            _check_section(value, rule, key_path, fail)
            continue
        expected = rule
        if not isinstance(value, expected) or isinstance(value, bool):
            quote = "; put it in quotes" if expected is str and isinstance(value, (int, float)) else ""
            fail(key_path, f"must be {expected.__name__}, not {type(value).__name__}{quote}")


def _key_lines(node, prefix: tuple = ()) -> dict:
    """Map each key path to its 1-based line, so errors can point at the line."""
    import yaml

    lines = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key_path = prefix + (key_node.value,)
            if key_path in lines:  # PyYAML would silently keep the last one
                raise _DuplicateKey(key_path, key_node.start_mark.line + 1)
            lines[key_path] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, key_path))
    return lines


class _DuplicateKey(Exception):
    def __init__(self, key_path: tuple, line: int):
        super().__init__(key_path)
        self.key_path, self.line = key_path, line
