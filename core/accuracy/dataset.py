"""A labelled set in one of the two generic forms: a folder per class (folder names matched to the
model's labels, whatever their case and however words are separated, by spaces or underscores), or a
CSV of `path,label` (paths relative to the CSV; a label is a label name or a class number).

Names that match no label are all listed in one error before any input is decoded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from modelzoo.core.errors import InputError

FOLDERS = "folder per class"
CSV = "csv"


@dataclass(frozen=True)
class Item:
    path: Path
    label: int  # the class index in the model's labels


@dataclass
class LabelledSet:
    source: Path
    form: str  # FOLDERS or CSV
    items: list
    skipped: list = field(default_factory=list)  # (path, reason): listed but cannot be evaluated
    ignored: int = 0  # files of kinds the model does not take, in a folder set

    @property
    def classes(self) -> list:
        return sorted({item.label for item in self.items})

    def to_dict(self, labels) -> dict:
        return {
            "path": str(self.source),
            "form": self.form,
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


def open_labelled_set(path, labels, suffixes) -> LabelledSet:
    """Read a folder-per-class set or a `path,label` CSV; `suffixes` are the input files the model's task takes."""
    path = Path(path)
    if not labels:
        raise InputError("the model has no labels: zoo eval measures classifiers")
    if path.is_dir():
        return _from_folders(path, labels, suffixes)
    if path.is_file() and path.suffix.lower() == ".csv":
        return _from_csv(path, labels)
    if not path.exists():
        raise InputError(f"--dataset {path} does not exist; pass a folder with one sub-folder per class or a CSV")
    raise InputError(f"--dataset {path} is neither a folder (one sub-folder per class) nor a .csv of path,label")


def _from_folders(root: Path, labels, suffixes) -> LabelledSet:
    lookup = label_lookup(labels)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise InputError(
            f"--dataset {root} has no class folders; put each class's inputs in a folder named after its label"
        )
    unknown = [folder.name for folder in folders if normalized_label(folder.name) not in lookup]
    if unknown:
        raise InputError(_unknown_message(unknown, labels, f"class folder(s) in {root}"))
    suffixes = {s.lower() for s in suffixes}
    labelled = LabelledSet(root, FOLDERS, [])
    for folder in folders:
        label = lookup[normalized_label(folder.name)]
        for file in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
            if file.suffix.lower() in suffixes:
                labelled.items.append(Item(file, label))
            else:
                labelled.ignored += 1
    for file in sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in suffixes):
        labelled.skipped.append((file, "not in a class folder, so its label is unknown"))
    if not labelled.items:
        raise InputError(f"--dataset {root} holds no input files this model takes ({', '.join(sorted(suffixes))})")
    return labelled


def _from_csv(path: Path, labels) -> LabelledSet:
    import csv

    lookup = label_lookup(labels)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = [(number, row) for number, row in enumerate(csv.reader(handle), 1) if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"--dataset {path} cannot be read as a CSV of path,label ({exc})") from None
    if rows and [c.strip().lower() for c in rows[0][1][:2]] in (["path", "label"], ["file", "label"]):
        rows = rows[1:]
    labelled = LabelledSet(path, CSV, [])
    unknown, malformed = [], []
    for number, row in rows:
        if len(row) < 2 or not row[0].strip():
            malformed.append(number)
            continue
        file, text = row[0].strip(), row[1].strip()
        index = lookup.get(normalized_label(text))
        if index is None and text.isdigit() and int(text) < len(labels):
            index = int(text)
        if index is None:
            unknown.append(f"{text!r} (line {number})")
            continue
        target = Path(file) if Path(file).is_absolute() else path.parent / file
        if target.is_file():
            labelled.items.append(Item(target, index))
        else:
            labelled.skipped.append((target, "does not exist"))
    if malformed:
        lines = ", ".join(map(str, malformed[:10]))
        raise InputError(f"--dataset {path}: line(s) {lines} are not `path,label`")
    if unknown:
        raise InputError(_unknown_message(unknown, labels, f"label(s) in {path}"))
    if not labelled.items:
        raise InputError(f"--dataset {path} names no file that exists")
    return labelled


def _unknown_message(unknown: list, labels, what: str) -> str:
    import difflib

    normal = {normalized_label(label): label for label in labels}
    listed = []
    for name in unknown:
        bare = name.split(" (line ")[0].strip("'\"")
        close = difflib.get_close_matches(normalized_label(bare), list(normal), n=1, cutoff=0.75)
        listed.append(f"{name} (did you mean {normal[close[0]]!r}?)" if close else name)
    return (
        f"{len(unknown)} {what} match no label of the model: {'; '.join(listed)}. "
        "Names are matched ignoring case, spaces and underscores; rename them or fix the labels"
    )
