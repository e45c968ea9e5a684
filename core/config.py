"""Settings from zoo.yaml: where they are looked up, their defaults, and strict validation."""

from __future__ import annotations

import dataclasses
import difflib
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
# Per-model settings that are not the task's run options: where the weights come from, the host
# precision (`--precision`) and the INT8 calibration set (`zoo quantize`).
MODEL_SETTINGS = ("weights", "precision", "calib")
# Any other per-model key is a run option of the model's task (clips, top_k, conf, ...): a scalar
# here, checked against the task's declared type when the model runs (and by `config_problems`).
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
    keys: tuple = field(default=(), compare=False)  # every key the section sets, null ones too

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
    found_by: str | None = None  # how `path` was found: "--config", "$ZOO_CONFIG", "./zoo.yaml", "user config dir"
    lines: dict = field(default_factory=dict, compare=False)  # key path -> line in `path`

    def where(self, *key_path) -> str:
        """The FILE:LINE of a setting, for messages."""
        line = self.lines.get(tuple(key_path))
        return f"{self.path}:{line}" if line else str(self.path or "zoo.yaml")

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


@dataclass(frozen=True)
class ConfigCandidate:
    """One place a config is looked up: what it is, where, whether it exists and whether it is the one used."""

    label: str
    path: Path | None  # None: not given / not set
    exists: bool
    active: bool

    def to_dict(self) -> dict:
        return {"where": self.label, "path": str(self.path) if self.path else None, "exists": self.exists,
                "active": self.active}  # fmt: skip


def config_candidates(explicit: str | os.PathLike | None = None) -> list:
    """Every place a config is looked up, in order; the first that exists is active.

    `--config FILE` and $ZOO_CONFIG must exist when given (ConfigError otherwise).
    """
    found = []
    active_seen = False
    for label, candidate, must_exist in (
        ("--config", explicit, True),
        (f"${CONFIG_ENV}", os.environ.get(CONFIG_ENV) or None, True),
        ("./zoo.yaml", "zoo.yaml", False),
        ("user config dir", user_config_path(), False),
    ):
        if candidate is None:
            found.append(ConfigCandidate(label, None, False, False))
            continue
        path = Path(candidate).expanduser()
        exists = path.is_file()
        if not exists and must_exist:
            how = "fix --config" if label == "--config" else f"fix or unset ${CONFIG_ENV}"
            state = "is not a file" if path.exists() else "does not exist"
            raise ConfigError(f"config file {path} {state}; {how}")
        if label == "./zoo.yaml":
            path = path.absolute()
        found.append(ConfigCandidate(label, path, exists, exists and not active_seen))
        active_seen = active_seen or exists
    return found


def find_config(explicit: str | os.PathLike | None = None) -> Path | None:
    """`--config FILE`, then $ZOO_CONFIG, then ./zoo.yaml, then the user config dir."""
    active = next((c for c in config_candidates(explicit) if c.active), None)
    return active.path if active else None


def load_config(explicit: str | os.PathLike | None = None) -> Config:
    active = next((c for c in config_candidates(explicit) if c.active), None)
    if active is None:
        return Config()
    path = Path(explicit).expanduser() if active.label == "--config" else active.path
    if active.label == "./zoo.yaml":
        path = Path("zoo.yaml")  # as the user sees it; absolute in `zoo config`
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the config as UTF-8 YAML") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc.strerror}); check the path and permissions") from None
    return dataclasses.replace(parse_config(text, path), found_by=active.label)


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
            keys=tuple(settings),
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
        lines=lines,
    )


def config_problems(config: Config, registry) -> list:
    """What zoo.yaml sets that nothing uses: a model key no installed model has, a per-model setting
    that is neither zoo's (MODEL_SETTINGS) nor an option of the model's task, and task options of the
    wrong type. Warnings on every command; errors in `zoo config --check`."""
    problems = []
    installed = registry.models
    for name, section in config.models.items():
        if name not in installed:
            close = _closest(str(name), installed, cutoff=0.0)
            nearest = f"the closest installed model is {close}" if close else "no model is installed"
            problems.append(
                f"{config.where('models', name)}: 'models.{name}' is not an installed model ({nearest}); "
                f"its settings are ignored unless a plugin that provides {name} is installed"
            )
            continue
        task = registry.task_of(installed[name])
        options = {option.name: option for option in task.options}
        for key in section.keys or tuple(section.options):
            where = config.where("models", name, key)
            if key in MODEL_SETTINGS:
                continue
            if key not in options:
                close = _closest(str(key), [*MODEL_SETTINGS, *options], cutoff=0.6)
                hint = f"did you mean '{close}'? " if close else ""
                problems.append(
                    f"{where}: 'models.{name}.{key}' is not a setting of {name}, so it is ignored; {hint}"
                    f"it takes {', '.join(MODEL_SETTINGS)} and its task's options ({', '.join(options) or 'none'})"
                )
            elif section.options.get(key) is not None:
                try:
                    options[key].check(section.options[key], where)
                except ConfigError as exc:
                    problems.append(str(exc))
    return problems


def config_settings(config: Config, registry=None) -> list:
    """Every setting in effect with its value and where it comes from ("default", "$ZOO_HOME", FILE:LINE),
    for `zoo config`. With `registry`, each configured model's task options that the file leaves at their default."""
    rows = []

    def add(key: str, value, source: str) -> None:
        rows.append({"key": key, "value": value, "source": source})

    def source_of(*key_path) -> str:
        return config.where(*key_path) if tuple(key_path) in config.lines else "default"

    if os.environ.get(HOME_ENV):
        add("cache_dir", str(config.cache_root()), f"${HOME_ENV} (wins over the config)")
    elif config.cache_dir:
        add("cache_dir", str(config.cache_root()), source_of("cache_dir"))
    else:
        add("cache_dir", str(config.cache_root()), "default (the user cache dir)")
    add("default_backend", config.default_backend, source_of("default_backend"))
    add(
        "threads",
        config.threads,
        source_of("threads") if config.threads is not None else "default (the backend decides)",
    )
    installed = registry.models if registry is not None else {}
    for name, section in config.models.items():
        task = registry.task_of(installed[name]) if name in installed else None
        known = {*MODEL_SETTINGS, *(option.name for option in task.options)} if task else set()
        unused = "" if registry is None or name in installed else " (ignored: no such model installed)"
        if section.weights_url:
            add(f"models.{name}.weights.url", section.weights_url, source_of("models", name, "weights", "url") + unused)
        if section.weights_sha256:
            sha_source = source_of("models", name, "weights", "sha256") + unused
            add(f"models.{name}.weights.sha256", section.weights_sha256, sha_source)
        for key, value in section.options.items():
            ignored = unused or ("" if task is None or key in known else " (ignored: not a setting of this model)")
            add(f"models.{name}.{key}", value, source_of("models", name, key) + ignored)
        for option in task.options if task else ():
            if option.name not in section.options:
                add(f"models.{name}.{option.name}", option.default, f"default ({task.name})")
    return rows


def _closest(name: str, known, cutoff: float) -> str | None:
    lowered = {str(k).lower(): str(k) for k in known}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=cutoff)
    return lowered[close[0]] if close else None


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
