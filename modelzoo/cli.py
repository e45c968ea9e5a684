"""The `zoo` command line: a small click group; every command lives in modelzoo/commands/.

Exit codes (README): 0 ok, 1 a command's own "found something" (`zoo check`, failed inputs of a
batch run), 2 a user error, 70 an internal error (a bug), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading

import click

_state = {"debug": False}
INTERNAL_ERROR = 70  # EX_SOFTWARE: zoo itself failed; distinct from a user error (2)


# zoo's own commands, name -> (module in modelzoo.commands, attribute, short help): `zoo --help` lists
# them without importing any (tests/test_startup.py checks each short help against the command's own).
COMMANDS = {
    "list": ("models", "list_models", "List every model, what runs it here, and what is cached."),
    "info": ("models", "info", "Show a model's specification, artifacts, accuracy and board performance."),
    "plugins": ("models", "plugins", "List installed plugins with versions, hooks, models and load errors."),
    "run": ("running", "run", "Run a model on inputs: decode, preprocess, infer, print each result and timings."),
    "preprocess": ("running", "preprocess", "Write the exact float32 tensor `zoo run` would feed the model, for running it on the board."),
    "export": ("running", "export", "Convert the model's checkpoint to ONNX (no PyTorch needed)."),
    "fetch": ("fetch", "fetch", "Download a model's weights (or prebuilt board model) into the cache and verify them."),
    "cache": ("cache", "cache", "Manage the artifact cache ($ZOO_HOME, cache_dir in zoo.yaml, or the user cache dir)."),
    "config": ("config", "config", "Show the active config file, where zoo looked, and each setting with its source."),
    "patch": (
        "board", "patch",
        "Rewrite the ONNX graph so the board toolchain accepts it, and prove the outputs did not change.",
    ),
    "check": ("board", "check", "Lint the ONNX against the march's known constraints."),
    "calib": (
        "board", "calib",
        "Write hb_compile calibration data: one float32 .npy per clip, exactly what `zoo run` feeds the model.",
    ),
    "compile": (
        "board", "compile_model", "Patch, check and configure the model for hb_compile, then run it if it is on PATH."
    ),
    "perf": ("board", "perf", "Measure latency and FPS like `hrt_model_exec perf`, on random input, with any backend."),
    "quantize": (
        "quantize", "quantize",
        "Quantize the model to INT8 for onnxruntime (static QDQ), and report how far it is from fp32.",
    ),
    "eval": (
        "accuracy", "evaluate", "Measure Top-1, Top-5 and mean per-class accuracy on a labelled set, with the protocol used."
    ),
    "serve": (
        "serve", "serve",
        "Serve models over HTTP: JSON predictions (as `zoo run --json`), /metrics, and a web page at /.",
    ),
    "new-plugin": (
        "scaffold", "new_plugin",
        "Scaffold a model plugin NAME: pyproject with the entry point, a spec, a model class, and tests.",
    ),
}  # fmt: skip


class LazyGroup(click.Group):
    """zoo's own commands imported only when named, and plugins' (zoo_register_commands) loaded only when
    needed: for the command list (`zoo --help`), a name that is not zoo's own, and `zoo plugins`
    (which reports a plugin failing to add its commands). A plugin cannot take over a built-in name."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.builtins: dict = {}  # name -> imported built-in command
        self.plugin_commands_loaded = False
        self._listing = False

    def list_commands(self, ctx) -> list:
        self.load_plugin_commands()
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            self.load_plugin_commands()
            return self.commands.get(name)
        if name == "plugins":
            self.load_plugin_commands()
        if name not in self.builtins:
            module, attribute, short_help = COMMANDS[name]
            if self._listing:  # the list needs only the short help: no import
                return click.Command(name, help=short_help)
            self.builtins[name] = getattr(importlib.import_module(f"modelzoo.commands.{module}"), attribute)
        return self.builtins[name]

    def format_commands(self, ctx, formatter) -> None:
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False

    def load_plugin_commands(self) -> None:
        """Plugins' subcommands, once per invocation; a plugin that fails is reported by `zoo plugins`."""
        if self.plugin_commands_loaded:
            return
        self.plugin_commands_loaded = True
        from modelzoo.core.contract.registry import get_registry

        try:
            get_registry().register_commands(self)
        except Exception:  # the built-in commands must keep working whatever a plugin does
            if _state["debug"]:
                raise


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    from modelzoo.session import Session

    ctx.obj = Session(config_path)  # --debug itself is read by main(), wherever it stands


def main(argv=None) -> None:
    """Entry point: user errors become one `error:` line and exit 2; --debug shows the traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    # --debug is honoured wherever it stands, since error messages tell users to add it
    _state["debug"] = "--debug" in args or bool(os.environ.get("ZOO_DEBUG"))
    if "--debug" in args[1:]:
        args = ["--debug"] + [a for a in args if a != "--debug"]
    previous = _on_sigterm()
    try:
        _main(args)
    finally:
        if previous is not None:  # in-process callers (tests) get their own handler back
            signal.signal(signal.SIGTERM, previous)


def _main(args: list) -> None:
    from modelzoo.core.atomic import forget_interruptions
    from modelzoo.core.errors import ZooError

    forget_interruptions()  # what an interruption reports is this command's own
    cli.plugin_commands_loaded = False  # a long-lived process (tests) may have another registry by now
    try:
        code = cli.main(args=args, prog_name="zoo", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort
        click.echo(f"error: {_interrupted('interrupted')}", err=True)
        sys.exit(130)
    except getattr(click.exceptions, "NoArgsIsHelpError", ()) as exc:  # plain `zoo` (click >= 8.2): the help
        click.echo(exc.format_message(), err=True)
        sys.exit(2)
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
    except Exception as exc:  # a bug: still one line, with the way to see more
        _fail(
            exc,
            f"internal error: {type(exc).__name__}: {exc} (a bug in zoo; run with --debug for the traceback "
            f"and report it)",
            INTERNAL_ERROR,
        )
    sys.exit(code if isinstance(code, int) else 0)  # without standalone mode, ctx.exit(n) returns n


def _interrupted(what: str, removed=()) -> str:
    """What an interruption kept (a resumable .part) and removed (unfinished writes), in one line."""
    from modelzoo.core.atomic import interruption_report

    kept, abandoned = interruption_report(removed)
    said = []
    if kept:
        sizes = ", ".join(f"{p} ({_megabytes(p)})" for p in kept)
        said.append(f"kept the partial download {sizes}: the next run resumes it (`zoo cache clean` removes it)")
    if abandoned:
        said.append(f"removed the unfinished {', '.join(str(p) for p in abandoned)}")
    return f"{what}; " + "; ".join(said) if said else f"{what}; no file was left half-written"


def _megabytes(path) -> str:
    try:
        return f"{os.path.getsize(path) / 1e6:.1f} MB"
    except OSError:
        return "?"


def _on_sigterm():
    """Install the SIGTERM handler (main thread only); returns the handler it replaced, or None."""
    if not hasattr(signal, "SIGTERM") or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _terminate)


def _terminate(signum, frame) -> None:
    """SIGTERM: remove this process's temp files, keep resumable .part files, say so, exit 143.

    os._exit, not SystemExit: a worker thread or a blocking call must not delay the exit, and the
    temp files are already gone (locks are released by the kernel with the process).
    """
    from modelzoo.core.atomic import remove_temporary_files

    removed = remove_temporary_files()
    try:
        sys.stderr.write(f"error: {_interrupted('terminated', removed)}\n")
        sys.stderr.flush()
    finally:
        os._exit(143)


def _fail(exc: BaseException, message: str, code: int) -> None:
    if _state["debug"]:
        import traceback

        traceback.print_exception(exc)
    click.echo(f"error: {' '.join(message.split())}", err=True)
    sys.exit(code)
