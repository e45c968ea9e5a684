"""Where the records of a many-input run go: JSON Lines or CSV, one whole line per write, so an
interrupted run never leaves half a record, and `--resume` can read what is done."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from modelzoo.core.errors import OutputError


class RecordFile:
    """An --output file: `.jsonl` (the records as `zoo run --json` prints them) or `.csv` (one row per input).

    A new file is written in place, a whole line per record, so an interrupted run can be resumed from it.
    An existing file is appended to with --resume; without, the run's records go to a temp file that
    replaces it only when the run ends (`finish`): an interrupted or failed rerun leaves it as it was.
    """

    def __init__(self, path, *, resume: bool):
        from modelzoo.core.pipeline import drop_torn_line

        self.path = Path(path)
        self.format = "csv" if self.path.suffix.lower() == ".csv" else "jsonl"
        if self.path.suffix.lower() not in (".csv", ".jsonl", ".json", ".ndjson"):
            raise OutputError(f"--output {self.path}: use a .jsonl or .csv file")
        if self.format == "csv" and resume:
            raise OutputError("--resume reads the records back: use a .jsonl --output")
        if not self.path.parent.is_dir():  # before any work, not at the first record
            raise OutputError(f"cannot write --output {self.path}: the folder {self.path.parent} does not exist")
        self.resume = resume
        self.written = 0
        self.handle = None  # opened at the first record: a run refused before any work leaves the file as it was
        self.csv_header_written = resume
        self._drop_torn_line = drop_torn_line
        self.pending = None  # the temp file that replaces an existing output when the run ends

    @property
    def replacing(self) -> bool:
        """Whether this run's records wait in a temp file to replace an existing output."""
        return self.pending is not None

    def _open(self) -> None:
        from modelzoo.core.atomic import PendingFile

        if self.resume:
            self._drop_torn_line(self.path)
        target = self.path
        if not self.resume and self.path.is_file() and self.path.stat().st_size > 0:
            self.pending = PendingFile(self.path)
            target = self.pending.temp
        try:
            self.handle = open(target, "a" if self.resume else "w", encoding="utf-8", newline="")
        except OSError as exc:
            raise OutputError(f"cannot write --output {self.path} ({exc.strerror}); check the folder") from None

    def write(self, record: dict) -> None:
        if self.handle is None:
            self._open()
        if self.format == "jsonl":
            line = json.dumps(record, default=str) + "\n"
        else:
            line = self._csv_line(record)
        self.handle.write(line)  # one write per record: a line is whole or absent
        self.handle.flush()
        self.written += 1

    def _csv_line(self, record: dict) -> str:
        fields = ["input", "model", "backend", "error", "result", "total_ms"]
        task_part = {
            k: v
            for k, v in record.items()
            if k not in ("model", "input", "backend", "timing_ms", "model_file", "warnings", "source", "error")
        }
        row = {
            "input": record.get("input"),
            "model": record.get("model"),
            "backend": record.get("backend", ""),
            "error": record.get("error", ""),
            "result": json.dumps(task_part, default=str) if "error" not in record else "",
            "total_ms": round(sum(record.get("timing_ms", {}).values()), 3) if "timing_ms" in record else "",
        }
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields)
        if not self.csv_header_written:
            writer.writeheader()
            self.csv_header_written = True
        writer.writerow(row)
        return buffer.getvalue()

    def finish(self) -> None:
        """The run ended (whatever its inputs gave): close, and let this run's records replace an existing output."""
        self.close(keep=True)

    def close(self, keep: bool = False) -> None:
        """Close; records waiting to replace an existing output are dropped unless `keep`."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        if self.pending is not None and not self.pending.done:
            if keep:
                self.pending.commit()
            else:
                self.pending.discard()


def resume_filter(path, *, retry_failed: bool, model: str | None = None):
    """skip(path, stamp) for inputs an earlier run recorded with the same size and mtime. Records of
    another model are refused: they are not this run's results, so skipping their inputs would be wrong."""
    from modelzoo.core.pipeline import input_key, read_records

    records = read_records(Path(path))
    others = sorted({recorded for recorded, _, _ in records.values() if model and recorded != model})
    if others:
        raise OutputError(
            f"--resume: {path} holds records of {', '.join(others)}, not {model}; pass another --output for {model}"
        )

    def skip(input_path, stamp) -> bool:
        found = records.get(input_key(input_path))
        if found is None or stamp is None or found[1] != stamp:
            return False
        return not (retry_failed and found[2])

    return skip
