"""How far the INT8 model is from fp32, in the spirit of hb_compile's report: per-output cosine on the
calibration samples, Top-1 agreement, and the nodes whose outputs drift most.

The per-node comparison is onnxruntime's own quantization debugging (`qdq_loss_debug`): it keeps every
activation of both models, so it runs on the first few samples only, and says how many.
"""

from __future__ import annotations

from pathlib import Path

from modelzoo.core.quantize.host import SampleReader, progress_bar, quiet


def cosine(a, b) -> float:
    """Cosine similarity of two arrays, flattened, in float64 (1.0 for two zero arrays)."""
    import numpy as np

    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norms == 0.0:
        return 1.0 if not a.any() and not b.any() else 0.0
    return float(np.dot(a, b) / norms)


def quantization_report(
    fp32_path, int8_path, preprocessed_path, samples: list, workdir, *, node_samples: int, progress=None
) -> dict:
    """The report as a dict: outputs (cosine over all samples), top1_agreement, nodes (worst first)."""
    outputs, top1 = compare_outputs(fp32_path, int8_path, samples, progress=progress)
    compared = samples[: max(0, node_samples)]
    nodes = node_drift(preprocessed_path, int8_path, compared, Path(workdir), progress=progress) if compared else []
    return {
        "samples": len(samples),
        "outputs": outputs,
        "top1_agreement": top1,
        "node_samples": len(compared),
        "nodes": nodes,
    }


def session(path, threads=None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare_outputs(fp32_path, int8_path, samples: list, *, progress=None) -> tuple:
    """Run both models on every sample. Per output: the cosine of all samples' outputs together (as one
    vector), the lowest per-sample cosine and the largest absolute difference; and the Top-1 agreement
    of the first output when it is [1, classes] per sample (else None).

    Sums are accumulated sample by sample, so memory does not grow with the number of samples (a
    detector's [1, 84, 8400] output is 2.8 MB a sample per model)."""
    import numpy as np

    fp32, int8 = session(fp32_path), session(int8_path)
    input_name = fp32.get_inputs()[0].name
    names = [o.name for o in fp32.get_outputs()]
    totals = {name: CosineSums() for name in names}
    agree, classified = 0, True
    with progress_bar(progress, "fp32 vs INT8", len(samples)) as bar:
        for sample in samples:
            data = {input_name: sample.load()}
            pairs = list(zip(fp32.run(names, data), int8.run(names, data)))
            for name, (a, b) in zip(names, pairs):
                totals[name].add(a, b)
            a, b = pairs[0]
            classified = classified and a.ndim == 2 and a.shape[0] == 1
            agree += int(np.argmax(a) == np.argmax(b))
            bar.update(1)
    outputs = [
        {"name": name, "cosine": t.overall(), "min_sample_cosine": t.lowest, "max_abs_diff": t.largest}
        for name, t in totals.items()
    ]
    top1 = None
    compared = totals[names[0]].samples
    if classified and compared:
        top1 = {"output": names[0], "agree": agree, "samples": compared, "fraction": agree / compared}
    return outputs, top1


class CosineSums:
    """Two models' outputs compared sample by sample, in running sums so that memory does not grow with
    the samples: the cosine of all samples' outputs together (as one vector), each sample's cosine (the
    lowest, and their sum for a mean) and the largest absolute difference."""

    def __init__(self):
        self.dot = self.norm_a = self.norm_b = 0.0
        self.samples = 0
        self.sample_sum = 0.0
        self.lowest = None
        self.largest = 0.0

    def add(self, a, b) -> None:
        import numpy as np

        a = np.asarray(a, dtype=np.float64).ravel()
        b = np.asarray(b, dtype=np.float64).ravel()
        self.dot += float(a @ b)
        self.norm_a += float(a @ a)
        self.norm_b += float(b @ b)
        here = cosine(a, b)
        self.samples += 1
        self.sample_sum += here
        self.lowest = here if self.lowest is None else min(self.lowest, here)
        if a.size:
            self.largest = max(self.largest, float(np.max(np.abs(a - b))))

    def overall(self) -> float:
        """As `cosine` of the whole: 1 only when both sides are all zeros; one side all zeros does not agree."""
        if self.norm_a and self.norm_b:
            return self.dot / (self.norm_a * self.norm_b) ** 0.5
        return 1.0 if not self.norm_a and not self.norm_b else 0.0


def node_drift(preprocessed_path, int8_path, samples: list, workdir: Path, *, progress=None) -> list:
    """Per activation of the fp32 model that the INT8 model quantizes: the cosine and SQNR (dB) of the INT8
    model's value against fp32's, and the SQNR of its own QuantizeLinear/DequantizeLinear, worst first."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    graph = onnx.load(str(preprocessed_path), load_external_data=False).graph
    producers = {output: node for node in graph.node for output in node.output}
    input_name = next(i.name for i in graph.input if i.name not in {t.name for t in graph.initializer})
    activations = {}
    with progress_bar(progress, "per-node comparison", 2 * len(samples)) as bar:
        for label, model_path in (("float", preprocessed_path), ("qdq", int8_path)):
            augmented = workdir / f"{label}_activations.onnx"
            with quiet():
                modify_model_output_intermediate_tensors(str(model_path), str(augmented))
                activations[label] = collect_activations(
                    str(augmented), SampleReader(input_name, samples, on_sample=lambda: bar.update(1))
                )
            augmented.unlink()
    matching = create_activation_matching(activations["qdq"], activations["float"])
    matching = {
        name: match
        for name, match in matching.items()
        if match.get("float") is not None and match.get("pre_qdq") is not None and match.get("post_qdq") is not None
    }
    cosines = compute_activation_error(matching, err_func=lambda a, b: cosine(_joined(a), _joined(b)))
    sqnr = compute_activation_error(matching)
    rows = []
    for name in matching:
        node = producers.get(name)
        rows.append(
            {
                "tensor": name,
                "node": node.name if node is not None else "(model input)",
                "op_type": node.op_type if node is not None else "-",
                "cosine": cosines[name]["xmodel_err"],
                "sqnr_db": _finite(sqnr[name]["xmodel_err"]),
                "qdq_sqnr_db": _finite(sqnr[name]["qdq_err"]),
            }
        )
    rows.sort(key=lambda row: (row["cosine"], row["tensor"]))
    return rows


def _joined(arrays):
    import numpy as np

    return np.concatenate([np.asarray(a).ravel() for a in arrays])


def _finite(value: float):
    import math

    return round(value, 3) if math.isfinite(value) else None
