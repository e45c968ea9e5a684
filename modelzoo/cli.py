"""The `zoo` command line: a small click group; every command lives in modelzoo/commands/."""

from __future__ import annotations

import os
import sys

import click

from modelzoo.session import Session

_state = {"debug": False}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Config file (default: $ZOO_CONFIG, ./zoo.yaml, user config dir).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="modelzoo", prog_name="zoo")
@click.pass_context
def cli(ctx, config_path, debug):
    """modelzoo: run vision models from public checkpoints on any host, and take them to the RDK S100 board."""
    ctx.obj = Session(config_path)  # --debug itself is read by main(), wherever it stands


def _add_commands() -> None:
    from modelzoo.commands import board, cache, fetch, models, running, scaffold

    for command in (
        models.list_models,
        models.info,
        models.plugins,
        running.run,
        running.preprocess,
        running.export,
        fetch.fetch,
        cache.cache,
        board.patch,
        board.check,
        board.calib,
        board.compile_model,
        board.perf,
        scaffold.new_plugin,
    ):
        cli.add_command(command)


_add_commands()


def main(argv=None) -> None:
    """Entry point: user errors become one `error:` line and exit 2; --debug shows the traceback."""
    from modelzoo.core.errors import ZooError

    args = list(sys.argv[1:] if argv is None else argv)
    # --debug is honoured wherever it stands, since error messages tell users to add it
    _state["debug"] = "--debug" in args or bool(os.environ.get("ZOO_DEBUG"))
    if "--debug" in args[1:]:
        args = ["--debug"] + [a for a in args if a != "--debug"]
    _plugin_commands()
    try:
        code = cli.main(args=args, prog_name="zoo", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: aborted; nothing was changed", err=True)
        sys.exit(130)
    except click.exceptions.UsageError as exc:
        hint = f"; see `{exc.ctx.command_path} --help`" if exc.ctx else ""
        click.echo(f"error: {exc.format_message().rstrip('.')}{hint}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except ZooError as exc:
        _fail(exc, str(exc), exc.exit_code)
    except OSError as exc:  # the machine, not zoo: a full disk, a read-only or missing path
        where = f" {exc.filename}" if exc.filename else ""
        _fail(exc, f"{exc.strerror or exc}:{where}; check the path, free space and permissions", 2)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: still one line, with the way to see more
        _fail(exc, f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback and report it)", 1)
    sys.exit(code if isinstance(code, int) else 0)  # without standalone mode, ctx.exit(n) returns n


def _plugin_commands() -> None:
    """Subcommands from plugins (zoo_register_commands); a plugin that fails is reported by `zoo plugins`."""
    from modelzoo.core.contract.registry import get_registry

    try:
        get_registry().register_commands(cli)
    except Exception:  # the built-in commands must keep working whatever a plugin does
        if _state["debug"]:
            raise


def _fail(exc: BaseException, message: str, code: int) -> None:
    if _state["debug"]:
        import traceback

        traceback.print_exception(exc)
    click.echo(f"error: {' '.join(message.split())}", err=True)
    sys.exit(code)
