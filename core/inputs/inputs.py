"""What the user passed as --input: a video file, raw RGB frames, or an already preprocessed clip."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modelzoo.core.errors import InputError


@dataclass
class InputSource:
    """An opened input. Exactly one of video / frames / tensor is set."""

    path: Path
    video: Path | None = None
    frames: object = None  # uint8 T×H×W×3 RGB ndarray
    tensor: object = None  # float32 preprocessed model input
    timings: dict = field(default_factory=dict)  # ms, filled by the decoder and preprocessing
    warnings: list = field(default_factory=list)


def open_input(path, input_shape: tuple) -> InputSource:
    """Check the file and classify it; `.npy` is loaded without pickle and its shape validated."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input file {path} does not exist; check the path")
    if path.is_dir():
        raise InputError(f"input {path} is a directory; pass a video file or a .npy file")
    if path.stat().st_size == 0:
        raise InputError(f"input file {path} is empty (0 bytes); pass a video file or a .npy file")
    if path.suffix.lower() != ".npy":
        return InputSource(path=path, video=path)
    return _open_npy(path, tuple(input_shape))


def _open_npy(path: Path, input_shape: tuple) -> InputSource:
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
    clip_shape = tuple(input_shape[1:])
    if array.dtype == np.uint8 and array.ndim == 4 and array.shape[-1] == 3 and array.shape[0] >= 1:
        return InputSource(path=path, frames=array)
    if array.dtype == np.float32 and array.shape == clip_shape:
        return InputSource(path=path, tensor=_finite(path, array[None]))
    if (
        array.dtype == np.float32
        and array.ndim == len(clip_shape) + 1
        and array.shape[1:] == clip_shape
        and array.shape[0] >= 1
    ):
        return InputSource(path=path, tensor=_finite(path, array))
    wanted = "x".join(map(str, clip_shape))
    raise InputError(
        f"{path} holds an array of dtype {array.dtype} and shape {list(array.shape)}; expected raw RGB frames "
        f"T×H×W×3 uint8, or a preprocessed float32 clip [{wanted}] or [K,{wanted.replace('x', ',')}] "
        "(make one with `zoo preprocess`)"
    )


def _finite(path: Path, tensor):
    import numpy as np

    if not np.isfinite(tensor).all():
        raise InputError(f"{path} contains NaN or infinite values; regenerate it with `zoo preprocess`")
    return tensor
