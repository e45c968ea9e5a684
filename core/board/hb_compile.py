"""Running OpenExplorer's `hb_compile`, and reading what it leaves behind (the .hbm, the cosine table).

hb_compile only exists inside the OpenExplorer environment; when it is not on PATH the zoo
prepares everything and prints the command instead.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from modelzoo.core.errors import ToolchainError

TOOL = "hb_compile"
LOG_NAME = "hb_compile.log"


def find_hb_compile() -> str | None:
    return shutil.which(TOOL)


def full_command(config_path) -> list:
    """`hb_compile --config CONFIG.yaml` (run from the config's folder: its paths are relative to it)."""
    return [TOOL, "--config", str(config_path)]


def fast_perf_command(model_path, march: str) -> list:
    """The quick check: compile with random calibration and print the estimated performance."""
    return [TOOL, "--fast-perf", "--march", march, "--model", str(model_path)]


def shell_line(command: list, cwd=None) -> str:
    line = shlex.join(command)
    return f"cd {shlex.quote(str(cwd))} && {line}" if cwd else line


@dataclass
class CosineRow:
    """One row of hb_compile's per-output similarity table (float model vs quantized model)."""

    output: str
    cosine_similarity: float
    metrics: dict = field(default_factory=dict)  # e.g. "L1 Distance": 0.01

    def to_dict(self) -> dict:
        """JSON keys in one style: "L1 Distance" becomes "l1_distance"."""
        metrics = {"_".join(name.lower().split()): value for name, value in self.metrics.items()}
        return {"output": self.output, "cosine_similarity": self.cosine_similarity, **metrics}


@dataclass
class CompileResult:
    command: list
    cwd: Path
    returncode: int
    log_path: Path
    hbm: Path | None
    cosine: list

    def to_dict(self) -> dict:
        return {
            "command": self.command,
            "cwd": str(self.cwd),
            "returncode": self.returncode,
            "log": str(self.log_path),
            "hbm": str(self.hbm) if self.hbm else None,
            "cosine": [row.to_dict() for row in self.cosine],
        }


_COLUMNS = re.compile(r"\s{2,}")


def parse_cosine_table(text: str) -> list:
    """The last per-output table whose second column is "Cosine Similarity" (its header row is followed
    by a dashed rule; rows are a name then one number per metric column). Returns [] when absent."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines[:-1]):
        columns = _COLUMNS.split(line.strip())
        if (
            len(columns) < 2
            or columns[1] != "Cosine Similarity"
            or not set(lines[i + 1].strip()) <= {"-"}
            or not lines[i + 1].strip()
        ):
            continue
        rows = []
        for row_line in lines[i + 2 :]:
            cells = row_line.split()
            if len(cells) != len(columns):
                break
            try:
                values = [float(c) for c in cells[1:]]
            except ValueError:
                break
            rows.append(CosineRow(cells[0], values[0], dict(zip(columns[2:], values[1:]))))
        if rows:
            found = rows
    return found


def find_hbm(directory, prefix: str | None = None, recursive: bool = False, before: dict | None = None) -> Path | None:
    """`<prefix>.hbm` in `directory` if present, else the newest .hbm there (or below it).

    `before` ({path: mtime_ns} from `snapshot`) ignores files an earlier run left unchanged.
    """
    directory = Path(directory)
    before = before or {}

    def fresh(path: Path) -> bool:
        return path.is_file() and before.get(path) != path.stat().st_mtime_ns

    if prefix and fresh(directory / f"{prefix}.hbm"):
        return directory / f"{prefix}.hbm"
    found = directory.rglob("*.hbm") if recursive else directory.glob("*.hbm")
    candidates = sorted((p for p in found if fresh(p)), key=lambda p: p.stat().st_mtime_ns)
    return candidates[-1] if candidates else None


def snapshot(directory, pattern: str) -> dict:
    """{path: mtime_ns} of what is already there, so a run's own outputs can be told apart."""
    return {p: p.stat().st_mtime_ns for p in Path(directory).rglob(pattern) if p.is_file()}


def run_hb_compile(
    command: list, cwd, working_dir, *, prefix: str | None = None, echo=None, require_hbm: bool = True
) -> CompileResult:
    """Run `command` in `cwd`, stream its output line by line to `echo` and to `cwd/hb_compile.zoo.log`.

    hb_compile writes its own hb_compile.log in cwd; the table is read from it when present,
    else from the streamed output. Raises ToolchainError if it fails, or (with require_hbm) writes no .hbm.
    """
    cwd = Path(cwd)
    executable = shutil.which(command[0])
    if executable is None:
        raise ToolchainError(f"{command[0]} is not on PATH; run inside the OpenExplorer environment")
    stream_log = cwd / "hb_compile.zoo.log"
    # A log or .hbm left by an earlier run must never be reported as this run's result; nor is it deleted.
    before = snapshot(cwd, "*.hbm") | snapshot(Path(working_dir), "*.hbm") | snapshot(cwd, LOG_NAME)
    captured = []
    with open(stream_log, "w", encoding="utf-8") as log:
        try:
            process = subprocess.Popen(
                [executable, *command[1:]],
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                bufsize=1,
            )
        except OSError as exc:
            raise ToolchainError(f"cannot start {executable}: {exc}") from exc
        with process:
            for line in process.stdout:
                captured.append(line)
                log.write(line)
                if echo:
                    echo(line.rstrip("\n"))
        returncode = process.wait()
    tool_log = cwd / LOG_NAME
    written = tool_log.is_file() and before.get(tool_log) != tool_log.stat().st_mtime_ns
    text = tool_log.read_text(encoding="utf-8", errors="replace") if written else "".join(captured)
    log_path = tool_log if written else stream_log
    if returncode != 0:
        raise ToolchainError(f"{TOOL} failed with exit code {returncode}; see {log_path} for its log")
    hbm = find_hbm(working_dir, prefix, before=before) or find_hbm(cwd, prefix, recursive=True, before=before)
    if hbm is None and require_hbm:
        raise ToolchainError(f"{TOOL} finished but wrote no .hbm in {working_dir}; see {log_path}")
    return CompileResult(list(command), cwd, returncode, log_path, hbm, parse_cosine_table(text))
