"""Decoding still images with OpenCV into RGB uint8, as PIL's `convert("RGB")` would see them."""

from __future__ import annotations

from pathlib import Path

from modelzoo.core.errors import InputError

MAX_IMAGE_BYTES = 256 << 20
"""Files above this are refused before reading: a photo is a few MB."""
MAX_IMAGE_PIXELS = 1 << 28
"""OpenCV refuses images whose header claims more pixels than this, before allocating them."""


def read_image(path: Path):
    """RGB uint8 [H, W, 3]: gray is repeated, alpha dropped, 16-bit scaled to 8; EXIF orientation is
    ignored, as torchvision's PIL-based presets ignore it."""
    import os

    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))
    import numpy as np

    from modelzoo.core.inputs.video import opencv

    cv2 = opencv()
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise InputError(
            f"{path} is {size >> 20} MB, above the {MAX_IMAGE_BYTES >> 20} MB image limit; resize it first"
        )
    data = np.fromfile(path, dtype=np.uint8)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as exc:
        raise InputError(f"{path} cannot be decoded as an image ({str(exc).strip().splitlines()[-1]})") from None
    if image is None or image.size == 0:
        raise InputError(f"{path} cannot be decoded as an image (truncated or corrupt); check the file")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InputError(f"{path} holds {image.dtype} pixels; zoo reads 8- and 16-bit images")
    if image.ndim == 2:
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    if image.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(image, 3, axis=2))
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
