"""zoo config: which config file is active, every setting in effect and where it comes from."""

from __future__ import annotations

import click

from modelzoo.output import emit_json, notice, table
from modelzoo.session import pass_session

_WHY = {
    "--config": "given with --config",
    "$ZOO_CONFIG": "named by $ZOO_CONFIG",
    "./zoo.yaml": "zoo.yaml in the current folder",
    "user config dir": "the user config dir",
}


@click.command("config")
@click.option("--check", is_flag=True, help="Exit 2 if the config sets anything that is ignored.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def config(session, check, as_json):
    """Show the active config file, where zoo looked, and each setting with its source."""
    from modelzoo.core.config import config_candidates, config_problems, config_settings
    from modelzoo.core.errors import ConfigError

    session.warn_about_config = False  # the problems are listed here, once
    candidates = config_candidates(session.config_path)
    settings = session.config
    registry = session.registry
    problems = config_problems(settings, registry)
    active = next((c for c in candidates if c.active), None)
    rows = config_settings(settings, registry)
    if as_json:
        emit_json(
            {
                "active": str(active.path) if active else None,
                "found_by": active.label if active else None,
                "looked_up": [c.to_dict() for c in candidates],
                "settings": rows,
                "problems": problems,
            }
        )
    else:
        if active:
            click.echo(f"config: {active.path} ({_WHY[active.label]})")
        else:
            click.echo("config: none found; the built-in defaults apply")
        click.echo("looked up, in order (the first that exists is used; the others are not read):")
        for c in candidates:
            if c.path is None:
                state = "not given" if c.label == "--config" else "not set"
            else:
                state = "active" if c.active else ("exists, not used" if c.exists else "not found")
            click.echo(f"  {c.label:16} {str(c.path) if c.path else '-'}  ({state})")
        click.echo("")
        click.echo(table(["setting", "value", "source"], [[r["key"], _shown(r["value"]), r["source"]] for r in rows]))
        for problem in problems:
            notice(f"{'problem' if check else 'warning'}: {problem}")
    if check and problems:
        raise ConfigError(
            f"{active.path if active else 'the config'} sets {len(problems)} thing(s) that zoo ignores "
            "(listed above); fix or remove them"
        )
    if check and not as_json:
        click.echo("config ok: every setting is used")


def _shown(value) -> str:
    return "-" if value is None else str(value)
