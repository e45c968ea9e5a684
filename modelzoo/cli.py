"""The `zoo` command line: a small click group; every command lives in modelzoo/commands/."""
from __future__ import annotations

import os
import sys

import click

from modelzoo.session import Session

_state = {"debug": False}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file (default: $ZOO_CONFIG, ./zoo.yaml, user config dir).")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="modelzoo", prog_name="zoo")
@click.pass_context
def cli(ctx, config_path, debug):
    """modelzoo: run vision models from public checkpoints on any host, and take them to the RDK S100 board."""
    _state["debug"] = debug or bool(os.environ.get("ZOO_DEBUG"))
    ctx.obj = Session(config_path, debug=_state["debug"])


def _add_commands() -> None:
    from modelzoo.commands import models, running

    for command in (models.list_models, models.info, models.plugins, running.run, running.preprocess, running.export):
        cli.add_command(command)


_add_commands()


def main(argv=None) -> None:
    """Entry point: user errors become one `error:` line and exit 2; --debug shows the traceback."""
    from modelzoo.core.errors import ZooError

    _state["debug"] = "--debug" in (argv if argv is not None else sys.argv[1:]) or bool(os.environ.get("ZOO_DEBUG"))
    try:
        cli.main(args=argv, prog_name="zoo", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    except click.exceptions.UsageError as exc:
        hint = f"; see `{exc.ctx.command_path} --help`" if exc.ctx else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except ZooError as exc:
        _fail(exc, str(exc), exc.exit_code)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: still one line, with the way to see more
        _fail(exc, f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback and report it)", 1)
    sys.exit(0)


def _fail(exc: BaseException, message: str, code: int) -> None:
    if _state["debug"]:
        import traceback

        traceback.print_exception(exc)
    click.echo(f"error: {' '.join(message.split())}", err=True)
    sys.exit(code)
