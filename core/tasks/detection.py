"""The object-detection task: letterbox preprocessing, boxes with labels and scores in the original
image's pixels, a table, and the image with its boxes drawn (`zoo run --save`).

`Detector` is the task's model class. Its `decode` turns one image's raw output into boxes in the
model input's pixels; the default reads the anchor-free layout [4 + classes, candidates] (box centre,
size, then one score per class), keeps the best class per candidate, applies the confidence
threshold and class-aware NMS. Everything after `decode` (undoing the letterbox, clipping, labels,
sorting, drawing) is the task's, so a detector with another output layout overrides `decode` only.

A board model may keep that output, or give the head before its decode, split per stride (`DflHeads`,
as D-Robotics compiles these detectors for the S100): `board_output_reader` turns those outputs back
into the anchor-free layout, so everything after it is the same on the host and on the board.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from modelzoo.core.contract.model import Model
from modelzoo.core.contract.task import IMAGE, TENSOR, Option, Result, Task
from modelzoo.core.errors import BackendError, ConversionError, InputError, PluginError
from modelzoo.core.inputs.sources import IMAGE_SUFFIXES

CONF = Option("conf", float, 0.25, "Confidence threshold: detections scoring at or below it are dropped.", minimum=0, maximum=1)  # fmt: skip
IOU = Option("iou", float, 0.7, "NMS IoU threshold: a box overlapping a better one of its class by more is dropped.", minimum=0, maximum=1)  # fmt: skip
MAX_DET = Option("max_det", int, 300, "Most detections kept, best first.", minimum=1, maximum=100_000)
SAVE_SUFFIXES = {".jpg": ".jpg", ".jpeg": ".jpg", ".png": ".png"}


@dataclass(frozen=True)
class DetectionPreprocessing:
    """A letterbox: resize keeping the aspect ratio so the image fits `size` (H, W), pad the rest with
    `pad_value`, then scale pixels to [0, 1] and normalize with `mean` and `std` (RGB order).

    `center` splits the padding between both sides (else it all goes right and below). The defaults are
    the common single-stage detector letterbox (grey 114 padding, centred, bilinear, no normalization).
    """

    size: tuple  # H, W of the model input
    pad_value: int = 114
    center: bool = True
    mean: tuple = (0.0, 0.0, 0.0)
    std: tuple = (1.0, 1.0, 1.0)
    interpolation: str = "bilinear"


@dataclass(frozen=True)
class DflHeads:
    """A detection head split per stride, before its decode: for each stride s, class logits
    [1, H/s, W/s, classes] and box distributions [1, H/s, W/s, 4 * bins] (NHWC; H, W the model input),
    the distributions over 0..bins-1 grid cells from the cell centre to the left, top, right and bottom
    edges (distribution focal loss). D-Robotics lists them stride by stride, class logits first; zoo
    tells them apart by shape, as their names are the compiler's."""

    strides: tuple = (8, 16, 32)
    bins: int = 16


@dataclass(frozen=True)
class Detection:
    class_id: int
    label: str
    score: float
    box: tuple  # x1, y1, x2, y2 in the original image's pixels

    def to_dict(self) -> dict:
        return {"class_id": self.class_id, "label": self.label, "score": self.score, "box": list(self.box)}


@dataclass
class DetectionResult(Result):
    """Detections sorted by score, best first. `image_size` is (width, height) of the image the boxes are in."""

    detections: list
    image_size: tuple = ()

    def to_dict(self) -> dict:
        return {"detections": [d.to_dict() for d in self.detections]}

    def details(self) -> list:
        count = len(self.detections)
        return [f"{count} detection{'' if count == 1 else 's'}"]


class DetectionTask(Task):
    name = "object-detection"
    description = "Boxes, labels and scores of the objects in an image"
    accepts = (IMAGE, TENSOR)
    options = (CONF, IOU, MAX_DET)
    preprocessing_type = DetectionPreprocessing
    input_suffixes = (*sorted(IMAGE_SUFFIXES), ".npy")

    @property
    def model_class(self) -> type:
        return Detector

    def spec_problems(self, spec) -> list:
        problems = super().spec_problems(spec)
        if problems:
            return problems
        pre = spec.preprocessing
        size = pre.size if isinstance(pre.size, (tuple, list)) else ()
        if len(size) != 2 or not all(isinstance(d, int) and d > 0 for d in size):
            problems.append(f"preprocessing size {pre.size} is not (H, W) in pixels")
        elif tuple(spec.input.shape[1:]) != (3, *pre.size):
            problems.append(f"input {list(spec.input.shape)} does not match [N, 3, *size] of the preprocessing")
        if not 0 <= pre.pad_value <= 255:
            problems.append(f"pad_value {pre.pad_value} is not a pixel value (0..255)")
        if pre.interpolation not in ("bilinear", "nearest"):
            problems.append(f"interpolation {pre.interpolation!r} is not bilinear or nearest")
        if not spec.labels_file:
            problems.append("a detector needs labels_file (one class name per line, in class-id order)")
        return problems

    def describe_preprocessing(self, spec) -> str:
        pre = spec.preprocessing
        placement = "centred" if pre.center else "right and below"
        text = (
            f"letterbox to {pre.size[0]}x{pre.size[1]} (aspect ratio kept, {pre.interpolation}, "
            f"padding {pre.pad_value} {placement}), scale to [0,1]"
        )
        if tuple(pre.mean) != (0.0, 0.0, 0.0) or tuple(pre.std) != (1.0, 1.0, 1.0):
            text += f", mean {pre.mean}, std {pre.std}"
        return text

    def format_result(self, result) -> str:
        from modelzoo.core.tables import table

        if not result.detections:
            return "no detections"
        return table(
            ["rank", "class_id", "label", "score", "x1", "y1", "x2", "y2"],
            [
                [rank, d.class_id, d.label, f"{d.score:.4f}", *(f"{v:.1f}" for v in d.box)]
                for rank, d in enumerate(result.detections, 1)
            ],
        )

    def check_save(self, path: Path, source) -> None:
        """Refuse a --save target before anything runs: it is a .jpg or .png, and the input an image to draw on."""
        if Path(path).suffix.lower() not in SAVE_SUFFIXES:
            raise InputError(f"--save {path}: write a .jpg or .png file")
        if source.image is None:
            raise InputError(f"--save draws on the input image; {source.path} is a preprocessed tensor, pass the image")

    def save_annotated(self, result, source, path: Path) -> None:
        """The input image with each detection's box and `label score` drawn, as JPEG or PNG."""
        from modelzoo.core.atomic import atomic_write
        from modelzoo.core.inputs.video import opencv

        path = Path(path)
        self.check_save(path, source)
        suffix = SAVE_SUFFIXES[path.suffix.lower()]
        cv2 = opencv()
        canvas = draw_detections(cv2.cvtColor(source.image, cv2.COLOR_RGB2BGR), result.detections)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix == ".jpg" else []
        ok, encoded = cv2.imencode(suffix, canvas, params)
        if not ok:
            raise InputError(f"--save {path}: OpenCV could not encode the image")
        with atomic_write(path) as handle:
            handle.write(encoded.tobytes())

    def draw(self, frame_bgr, result):
        """The frame with the detections' boxes and labels drawn (`zoo run --save-video`)."""
        return draw_detections(frame_bgr, result.detections)

    def synthetic_input(self, spec, directory: Path) -> Path:
        from modelzoo.core.inputs.tensor_file import save_random_pixels

        return save_random_pixels(Path(directory) / f"{spec.name}_image.npy", (300, 400, 3))

    def stand_in_onnx(self, spec, path: Path):
        """A constant output of the spec's shape (uniform in [0, 1)), fed by the input so it stays in the graph."""
        import numpy as np

        from modelzoo.core.graph.onnx_interface import constant_output_onnx

        values = np.random.default_rng(0).random((1, *spec.output.shape[1:]), dtype=np.float32)
        return constant_output_onnx(spec, values, path)


class Detector(Model):
    """A detector: the letterbox from spec.preprocessing, `decode` of the raw output, boxes in image pixels."""

    task = "object-detection"
    board_heads: DflHeads | None = None  # the split head a board model of it may give instead (see DflHeads)

    def preprocess(self, source, options: dict):
        if source.tensor is not None:
            if source.tensor.shape[0] != 1:
                raise InputError(
                    f"{source.path} holds {source.tensor.shape[0]} preprocessed images; a detector takes one"
                )
            return source.tensor
        started = time.perf_counter()
        tensor = letterbox_tensor(source.image, self.spec.preprocessing)
        source.timings["preprocess"] = (time.perf_counter() - started) * 1000
        return tensor

    def postprocess(self, output, source, options: dict):
        import numpy as np

        output = np.asarray(output)
        boxes, scores, class_ids = self.decode(output[0], options)
        image = source.image
        height, width = self.spec.preprocessing.size
        if image is not None:
            boxes = unletterbox_boxes(boxes, image.shape[:2], self.spec.preprocessing)
            height, width = image.shape[:2]
        else:
            boxes = np.clip(np.asarray(boxes, np.float64).reshape(-1, 4), 0, [width, height, width, height])
            if source.tensor is not None:
                source.warnings.append(
                    f"{source.path.name} is a preprocessed tensor: boxes are in the {width}x{height} model "
                    "input's pixels, not the original image's"
                )
        return detection_result(boxes, scores, class_ids, self.spec.labels, options["max_det"], (width, height))

    def decode(self, output, options: dict) -> tuple:
        """One image's raw output -> (boxes [M, 4] x1 y1 x2 y2 in the model input's pixels, scores [M],
        class ids [M]), after thresholding and NMS. The default reads the anchor-free layout."""
        classes = len(self.spec.labels)
        if output.ndim != 2 or output.shape[0] != 4 + classes:
            raise PluginError(
                f"{self.name} decodes an output [4 + {classes} classes, candidates], got {list(output.shape)} "
                "per image; the model file does not match the spec"
            )
        return decode_anchor_free(output, options["conf"], options["iou"], options["max_det"])

    def board_input(self) -> dict:
        """NV12 from the camera or decoder, scaled (and normalized) inside the compiled model, as D-Robotics'
        S100 detection samples compile their models; the letterbox stays on the host."""
        pre = self.spec.preprocessing
        if all(m == 0 for m in pre.mean):
            return {
                "input_type_rt": "nv12",
                "input_type_train": "rgb",
                "norm_type": "data_scale",
                "scale_value": " ".join(f"{1 / (s * 255):.9f}" for s in pre.std),
                "input_space_and_range": "bt601_video",
            }
        return {
            "input_type_rt": "nv12",
            "input_type_train": "rgb",
            "norm_type": "data_mean_and_scale",
            "mean_value": " ".join(f"{m * 255:.3f}" for m in pre.mean),
            "scale_value": " ".join(f"{1 / (s * 255):.8f}" for s in pre.std),
            "input_space_and_range": "bt601_video",
        }

    def board_output_reader(self, shapes: dict, where: str):
        """For a board model whose outputs ({name: shape}) are not the spec's output: a function from its
        outputs ({name: float array}) to the spec's [N, 4 + classes, candidates]. Reads the split head of
        `board_heads`; anything else is refused with a BackendError naming the outputs (`where`: the file)."""
        classes = len(self.spec.labels)
        expected = f"one output {[1, *self.spec.output.shape[1:]]}"  # the board runs one image at a time
        if self.board_heads is not None:
            expected += f" or, per stride {', '.join(map(str, self.board_heads.strides))}, " + (
                f"class logits [1, H/s, W/s, {classes}] and box distributions [1, H/s, W/s, "
                f"{4 * self.board_heads.bins}] (NHWC, H x W = {'x'.join(map(str, self.spec.preprocessing.size))})"
            )
            roles = dfl_head_roles(shapes, self.board_heads, self.spec.preprocessing.size, classes)
            if roles is not None:
                heads = self.board_heads
                return lambda outputs: dfl_heads_to_anchor_free(
                    [(outputs[c], outputs[b], s) for c, b, s in roles], heads.bins
                )
        found = ", ".join(f"{name} {list(shape)}" for name, shape in shapes.items())
        raise BackendError(f"{where} gives {found}; {self.name} reads {expected}")

    def host_image(self, batch):
        """Undo the scaling and normalization: the uint8 letterboxed images (NHWC, RGB) the batch holds."""
        from modelzoo.core.tasks.image_classification import unnormalized_images

        return unnormalized_images(batch, self.spec.preprocessing.mean, self.spec.preprocessing.std)

    def check_onnx(self, onnx_model) -> None:
        """Refuse an ONNX whose input or output name or shape differs from the spec, saying what differs."""
        from modelzoo.core.graph.onnx_interface import interface_problems

        problems = interface_problems(onnx_model, self.spec)
        if problems:
            raise ConversionError(self.onnx_mismatch(onnx_model, problems))

    def onnx_mismatch(self, onnx_model, problems: list) -> str:
        """The message for an ONNX that is not this model's: what differs, then how to get the right one."""
        hint = f"; {self.spec.how_to_get}" if self.spec.how_to_get else ""
        return f"not an ONNX of {self.name}: {'; '.join(problems)}{hint}"


# -- preprocessing --------------------------------------------------------------------------------


def letterbox_image(image, pre: DetectionPreprocessing):
    """RGB uint8 [H, W, 3] -> uint8 [*pre.size, 3]: scaled (up or down) to fit, the new size rounded to whole
    pixels, OpenCV's resize, then the padding split with a 0.1 bias so an odd remainder goes right and below.
    This is the letterbox the anchor-free detectors' own exporters preprocess with for a fixed input size."""
    from modelzoo.core.inputs.video import opencv

    cv2 = opencv()
    out_h, out_w = pre.size
    height, width = image.shape[:2]
    ratio = min(out_h / height, out_w / width)
    new_w, new_h = int(round(width * ratio)), int(round(height * ratio))
    pad_w, pad_h = out_w - new_w, out_h - new_h
    if pre.center:
        pad_w, pad_h = pad_w / 2, pad_h / 2
    if (width, height) != (new_w, new_h):
        flag = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}[pre.interpolation]
        image = cv2.resize(image, (new_w, new_h), interpolation=flag)
    top, bottom = (int(round(pad_h - 0.1)) if pre.center else 0), int(round(pad_h + 0.1))
    left, right = (int(round(pad_w - 0.1)) if pre.center else 0), int(round(pad_w + 0.1))
    value = (int(pre.pad_value),) * 3
    return cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=value)


def letterbox_tensor(image, pre: DetectionPreprocessing):
    """RGB uint8 [H, W, 3] -> float32 [1, 3, *pre.size]: the letterbox, scaled to [0, 1] and normalized."""
    import numpy as np

    boxed = letterbox_image(image, pre)
    tensor = np.empty((1, 3, *boxed.shape[:2]), np.float32)
    # one pass from uint8 HWC to float CHW: the same values as dividing a float copy, a third of the time
    np.divide(boxed.transpose(2, 0, 1), np.float32(255.0), out=tensor[0], dtype=np.float32)
    if tuple(pre.mean) != (0.0, 0.0, 0.0) or tuple(pre.std) != (1.0, 1.0, 1.0):
        tensor -= np.asarray(pre.mean, dtype=np.float32).reshape(1, 3, 1, 1)
        tensor /= np.asarray(pre.std, dtype=np.float32).reshape(1, 3, 1, 1)
    return tensor


def letterbox_geometry(image_shape: tuple, pre: DetectionPreprocessing) -> tuple:
    """(gain, pad_x, pad_y) that took the original image into the model input, computed from the two sizes
    (the unrounded gain, the padding rounded as the letterbox rounds it), as those detectors map boxes back."""
    out_h, out_w = pre.size
    height, width = image_shape[:2]
    gain = min(out_h / height, out_w / width)
    if not pre.center:
        return gain, 0, 0
    return gain, round((out_w - width * gain) / 2 - 0.1), round((out_h - height * gain) / 2 - 0.1)


def unletterbox_boxes(boxes, image_shape: tuple, pre: DetectionPreprocessing):
    """Boxes [M, 4] (x1, y1, x2, y2) in model input pixels -> the original image's, clipped to it."""
    import numpy as np

    gain, pad_x, pad_y = letterbox_geometry(image_shape, pre)
    height, width = image_shape[:2]
    mapped = (np.asarray(boxes, np.float64).reshape(-1, 4) - [pad_x, pad_y, pad_x, pad_y]) / gain
    return np.clip(mapped, 0, [width, height, width, height])


# -- decoding ---------------------------------------------------------------------------------------


def decode_anchor_free(output, conf: float, iou: float, max_det: int) -> tuple:
    """The anchor-free layout [4 + classes, candidates] (cx, cy, w, h in input pixels, then class scores)
    -> (boxes [M, 4] x1 y1 x2 y2, scores [M], class ids [M]), best first.

    Per candidate the best class only; kept when its score is above `conf`; then class-aware NMS
    (OpenCV's NMSBoxesBatched: a box is dropped when its IoU with a better box of its class is above
    `iou`); at most `max_det`. Only the candidates above `conf` are gathered and converted.
    """
    import numpy as np

    output = np.asarray(output, dtype=np.float32)
    scores_all = output[4:]
    best = scores_all.max(axis=0)
    keep = np.flatnonzero(best > np.float32(conf))
    if keep.size == 0:
        return np.zeros((0, 4)), np.zeros(0, np.float32), np.zeros(0, np.int64)
    class_ids = scores_all[:, keep].argmax(axis=0)
    scores = best[keep]
    cx, cy, w, h = output[:4, keep]
    # corners in float32, as the exporters' own decoders compute them
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    order = nms_boxes(boxes, scores, class_ids, conf, iou)[:max_det]
    return boxes[order].astype(np.float64), scores[order], class_ids[order]


def dfl_head_roles(shapes: dict, heads: DflHeads, size: tuple, classes: int):
    """[(class logits name, box name, stride)] for outputs {name: shape} that are exactly `heads` for an
    input of `size` (H, W), told apart by shape (a compiler's output names say nothing); else None. Were
    the class count equal to the box channels, the order would decide: class logits first, as in the head."""
    if len(shapes) != 2 * len(heads.strides) or any(size[0] % s or size[1] % s for s in heads.strides):
        return None
    shapes = {name: tuple(int(d) for d in shape) for name, shape in shapes.items()}
    roles = []
    for stride in heads.strides:
        grid = (1, size[0] // stride, size[1] // stride)
        pair = [name for name, shape in shapes.items() if len(shape) == 4 and shape[:3] == grid]
        channels = sorted(shapes[name][3] for name in pair)
        if len(pair) != 2 or channels != sorted([classes, 4 * heads.bins]):
            return None
        if shapes[pair[0]][3] != classes:
            pair.reverse()
        roles.append((pair[0], pair[1], stride))
    return roles


def dfl_heads_to_anchor_free(levels: list, bins: int):
    """[(class logits [N, h, w, C], box distributions [N, h, w, 4 * bins], stride)] -> [N, 4 + C, sum h*w]:
    per cell, row by row, the box centre and size in input pixels and the sigmoid of each class logit.
    The box edges are the expected bin of a softmax over each side's bins, from the cell centre, in cells."""
    import numpy as np

    count, classes = levels[0][0].shape[0], levels[0][0].shape[3]
    cells = sum(logits.shape[1] * logits.shape[2] for logits, _, _ in levels)
    out = np.empty((count, 4 + classes, cells), np.float32)  # written in place: the decode reads it contiguous
    start = 0
    for class_logits, box_logits, stride in levels:
        _, height, width, _ = class_logits.shape
        end = start + height * width
        distributions = np.asarray(box_logits, np.float32).reshape(count, height * width, 4, bins)
        distributions = np.exp(distributions - distributions.max(axis=-1, keepdims=True))
        edges = (distributions @ np.arange(bins, dtype=np.float32)) / distributions.sum(axis=-1)
        rows, cols = np.divmod(np.arange(height * width, dtype=np.float32), np.float32(width))
        centre = np.stack([cols + 0.5, rows + 0.5], axis=-1)  # [h*w, 2], in cells
        top_left, bottom_right = centre - edges[..., :2], centre + edges[..., 2:]
        out[:, 0:2, start:end] = ((top_left + bottom_right) * (stride / 2)).transpose(0, 2, 1)
        out[:, 2:4, start:end] = ((bottom_right - top_left) * stride).transpose(0, 2, 1)
        logits = np.asarray(class_logits, np.float32).reshape(count, height * width, classes).transpose(0, 2, 1)
        with np.errstate(over="ignore"):  # a very negative logit: exp overflows to inf, the score to 0
            np.reciprocal(1 + np.exp(-logits), out=out[:, 4:, start:end])
        start = end
    return out


def nms_boxes(boxes, scores, class_ids, conf: float, iou: float):
    """Indices kept by class-aware NMS over xyxy `boxes`, best score first (OpenCV's NMSBoxesBatched)."""
    import numpy as np

    from modelzoo.core.inputs.video import opencv

    cv2 = opencv()
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = np.asarray(boxes, np.float64).copy()
    xywh[:, 2:] -= xywh[:, :2]
    kept = cv2.dnn.NMSBoxesBatched(
        xywh, np.asarray(scores, np.float32), np.asarray(class_ids, np.int32), float(conf), float(iou)
    )
    kept = np.asarray(kept, np.int64).reshape(-1)
    # OpenCV returns them best first; a stable sort makes ties keep candidate order on every version
    return kept[np.argsort(-np.asarray(scores)[kept], kind="stable")]


def detection_result(boxes, scores, class_ids, labels, max_det: int, image_size: tuple) -> DetectionResult:
    """Detections with labels, best first, at most `max_det`; boxes already in image pixels."""
    import numpy as np

    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    class_ids = np.asarray(class_ids).astype(np.int64).reshape(-1)
    bad = class_ids[(class_ids < 0) | (class_ids >= len(labels))]
    if bad.size:
        raise PluginError(f"the model gave class id {int(bad[0])}, but it has {len(labels)} labels")
    order = np.argsort(-scores, kind="stable")[:max_det]
    # rounded once, as arrays: sub-millipixel boxes and float32's digits of score are all there is to say
    ids, kept_scores, kept_boxes = (
        class_ids[order].tolist(),
        np.round(scores[order], 6).tolist(),
        np.round(boxes[order], 3).tolist(),
    )
    detections = [Detection(c, labels[c], s, tuple(b)) for c, s, b in zip(ids, kept_scores, kept_boxes)]
    return DetectionResult(detections, image_size=tuple(int(v) for v in image_size))


# -- drawing ----------------------------------------------------------------------------------------


def class_color(class_id: int) -> tuple:
    """A distinct, stable BGR colour per class (hue stepped by a large prime angle)."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((class_id * 47 % 360) / 360.0, 0.85, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


def draw_detections(bgr, detections: list):
    """A copy of the BGR image with each detection's box and `label score` drawn (worst first, best on top)."""
    from modelzoo.core.inputs.video import opencv

    cv2 = opencv()
    canvas = bgr.copy()
    height, width = canvas.shape[:2]
    thickness = max(2, round(min(height, width) / 320))
    font_scale = max(0.4, min(height, width) / 1000)
    text_thickness = max(1, thickness // 2)
    for detection in reversed(detections):
        x1, y1, x2, y2 = (int(round(v)) for v in detection.box)
        color = class_color(detection.class_id)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness, cv2.LINE_8)  # crisp: the box is exact pixels
        text = f"{detection.label} {detection.score:.2f}"
        (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, text_thickness)
        top = y1 - text_h - baseline - 2 if y1 - text_h - baseline - 2 >= 0 else y1  # inside the box at the top edge
        cv2.rectangle(canvas, (x1, top), (x1 + text_w + 2, top + text_h + baseline + 2), color, cv2.FILLED)
        luminance = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
        ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
        cv2.putText(
            canvas,
            text,
            (x1 + 1, top + text_h + 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            ink,
            text_thickness,
            cv2.LINE_AA,
        )
    return canvas
