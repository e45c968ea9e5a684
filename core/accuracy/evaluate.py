"""`zoo eval`: a labelled set through one or several (precision, backend) variants of a classifier in one
pass: each input is decoded and preprocessed once, then run by every variant; the first variant is the
reference the others' agreement is measured against.

Scores are those `zoo run` prints: each sample's softmax averaged over its clips.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from modelzoo.core.errors import InputError, PluginError, ZooError

TOP_K = 5


@dataclass
class Variant:
    precision: str
    backend_name: str  # the backend's registered name
    model_file: Path
    backend_cls: type
    runner: object = None  # the loaded Backend
    top5: list = field(default_factory=list)  # per evaluated sample: the five best class ids, best first
    scores: list = field(default_factory=list)  # per evaluated sample: the best class's score

    @property
    def label(self) -> str:
        return f"{self.precision} {self.backend_name}"


@dataclass
class Evaluation:
    """What `zoo eval` reports; `to_dict()` is its --json, `samples` the per-sample predictions (--output)."""

    model: str
    dataset: dict
    protocol: dict
    results: list
    agreement: list
    published: list
    environment: dict
    samples: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "protocol": self.protocol,
            "results": self.results,
            "agreement": self.agreement,
            "published": self.published,
            "environment": self.environment,
        }


def published_clips(spec) -> int | None:
    """The clip count the published accuracy states in its protocol ("... 5 clips of 16 frames ..."), if any."""
    for metric in spec.metrics:
        found = re.search(r"\b(\d+)\s+clips?\b", metric.protocol or "")
        if found:
            return int(found.group(1))
    return None


def eval_options(registry, model, config, clips: int | None) -> tuple:
    """The task's options for an evaluation, and where the clip count came from: --clips, else the
    published protocol's (so the number is comparable), else zoo.yaml's, else the task's default."""
    from modelzoo.core.runner import task_options

    task = registry.task_of(model)
    source = None
    if clips is not None:
        source = "--clips"
    elif "clips" in task.option_names():
        clips = published_clips(model.spec)
        if clips is not None:
            source = "the published protocol"
        elif config.model(model.name).options.get("clips") is not None:
            source = f"{config.path or 'zoo.yaml'}"
        else:
            source = "the default"
    options = task_options(registry, model, config, {"clips": clips} if clips is not None else {})
    return options, source


def prepare_variants(
    registry, model, config, cache, *, precisions, backends, model_path=None, weights=None, threads=None, log=None
) -> list:  # fmt: skip
    """Every (precision, backend) pair, its model file resolved and loaded before any input is decoded."""
    from modelzoo.core.runner import load_backend, pick_backend, resolve_model_file

    variants: list = []
    seen = set()
    for precision in precisions:
        for backend in backends:
            backend_cls = pick_backend(
                registry, model, config, cache, backend=backend, model_path=model_path, weights=weights, log=log
            )
            if (precision, backend_cls.name) in seen:  # auto and a named backend can be the same one
                continue
            seen.add((precision, backend_cls.name))
            model_file = resolve_model_file(
                registry, model, backend_cls, config, cache, model_path=model_path, weights=weights,
                precision=precision, log=log,
            )  # fmt: skip
            variants.append(Variant(precision, backend_cls.name, Path(model_file), backend_cls))
    for variant in variants:
        variant.runner = load_backend(variant.backend_cls, variant.model_file, model, cache, threads=threads)
    return variants


def evaluate(
    registry, model, labelled, variants: list, options: dict, *, clips_source=None, confused: int = 5,
    workers: int = 1, on_item=None,
) -> Evaluation:  # fmt: skip
    """Run every item of `labelled` (a LabelledSet) through every variant, decoding ahead in `workers`
    threads as `zoo run` does (`core.pipeline.prefetch`); inputs that fail to open or decode are skipped
    and named, not fatal. `on_item(failed)` is called once each item is done with (progress)."""
    import numpy as np

    from modelzoo.core.pipeline import prefetch
    from modelzoo.core.runner import open_source, preprocess_source
    from modelzoo.core.tasks.classification import softmax

    labels = model.spec.labels
    skipped = list(labelled.skipped)
    truths, names = [], []
    agreement = [_Agreement(variant) for variant in variants[1:]]

    def prepare(item):
        source = open_source(registry, model, item.path)
        return preprocess_source(model, source, options)

    for item, tensor, error in prefetch(labelled.items, prepare, workers=workers):
        if error is None:
            try:
                outputs = [np.asarray(variant.runner.run(tensor), dtype=np.float32) for variant in variants]
            except ZooError as exc:
                error = exc
        if on_item:
            on_item(error is not None)
        if error is not None:
            skipped.append((item.path, str(error)))
            continue
        for variant, output in zip(variants, outputs):
            if output.shape[-1] != len(labels):
                raise PluginError(
                    f"{variant.model_file.name} has {output.shape[-1]} outputs but {model.name} has {len(labels)} "
                    "labels; the model file does not match the model"
                )
            probs = softmax(output.reshape(-1, output.shape[-1])).mean(axis=0)
            order = np.argsort(-probs, kind="stable")[:TOP_K]
            variant.top5.append([int(i) for i in order])
            variant.scores.append(float(probs[order[0]]))
        for check, output in zip(agreement, outputs[1:]):
            check.add(outputs[0], output, variants[0].top5[-1][0], check.variant.top5[-1][0])
        truths.append(item.label)
        names.append(str(item.path))
    if not truths:
        reasons = "; ".join(f"{Path(p).name}: {r}" for p, r in skipped[:3])
        raise InputError(f"no input of {labelled.source} could be evaluated ({reasons})")

    results = [_metrics(variant, truths, labels, confused) for variant in variants]
    samples = [
        {
            "input": name,
            "label": labels[truth],
            "predictions": {
                variant.label: {
                    "top5": [labels[i] for i in variant.top5[index]],
                    "score": round(variant.scores[index], 6),
                    "correct": variant.top5[index][0] == truth,
                }
                for variant in variants
            },
        }
        for index, (name, truth) in enumerate(zip(names, truths))
    ]
    protocol = _protocol(registry, model, options, clips_source, len(truths), skipped, labelled.ignored)
    return Evaluation(
        model=model.name,
        dataset=labelled.to_dict(labels),
        protocol=protocol,
        results=results,
        agreement=[check.to_dict(variants[0]) for check in agreement],
        published=[
            {"metric": m.name, "value": m.value, "dataset": m.dataset, "protocol": m.protocol}
            for m in model.spec.metrics
        ],
        environment=environment(registry, model, variants),
        samples=samples,
    )


class _Agreement:
    """A variant against the reference: Top-1 agreement and the cosine of their outputs."""

    def __init__(self, variant: Variant):
        from modelzoo.core.quantize.report import CosineSums

        self.variant = variant
        self.agree = 0
        self.sums = CosineSums()

    def add(self, reference, output, reference_top1: int, top1: int) -> None:
        self.agree += int(reference_top1 == top1)
        self.sums.add(reference, output)

    def to_dict(self, reference: Variant) -> dict:
        sums = self.sums
        count = sums.samples
        return {
            "reference": reference.label,
            "variant": self.variant.label,
            "samples": count,
            "top1_agree": self.agree,
            "top1_agreement": round(100.0 * self.agree / count, 4) if count else None,
            "output_cosine": round(sums.overall(), 6),
            "output_cosine_mean": round(sums.sample_sum / count, 6) if count else None,
            "output_cosine_min": round(sums.lowest, 6) if count else None,
        }


def _metrics(variant: Variant, truths: list, labels, confused: int) -> dict:
    count = len(truths)
    top1 = sum(int(p[0] == t) for p, t in zip(variant.top5, truths))
    top5 = sum(int(t in p) for p, t in zip(variant.top5, truths))
    per_class: dict = {}
    for predicted, truth in zip(variant.top5, truths):
        entry = per_class.setdefault(truth, [0, 0])
        entry[0] += int(predicted[0] == truth)
        entry[1] += 1
    mistakes = Counter((truth, p[0]) for p, truth in zip(variant.top5, truths) if p[0] != truth)
    pairs = sorted(mistakes.items(), key=lambda kv: (-kv[1], labels[kv[0][0]], labels[kv[0][1]]))[:confused]
    return {
        "precision": variant.precision,
        "backend": variant.backend_name,
        "backend_detail": variant.runner.describe(),
        "model_file": str(variant.model_file),
        "samples": count,
        "correct": top1,
        "acc@1": round(100.0 * top1 / count, 4),
        "acc@5": round(100.0 * top5 / count, 4),
        "mean_class_acc": round(100.0 * sum(c / n for c, n in per_class.values()) / len(per_class), 4),
        "per_class": [
            {"label": labels[index], "correct": c, "samples": n, "acc@1": round(100.0 * c / n, 4)}
            for index, (c, n) in sorted(per_class.items(), key=lambda kv: labels[kv[0]])
        ],
        "confused": [{"true": labels[t], "predicted": labels[p], "count": n} for (t, p), n in pairs],
    }


def _protocol(registry, model, options, clips_source, samples: int, skipped: list, ignored: int) -> dict:
    spec = model.spec
    pre = spec.preprocessing
    task = registry.task_of(model)
    clips = options.get("clips") if "clips" in task.option_names() else None
    crop = getattr(pre, "crop", None)
    fps = getattr(pre, "target_fps", None)
    parts = []
    if clips is not None:
        parts.append(f"{clips} clip{'s' if clips != 1 else ''} per video")
    if fps:
        parts.append(f"{fps:g} fps")
    if crop:
        parts.append(f"center crop {crop[0]}x{crop[1]}")
    parts.append(f"{samples} sample{'s' if samples != 1 else ''}")
    if skipped:
        parts.append(f"{len(skipped)} skipped")
    return {
        "summary": ", ".join(parts),
        "preprocessing": task.describe_preprocessing(spec),
        "clips": clips,
        "clips_from": clips_source if clips is not None else None,
        "frame_rate": fps,
        "crop": list(crop) if crop else None,
        "scores": "softmax averaged over clips" if clips is not None else "softmax",
        "samples": samples,
        "skipped": [{"input": str(path), "reason": reason} for path, reason in skipped],
        "ignored_files": ignored,
    }


def environment(registry, model, variants) -> dict:
    """Tool versions, host and date, recorded with measured results."""
    from modelzoo.core.accuracy.measured import measurement_environment

    return measurement_environment(registry, model, [variant.runner.describe() for variant in variants])


PREDICTION_SUFFIXES = (".jsonl", ".json", ".csv")


def check_predictions_path(path) -> Path:
    """Refuse an --output that cannot be written before any input is decoded, not after the whole set."""
    from modelzoo.core.atomic import check_writable
    from modelzoo.core.errors import OutputError

    path = Path(path)
    if path.suffix.lower() not in PREDICTION_SUFFIXES:
        raise OutputError(f"--output {path}: use a .jsonl, .json or .csv file")
    if path.is_dir():
        raise OutputError(f"--output {path} is a directory; name a .jsonl, .json or .csv file")
    check_writable(path)
    return path


def write_predictions(evaluation: Evaluation, path) -> Path:
    """Per-sample predictions: `.jsonl` (one record per input), `.json` (one list of them) or `.csv`
    (one row per input and variant)."""
    import csv
    import io
    import json

    from modelzoo.core.atomic import atomic_write

    path = check_predictions_path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["input", "label", "variant", "predicted", "score", "correct", "top5"])
        for sample in evaluation.samples:
            for variant, prediction in sample["predictions"].items():
                writer.writerow(
                    [
                        sample["input"],
                        sample["label"],
                        variant,
                        prediction["top5"][0],
                        prediction["score"],
                        prediction["correct"],
                        "|".join(prediction["top5"]),
                    ]
                )
        text = buffer.getvalue()
    elif suffix == ".json":  # a .json file is read whole: one JSON document, not JSON Lines
        text = json.dumps(evaluation.samples, indent=2) + "\n"
    else:
        text = "".join(json.dumps(sample) + "\n" for sample in evaluation.samples)
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return path
