"""The Kinetics annotation CSV as a `zoo eval` dataset format: `label,youtube_id,time_start,time_end,split`
(one row per clip), with the clips named the way the Kinetics download tools name them:

    {youtube_id}_{time_start:06d}_{time_end:06d}.mp4

ActivityNet's downloader (github.com/activitynet/ActivityNet, Crawler/Kinetics/download.py,
`construct_video_filename`, trim format `%06d`) writes them into a folder per label; the CVDF copies
(github.com/cvdfoundation/kinetics-dataset) unpack them into a folder per split beside
`annotations/{split}.csv`, and its `arrange_by_classes.py` links them into `{split}/{label}/`. So a
clip is found by its name anywhere under the dataset folder: the CSV's own folder, or the parent
of an `annotations` folder. A row whose clip is not there is skipped and named, not fatal.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from modelzoo.plugin import DatasetEntry, DatasetFormat, DatasetListing, InputError, csv_rows

COLUMNS = ("label", "youtube_id", "time_start", "time_end")
MAX_SCANNED = 1_000_000
"""Most directory entries looked at while finding clips (Kinetics-700's train split is ~650,000 clips):
a CSV left in a home folder must not walk the whole tree."""
CLIP_NAME = re.compile(r"^(?P<id>[\w-]{1,64})_(?P<start>\d{6,})_(?P<end>\d{6,})$")
"""A clip's file name without its suffix, as the download tools write it."""


def clip_stem(youtube_id: str, time_start: float, time_end: float) -> str:
    """The name a downloader gives the clip: the times as whole seconds (`%06d` truncates), six digits at least."""
    return f"{youtube_id}_{int(time_start):06d}_{int(time_end):06d}"


def header(path: Path) -> list | None:
    """The CSV's column names if it is a Kinetics annotation file, else None."""
    try:
        for _number, cells in csv_rows(path, max_rows=1):
            names = [cell.strip().lower() for cell in cells]
            return names if set(COLUMNS) <= set(names) else None
    except InputError:
        return None
    return None


def annotation_files(folder: Path) -> list:
    """Kinetics annotation CSVs at the top of `folder` or in its `annotations` folder."""
    found = []
    for place in (folder, folder / "annotations"):
        if place.is_dir():
            found.extend(p for p in sorted(place.glob("*.csv")) if p.is_file() and header(p))
    return found


class KineticsAnnotations(DatasetFormat):
    name = "kinetics"
    description = "Kinetics annotation CSV"

    def recognizes(self, path: Path) -> bool:
        if path.is_file():
            return path.suffix.lower() == ".csv" and header(path) is not None
        return path.is_dir() and bool(annotation_files(path))

    def read(self, path: Path, suffixes: frozenset) -> DatasetListing:
        path = Path(path)
        if path.is_dir():
            found = annotation_files(path)
            if len(found) != 1:
                names = ", ".join(str(p.relative_to(path)) for p in found) or "none"
                raise InputError(
                    f"--dataset {path} holds {len(found)} Kinetics annotation CSVs ({names}); pass the one to "
                    "evaluate as --dataset (or --format folders to read the folder as a folder per class)"
                )
            csv_path, root = found[0], path
        else:
            csv_path = path
            root = path.parent.parent if path.parent.name == "annotations" else path.parent
        rows = csv_rows(csv_path)
        _number, first = next(rows, (0, []))
        columns = {name.strip().lower(): index for index, name in enumerate(first)}
        if not set(COLUMNS) <= set(columns):
            raise InputError(
                f"--dataset {csv_path}: its first line is not the Kinetics header {','.join(COLUMNS)},split"
            )
        clips = clip_index(root, suffixes)
        listing = DatasetListing(labels_from=f"label(s) in {csv_path}")
        malformed = []
        for number, row in rows:
            cells = {name: row[index].strip() if index < len(row) else "" for name, index in columns.items()}
            try:
                start, end = float(cells["time_start"]), float(cells["time_end"])
            except ValueError:
                start = end = math.nan
            if not re.fullmatch(r"[\w-]{1,64}", cells["youtube_id"]) or not (0 <= start <= end < 1e9):
                malformed.append(number)
                continue
            stem = clip_stem(cells["youtube_id"], start, end)
            where = f"line {number}"
            if not cells["label"]:
                listing.skipped.append((root / f"{stem}.mp4", f"{where} of {csv_path.name} gives no label"))
                continue
            found = pick_clip(clips.get(stem, ()), root, cells.get("split", ""), cells["label"])
            if found is None:
                missing = f"not downloaded: no video named {stem} under {root}"
                listing.entries.append(DatasetEntry(root / f"{stem}.mp4", cells["label"], where, missing))
            else:
                listing.entries.append(DatasetEntry(found, cells["label"], where))
        if malformed:
            lines = ", ".join(map(str, malformed[:10]))
            raise InputError(
                f"--dataset {csv_path}: line(s) {lines} have no youtube_id or no time_start <= time_end in seconds"
            )
        return listing


def clip_index(root: Path, suffixes: frozenset, most: int = MAX_SCANNED) -> dict:
    """{clip name: [paths]} of the files under `root` named as a downloader names clips."""
    index: dict = {}
    scanned = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        scanned += len(dirs) + len(files)
        if scanned > most:
            raise InputError(
                f"--dataset: more than {most:,} files and folders under {root} while looking for the clips; "
                "keep the annotation CSV beside the clips' folder (or in its `annotations/` folder)"
            )
        for file in sorted(files):
            stem, suffix = os.path.splitext(file)
            if suffix.lower() in suffixes and CLIP_NAME.match(stem):
                index.setdefault(stem, []).append(Path(folder) / file)
    return index


def pick_clip(candidates, root: Path, split: str, label: str) -> Path | None:
    """The clip; when the same name is in several folders under `root`, the one under a folder named
    after the row's split or label (a training copy must not stand in for the validation clip)."""
    if len(candidates) <= 1:
        return next(iter(candidates), None)
    wanted = {name.lower().replace("_", " ") for name in (split, label) if name}
    for candidate in candidates:
        if wanted & {part.lower().replace("_", " ") for part in candidate.relative_to(root).parent.parts}:
            return candidate
    return candidates[0]
