"""Top-k classification results: softmax per clip, averaged over clips."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Prediction:
    class_id: int
    label: str
    score: float

    def to_dict(self) -> dict:
        return asdict(self)


def softmax(logits):
    import numpy as np

    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def top_k_predictions(logits, labels, top_k: int) -> list:
    """Mean of the clips' softmax, then the `top_k` best classes with their labels."""
    import numpy as np

    probs = softmax(np.asarray(logits).reshape(-1, np.asarray(logits).shape[-1])).mean(axis=0)
    if len(labels) != probs.shape[0]:
        from modelzoo.core.errors import PluginError

        raise PluginError(
            f"the model has {probs.shape[0]} outputs but {len(labels)} labels; the model file does not match"
        )
    order = np.argsort(-probs, kind="stable")[: max(1, top_k)]
    return [Prediction(int(i), labels[i], float(probs[i])) for i in order]
