"""The one plugin manager: loads entry-point plugins once, isolates their failures, indexes models."""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field, replace

import pluggy

from modelzoo.core.contract import hookspecs
from modelzoo.core.errors import PluginError, UnknownModelError, ZooError
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
    error: str | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "module": self.module,
            "version": self.version,
            "hooks": self.hooks,
            "models": self.models,
            "error": self.error,
        }


class Registry:
    """Plugins, the models they register, and per-model hook callers."""

    def __init__(self):
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.models: dict = {}
        self.backends: dict = {}
        self._owner: dict = {}  # model name -> plugin object
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
        except Exception as exc:  # a broken plugin must not break the others
            info.error = f"failed to import: {type(exc).__name__}: {exc}"
            return
        self.add_plugin(module, name=entry_point.name, version=version, info=info)

    def add_plugin(self, module, name: str, version: str | None = None, info: PluginInfo | None = None) -> PluginInfo:
        """Register one plugin object; incompatible or failing plugins are recorded, not raised."""
        info = info or PluginInfo(name, getattr(module, "__name__", repr(module)), version)
        self.plugins[name] = info
        declared = getattr(module, "ZOO_HOOKSPEC_VERSION", None)
        if declared is None:
            info.error = f"declares no ZOO_HOOKSPEC_VERSION; add `ZOO_HOOKSPEC_VERSION = {hookspecs.HOOKSPEC_VERSION}` to {info.module}"
            return info
        if declared != hookspecs.HOOKSPEC_VERSION:
            info.error = (
                f"targets hook-spec version {declared!r}, this zoo provides {hookspecs.HOOKSPEC_VERSION}; "
                "upgrade the plugin or modelzoo"
            )
            return info
        unknown = _unknown_hooks(module)
        if unknown:
            info.error = (
                f"implements unknown hook(s) {', '.join(unknown)}; check the spelling against modelzoo's hookspecs"
            )
            return info
        try:
            self.pm.register(module, name=name)
        except Exception as exc:
            info.error = f"rejected by the plugin manager: {exc}"
            return info
        info.hooks = sorted(impl_name for impl_name in _hook_names(self.pm, module))
        models, backends = [], []
        try:
            for impl in self.pm.hook.zoo_register_models.get_hookimpls():
                if impl.plugin is module:
                    impl.function(register=models.append)
            for impl in self.pm.hook.zoo_register_backends.get_hookimpls():
                if impl.plugin is module:
                    impl.function(register=backends.append)
            for spec in models:
                if spec.name in self.models:
                    raise PluginError(f"model {spec.name!r} is already registered by {self.models[spec.name].plugin}")
        except Exception as exc:
            self.pm.unregister(module)
            info.error = f"failed while registering: {type(exc).__name__}: {exc}"
            return info
        for spec in models:
            self.models[spec.name] = replace(spec, plugin=name)
            self._owner[spec.name] = module
            info.models.append(spec.name)
        for backend in backends:
            self.backends.setdefault(backend.name, backend)
        return info

    # -- queries ---------------------------------------------------------
    def get_model(self, name: str):
        self.load()
        if name not in self.models:
            known = ", ".join(sorted(self.models)) or "none"
            raise UnknownModelError(f"unknown model {name!r} (installed: {known}); see `zoo list`")
        return self.models[name]

    def model_hook(self, spec, hook_name: str):
        """A caller for `hook_name` restricted to the plugin that registered `spec`."""
        owner = self._owner[spec.name]
        others = [p for p in self.pm.get_plugins() if p is not owner]
        caller = self.pm.subset_hook_caller(hook_name, remove_plugins=others)

        def call(**kwargs):
            with _blamed_on(spec.plugin, f"{hook_name} for {spec.name}"):
                return caller(spec=spec, **kwargs)

        return call

    def patch_graph(self, spec, model, march: str) -> list:
        """Apply every plugin's graph patch: tryfirst ones, then in load order, then trylast; return what changed."""
        changes = []
        impls = self.pm.hook.zoo_patch_graph.get_hookimpls()  # registration order within each group
        ordered = (
            [i for i in impls if i.tryfirst]
            + [i for i in impls if not (i.tryfirst or i.trylast)]
            + [i for i in impls if i.trylast]
        )
        for impl in ordered:
            with _blamed_on(impl.plugin_name, "zoo_patch_graph"):
                changes.extend(impl.function(spec=spec, model=model, march=march) or [])
        return changes

    def select_backend(self, spec, requested: str, model_path, cache, from_weights: bool = False):
        """The Backend class for this run; `from_weights` offers auto only backends that run converted weights."""
        backends = dict(self.backends)
        if from_weights and requested == "auto":
            backends = {name: b for name, b in backends.items() if b.converts_weights}
        return self.pm.hook.zoo_select_backend(
            spec=spec, requested=requested, model_path=model_path, backends=backends, cache=cache
        )


@contextlib.contextmanager
def _blamed_on(plugin: str, where: str):
    """A plugin's bug becomes a PluginError naming it; its deliberate user errors pass through."""
    try:
        yield
    except ZooError:
        raise
    except Exception as exc:
        raise PluginError(
            f"plugin {plugin!r} failed in {where}: {type(exc).__name__}: {exc}; "
            "report it to the plugin's author (`zoo --debug …` shows the traceback)"
        ) from exc


def _unknown_hooks(module) -> list:
    """Functions marked @hookimpl whose name is no hook: pluggy would silently never call them."""
    marker = f"{ENTRY_POINT_GROUP}_impl"
    return sorted(
        name
        for name in dir(module)
        if hasattr(getattr(module, name, None), marker)
        and not hasattr(getattr(hookspecs, name, None), f"{ENTRY_POINT_GROUP}_spec")
    )


def _hook_names(pm, plugin) -> list:
    return [caller.name for caller in pm.get_hookcallers(plugin) or []]


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
    return sorted(get_registry().models.values(), key=lambda s: s.name)


def get_model(name: str):
    return get_registry().get_model(name)
