"""zoo new-plugin: scaffold a model plugin distribution that installs and is listed at once."""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path
from string import Template

import click

from modelzoo.commands.plugin_template import TASKS
from modelzoo.output import emit_json

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def plugin_files(name: str, task: str = "video-classification") -> dict:
    """{relative path: text} of the scaffold for plugin/model `name`."""
    from importlib.metadata import PackageNotFoundError, version

    from modelzoo.commands import plugin_template as t
    from modelzoo.core.contract.hookspecs import HOOKSPEC_VERSION

    try:
        zoo_version = ".".join(version("modelzoo").split(".")[:2])
    except PackageNotFoundError:  # a source tree that was never installed
        zoo_version = "0.1"
    package = f"zoo_{name}"
    values = {
        "name": name,
        "package": package,
        "dist": f"zoo-{name.replace('_', '-')}",
        "hookspec_version": HOOKSPEC_VERSION,
        "zoo_version": zoo_version,
        "task": task,
        **t.TASKS[task],
    }
    templates = {
        "pyproject.toml": t.PYPROJECT,
        "README.md": t.README,
        f"{package}/__init__.py": t.MODULE,
        f"{package}/labels.txt": t.LABELS,
        f"tests/test_{name}.py": t.TEST,
    }
    return {path: Template(text).substitute(values) for path, text in templates.items()}


def write_scaffold(name: str, target: Path, task: str = "video-classification") -> list:
    """Write the scaffold into `target` (absent or empty) all at once: built aside, then renamed."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise click.BadParameter(f"{target} already exists and is not empty; choose another -o DIR", param_hint="'-o'")
    files = plugin_files(name, task)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Not mkdtemp: its private mode would stick to the project folder after the rename.
    staging = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
    staging.mkdir()
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        os.replace(staging, target)  # replaces an empty directory too (POSIX rename)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(files)


def _check_name(_ctx, _param, value: str) -> str:
    if not _NAME.match(value):
        raise click.BadParameter(
            f"{value!r} is not a valid model name; use lower-case letters, digits and _, starting with a letter (e.g. my_model)"
        )
    return value


@click.command("new-plugin")
@click.argument("name", callback=_check_name)
@click.option(
    "--output", "-o", "output", type=click.Path(file_okay=False), help="Directory to create (default ./zoo-NAME)."
)
@click.option(
    "--task",
    type=click.Choice(list(TASKS)),
    default="video-classification",
    show_default=True,
    help="The kind of model.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def new_plugin(name, output, task, as_json):
    """Scaffold a model plugin NAME: pyproject with the entry point, a spec, a model class, and tests."""
    from modelzoo.core.contract.registry import get_registry

    taken = get_registry().models.get(name)
    if taken is not None:  # the registry would refuse the new plugin as a whole once it is installed
        raise click.BadParameter(
            f"a model named {name!r} is already installed (plugin {taken.plugin!r}); choose another name",
            param_hint="'NAME'",
        )
    target = Path(output or f"zoo-{name.replace('_', '-')}")
    files = write_scaffold(name, target, task)
    if as_json:
        emit_json({"name": name, "task": task, "directory": str(target), "files": files})
        return
    click.echo(f"created plugin {name!r} in {target}/:")
    for relative in files:
        click.echo(f"  {relative}")
    click.echo(
        f"next: replace the TODOs, pip install -e {target}, then `zoo list`; `zoo run {name} INPUT --model MODEL.onnx` runs it"
    )
