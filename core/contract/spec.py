"""Model metadata as data: what a plugin declares, and what preprocessing is derived from."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output. A string dimension (e.g. "N") is dynamic."""

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
class VideoPreprocessing:
    """Constants of a torchvision-style video classification preset."""

    clip_len: int = 16
    target_fps: float | None = 15.0
    resize: tuple = (128, 171)  # H, W, aspect ratio not kept
    crop: tuple = (112, 112)  # H, W, center crop
    mean: tuple = (0.43216, 0.394666, 0.37645)
    std: tuple = (0.22803, 0.22145, 0.216989)
    interpolation: str = "bilinear"


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
    """Everything the core needs to know about a model without importing its code."""

    name: str
    task: str
    description: str
    input: TensorSpec
    output: TensorSpec
    preprocessing: VideoPreprocessing
    labels_file: str
    artifacts: tuple = ()
    metrics: tuple = ()
    board_perf: tuple = ()
    license: str = ""
    source: str = ""
    family: str = ""
    params: int | None = None
    plugin: str = field(default="", compare=False)  # filled in by the registry

    @cached_property
    def labels(self) -> tuple:
        return tuple(
            line.strip() for line in Path(self.labels_file).read_text(encoding="utf-8").splitlines() if line.strip()
        )

    @property
    def num_classes(self) -> int:
        return int(self.output.shape[-1])

    def artifact(self, name: str) -> Artifact | None:
        return next((a for a in self.artifacts if a.name == name), None)

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("input", "output", "preprocessing"):
            data[key] = dataclasses.asdict(data[key])
        for key in ("artifacts", "metrics", "board_perf"):
            data[key] = [dataclasses.asdict(item) for item in data[key]]
        for art, raw in zip(data["artifacts"], self.artifacts):
            art["filename"] = raw.filename
        data["num_classes"] = self.num_classes
        return data
