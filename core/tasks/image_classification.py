"""The image-classification task: torchvision's ImageClassification-style preset (resize the shorter
side with antialiasing, center crop, normalize), Top-k labels."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from modelzoo.core.contract.model import Model
from modelzoo.core.contract.task import IMAGE, TENSOR, Task
from modelzoo.core.inputs.sources import IMAGE_SUFFIXES
from modelzoo.core.tasks.classification import TOP_K, classification_problems, classification_table, classify


@dataclass(frozen=True)
class ImagePreprocessing:
    """Constants of an image classification preset; every dataset-specific value comes from the plugin.

    `resize` is the shorter side's new length (int, aspect ratio kept, as torchvision's
    `resize(img, 256)`) or an exact (H, W). `antialias` follows torchvision: PIL-style
    antialiased bilinear when True.
    """

    resize: object  # int or (H, W)
    crop: tuple  # H, W, center crop
    mean: tuple
    std: tuple
    interpolation: str = "bilinear"
    antialias: bool = True


class ImageClassificationTask(Task):
    name = "image-classification"
    description = "Top-k labels for an image"
    accepts = (IMAGE, TENSOR)
    options = (TOP_K,)
    preprocessing_type = ImagePreprocessing
    input_suffixes = (*sorted(IMAGE_SUFFIXES), ".npy")

    @property
    def model_class(self) -> type:
        return ImageClassifier

    def spec_problems(self, spec) -> list:
        problems = super().spec_problems(spec) + classification_problems(spec)
        if problems:
            return problems
        pre = spec.preprocessing
        if tuple(spec.input.shape[1:]) != (3, *pre.crop):
            problems.append(f"input {list(spec.input.shape)} does not match [N, 3, *crop] of the preprocessing")
        if pre.interpolation not in ("bilinear", "nearest"):
            problems.append(f"interpolation {pre.interpolation!r} is not bilinear or nearest")
        if isinstance(pre.resize, int) and pre.resize < max(pre.crop):
            problems.append(f"resize {pre.resize} is smaller than the crop {pre.crop}")
        return problems

    def describe_preprocessing(self, spec) -> str:
        pre = spec.preprocessing
        size = f"shorter side to {pre.resize}" if isinstance(pre.resize, int) else f"to {pre.resize[0]}x{pre.resize[1]}"
        aa = " antialiased" if pre.antialias else ""
        return (
            f"resize {size} {pre.interpolation}{aa}, center crop {pre.crop[0]}x{pre.crop[1]}, "
            f"scale to [0,1], mean {pre.mean}, std {pre.std}"
        )

    def format_result(self, result) -> str:
        return classification_table(result)

    def synthetic_input(self, spec, directory: Path) -> Path:
        from modelzoo.core.inputs.tensor_file import save_random_pixels

        return save_random_pixels(Path(directory) / f"{spec.name}_image.npy", (300, 400, 3))


class ImageClassifier(Model):
    """An image classifier: the preset from spec.preprocessing, Top-k from spec.labels."""

    task = "image-classification"

    def preprocess(self, source, options: dict):
        if source.tensor is not None:
            return source.tensor
        started = time.perf_counter()
        tensor = preprocess_image(source.image, self.spec.preprocessing)
        source.timings["preprocess"] = (time.perf_counter() - started) * 1000
        return tensor

    def postprocess(self, output, source, options: dict):
        result = classify(self, output, options)
        source.warnings.extend(result.warnings)
        return result

    def board_input(self) -> dict:
        """As D-Robotics' published S100 image classifiers (docs/board.md): the board takes NV12 from the
        camera or decoder, hb_compile inserts the normalization (mean and scale in 0..255 units) before
        the float model, which was trained on RGB. OpenCV's NV12 is BT.601 limited range."""
        pre = self.spec.preprocessing
        return {
            "input_type_rt": "nv12",
            "input_type_train": "rgb",
            "norm_type": "data_mean_and_scale",
            "mean_value": " ".join(f"{m * 255:.3f}" for m in pre.mean),
            "scale_value": " ".join(f"{1 / (s * 255):.8f}" for s in pre.std),
            "input_space_and_range": "bt601_video",
        }

    def host_image(self, batch):
        """Undo the normalization: the exact uint8 crops the batch was made from (NHWC, RGB)."""
        return unnormalized_images(batch, self.spec.preprocessing.mean, self.spec.preprocessing.std)


def unnormalized_images(batch, mean, std):
    """The uint8 RGB images [K,H,W,3] a normalized float batch [K,3,H,W] was made from ((x * std + mean) * 255)."""
    import numpy as np

    mean = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    pixels = np.rint((np.asarray(batch, np.float32) * std + mean) * 255.0)
    return np.ascontiguousarray(np.clip(pixels, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1))


def resized_size(height: int, width: int, resize) -> tuple:
    """torchvision's output size: an int sets the shorter side, the longer one is truncated, not rounded."""
    if not isinstance(resize, int):
        return int(resize[0]), int(resize[1])
    if width <= height:
        return int(resize * height / width), resize
    return resize, int(resize * width / height)


def resize_image(image, size: tuple, interpolation: str = "bilinear", antialias: bool = True):
    """Resize RGB uint8 `image` to `size` (H, W) as torchvision does on a PIL image.

    Antialiased bilinear is Pillow's resampling (the reference torchvision's preset runs on), not
    hand-written; without antialias it is OpenCV's half-pixel bilinear, rounded once from float.
    """
    import numpy as np

    height, width = size
    if antialias:
        from PIL import Image

        resample = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST}[interpolation]
        return np.asarray(Image.fromarray(image).resize((width, height), resample))
    from modelzoo.core.inputs.video import opencv

    cv2 = opencv()
    flag = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}[interpolation]
    resized = cv2.resize(image.astype(np.float32), (width, height), interpolation=flag)
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8)


def center_crop(image, crop: tuple):
    """torchvision's center_crop: offsets rounded half to even; pads with zeros if the image is smaller."""
    import numpy as np

    crop_h, crop_w = crop
    height, width = image.shape[:2]
    if height < crop_h or width < crop_w:
        padded = np.zeros((max(height, crop_h), max(width, crop_w), image.shape[2]), image.dtype)
        top, left = (padded.shape[0] - height) // 2, (padded.shape[1] - width) // 2
        padded[top : top + height, left : left + width] = image
        image, height, width = padded, padded.shape[0], padded.shape[1]
    top = int(round((height - crop_h) / 2.0))
    left = int(round((width - crop_w) / 2.0))
    return image[top : top + crop_h, left : left + crop_w]


def preprocess_image(image, pre: ImagePreprocessing):
    """RGB uint8 [H, W, 3] -> float32 [1, 3, crop_h, crop_w], scaled to [0, 1] and normalized."""
    import numpy as np

    size = resized_size(image.shape[0], image.shape[1], pre.resize)
    cropped = center_crop(resize_image(image, size, pre.interpolation, pre.antialias), pre.crop)
    data = cropped.astype(np.float32) / np.float32(255.0)
    data -= np.asarray(pre.mean, dtype=np.float32)
    data /= np.asarray(pre.std, dtype=np.float32)
    return np.ascontiguousarray(data.transpose(2, 0, 1)[None])
