"""What GET /v1/models and /v1/models/{name} answer: exactly `zoo list --json`'s rows and `zoo info --json`,
because both are built by the same functions (modelzoo/listing.py)."""

from __future__ import annotations

from modelzoo import listing


def backends_here(registry, cache, model) -> list:
    """Names of backends that could run `model` on this machine now (cheap: no backend import)."""
    return listing.backends_here(registry, cache, model)


def model_row(registry, cache, model) -> dict:
    """One row of `zoo list --json`."""
    return listing.list_row(registry, cache, model)


def model_info(registry, cache, config, model) -> dict:
    """`zoo info MODEL --json`."""
    return listing.info_data(registry, cache, config, model)
