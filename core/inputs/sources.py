"""What the user passed as --input: a video, raw RGB frames, an image, or an already preprocessed tensor.

The file's content decides its kind (image files by their signature, `.npy` by dtype and shape);
the model's task decides which kinds it takes, so a still image given to a video model, or a
video given to an image model, is refused here, before any download or conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modelzoo.core.contract.task import FRAMES, IMAGE, TENSOR, VIDEO
from modelzoo.core.errors import InputError

# Leading bytes of the image formats OpenCV decodes (a .jpg that is really a PNG is still an image).
IMAGE_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ts"}
KIND_NAMES = {
    VIDEO: "a video file",
    FRAMES: "a .npy of RGB frames T×H×W×3 uint8",
    IMAGE: "an image (JPEG, PNG, BMP, WebP, TIFF) or a .npy H×W×3 uint8",
    TENSOR: "a preprocessed float32 .npy (make one with `zoo preprocess`)",
}


@dataclass
class InputSource:
    """An opened input. Exactly one of video / frames / image / tensor is set."""

    path: Path
    video: Path | None = None
    frames: object = None  # uint8 T×H×W×3 RGB ndarray
    image: object = None  # uint8 H×W×3 RGB ndarray
    tensor: object = None  # float32 preprocessed model input
    timings: dict = field(default_factory=dict)  # ms, filled by the decoder and preprocessing
    warnings: list = field(default_factory=list)

    @property
    def kind(self) -> str:
        if self.tensor is not None:
            return TENSOR
        if self.image is not None:
            return IMAGE
        if self.frames is not None:
            return FRAMES
        return VIDEO


def image_signature(path: Path) -> str | None:
    """The image format named by the file's first bytes, or None."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in IMAGE_SIGNATURES if head.startswith(magic)), None)


def open_input(path, spec, task) -> InputSource:
    """Check the file, classify it, and refuse kinds `task` does not take."""
    text = str(path)
    path = Path(path)
    accepts = tuple(task.accepts)
    wanted = "; pass " + " or ".join(KIND_NAMES.get(k, k) for k in accepts)
    if "://" in text and not path.exists():  # Path would read ftp://host/x as the file ftp:/host/x
        raise InputError(
            f"{text}: zoo does not read {text.split('://', 1)[0]}:// URLs; a live stream is rtsp://, rtmp://, "
            "http(s)://, udp://, tcp:// or srt://, and a file is given by its path (download it first)"
        )
    if not path.exists():
        raise InputError(f"input file {path} does not exist; check the path")
    if path.is_dir():
        raise InputError(f"input {path} is a directory{wanted}")
    if path.stat().st_size == 0:
        raise InputError(f"input file {path} is empty (0 bytes){wanted}")
    refused = f"{spec.name} ({task.name}) does not take {{what}}{wanted}"
    if path.suffix.lower() == ".npy":
        source = _open_npy(path, spec, accepts, wanted)
        if source.kind not in accepts:
            raise InputError(f"{path} holds {KIND_NAMES[source.kind].removeprefix('a ')}; " + refused.format(what="it"))
        return source
    image_format = image_signature(path)
    if image_format is not None or (path.suffix.lower() in IMAGE_SUFFIXES and IMAGE in accepts):
        if IMAGE not in accepts:
            raise InputError(f"{path} is a still image ({image_format}); " + refused.format(what="images"))
        from modelzoo.core.inputs.images import read_image

        return InputSource(path=path, image=read_image(path))
    if VIDEO not in accepts:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            raise InputError(f"{path} is a video; " + refused.format(what="videos"))
        raise InputError(f"{path} is not an image zoo recognises (JPEG, PNG, BMP, WebP, TIFF){wanted}")
    from modelzoo.core.inputs.video import check_first_frame

    check_first_frame(path)  # a file that is not a video fails now, not after a download
    return InputSource(path=path, video=path)


def _open_npy(path: Path, spec, accepts: tuple, wanted: str) -> InputSource:
    import numpy as np

    with open(path, "rb") as handle:
        if handle.read(6) != b"\x93NUMPY":
            raise InputError(f"{path} is not a .npy file (no NumPy header); save arrays with np.save")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputError(
                f"{path} holds pickled objects, which zoo refuses to load; save a plain array with np.save"
            ) from None
        raise InputError(f"{path} is not a readable .npy file ({exc}); save it with np.save") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{path} is not a readable .npy file ({exc}); save it with np.save") from None
    if array.size == 0:
        raise InputError(f"{path} holds an empty array of shape {list(array.shape)}{wanted}")
    sample_shape = tuple(spec.input.shape[1:])
    if array.dtype == np.uint8:
        rgb = array.ndim >= 3 and array.shape[-1] == 3
        if IMAGE in accepts and (
            array.ndim == 2 or (rgb and array.ndim == 3) or (rgb and array.ndim == 4 and array.shape[0] == 1)
        ):
            image = array if array.ndim != 4 else array[0]
            if image.ndim == 2:
                image = np.repeat(image[:, :, None], 3, axis=2)
            return InputSource(path=path, image=np.ascontiguousarray(image))
        if rgb and array.ndim == 4:
            return InputSource(path=path, frames=array)
        if rgb and array.ndim == 3:
            return InputSource(path=path, image=array)
    if array.dtype == np.float32 and array.shape == sample_shape:
        return InputSource(path=path, tensor=_finite(path, array[None]))
    if array.dtype == np.float32 and array.ndim == len(sample_shape) + 1 and array.shape[1:] == sample_shape:
        return InputSource(path=path, tensor=_finite(path, array))
    shape = "x".join(map(str, sample_shape))
    raise InputError(
        f"{path} holds an array of dtype {array.dtype} and shape {list(array.shape)}, which {spec.name} cannot take{wanted} "
        f"(a preprocessed tensor is float32 [{shape}] or [K,{shape.replace('x', ',')}])"
    )


def _finite(path: Path, tensor):
    import numpy as np

    if not np.isfinite(tensor).all():
        raise InputError(f"{path} contains NaN or infinite values; regenerate it with `zoo preprocess`")
    return tensor
