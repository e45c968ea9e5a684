"""Option values sent as text (query strings, form fields) read as the types of the task's options."""

from __future__ import annotations

import math

from modelzoo.core.errors import ConfigError

# Integer options are counts (clips, top-k, detections) and a count can multiply a request's work and memory.
# Options bound themselves (`Option.maximum`: clips at most 32); this caps, for clients the server cannot
# trust, the integer options a plugin left unbounded.
MAX_COUNT = 1000


def typed_options(task, given: dict) -> dict:
    """Query and form values (text) as the types of the task's options, checked as the task checks them
    (type, bounds) but in the request's words; empty values count as not given. A name the task does not
    have is passed on for the runner to refuse with the CLI's message."""
    by_name = {option.name: option for option in task.options}
    typed = {}
    for key, value in given.items():
        name = key.replace("-", "_")
        option = by_name.get(name)
        if option is not None and value is not None:
            if isinstance(value, str):
                if not value.strip():
                    continue
                value = _parse(option, name, value.strip())
            value = option.check(value, "this request")
            if option.type is int and value > MAX_COUNT:
                raise ConfigError(f"this request: '{name}' must be at most {MAX_COUNT} on this server")
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
