"""Results measured on this machine (`zoo eval --save`, `zoo perf --save`), kept in the cache as one
JSON file per model:

    <cache root>/measured/<model>.json     {"model": ..., "rows": [row, ...]}, oldest first

Each row is one number with what makes it comparable: the metric, the dataset, the protocol, the
precision and backend, the tool versions, the host and the date. `zoo info` shows them beside the
published figures, labelled as measured here.
"""

from __future__ import annotations

import json
from pathlib import Path

MEASURED = "measured"


def measured_path(cache, model_name: str) -> Path:
    cache.model_dir(model_name)  # refuses a name that cannot be a file name
    return Path(cache.root) / MEASURED / f"{model_name}.json"


def measured_rows(cache, model_name: str) -> list:
    """The rows recorded for `model_name`, oldest first; an unreadable file counts as none."""
    path = measured_path(cache, model_name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    rows = data.get("rows") if isinstance(data, dict) else None
    return [dict(row, measured=True) for row in rows or [] if isinstance(row, dict)]


def record_measurements(cache, model_name: str, rows: list, log=None) -> Path:
    """Append `rows` to the model's file (under a lock, written whole), returning its path. A file that
    cannot be read is kept beside it as `.damaged`, not overwritten, and `log` says so."""
    import os

    from filelock import FileLock

    from modelzoo.core.atomic import atomic_write

    path = measured_path(cache, model_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        problem = _unreadable(path)
        if problem:
            aside = path.with_name(path.name + ".damaged")
            os.replace(path, aside)
            if log:
                log(f"warning: {path} could not be read ({problem}); kept as {aside}, recording in a new file")
        existing = [{k: v for k, v in row.items() if k != "measured"} for row in measured_rows(cache, model_name)]
        with atomic_write(path, "w") as handle:
            json.dump({"model": model_name, "rows": existing + list(rows)}, handle, indent=2)
            handle.write("\n")
    return path


def _unreadable(path: Path) -> str:
    """Why an existing measured file is not one zoo wrote ("" when it is, or when there is none)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ""
    except (OSError, ValueError) as exc:
        return str(exc)
    if not isinstance(data, dict) or not isinstance(data.get("rows", []), list):
        return 'not a {"model", "rows"} object'
    return ""


def evaluation_rows(evaluation) -> list:
    """One row per metric and variant of a `zoo eval` Evaluation."""
    data = evaluation.to_dict()
    dataset = data["dataset"]
    env = data["environment"]
    rows = []
    for result in data["results"]:
        for metric in ("acc@1", "acc@5", "mean_class_acc"):
            rows.append(
                {
                    "kind": "accuracy",
                    "metric": metric,
                    "value": result[metric],
                    "dataset": f"{Path(dataset['path']).absolute()} ({dataset['form']}, "
                    f"{len(dataset['classes'])} classes)",
                    "protocol": f"{data['protocol']['summary']}; {data['protocol']['preprocessing']}",
                    "samples": result["samples"],
                    "skipped": len(data["protocol"]["skipped"]),
                    "precision": result["precision"],
                    "backend": result["backend_detail"],
                    "model_file": str(Path(result["model_file"]).absolute()),  # read later, from anywhere
                    "tools": env["tools"],
                    "host": env["host"],
                    "date": env["date"],
                    "command": "zoo eval",
                }
            )
    return rows


def perf_rows(environment: dict, rows: list, *, input_shape, backend: str, precision: str, model_file,
              intra_op: dict) -> list:  # fmt: skip
    """Two rows (average latency, FPS) per thread count of a `zoo perf` run; `rows` are its PerfRows,
    `intra_op` the runtime threads each row's model had ({threads: n or None})."""
    measured = []
    for row in rows:
        inner = intra_op.get(row.threads)
        inside = f" x {inner} intra-op thread(s)" if inner else ""
        for metric, value in (("avg latency ms", row.avg_latency_ms), ("FPS", row.fps)):
            measured.append(
                {
                    "kind": "performance",
                    "metric": metric,
                    "value": round(value, 3),
                    "threads": row.threads,
                    "intra_op_threads": inner,
                    "frames": row.frames,
                    "dataset": f"random float32 input {list(input_shape)}",
                    "protocol": f"{row.threads} thread(s){inside}, {row.frames} frames of one inference each",
                    "samples": row.frames,
                    "precision": precision,
                    "backend": backend,
                    "model_file": str(Path(model_file).absolute()),
                    "tools": environment["tools"],
                    "host": environment["host"],
                    "date": environment["date"],
                    "command": "zoo perf",
                }
            )
    return measured


def measurement_environment(registry, model, backends: list) -> dict:
    """Tool versions, host and date, recorded with every measured row; `backends` as each describes itself."""
    import os
    import platform
    from datetime import datetime, timezone

    from modelzoo.core.version import dist_version, zoo_version

    plugin = registry.plugins.get(model.plugin)
    return {
        "tools": {
            "zoo": zoo_version(),
            "plugin": f"{model.plugin} {plugin.version if plugin and plugin.version else 'dev'}",
            "onnxruntime": dist_version("onnxruntime"),
            "numpy": dist_version("numpy"),
            "opencv": dist_version("opencv-python-headless") or dist_version("opencv-python"),
            "python": platform.python_version(),
        },
        "backends": list(backends),
        "host": {
            "name": platform.node(),
            "system": platform.platform(),
            "cpu": _cpu_model() or platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def measured_table(rows: list) -> str:
    """The rows as `zoo info` prints them."""
    from modelzoo.core.tables import table

    return table(
        ["metric", "value", "precision", "backend", "model file", "dataset", "protocol", "host", "date"],
        [
            [
                row.get("metric"),
                row.get("value"),
                row.get("precision", "-"),
                row.get("backend", "-"),
                Path(str(row["model_file"])).name if row.get("model_file") else "-",  # which weights were measured
                row.get("dataset", "-"),
                row.get("protocol", "-"),
                row["host"].get("name", "-") if isinstance(row.get("host"), dict) else row.get("host"),
                str(row.get("date", "-"))[:10],
            ]
            for row in rows
        ],
    )
