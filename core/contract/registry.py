"""The one plugin manager: loads entry-point plugins once, isolates their failures, and holds what
they register (models, tasks, backends, marches, dataset formats)."""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field, replace

import pluggy

from modelzoo.core.contract import hookspecs
from modelzoo.core.contract.spec import spec_problems
from modelzoo.core.contract.task import task_problems
from modelzoo.core.errors import PluginError, ToolchainError, UnknownModelError, ZooError
from modelzoo.core.version import zoo_version

ENTRY_POINT_GROUP = "modelzoo"
PLUGINS_ENV = "ZOO_PLUGINS"
"""Comma-separated entry-point names to load; unset loads all, empty loads none."""

BUILTIN_PLUGIN = "modelzoo.core.builtin"


@dataclass
class PluginInfo:
    name: str
    module: str
    version: str | None
    hooks: list = field(default_factory=list)
    models: list = field(default_factory=list)
    tasks: list = field(default_factory=list)
    dataset_formats: list = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "module": self.module,
            "version": self.version,
            "hooks": self.hooks,
            "models": self.models,
            "tasks": self.tasks,
            "dataset_formats": self.dataset_formats,
            "error": self.error,
        }


class Registry:
    """Plugins and what they registered. Models are Model objects; tasks, backends, marches and dataset
    formats are keyed by name."""

    def __init__(self):
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.models: dict = {}
        self.tasks: dict = {}
        self.backends: dict = {}
        self.backend_plugins: dict = {}  # backend name -> the plugin that registered it, to blame its bugs
        self.reported_failures: set = set()  # (plugin, what) warned about once already
        self.marches: dict = {}
        self.dataset_formats: dict = {}
        self._loaded = False
        self._lock = threading.Lock()

    # -- loading ---------------------------------------------------------
    def load(self) -> Registry:
        """Load the built-in plugin and every entry point once; later calls are no-ops."""
        with self._lock:
            if self._loaded:
                return self
            self._loaded = True
            from modelzoo.core import builtin

            self.add_plugin(builtin, name=BUILTIN_PLUGIN, version=zoo_version())
            for entry_point in _entry_points():
                self._load_entry_point(entry_point)
        return self

    def _load_entry_point(self, entry_point) -> None:
        allowed = os.environ.get(PLUGINS_ENV)
        if allowed is not None and entry_point.name not in {s.strip() for s in allowed.split(",")}:
            return
        version = entry_point.dist.version if entry_point.dist else None
        info = PluginInfo(entry_point.name, entry_point.value, version)
        if entry_point.name in self.plugins:
            info.error = f"another plugin is already named {entry_point.name!r}"
            self.plugins[f"{entry_point.name} ({entry_point.value})"] = info
            return
        self.plugins[entry_point.name] = info
        try:
            module = entry_point.load()
        except (Exception, SystemExit) as exc:  # a broken plugin must not break the others, nor exit zoo
            info.error = f"failed to import: {type(exc).__name__}: {exc}"
            return
        self.add_plugin(module, name=entry_point.name, version=version, info=info)

    def add_plugin(self, module, name: str, version: str | None = None, info: PluginInfo | None = None) -> PluginInfo:
        """Register one plugin object; incompatible or failing plugins are recorded, not raised.

        What a plugin registers is taken all or nothing: one bad model keeps all of its models out.
        """
        info = info or PluginInfo(name, getattr(module, "__name__", repr(module)), version)
        self.plugins[name] = info
        declared = getattr(module, "ZOO_HOOKSPEC_VERSION", None)
        if declared is None:
            info.error = f"declares no ZOO_HOOKSPEC_VERSION; add `ZOO_HOOKSPEC_VERSION = {hookspecs.HOOKSPEC_VERSION}` to {info.module}"
            return info
        if isinstance(declared, str) and declared.strip() == str(hookspecs.HOOKSPEC_VERSION):
            info.error = (
                f"declares ZOO_HOOKSPEC_VERSION as the string {declared!r}; write the integer: "
                f"`ZOO_HOOKSPEC_VERSION = {hookspecs.HOOKSPEC_VERSION}` in {info.module}"
            )
            return info
        if declared != hookspecs.HOOKSPEC_VERSION:
            hint = " (version 1 had per-model hooks; see docs/plugins.md for the Model classes of version 2)"
            info.error = (
                f"targets hook-spec version {declared!r}, this zoo provides {hookspecs.HOOKSPEC_VERSION}; "
                f"upgrade the plugin or modelzoo{hint if declared == 1 else ''}"
            )
            return info
        try:
            self.pm.register(module, name=name)
            self.pm.check_pending()  # a misspelled @hookimpl would otherwise never be called
        except Exception as exc:
            with contextlib.suppress(ValueError):
                self.pm.unregister(module)
            info.error = f"rejected by the plugin manager: {_pending_message(exc)}"
            return info
        info.hooks = sorted(caller.name for caller in self.pm.get_hookcallers(module) or [])
        try:
            kinds = ("tasks", "backends", "marches", "dataset_formats", "models")
            found = {kind: self._collect(module, kind) for kind in kinds}
            for task in found["tasks"]:
                others = {**self.tasks, **{getattr(t, "name", ""): t for t in found["tasks"] if t is not task}}
                problems = task_problems(task, others)
                if problems:
                    raise PluginError(f"task {getattr(task, 'name', '?')!r}: {'; '.join(problems)}")
            tasks = {t.name: t for t in found["tasks"] if t.name not in self.tasks}
            models = [self._checked_model(model, name, {**self.tasks, **tasks}) for model in found["models"]]
            twice = sorted({m.name for m in models if sum(o.name == m.name for o in models) > 1})
            if twice:
                raise PluginError(
                    f"model {twice[0]!r} is registered twice by this plugin; give each model its own name"
                )
            formats = self._checked_formats(found["dataset_formats"], name)
            self._check_kinds(found["backends"], found["marches"])
        except (Exception, SystemExit) as exc:
            self.pm.unregister(module)
            info.error = (
                f"failed while registering: {exc}"
                if isinstance(exc, ZooError)
                else f"failed while registering: {type(exc).__name__}: {exc}"
            )
            return info
        self.tasks.update(tasks)
        info.tasks = sorted(tasks)
        for backend in found["backends"]:
            if backend.name not in self.backends:
                self.backends[backend.name] = backend
                self.backend_plugins[backend.name] = name
        for march in found["marches"]:
            if march.name in self.marches:
                self.marches[march.name] = self.marches[march.name].extended(march)
            else:
                self.marches[march.name] = march
        for dataset_format in formats:
            self.dataset_formats[dataset_format.name] = dataset_format
        info.dataset_formats = sorted(f.name for f in formats)
        for model in models:
            self.models[model.name] = model
            info.models.append(model.name)
        return info

    def _collect(self, module, kind: str) -> list:
        """Call this plugin's zoo_register_<kind> hook only: registration is per plugin, all or nothing."""
        items = []
        for impl in getattr(self.pm.hook, f"zoo_register_{kind}").get_hookimpls():
            if impl.plugin is module:
                impl.function(register=items.append)
        return items

    def _checked_model(self, model, plugin: str, tasks: dict):
        from modelzoo.core.contract.model import Model

        if isinstance(model, type) and issubclass(model, Model):
            raise PluginError(
                f"registered the class {model.__name__}, not a model; register an instance: "
                f"register({model.__name__}(SPEC))"
            )
        if not isinstance(model, Model):
            raise PluginError(
                f"registered {type(model).__name__}, not a Model; wrap the spec in its task's model class "
                "(e.g. VideoClassifier(SPEC)), see docs/plugins.md"
            )
        spec = model.spec
        problems = spec_problems(spec)
        if not problems:
            if model.task and model.task != spec.task:
                problems.append(f"spec.task is {spec.task!r} but {type(model).__name__} is a {model.task!r} model")
            task = tasks.get(spec.task)
            if task is None:
                problems.append(f"unknown task {spec.task!r} (installed: {', '.join(sorted(tasks)) or 'none'})")
            else:
                problems.extend(task.spec_problems(spec))
        if problems:
            raise PluginError(f"model {getattr(spec, 'name', '?')!r}: {'; '.join(problems)}")
        if spec.name in self.models:
            raise PluginError(f"model {spec.name!r} is already registered by {self.models[spec.name].plugin}")
        model.spec = replace(spec, plugin=plugin)
        return model

    @staticmethod
    def _check_kinds(backends: list, marches: list) -> None:
        """Backends are Backend classes and marches March objects; anything else would fail every command later."""
        from modelzoo.core.backends.backend import Backend
        from modelzoo.core.board.march_rules import March

        for backend in backends:
            if not (isinstance(backend, type) and issubclass(backend, Backend)):
                raise PluginError(f"backend {backend!r} is not a subclass of modelzoo.plugin.Backend")
        for march in marches:
            if not isinstance(march, March):
                raise PluginError(f"march {march!r} is not a modelzoo.plugin.March")

    def _checked_formats(self, candidates: list, plugin: str) -> list:
        """The formats this plugin adds: each checked like a model; a name already taken keeps the first."""
        from modelzoo.core.accuracy.formats import format_problems

        added = {}
        for candidate in candidates:
            problems = format_problems(candidate)
            if problems:
                raise PluginError(f"dataset format {getattr(candidate, 'name', '?')!r}: {'; '.join(problems)}")
            if candidate.name not in self.dataset_formats and candidate.name not in added:
                candidate.plugin = plugin
                added[candidate.name] = candidate
        return list(added.values())

    # -- queries ---------------------------------------------------------
    def get_model(self, name: str):
        self.load()
        if name not in self.models:
            raise UnknownModelError(_unknown("model", name, self.models, "zoo list"))
        return self.models[name]

    def plugin_of_task(self, task_name: str) -> str:
        """The plugin that registered the task `task_name` ("?" if none did)."""
        return next((i.name for i in self.plugins.values() if task_name in i.tasks), "?")

    def task_of(self, model):
        """The Task object of `model` (registration guarantees it exists)."""
        return self.tasks[model.spec.task]

    def march(self, name: str):
        if name not in self.marches:
            known = ", ".join(sorted(self.marches)) or "none"
            raise ToolchainError(f"unknown march {name!r}; known: {known} (the RDK S100 is nash-e)")
        return self.marches[name]

    def select_backend(self, model, requested: str, model_path, cache, from_weights: bool = False):
        """The Backend class for this run; `from_weights` offers auto only backends that run converted weights."""
        backends = dict(self.backends)
        if from_weights and requested == "auto":
            backends = {name: b for name, b in backends.items() if b.converts_weights}
        arguments = {
            "model": model, "requested": requested, "model_path": model_path, "backends": backends, "cache": cache
        }  # fmt: skip
        # pluggy's firstresult order (last registered and tryfirst first), one implementation at a time so
        # that a plugin's bug is blamed on it rather than on zoo
        impls = self.pm.hook.zoo_select_backend.get_hookimpls()
        if any(impl.hookwrapper or getattr(impl, "wrapper", False) for impl in impls):
            return self.pm.hook.zoo_select_backend(**arguments)  # wrappers need pluggy's own call loop
        for impl in reversed(impls):
            with blamed_on(impl.plugin_name, "zoo_select_backend"):
                chosen = impl.function(**{name: arguments[name] for name in impl.argnames})
            if chosen is not None:
                return chosen
        return None

    def register_commands(self, cli) -> None:
        """Let plugins add subcommands; a plugin that fails here is reported, the others still add theirs."""
        for impl in self.pm.hook.zoo_register_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except (Exception, SystemExit) as exc:
                info = self.plugins.get(impl.plugin_name)
                if info is not None:
                    info.error = f"failed adding commands: {type(exc).__name__}: {exc}"


@contextlib.contextmanager
def blamed_on(plugin: str, where: str):
    """A plugin's bug becomes a PluginError naming it; its deliberate user errors pass through."""
    try:
        yield
    except ZooError:
        raise
    except (Exception, SystemExit) as exc:  # a plugin's sys.exit must not end zoo unexplained
        raise PluginError(
            f"plugin {plugin!r} failed in {where}: {type(exc).__name__}: {exc}; "
            "report it to the plugin's author (`zoo --debug …` shows the traceback)"
        ) from exc


def _pending_message(exc: Exception) -> str:
    text = str(exc)
    if "unknown hook" in text.lower() or "no hook specification" in text.lower():
        return f"{text}; check the hook's spelling against modelzoo's hookspecs"
    return text


def _unknown(kind: str, name: str, known: dict, command: str) -> str:
    import difflib

    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    hint = f"did you mean {lowered[close[0]]!r}? " if close else ""
    return f"unknown {kind} {name!r}; {hint}installed: {', '.join(sorted(known)) or 'none'}; see `{command}`"


def _entry_points():
    """modelzoo's own plugins first, so a third-party plugin cannot take over a built-in model name."""
    from importlib.metadata import entry_points

    def own_first(ep):
        dist = ep.dist.metadata["Name"] if ep.dist is not None else ""
        return (dist != "modelzoo", ep.name)

    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=own_first)


_registry: Registry | None = None


def get_registry() -> Registry:
    global _registry
    if _registry is None:
        _registry = Registry()
    return _registry.load()


def reset_registry() -> None:
    """Forget loaded plugins, so tests can change sys.path or $ZOO_PLUGINS."""
    global _registry
    _registry = None


def get_models() -> list:
    return sorted(get_registry().models.values(), key=lambda m: m.name)


def get_model(name: str):
    return get_registry().get_model(name)
