"""A labelled set: read by its DatasetFormat, then its labels matched to the model's, whatever their
case and however words are separated (spaces, underscores); a label may also be a class number.

Labels that match none are all listed in one error before any input is decoded, whatever the format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from modelzoo.core.errors import InputError


@dataclass(frozen=True)
class Item:
    path: Path
    label: int  # the class index in the model's labels


@dataclass
class LabelledSet:
    source: Path
    form: str  # the format's description, e.g. "folder per class"
    items: list
    skipped: list = field(default_factory=list)  # (path, reason): listed but cannot be evaluated
    ignored: int = 0  # files of kinds the model does not take
    format: str = ""  # the format's name (`--format`)

    @property
    def classes(self) -> list:
        return sorted({item.label for item in self.items})

    def to_dict(self, labels) -> dict:
        return {
            "path": str(self.source),
            "form": self.form,
            "format": self.format,
            "files": len(self.items),
            "classes": [labels[i] for i in self.classes],
            "ignored_files": self.ignored,
        }


def normalized_label(text: str) -> str:
    """Case and word separators (spaces, underscores) do not matter: `Air_Drumming` is `air drumming`."""
    return " ".join(re.split(r"[\s_]+", str(text).strip().lower())).strip()


def label_lookup(labels) -> dict:
    lookup: dict = {}
    for index, label in enumerate(labels):
        lookup.setdefault(normalized_label(label), index)
    return lookup


def open_labelled_set(path, labels, suffixes, formats: dict, format_name: str | None = None) -> LabelledSet:
    """Read `path` in `--format format_name` (else the format that recognizes it) and match its labels;
    `suffixes` are the input files the model's task takes."""
    from modelzoo.core.accuracy.formats import choose_format
    from modelzoo.core.contract.registry import blamed_on

    if not labels:
        raise InputError("the model has no labels: zoo eval measures classifiers")
    path = Path(path)
    chosen = choose_format(formats, path, format_name)
    suffixes = frozenset(s.lower() for s in suffixes)
    with blamed_on(chosen.plugin or "?", f"reading --dataset as {chosen.name}"):
        listing = chosen.read(path, suffixes)
    return labelled_set(listing, labels, path, chosen, suffixes)


def labelled_set(listing, labels, source: Path, chosen, suffixes=()) -> LabelledSet:
    """The DatasetListing's entries with class indices; entries that cannot be evaluated are skipped with the reason."""
    lookup = label_lookup(labels)
    unknown: dict = {}  # normalized label -> [as written, where, times]

    def index_of(label, where: str):
        if isinstance(label, int) and not isinstance(label, bool):
            if 0 <= label < len(labels):
                return label
            text = f"class {label}"
        else:
            text = str(label).strip()
            index = lookup.get(normalized_label(text))
            if index is not None:
                return index
            if text.isdigit() and int(text) < len(labels):
                return int(text)
        seen = unknown.setdefault(normalized_label(text), [text, where, 0])
        seen[2] += 1
        return None

    for label, where in listing.declared_labels:
        index_of(label, where)
    labelled = LabelledSet(source, chosen.description, [], list(listing.skipped), listing.ignored, chosen.name)
    for entry in listing.entries:
        index = index_of(entry.label, entry.where)
        if index is None:
            continue
        if entry.missing:
            labelled.skipped.append((entry.path, entry.missing))
        elif not Path(entry.path).is_file():
            reason = "is a folder, not an input file" if Path(entry.path).is_dir() else "does not exist"
            labelled.skipped.append((entry.path, reason))
        else:
            labelled.items.append(Item(Path(entry.path), index))
    if unknown:
        raise InputError(_unknown_message(list(unknown.values()), labels, listing.labels_from))
    if not labelled.items:
        if not labelled.skipped and not listing.entries and source.is_file():
            raise InputError(f"--dataset {source} lists no inputs: it is empty, or holds only its header")
        if not labelled.skipped:
            kinds = f" ({', '.join(sorted(suffixes))})" if suffixes else ""
            raise InputError(f"--dataset {source} holds no input files this model takes{kinds}")
        reasons = "; ".join(f"{Path(p).name}: {r}" for p, r in labelled.skipped[:3])
        raise InputError(f"--dataset {source} names no input that can be evaluated ({reasons})")
    return labelled


def _unknown_message(unknown: list, labels, what: str) -> str:
    import difflib

    normal = {normalized_label(label): label for label in labels}
    listed = []
    for text, where, times in unknown:
        shown = f"{text!r} ({where}{f', and {times - 1} more' if times > 1 else ''})" if where else repr(text)
        close = difflib.get_close_matches(normalized_label(text), list(normal), n=1, cutoff=0.75)
        listed.append(f"{shown} (did you mean {normal[close[0]]!r}?)" if close else shown)
    return (
        f"{len(unknown)} {what} match no label of the model: {'; '.join(listed)}. "
        "Names are matched ignoring case, spaces and underscores; rename them or fix the labels"
    )
