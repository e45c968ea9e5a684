"""A task is a kind of model: what inputs it takes, what its result is, and how that result shows.

Tasks register through `zoo_register_tasks`; the core knows no task by name. Each task also
offers a Model base class (`Task.model_class`) whose methods are the task's defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

# Input kinds a task may accept; `open_input` classifies a file into one of them.
VIDEO = "video"  # a video file OpenCV decodes
FRAMES = "frames"  # a .npy of raw RGB frames T×H×W×3 uint8
IMAGE = "image"  # an image file, or a .npy of one RGB image H×W×3 uint8
TENSOR = "tensor"  # a .npy of the preprocessed float32 model input


@dataclass(frozen=True)
class Option:
    """A run option of a task (`--top-k`, `--clips`, ...): its type, default and what it does.

    The same name is a setting in zoo.yaml's per-model section.
    """

    name: str
    type: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None  # bounds the work one value can ask for (clips decoded, boxes kept)

    def check(self, value, where: str):
        from modelzoo.core.errors import ConfigError

        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.type) or isinstance(value, bool) is not (self.type is bool):
            raise ConfigError(f"{where}: '{self.name}' must be {self.type.__name__}, not {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):  # every comparison with NaN is false
            raise ConfigError(f"{where}: '{self.name}' must be a finite number, not {value}")
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"{where}: '{self.name}' must be at least {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"{where}: '{self.name}' must be at most {self.maximum:g}")
        return value


# Names a task option cannot take: Model.predict's keywords and zoo.yaml's per-model settings, which
# would swallow the option before the task sees it.
RESERVED_OPTION_NAMES = frozenset(
    (
        "backend",
        "model_path",
        "weights",
        "threads",
        "precision",
        "config",
        "save",
        "calib",
        "input",
        "force",
        "priority",
        "bpu_cores",
    )
)


def task_problems(task, registered: dict) -> list:
    """What makes `task` unusable beside the `registered` tasks ({name: Task}); empty when fine.

    An option reusing another task's option name must keep its type: the command line has one
    `--NAME` flag for every task that takes it.
    """
    if isinstance(task, type):
        return [f"registered the class {task.__name__}, not a task; register an instance: register({task.__name__}())"]
    if not isinstance(task, Task):
        return [f"{task!r} is not a modelzoo.plugin.Task"]
    problems = []
    name = getattr(task, "name", None)
    if not isinstance(name, str) or not name:
        return [f"{type(task).__name__} has no name"]
    others = {}
    for other in registered.values():
        for option in getattr(other, "options", ()):
            others.setdefault(option.name, (other.name, option))
    for option in getattr(task, "options", ()):
        if not isinstance(option, Option):
            problems.append(f"option {option!r} is not an Option")
        elif not option.name.isidentifier():
            problems.append(f"option {option.name!r} is not a Python identifier (it is a keyword of Model.predict)")
        elif option.name in RESERVED_OPTION_NAMES:
            problems.append(
                f"option {option.name!r} clashes with zoo's own {option.name!r} setting; rename it "
                f"(reserved: {', '.join(sorted(RESERVED_OPTION_NAMES))})"
            )
        elif option.type not in (int, float, str, bool):
            problems.append(
                f"option {option.name!r} is a {getattr(option.type, '__name__', option.type)}; "
                "an option is an int, float, str or bool (what -O NAME=VALUE and zoo.yaml can give)"
            )
        elif option.default is not None and (problem := _default_problem(option)):
            problems.append(problem)
        elif option.name in others and others[option.name][1].type is not option.type:
            owner, theirs = others[option.name]
            problems.append(
                f"option {option.name!r} is {option.type.__name__}, but --{option.name.replace('_', '-')} of "
                f"{owner} is {theirs.type.__name__}; use that type or another name"
            )
    return problems


def _default_problem(option) -> str:
    from modelzoo.core.errors import ConfigError

    try:
        option.check(option.default, f"option {option.name!r}")
    except ConfigError as exc:
        return f"{exc} (its own default, {option.default!r})"
    return ""


class Task:
    """Subclass it, set the class attributes and register an instance with `zoo_register_tasks`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    accepts: ClassVar[tuple] = ()  # input kinds, from the constants above
    options: ClassVar[tuple] = ()  # Option, ...
    preprocessing_type: ClassVar[type | None] = None  # the dataclass ModelSpec.preprocessing must be
    # The files this task takes from a folder: `zoo run --input DIR`, `zoo calib DIR`,
    # `zoo quantize --calib DIR` and `zoo eval`'s sets.
    input_suffixes: ClassVar[tuple] = (".npy",)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Plugins written before the rename set `calibration_suffixes`; it means the same.
        if "calibration_suffixes" in cls.__dict__ and "input_suffixes" not in cls.__dict__:
            cls.input_suffixes = cls.__dict__["calibration_suffixes"]

    @property
    def calibration_suffixes(self) -> tuple:
        """The former name of `input_suffixes`, still readable."""
        return self.input_suffixes

    @property
    def model_class(self) -> type:
        """The Model base class with this task's defaults."""
        from modelzoo.core.contract.model import Model

        return Model

    def spec_problems(self, spec) -> list:
        """What makes `spec` unusable for this task (shown by `zoo plugins`); empty when fine."""
        problems = []
        if self.preprocessing_type is not None and not isinstance(spec.preprocessing, self.preprocessing_type):
            got = type(spec.preprocessing).__name__
            problems.append(f"{self.name} needs preprocessing={self.preprocessing_type.__name__}(...), got {got}")
        return problems

    def describe_preprocessing(self, spec) -> str:
        """One line for `zoo info`."""
        return str(spec.preprocessing)

    def accepted(self) -> str:
        """What to pass as --input, for messages."""
        return ", ".join(self.accepts)

    def open_input(self, path, spec):
        """Classify and check the input file; refuses kinds this task does not take (InputError)."""
        from modelzoo.core.inputs.sources import open_input

        return open_input(path, spec, self)

    def resolve_options(self, given: dict, configured: dict, where: str) -> dict:
        """Every option of this task: the command line's, else zoo.yaml's, else the default."""
        values = {}
        for option in self.options:
            if given.get(option.name) is not None:
                values[option.name] = option.check(given[option.name], "the command line")
            elif configured.get(option.name) is not None:
                values[option.name] = option.check(configured[option.name], where)
            else:
                values[option.name] = option.default
        return values

    def option_names(self) -> set:
        return {option.name for option in self.options}

    def format_result(self, result) -> str:
        """The result as people read it on a terminal."""
        return str(result.to_dict())

    def save_annotated(self, result, source, path: Path) -> None:
        """Write the input with `result` drawn on it (`zoo run --save`); tasks that can draw override this."""
        from modelzoo.core.errors import InputError

        raise InputError(f"--save is not supported for {self.name} models")

    def check_save(self, path: Path, source) -> None:
        """Refuse a `zoo run --save` target before any download or inference (raise InputError): a format
        the task cannot write, an input it cannot draw on. The default accepts any."""

    def draw(self, frame_bgr, result):
        """`frame_bgr` (BGR uint8, may be drawn on in place) with `result` drawn, for `zoo run --save-video`.
        The default writes the result's one-line `caption()` (a classifier's top label) at the top left;
        a task with boxes overrides this."""
        caption = getattr(result, "caption", None)
        text = caption() if callable(caption) else None
        if not text:
            return frame_bgr
        from modelzoo.core.inputs.video import opencv

        cv2 = opencv()
        scale = max(0.4, min(frame_bgr.shape[:2]) / 600)
        thickness = max(1, round(scale * 1.5))
        (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        pad = max(2, height // 3)
        cv2.rectangle(frame_bgr, (0, 0), (width + 2 * pad, height + baseline + 2 * pad), (0, 0, 0), cv2.FILLED)
        cv2.putText(
            frame_bgr, text, (pad, pad + height), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
            cv2.LINE_AA,
        )  # fmt: skip
        return frame_bgr

    def synthetic_input(self, spec, directory: Path) -> Path:
        """Write a small valid input for `spec` into `directory` and return its path (for checks)."""
        raise NotImplementedError

    def stand_in_onnx(self, spec, path: Path) -> Path | None:
        """Write a tiny ONNX with the spec's input and output whose output this task's models can postprocess,
        for `check_model`'s end-to-end run; None leaves it to the generic [N, K] stand-in (or skips the run)."""
        return None


class Result:
    """A task's result; `to_dict()` gives the task's keys of `zoo run --json`."""

    def to_dict(self) -> dict:
        raise NotImplementedError
