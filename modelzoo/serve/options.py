"""Option values sent as text (query strings, form fields) read as the types of the task's options."""

from __future__ import annotations

import math

from modelzoo.core.errors import ConfigError


def typed_options(task, given: dict) -> dict:
    """Query and form values (text) as the types of the task's options; empty values count as not given.
    A name the task does not have is passed on for the runner to refuse with the CLI's message."""
    by_name = {option.name: option for option in task.options}
    typed = {}
    for key, value in given.items():
        name = key.replace("-", "_")
        option = by_name.get(name)
        if isinstance(value, str) and option is not None:
            if not value.strip():
                continue
            value = _parse(option, name, value.strip())
        typed[name] = value
    return typed


def _parse(option, name: str, text: str):
    if option.type is bool:
        words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if text.lower() in words:
            return words[text.lower()]
    elif option.type is str:
        return text
    else:
        try:
            value = option.type(text)
        except (TypeError, ValueError):
            pass
        else:
            if not isinstance(value, float) or math.isfinite(value):
                return value
    kinds = {bool: "true or false", int: "an integer", float: "a number"}
    raise ConfigError(f"option {name}={text!r} must be {kinds.get(option.type, option.type.__name__)}")
