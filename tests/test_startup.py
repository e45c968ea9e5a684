"""Start-up stays cheap: `zoo --help` imports no command module, a built-in command imports only its
own and loads no plugin's commands, and plugins' commands are loaded where they are needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest
from fake_dist import write_distribution

from modelzoo.cli import COMMANDS, cli

pytestmark = pytest.mark.usefixtures("in_tmp_dir")


def _zoo(*args, env=None) -> subprocess.CompletedProcess:
    """`zoo ARGS` in a fresh interpreter; stdout ends with the modelzoo.commands modules it imported."""
    code = (
        "import sys\nfrom modelzoo.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n"
        "    code = exc.code\nelse:\n    code = 0\n"
        "print('IMPORTED', sorted(m for m in sys.modules if m.startswith('modelzoo.commands.')))\n"
        "print('REGISTRY', 'modelzoo.core.contract.registry' in sys.modules)\nsys.exit(code)"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def _imported(out: str) -> list:
    line = next(line for line in out.splitlines() if line.startswith("IMPORTED "))
    return eval(line.removeprefix("IMPORTED "))  # a list literal printed by _zoo


def test_every_builtin_command_is_listed_with_its_own_short_help():
    """The table `zoo --help` reads instead of importing the commands says what each command says."""
    for name, (module, attribute, short_help) in COMMANDS.items():
        command = getattr(__import__(f"modelzoo.commands.{module}", fromlist=[attribute]), attribute)
        assert isinstance(command, click.Command) and command.name == name
        assert short_help == command.get_short_help_str(limit=10**6), name


def test_help_imports_no_command_and_reads_as_with_every_command_imported():
    result = _zoo("--help")
    assert result.returncode == 0, result.stderr
    assert _imported(result.stdout) == []
    listed = result.stdout.split("IMPORTED")[0]
    for name in COMMANDS:
        assert any(line.split()[:1] == [name] for line in listed.splitlines()), name

    # the same page once every command is imported (click then reads each command's own help)
    context = click.Context(cli, info_name="zoo", **cli.context_settings)
    for name in COMMANDS:
        cli.get_command(context, name)
    assert cli.get_help(context) + "\n" == listed


def test_plain_zoo_shows_the_command_list_not_an_error():
    result = _zoo()
    assert result.returncode == 2  # as click does: no command is a usage error
    assert result.stderr.startswith("Usage: zoo") and "Commands:" in result.stderr and "error:" not in result.stderr
    assert _imported(result.stdout) == []


def test_a_builtin_command_imports_only_its_module_and_loads_no_plugin():
    result = _zoo("run", "--help")
    assert result.returncode == 0, result.stderr
    assert "--model" in result.stdout and "--force" in result.stdout
    assert _imported(result.stdout) == ["modelzoo.commands.running"]
    assert "REGISTRY False" in result.stdout  # no plugin was imported to show it


# A plugin adding `hello`, and trying to take over `run`; it leaves a mark when asked for its commands.
GREETER = """
import os
from pathlib import Path

from modelzoo.plugin import hookimpl

ZOO_HOOKSPEC_VERSION = 2


@hookimpl
def zoo_register_commands(cli):
    import click

    Path(os.environ["GREETER_MARK"]).write_text("asked")

    @cli.command("hello")
    def hello():
        \"\"\"Say hello (a plugin's command).\"\"\"
        click.echo("hello from a plugin")

    @cli.command("run")
    def run():
        \"\"\"Not zoo's run.\"\"\"
        click.echo("taken over")
"""


@pytest.fixture
def greeter(tmp_path):
    site = tmp_path / "site"
    write_distribution(
        site, "greeter-plugin", "0.1", {"greeter": "greeter_plugin"}, {"greeter_plugin/__init__.py": GREETER}
    )
    mark = tmp_path / "asked"
    return mark, {
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "GREETER_MARK": str(mark),
    }


def test_plugin_commands_load_only_where_needed_and_never_replace_a_builtin(greeter):
    mark, env = greeter

    listed = _zoo("list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert not mark.exists()  # plugins are loaded for the models, not asked for commands

    ran = _zoo("run", "--help", env=env)
    assert ran.returncode == 0 and "--model" in ran.stdout and "taken over" not in ran.stdout
    assert not mark.exists()

    hello = _zoo("hello", env=env)
    assert hello.returncode == 0, hello.stderr
    assert hello.stdout.startswith("hello from a plugin\n") and mark.read_text() == "asked"

    mark.unlink()
    page = _zoo("--help", env=env)
    assert any(line.split()[:1] == ["hello"] for line in page.stdout.splitlines()) and mark.exists()
    run_line = next(line for line in page.stdout.splitlines() if line.split()[:1] == ["run"])
    assert "Run a model on inputs" in run_line  # zoo's own, not the plugin's

    mark.unlink()
    plugins = _zoo("plugins", "--json", env=env)  # it reports a plugin that fails to add its commands
    assert plugins.returncode == 0, plugins.stderr
    assert mark.exists()
    rows = json.loads(plugins.stdout.split("IMPORTED")[0])
    assert any(row["name"] == "greeter" and row["error"] is None for row in rows)

    unknown = _zoo("helo", env=env)
    assert unknown.returncode == 2 and "No such command 'helo'" in unknown.stderr
