"""Model metadata as data: what a plugin declares, and what its task derives preprocessing from."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

# numpy's names of the tensor element types, known without importing numpy (zoo list must stay cheap)
DTYPES = frozenset(
    ("float32", "float16", "float64", "uint8", "int8", "uint16", "int16", "uint32", "int32", "int64", "bool")
)


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output. A string dimension (e.g. "N") is dynamic; `layout` names the axes (NCHW)."""

    name: str
    shape: tuple
    dtype: str = "float32"
    layout: str = ""


@dataclass(frozen=True)
class Artifact:
    """A downloadable file. `sha256=None` means nobody published a checksum.

    `sha256_prefix` is for files whose publisher gives only the leading hex digits of the
    sha256 (torch.hub's `name-<8 hex>.pth` convention): a download must start with them.
    """

    name: str  # "weights", "hbm", ...
    url: str
    sha256: str | None = None
    size: int | None = None
    format: str = "pytorch"  # "pytorch", "hbm", "onnx"
    sha256_prefix: str | None = None

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Metric:
    """A reference accuracy figure and the protocol that produced it."""

    name: str
    value: float
    dataset: str
    protocol: str


@dataclass(frozen=True)
class BoardPerf:
    """A published board measurement, as printed by `hrt_model_exec perf`."""

    device: str
    march: str
    threads: int
    avg_latency_ms: float
    fps: float
    source: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """Everything the core needs to know about a model without importing its code.

    `preprocessing` is the task's preprocessing dataclass (its constants); the task checks its type
    when the model registers. `labels_file` is optional: tasks without class names leave it empty.
    """

    name: str
    task: str
    description: str
    input: TensorSpec
    output: TensorSpec
    preprocessing: Any = None
    labels_file: str = ""
    artifacts: tuple = ()
    metrics: tuple = ()
    board_perf: tuple = ()
    license: str = ""
    source: str = ""
    family: str = ""
    params: int | None = None
    how_to_get: str = ""  # for a model zoo cannot download or convert: how to get its model file
    plugin: str = field(default="", compare=False)  # filled in by the registry

    @cached_property
    def labels(self) -> tuple:
        if not self.labels_file:
            return ()
        return tuple(
            line.strip() for line in Path(self.labels_file).read_text(encoding="utf-8").splitlines() if line.strip()
        )

    @property
    def num_classes(self) -> int:
        """The classes the model tells apart: one per label when it ships labels, else the output's last dimension."""
        return len(self.labels) if self.labels_file else int(self.output.shape[-1])

    @property
    def scores_classes(self) -> bool:
        """Whether the output is one score per class, [N, classes]: what `zoo eval`'s accuracy reads."""
        shape = self.output.shape
        return len(shape) == 2 and (isinstance(shape[1], str) or int(shape[1]) == self.num_classes)

    def artifact(self, name: str) -> Artifact | None:
        return next((a for a in self.artifacts if a.name == name), None)

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("input", "output"):
            data[key] = dataclasses.asdict(data[key])
        pre = data["preprocessing"]
        data["preprocessing"] = dataclasses.asdict(pre) if dataclasses.is_dataclass(pre) else pre
        for key in ("artifacts", "metrics", "board_perf"):
            data[key] = [dataclasses.asdict(item) for item in data[key]]
        for art, raw in zip(data["artifacts"], self.artifacts):
            art["filename"] = raw.filename
        data["num_classes"] = self.num_classes
        return data


def spec_problems(spec) -> list:
    """What is wrong with a spec regardless of its task; empty when it is usable."""
    problems = []
    if not isinstance(spec, ModelSpec):
        return [f"expected a ModelSpec, got {type(spec).__name__}"]
    if not isinstance(spec.name, str) or not re.fullmatch(r"[a-z0-9_]+", spec.name):
        problems.append(f"model name {spec.name!r} must be lower-case letters, digits and _")
    for which in ("input", "output"):
        tensor = getattr(spec, which)
        if not isinstance(tensor, TensorSpec):
            problems.append(f"{which} must be a TensorSpec, got {type(tensor).__name__}")
            continue
        if not tensor.shape or not all(isinstance(d, str) or (isinstance(d, int) and d >= 1) for d in tensor.shape):
            problems.append(f"{which} shape {tensor.shape} must hold positive ints or names of dynamic dims")
        if tensor.dtype not in DTYPES:
            hint = " (a layout? it is the fourth field: layout=...)" if str(tensor.dtype).isupper() else ""
            problems.append(f"{which} dtype {tensor.dtype!r} is not one of {', '.join(sorted(DTYPES))}{hint}")
        if tensor.layout and len(tensor.layout) != len(tensor.shape):
            problems.append(f"{which} layout {tensor.layout!r} does not name each of the {len(tensor.shape)} axes")
    if spec.labels_file:
        try:
            spec.labels  # noqa: B018 (read once: a missing labels file must show at registration)
        except OSError as exc:
            problems.append(f"labels file {spec.labels_file} cannot be read ({exc.strerror or exc})")
    names = [a.name for a in spec.artifacts]
    if len(names) != len(set(names)):
        problems.append(f"duplicate artifact names {names}")
    return problems
