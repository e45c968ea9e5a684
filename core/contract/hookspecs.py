"""The plugin contract, version 2. A plugin module sets ZOO_HOOKSPEC_VERSION = 2 and implements some hooks.

Registration hooks are broadcast: every plugin is called once at load with a `register` callback
and may register zero, one or many objects. Behaviour lives on those objects (Model, Task,
Backend, March, DatasetFormat), never in per-model hooks. `firstresult` remains only where plugins
compete to pick one thing: which backend serves a run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import click

    from modelzoo.core.accuracy.formats import DatasetFormat
    from modelzoo.core.artifacts.cache import ArtifactCache
    from modelzoo.core.backends.backend import Backend
    from modelzoo.core.board.march_rules import March
    from modelzoo.core.contract.model import Model
    from modelzoo.core.contract.task import Task

HOOKSPEC_VERSION = 2
"""Bumped when a hook changes incompatibly; plugins declaring another version are not loaded."""

hookspec = pluggy.HookspecMarker("modelzoo")
hookimpl = pluggy.HookimplMarker("modelzoo")


@hookspec
def zoo_register_models(register: Callable[[Model], None]) -> None:
    """Register this plugin's models.

    :param register: call it with a Model instance (a subclass of a task's model class, e.g.
        ``VideoClassifier(spec)``) for each model. The spec is checked at once: a bad one is
        reported by ``zoo plugins`` with its reason, and the plugin's models are not loaded.
    """


@hookspec
def zoo_register_tasks(register: Callable[[Task], None]) -> None:
    """Register task kinds (``video-classification``, ``object-detection``, ...).

    :param register: call it with a Task instance. A task name registered twice keeps the first.
    """


@hookspec
def zoo_register_backends(register: Callable[[type[Backend]], None]) -> None:
    """Register inference backends.

    :param register: call it with a Backend subclass (not an instance): it is loaded per model file.
    """


@hookspec
def zoo_register_marches(register: Callable[[March], None]) -> None:
    """Register board architectures and their toolchain constraints.

    :param register: call it with a March (name, rules, rewrites). Registering a name that exists
        adds the rules and rewrites to it, so a plugin can teach zoo a constraint of a known march.
    """


@hookspec
def zoo_register_dataset_formats(register: Callable[[DatasetFormat], None]) -> None:
    """Register kinds of labelled set ``zoo eval --dataset`` reads (a dataset's annotation file and layout).

    :param register: call it with a DatasetFormat instance; its ``name`` is ``zoo eval --format NAME``.
        It is checked at once, like a model. A format name registered twice keeps the first.
    """


@hookspec(firstresult=True)
def zoo_select_backend(
    model: Model,
    requested: str,
    model_path: Path | None,
    backends: dict[str, type[Backend]],
    cache: ArtifactCache,
) -> type[Backend] | None:
    """Pick the Backend class that runs ``model`` for ``--backend requested``.

    :param model: the Model to run.
    :param requested: ``"auto"`` or a backend name.
    :param model_path: the user's ``--model`` file, or None.
    :param backends: registered Backend classes by name (already filtered for the run).
    :param cache: the artifact cache, to see which prebuilt model files are there.
    :return: a Backend class, or None to let the next plugin decide. Stops at the first non-None result;
        the core's own rule runs last.
    """


@hookspec
def zoo_register_commands(cli: click.Group) -> None:
    """Add subcommands to ``zoo``.

    :param cli: the click group; call ``cli.add_command(...)`` or use ``@cli.command()``.
        Keep the import of the command's module cheap: ``zoo --help`` loads every plugin.
    """
