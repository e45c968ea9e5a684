"""The two forms of labelled set the core knows: a folder per class (folder names are the labels),
and a CSV of `path,label` (paths relative to the CSV; a label is a label name or a class number).
Dataset-specific forms come from plugins."""

from __future__ import annotations

from pathlib import Path

from modelzoo.core.accuracy.formats import DatasetEntry, DatasetFormat, DatasetListing, csv_rows
from modelzoo.core.errors import InputError


class ClassFolders(DatasetFormat):
    name = "folders"
    description = "folder per class"
    fallback = True

    def recognizes(self, path: Path) -> bool:
        return path.is_dir()

    def read(self, path: Path, suffixes: frozenset) -> DatasetListing:
        root = Path(path)
        if not root.is_dir():
            raise InputError(f"--dataset {root} is not a folder (one sub-folder per class)")
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            raise InputError(
                f"--dataset {root} has no class folders; put each class's inputs in a folder named after its label"
            )
        listing = DatasetListing(
            declared_labels=[(folder.name, "") for folder in folders], labels_from=f"class folder(s) in {root}"
        )
        for folder in folders:
            for file in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
                if file.suffix.lower() in suffixes:
                    listing.entries.append(DatasetEntry(file, folder.name))
                else:
                    listing.ignored += 1
        for file in sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in suffixes):
            listing.skipped.append((file, "not in a class folder, so its label is unknown"))
        return listing


class PathLabelCsv(DatasetFormat):
    name = "csv"
    description = "CSV of path,label"
    fallback = True

    def recognizes(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() == ".csv"

    def read(self, path: Path, suffixes: frozenset) -> DatasetListing:
        path = Path(path)
        listing = DatasetListing(labels_from=f"label(s) in {path}")
        malformed = []
        for index, (number, row) in enumerate(csv_rows(path)):
            if index == 0 and [c.strip().lower() for c in row[:2]] in (["path", "label"], ["file", "label"]):
                continue
            if len(row) < 2 or not row[0].strip():
                malformed.append(number)
                continue
            file = Path(row[0].strip())
            listing.entries.append(
                DatasetEntry(file if file.is_absolute() else path.parent / file, row[1].strip(), f"line {number}")
            )
        if malformed:
            raise InputError(f"--dataset {path}: line(s) {', '.join(map(str, malformed[:10]))} are not `path,label`")
        return listing
