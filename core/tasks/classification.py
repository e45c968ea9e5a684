"""Classification results: softmax per sample, averaged over samples (clips), Top-k with labels."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from modelzoo.core.contract.task import Option, Result

TOP_K = Option("top_k", int, 5, "How many predictions to print.", minimum=1)


@dataclass(frozen=True)
class Prediction:
    class_id: int
    label: str
    score: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ClassificationResult(Result):
    """Top-k predictions, best first; `clips` is set for video models (how many were averaged)."""

    predictions: list
    clips: int | None = None
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        data = {} if self.clips is None else {"clips": self.clips}
        data["predictions"] = [p.to_dict() for p in self.predictions]
        return data

    def details(self) -> list:
        return [] if self.clips is None else [f"{self.clips} clip{'s' if self.clips > 1 else ''}"]

    def caption(self) -> str:
        """The top prediction in one line, drawn on frames by `zoo run --save-video`."""
        return f"{self.predictions[0].label} {self.predictions[0].score:.2f}" if self.predictions else ""


def softmax(logits):
    import numpy as np

    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def top_k_predictions(logits, labels, top_k: int) -> list:
    """Mean of the samples' softmax, then the `top_k` best classes with their labels."""
    import numpy as np

    logits = np.asarray(logits)
    if not np.isfinite(logits).all():
        from modelzoo.core.errors import BackendError

        # NaN has no rank: Top-k would be the first classes by index, each scored null.
        raise BackendError(
            "the model's output holds NaN or infinity, so it ranks nothing; the model file's weights are broken "
            "(convert the checkpoint again, or check the --model file), or the input tensor holds NaN"
        )
    probs = softmax(logits.reshape(-1, logits.shape[-1])).mean(axis=0)
    if len(labels) != probs.shape[0]:
        from modelzoo.core.errors import PluginError

        raise PluginError(
            f"the model has {probs.shape[0]} outputs but {len(labels)} labels; the model file does not match"
        )
    order = np.argsort(-probs, kind="stable")[: max(1, top_k)]
    return [Prediction(int(i), labels[i], float(probs[i])) for i in order]


def classify(model, output, options: dict, clips: int | None = None) -> ClassificationResult:
    """The Top-k result of a classifier's logits; asking for more classes than exist is said, not hidden."""
    labels = model.spec.labels
    top_k = options.get("top_k") or TOP_K.default
    warnings = []
    if top_k > len(labels) and top_k != TOP_K.default:  # the default is capped quietly for small label sets
        warnings.append(
            f"--top-k {top_k} is more than the {len(labels)} classes of {model.name}; showing all {len(labels)}"
        )
    return ClassificationResult(top_k_predictions(output, labels, top_k), clips=clips, warnings=warnings)


def classification_table(result: ClassificationResult) -> str:
    from modelzoo.core.tables import table

    return table(
        ["rank", "class_id", "label", "probability"],
        [[rank, p.class_id, p.label, f"{p.score:.4f}"] for rank, p in enumerate(result.predictions, 1)],
    )


def classification_problems(spec) -> list:
    """A classifier's output is [N, classes] and it ships one label per class."""
    problems = []
    if len(spec.output.shape) != 2 or not isinstance(spec.output.shape[-1], int):
        problems.append(f"a classifier's output is [N, classes], got {list(spec.output.shape)}")
    elif not spec.labels_file:
        problems.append("a classifier needs labels_file (one label per line, in class order)")
    elif len(spec.labels) != spec.output.shape[-1]:
        problems.append(f"{len(spec.labels)} labels in {spec.labels_file} for {spec.output.shape[-1]} classes")
    return problems
