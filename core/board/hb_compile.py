"""Running OpenExplorer's `hb_compile`, and reading what it leaves behind: the .hbm and its log.

hb_compile only exists inside the OpenExplorer environment; when it is not on PATH the zoo
prepares everything and prints the command instead.

The log formats read here are the ones D-Robotics publishes for S100 builds (docs/board.md):
  - the per-output table  `| TensorName | Calibrated Cosine | Quantized Cosine |` (boxed with +---+ rules),
  - the per-node table    `| Node | NodeType | ON | Threshold | Calibrated Cosine | Quantized Cosine |
    Output Data Type |` (ON is BPU or CPU),
  - the success line      `The hb_compile completes running.`,
  - the performance estimate `FPS (1 core): X` / `latency: Y ms (Z us)` / `BPU conv original OPs per run: N`.
Log-file lines may carry a timestamp and level before the table; that prefix is ignored. The older
whitespace-aligned "Cosine Similarity" table (earlier toolchains) is still read when present.
"""

from __future__ import annotations

import collections
import math
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from modelzoo.core.errors import ToolchainError

TOOL = "hb_compile"
LOG_NAME = "hb_compile.log"
SUCCESS_LINE = "The hb_compile completes running."
LOWEST_NODES = 5  # how many of the lowest-cosine nodes a result reports
# What is read of a log: its tables and summary come at the end, and a runaway log must not fill memory.
MAX_LOG_CHARS = 8 << 20  # of hb_compile.log, and of the console output kept: the last 8 MiB of each
MAX_LINE_CHARS = 4096  # a longer line is no table row or summary line zoo reads


def find_hb_compile() -> str | None:
    return shutil.which(TOOL)


def full_command(config_path) -> list:
    """`hb_compile --config CONFIG.yaml` (run from the config's folder: its paths are relative to it)."""
    return [TOOL, "--config", str(config_path)]


def fast_perf_command(model_path, march: str, input_name: str | None = None, input_shape=None) -> list:
    """The quick check: compile with random calibration and print the estimated performance.

    A model with a dynamic dimension (e.g. a batch `N`) needs `--input-shape NAME SHAPE`: pass
    `input_name` and `input_shape` (a string like "1x3x16x112x112" or a sequence of positive ints).
    """
    command = [TOOL, "--fast-perf", "--march", march, "--model", str(model_path)]
    if input_name is None and input_shape is None:
        return command
    if not input_name or input_shape is None:
        raise ValueError("--input-shape needs both input_name and input_shape")
    return [*command, "--input-shape", input_name, format_input_shape(input_shape)]


_SHAPE = re.compile(r"[1-9]\d*(x[1-9]\d*)*")


def format_input_shape(shape) -> str:
    """hb_compile's shape notation, "1x3x16x112x112", from that string or from a sequence of positive ints."""
    if isinstance(shape, str):
        text = shape.strip()
    elif isinstance(shape, Sequence) and shape and all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        text = "x".join(str(d) for d in shape)
    else:
        raise ValueError(f"input shape {shape!r} is not a sequence of ints nor a string like 1x3x224x224")
    if not _SHAPE.fullmatch(text):
        raise ValueError(f"input shape {shape!r} must be static positive dimensions, e.g. 1x3x16x112x112")
    return text


def shell_line(command: list, cwd=None) -> str:
    line = shlex.join(command)
    return f"cd {shlex.quote(str(cwd))} && {line}" if cwd else line


# --- What the log says ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputCosine:
    """One row of the per-output table: how close the calibrated and the quantized model are to the float one."""

    name: str
    calibrated_cosine: float | None
    quantized_cosine: float | None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "calibrated_cosine": self.calibrated_cosine,
            "quantized_cosine": self.quantized_cosine,
        }


@dataclass(frozen=True)
class NodeCosine:
    """One row of the per-node table; `on` is where the node runs ("BPU" or "CPU")."""

    name: str
    node_type: str
    on: str
    threshold: float | None
    calibrated_cosine: float | None
    quantized_cosine: float | None
    output_data_type: str

    @property
    def on_cpu(self) -> bool:
        return self.on.upper() == "CPU"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "type": self.node_type,
            "on": self.on,
            "threshold": self.threshold,
            "calibrated_cosine": self.calibrated_cosine,
            "quantized_cosine": self.quantized_cosine,
            "output_data_type": self.output_data_type,
        }


@dataclass(frozen=True)
class Estimate:
    """The toolchain's own performance estimate (a static prediction, not a board measurement)."""

    fps: float | None = None
    latency_ms: float | None = None
    bpu_conv_ops: int | None = None
    cores: int | None = None  # the "N core" the FPS figure is for

    def to_dict(self) -> dict:
        return {"fps": self.fps, "latency_ms": self.latency_ms, "bpu_conv_ops": self.bpu_conv_ops, "cores": self.cores}


@dataclass
class CosineRow:
    """One output's cosine similarity, float vs quantized model (`cosine_similarity`), with any other columns.

    Kept for existing callers: built from the older "Cosine Similarity" table, or from the per-output
    table (then `cosine_similarity` is the quantized cosine and metrics holds "Calibrated Cosine").
    """

    output: str
    cosine_similarity: float
    metrics: dict = field(default_factory=dict)  # e.g. "L1 Distance": 0.01

    def to_dict(self) -> dict:
        """JSON keys in one style: "L1 Distance" becomes "l1_distance"."""
        metrics = {"_".join(name.lower().split()): value for name, value in self.metrics.items()}
        return {"output": self.output, "cosine_similarity": self.cosine_similarity, **metrics}


def _cosine_sort_key(node: NodeCosine) -> float:
    return node.quantized_cosine if node.quantized_cosine is not None else node.calibrated_cosine


@dataclass
class CompileLog:
    """Everything zoo reads from one hb_compile log (or console output)."""

    outputs: list = field(default_factory=list)  # [OutputCosine]
    nodes: list = field(default_factory=list)  # [NodeCosine]
    completed: bool = False  # the success line was seen
    estimate: Estimate | None = None
    legacy: list = field(default_factory=list)  # [CosineRow] from the older table

    @property
    def nodes_on_cpu(self) -> list:
        return [node for node in self.nodes if node.on_cpu]

    def lowest_cosine_nodes(self, count: int = LOWEST_NODES) -> list:
        """The `count` nodes with the lowest quantized cosine (calibrated when that is all there is), lowest first."""
        scored = [node for node in self.nodes if _cosine_sort_key(node) is not None]
        return sorted(scored, key=_cosine_sort_key)[:count]

    @property
    def cosine(self) -> list:
        """[CosineRow] in the long-standing shape: the older table's rows, else one per output table row."""
        if self.legacy:
            return list(self.legacy)
        return [
            CosineRow(o.name, o.quantized_cosine, {"Calibrated Cosine": o.calibrated_cosine})
            for o in self.outputs
            if o.quantized_cosine is not None
        ]


_RULE = re.compile(r"\+(?:[-=]+\+)+")  # +-----+-----+, matched whole (linear: its parts never overlap)
_SUCCESS = re.compile(r"The hb_compile completes running\b")
_FPS = re.compile(r"\bFPS\s*\((\d+)\s*cores?\)\s*:\s*([\d.,]+)", re.IGNORECASE)
_LATENCY = re.compile(r"\blatency\s*:\s*([\d.]+)\s*ms(?:\s*\(\s*([\d.]+)\s*us\s*\))?", re.IGNORECASE)
_CONV_OPS = re.compile(r"\bBPU conv original OPs per run\s*:\s*([\d,]+)", re.IGNORECASE)

OUTPUT_HEADER = ("TensorName", "Calibrated Cosine", "Quantized Cosine")
NODE_HEADER = ("Node", "NodeType", "ON", "Threshold", "Calibrated Cosine", "Quantized Cosine", "Output Data Type")


def _cells(line: str) -> list | None:
    """The cells of a `| a | b |` row (a log prefix before the first `|` is ignored), else None."""
    text = line.rstrip()
    first = text.find("|")  # leftmost `|`, so a prefix never holds one
    if first < 0 or first == len(text) - 1 or not text.endswith("|"):
        return None
    return [cell.strip() for cell in text[first + 1 : -1].split("|")]


def _is_rule(line: str) -> bool:
    """Whether `line` ends in a `+---+---+` rule (after any log prefix), in time linear in its length."""
    text = line.rstrip()
    start = len(text)
    while start and text[start - 1] in "+-=":
        start -= 1
    tail = text[start:]
    # a rule cannot span "++": it starts at the last one's second "+" at the earliest
    tail = tail[tail.rfind("++") + 1 :] if "++" in tail else tail
    return bool(_RULE.fullmatch(tail[tail.find("+") :])) if "+" in tail else False


def _boxed_tables(lines: list) -> list:
    """Every boxed table as (header cells, [row cells]); a row with another column count ends a table."""
    tables = []
    header, rows = None, []
    for line in lines:
        if _is_rule(line):
            if header is not None and rows:  # the closing rule
                tables.append((header, rows))
                header, rows = None, []
            continue
        cells = _cells(line)
        if cells is None:
            if header is not None and rows:
                tables.append((header, rows))
            header, rows = None, []
            continue
        if header is None or len(cells) != len(header) or tuple(cells) in (OUTPUT_HEADER, NODE_HEADER):
            if header is not None and rows:
                tables.append((header, rows))
            header, rows = cells, []
        else:
            rows.append(cells)
    if header is not None and rows:
        tables.append((header, rows))
    return tables


def _number(text: str) -> float | None:
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None  # "--", "", "N/A": not given
    return value if math.isfinite(value) else None  # JSON has no NaN


def _column(header: list, name: str) -> int | None:
    wanted = name.lower()
    for index, cell in enumerate(header):
        if cell.lower() == wanted:
            return index
    return None


def _outputs(header: list, rows: list) -> list:
    name, cal, quant = (_column(header, c) for c in OUTPUT_HEADER)
    return [OutputCosine(row[name], _number(row[cal]), _number(row[quant])) for row in rows]


def _nodes(header: list, rows: list) -> list:
    index = {c: _column(header, c) for c in NODE_HEADER}

    def get(row, name):
        return row[index[name]] if index[name] is not None else ""

    return [
        NodeCosine(
            get(row, "Node"),
            get(row, "NodeType"),
            get(row, "ON"),
            _number(get(row, "Threshold")),
            _number(get(row, "Calibrated Cosine")),
            _number(get(row, "Quantized Cosine")),
            get(row, "Output Data Type"),
        )
        for row in rows
    ]


def _estimate(text: str) -> Estimate | None:
    """The last perf summary in `text` (hb_compile prints one after compiling, and for --fast-perf)."""
    fps = _FPS.findall(text)
    latency = _LATENCY.findall(text)
    ops = _CONV_OPS.findall(text)
    if not (fps or latency or ops):
        return None
    cores, fps_value = (int(fps[-1][0]), _number(fps[-1][1])) if fps else (None, None)
    latency_ms = None
    if latency:
        ms, us = latency[-1]
        latency_ms = float(us) / 1000 if us else float(ms)  # the microseconds carry more digits
    return Estimate(fps_value, latency_ms, int(ops[-1].replace(",", "")) if ops else None, cores)


def parse_log(text: str) -> CompileLog:
    """Read an hb_compile log or console output. The last table of each kind wins (the console and the
    log file may both be given, one after the other)."""
    lines = text.splitlines()
    if any(len(line) > MAX_LINE_CHARS for line in lines):
        lines = [line if len(line) <= MAX_LINE_CHARS else "" for line in lines]
        text = "\n".join(lines)
    log = CompileLog(completed=bool(_SUCCESS.search(text)), estimate=_estimate(text), legacy=parse_legacy_table(text))
    for header, rows in _boxed_tables(lines):
        lowered = [cell.lower() for cell in header]
        if "tensorname" in lowered and "quantized cosine" in lowered and "calibrated cosine" in lowered:
            log.outputs = _outputs(header, rows)
        elif lowered[:1] == ["node"] and "on" in lowered and "quantized cosine" in lowered:
            log.nodes = _nodes(header, rows)
    return log


_COLUMNS = re.compile(r"\s{2,}")


def parse_legacy_table(text: str) -> list:
    """The last whitespace-aligned per-output table whose second column is "Cosine Similarity" (header row,
    dashed rule, then a name and one number per metric column), as earlier toolchains print. [] when absent."""
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


def parse_cosine_table(text: str) -> list:
    """[CosineRow] per model output: the older table when present, else the per-output (TensorName) table."""
    return parse_log(text).cosine


# --- Running it ----------------------------------------------------------------------------------


@dataclass
class CompileResult:
    command: list
    cwd: Path
    returncode: int
    log_path: Path
    hbm: Path | None
    cosine: list  # [CosineRow], the long-standing view of `outputs`
    outputs: list = field(default_factory=list)  # [OutputCosine]
    nodes: list = field(default_factory=list)  # [NodeCosine], every node of the per-node table
    completed: bool = False  # hb_compile logged its success line
    estimate: Estimate | None = None  # the toolchain's performance estimate, not a board measurement

    @classmethod
    def from_log(cls, command, cwd, returncode, log_path, hbm, log: CompileLog) -> CompileResult:
        return cls(
            list(command),
            Path(cwd),
            returncode,
            log_path,
            hbm,
            log.cosine,
            log.outputs,
            log.nodes,
            log.completed,
            log.estimate,
        )

    @property
    def nodes_on_cpu(self) -> list:
        return CompileLog(nodes=self.nodes).nodes_on_cpu

    def lowest_cosine_nodes(self, count: int = LOWEST_NODES) -> list:
        return CompileLog(nodes=self.nodes).lowest_cosine_nodes(count)

    def to_dict(self) -> dict:
        return {
            "command": self.command,
            "cwd": str(self.cwd),
            "returncode": self.returncode,
            "log": str(self.log_path),
            "hbm": str(self.hbm) if self.hbm else None,
            "completed": self.completed,
            "outputs": [o.to_dict() for o in self.outputs],
            "node_count": len(self.nodes),
            "nodes_on_cpu": [n.to_dict() for n in self.nodes_on_cpu],
            "lowest_cosine_nodes": [n.to_dict() for n in self.lowest_cosine_nodes()],
            "estimate": self.estimate.to_dict() if self.estimate else None,
            "cosine": [row.to_dict() for row in self.cosine],
        }


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

    hb_compile writes its own hb_compile.log in cwd. The result is read from that log and from the
    streamed console output together (the performance summary may reach only the console). Raises
    ToolchainError if it fails, or (with require_hbm) writes no .hbm.
    """
    cwd = Path(cwd)
    executable = shutil.which(command[0])
    if executable is None:
        raise ToolchainError(f"{command[0]} is not on PATH; run inside the OpenExplorer environment")
    stream_log = cwd / "hb_compile.zoo.log"
    # A log or .hbm left by an earlier run must never be reported as this run's result; nor is it deleted.
    before = snapshot(cwd, "*.hbm") | snapshot(Path(working_dir), "*.hbm") | snapshot(cwd, LOG_NAME)
    captured = _Tail(MAX_LOG_CHARS)
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
                preexec_fn=_death_signal(),
            )
        except OSError as exc:
            raise ToolchainError(f"cannot start {executable}: {exc}") from exc
        with process:
            try:
                # at most MAX_LINE_CHARS at a time: a line without end must not fill memory
                for line in iter(lambda: process.stdout.readline(MAX_LINE_CHARS), ""):
                    captured.add(line)
                    log.write(line)
                    if echo:
                        echo(line.rstrip("\n"))
            except BaseException:
                _stop(process)  # Ctrl-C, SIGTERM or an error here: hb_compile must not go on alone
                raise
        returncode = process.wait()
    tool_log = cwd / LOG_NAME
    written = tool_log.is_file() and before.get(tool_log) != tool_log.stat().st_mtime_ns
    text = _read_tail(tool_log, MAX_LOG_CHARS) if written else ""
    log_path = tool_log if written else stream_log
    if returncode != 0:
        raise ToolchainError(f"{TOOL} failed with exit code {returncode}; see {log_path} for its log")
    hbm = find_hbm(working_dir, prefix, before=before) or find_hbm(cwd, prefix, recursive=True, before=before)
    if hbm is None and require_hbm:
        raise ToolchainError(f"{TOOL} finished but wrote no .hbm in {working_dir}; see {log_path}")
    parsed = parse_log(text + "\n" + captured.text())
    return CompileResult.from_log(command, cwd, returncode, log_path, hbm, parsed)


class _Tail:
    """The last `limit` characters of what is added, in whole lines where it can."""

    def __init__(self, limit: int):
        self.limit = limit
        self.parts = collections.deque()
        self.size = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        while self.size > self.limit and len(self.parts) > 1:
            self.size -= len(self.parts.popleft())

    def text(self) -> str:
        return "".join(self.parts)[-self.limit :]


def _read_tail(path: Path, limit: int) -> str:
    """The last `limit` characters (about) of a text file, from the first whole line among them."""
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        start = max(0, size - limit)
        handle.seek(start)
        data = handle.read()
    if start:
        data = data[data.find(b"\n") + 1 :] if b"\n" in data else b""
    return data.decode("utf-8", errors="replace")


def _stop(process) -> None:
    """End a child that zoo is leaving: terminate, then kill if it lingers."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()


def _death_signal():
    """A preexec_fn that makes the child get SIGTERM when zoo exits (Linux), or None elsewhere: zoo's SIGTERM
    handler leaves with os._exit, and an hour of compiling must not go on unobserved. prctl is looked up
    here, in the parent, so the child between fork and exec only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    death_signal = int(signal.SIGTERM)

    def set_death_signal() -> None:
        prctl(1, death_signal, 0, 0, 0)  # PR_SET_PDEATHSIG

    return set_death_signal
