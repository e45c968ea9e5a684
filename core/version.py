"""The installed versions that manifests, ONNX files and `zoo plugins` record."""

from __future__ import annotations


def dist_version(name: str) -> str | None:
    """The installed version of distribution `name`, or None when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def zoo_version() -> str:
    return dist_version("modelzoo") or "0+unknown"
