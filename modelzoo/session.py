"""What every command shares: the config, the registry and the cache, each made on first use."""

from __future__ import annotations

from functools import cached_property

import click

from modelzoo.output import notice


class Session:
    def __init__(self, config_path=None):
        self.config_path = config_path

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
        return registry

    @cached_property
    def cache(self):
        from modelzoo.core.artifacts.cache import ArtifactCache

        return ArtifactCache(self.config.cache_root())


pass_session = click.make_pass_decorator(Session)
