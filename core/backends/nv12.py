"""RGB to NV12 for board models compiled with input_type_rt nv12: Y plane plus interleaved UV at half
resolution, BT.601 limited range as OpenCV computes it (the published S100 samples do the same)."""

from __future__ import annotations


def rgb_to_nv12(image):
    """uint8 RGB [H, W, 3] (H and W even) -> (y [H, W, 1], uv [H/2, W/2, 2]) uint8."""
    import numpy as np

    from modelzoo.core.inputs.video import opencv

    cv2 = opencv()
    height, width = image.shape[:2]
    if height % 2 or width % 2:
        from modelzoo.core.errors import BackendError

        raise BackendError(f"NV12 needs an even image size, got {width}x{height}")
    i420 = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2YUV_I420).reshape(-1)
    plane = height * width
    quarter = plane // 4
    y = i420[:plane].reshape(height, width, 1)
    u = i420[plane : plane + quarter].reshape(height // 2, width // 2)
    v = i420[plane + quarter :].reshape(height // 2, width // 2)
    return y, np.stack([u, v], axis=-1)
