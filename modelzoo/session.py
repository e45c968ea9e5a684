"""What every command shares: the config, the registry and the cache, each made on first use."""

from __future__ import annotations

from functools import cached_property

import click

from modelzoo.output import notice


class Session:
    def __init__(self, config_path=None):
        self.config_path = config_path
        self.warn_about_config = True  # `zoo config` shows the problems itself

    @cached_property
    def config(self):
        from modelzoo.core.config import load_config

        return load_config(self.config_path)

    @cached_property
    def registry(self):
        from modelzoo.core.contract.registry import get_registry

        registry = get_registry()
        for info in registry.plugins.values():
            if info.error:
                notice(f"warning: plugin {info.name!r} not loaded: {info.error} (see `zoo plugins`)")
        if self.warn_about_config:
            for problem in self._config_problems(registry):
                notice(f"warning: {problem}")
        return registry

    def _config_problems(self, registry) -> list:
        """What zoo.yaml sets that nothing uses; a config that does not load is the command's own error."""
        from modelzoo.core.config import config_problems
        from modelzoo.core.errors import ConfigError

        try:
            config = self.config
        except ConfigError:
            return []
        return config_problems(config, registry)

    @cached_property
    def cache(self):
        from modelzoo.core.artifacts.cache import open_cache

        return open_cache(self.config)


pass_session = click.make_pass_decorator(Session)
