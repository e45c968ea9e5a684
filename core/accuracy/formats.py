"""The kinds of labelled set `zoo eval --dataset` reads, registered by plugins like models.

A DatasetFormat only lists what a set holds: each input's path and its label as the set writes it,
and what it lists but cannot be evaluated. Matching labels to the model's, and refusing unknown
ones before any work, is done once for every format (`core/accuracy/dataset.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from modelzoo.core.errors import InputError

FORMAT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
"""What `zoo eval --format NAME` accepts: lowercase words joined by hyphens."""

MAX_CSV_BYTES = 64 * 1024 * 1024
MAX_CSV_ROWS = 1_000_000
MAX_CSV_LINE = 8192
"""Bounds on an annotation CSV, well above the largest public action-recognition lists (about half a million rows)."""


@dataclass(frozen=True)
class DatasetEntry:
    """One input a set lists: its file, its label (a label name or a class number) and where it was listed."""

    path: Path
    label: str | int
    where: str = ""  # for messages, e.g. "line 12"
    missing: str | None = None  # why it cannot be evaluated though listed (a clip never downloaded)


@dataclass
class DatasetListing:
    """What a DatasetFormat read: entries, and what it could not label or use (with the reason)."""

    entries: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # (path, reason)
    declared_labels: list = field(default_factory=list)  # (label, where): class names the set declares
    ignored: int = 0  # files of kinds the model does not take
    labels_from: str = "label(s)"  # how an unknown-label error names them, e.g. "class folder(s) in DIR"


class DatasetFormat:
    """A kind of labelled set. Subclass it, set `name` and `description`, implement `read` (and
    `recognizes`, so `--dataset PATH` finds it without `--format`), and register an instance from
    `zoo_register_dataset_formats`."""

    name: str = ""
    description: str = ""
    fallback: bool = False
    """A generic form (folder per class, path,label CSV): chosen by recognition only when no other format claims the path."""
    plugin: str | None = None  # set when registered

    def recognizes(self, path: Path) -> bool:
        """Whether `path` is a set of this format; keep it cheap (a name, a header line)."""
        return False

    def read(self, path: Path, suffixes: frozenset) -> DatasetListing:
        """List the set at `path`; `suffixes` are the input files the model's task takes (lowercase,
        with the dot). Raise InputError for a set that cannot be read."""
        raise NotImplementedError


def format_problems(candidate) -> list:
    """Why `candidate` cannot be registered as a dataset format (empty when it can)."""
    if not isinstance(candidate, DatasetFormat):
        return [f"registered {type(candidate).__name__}, not a DatasetFormat (from modelzoo.plugin)"]
    problems = []
    if not isinstance(candidate.name, str) or not FORMAT_NAME.match(candidate.name):
        problems.append(f"name {candidate.name!r} is not lowercase words joined by hyphens (it is `--format NAME`)")
    if not isinstance(candidate.description, str) or not candidate.description.strip():
        problems.append("has no description")
    if type(candidate).read is DatasetFormat.read:
        problems.append("does not implement read(path, suffixes)")
    return problems


def csv_rows(path: Path, *, max_bytes=MAX_CSV_BYTES, max_rows=MAX_CSV_ROWS, max_line=MAX_CSV_LINE):
    """(line number, cells) of each non-blank row of an untrusted CSV, its size, row count and line
    length bounded before they are read; an unreadable file is an InputError naming it."""
    import csv

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"--dataset {path} cannot be read ({exc.strerror or exc})") from None
    if size > max_bytes:
        raise InputError(f"--dataset {path} is {size:,} bytes, more than an annotation CSV may be ({max_bytes:,})")

    def lines(handle):
        number = 0
        while line := handle.readline(max_line + 2):
            number += 1
            if len(line.rstrip("\r\n")) > max_line:
                raise InputError(f"--dataset {path}: line {number} is longer than {max_line} characters")
            yield line

    rows = 0
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(lines(handle))
            for cells in reader:
                if not any(cell.strip() for cell in cells):
                    continue
                rows += 1
                if rows > max_rows:
                    raise InputError(f"--dataset {path} has more than {max_rows} rows; split it")
                yield reader.line_num, cells
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"--dataset {path} cannot be read as a CSV ({exc})") from None


def choose_format(formats: dict, path: Path, name: str | None = None) -> DatasetFormat:
    """`--format NAME`, else the one specific format that recognizes `path`, else the first fallback that does."""
    from modelzoo.core.contract.registry import blamed_on

    if name is not None:
        if name not in formats:
            raise InputError(
                f"unknown dataset format {name!r}; installed: {', '.join(sorted(formats)) or 'none'} "
                "(plugins add formats: `zoo plugins --json` lists them)"
            )
        return formats[name]
    path = Path(path)
    if not path.exists():
        raise InputError(
            f"--dataset {path} does not exist; pass a folder with one sub-folder per class, a CSV of path,label, "
            "or a set in a format a plugin registers (--format)"
        )
    claimed = {False: [], True: []}
    for candidate in formats.values():
        with blamed_on(candidate.plugin or "?", f"the {candidate.name} dataset format's recognizes()"):
            if candidate.recognizes(path):
                claimed[bool(candidate.fallback)].append(candidate)
    if len(claimed[False]) > 1:
        names = ", ".join(f.name for f in claimed[False])
        raise InputError(f"--dataset {path} could be read as any of {names}; choose one with --format")
    found = claimed[False] or claimed[True]
    if not found:
        raise InputError(
            f"--dataset {path} is in no format zoo knows: pass a folder with one sub-folder per class, a CSV of "
            f"path,label, or name the format with --format ({', '.join(sorted(formats))})"
        )
    return found[0]
