"""INT8 on the host: onnxruntime static QDQ quantization of a model's fp32 ONNX, calibrated on the
samples `zoo calib` writes for hb_compile, cached by (fp32 file, calibration set, settings), and the
report that compares it with fp32 (per-output cosine, the nodes that drift most, Top-1 agreement).

`host.quantized_model_file` is what `--precision int8` runs; `host.quantize` is `zoo quantize`.
"""
