"""Reading state dicts without torch: exact parity with torch.load, and refusal of unsafe pickles."""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

from modelzoo.core.artifacts.checkpoint import load_state_dict
from modelzoo.core.errors import CheckpointError


def _torch_state_dict(torch):
    base = torch.arange(20, dtype=torch.float32)
    weight = torch.randn(8, 3, 3, 3, 3)
    return OrderedDict(
        [
            ("stem.0.weight", weight),
            ("stem.1.running_mean", torch.randn(8)),
            ("stem.1.num_batches_tracked", torch.tensor(1234, dtype=torch.int64)),
            ("transposed", torch.randn(5, 7).t()),  # a non-contiguous view, saved as is
            ("permuted", weight.permute(1, 0, 4, 2, 3)),  # shares the storage of stem.0.weight
            ("offset", base[5:15]),  # storage offset 5
            ("strided", base[1:19:3]),  # offset and a stride
            ("half", torch.randn(4, 2).half()),
            ("double", torch.randn(3, dtype=torch.float64)),
            ("int32", torch.arange(6, dtype=torch.int32).reshape(2, 3)),
            ("uint8", torch.arange(250, 256, dtype=torch.uint8)),
            ("bool", torch.tensor([True, False, True])),
            ("scalar", torch.tensor(2.5)),
            ("empty", torch.zeros(0, 4)),
            ("param", torch.nn.Parameter(torch.randn(3))),
        ]
    )


def test_matches_torch_load_exactly(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    path = tmp_path / "ckpt.pth"
    torch.save(_torch_state_dict(torch), path)

    ours = load_state_dict(path)
    reference = torch.load(path, weights_only=True)

    assert list(ours) == list(reference)
    for key, tensor in reference.items():
        expected = tensor.detach().numpy()
        assert ours[key].dtype == expected.dtype, key
        assert ours[key].shape == expected.shape, key
        np.testing.assert_array_equal(ours[key], expected, err_msg=key)


def test_module_state_dict_with_metadata(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3, bias=False), torch.nn.BatchNorm3d(4))
    model[1].running_var.uniform_(0.5, 2.0)
    path = tmp_path / "module.pth"
    torch.save(model.state_dict(), path)  # an OrderedDict carrying `_metadata`, built with BUILD

    ours = load_state_dict(path)

    assert list(ours) == list(model.state_dict())
    np.testing.assert_array_equal(ours["1.running_var"], model[1].running_var.numpy())
    assert ours["1.num_batches_tracked"].dtype == np.int64
    assert ours["0.weight"].flags.writeable  # converters may fold BatchNorm in place


def test_bfloat16_is_widened(tmp_path):
    torch = pytest.importorskip("torch")
    values = torch.tensor([1.5, -2.25, 3.0e5]).bfloat16()
    path = tmp_path / "bf16.pth"
    torch.save({"w": values}, path)

    np.testing.assert_array_equal(load_state_dict(path)["w"], values.float().numpy())


def test_unwraps_training_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "train.pth"
    torch.save({"epoch": 3, "state_dict": {"fc.bias": torch.ones(2)}}, path)

    assert list(load_state_dict(path)) == ["fc.bias"]


class _RunsCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def _replace_pickle(good_zip, bad_zip, payload: bytes):
    """A valid torch zip whose data.pkl is `payload`: the attack rides on a real checkpoint."""
    with zipfile.ZipFile(good_zip) as src, zipfile.ZipFile(bad_zip, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = payload if info.filename.endswith("/data.pkl") else src.read(info)
            dst.writestr(info.filename, data)


@pytest.mark.parametrize("protocol", [2, 4])
def test_malicious_pickle_is_refused_before_it_runs(tmp_path, protocol):
    torch = pytest.importorskip("torch")
    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(2)}, good)
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"w": _RunsCommand(f"touch {marker}")}, protocol=protocol)
    bad = tmp_path / "bad.pth"
    _replace_pickle(good, bad, payload)

    with pytest.raises(CheckpointError, match=r"refers to (posix|os)\.system.*refusing"):
        load_state_dict(bad)
    assert not marker.exists()


@pytest.mark.parametrize(
    "module, name",
    [("builtins", "eval"), ("builtins", "exec"), ("subprocess", "Popen"), ("torch", "load"), ("numpy", "load")],
)
def test_other_globals_are_refused(tmp_path, module, name):
    torch = pytest.importorskip("torch")
    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(2)}, good)
    # GLOBAL module name, EMPTY_TUPLE, REDUCE, STOP: calling it is the pickle's only effect.
    payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R."
    bad = tmp_path / "bad.pth"
    _replace_pickle(good, bad, payload)

    with pytest.raises(CheckpointError, match=f"{module}.{name}"):
        load_state_dict(bad)


def test_out_of_bounds_tensor_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(4)}, good)
    with zipfile.ZipFile(good) as archive:
        name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        payload = archive.read(name)
    # Claim 400 elements of a 4-element storage; as_strided would read foreign memory.
    bad_payload = payload.replace(b"K\x04\x85", b"M\x90\x01\x85", 1)
    assert bad_payload != payload
    bad = tmp_path / "bad.pth"
    _replace_pickle(good, bad, bad_payload)

    with pytest.raises(CheckpointError, match="reaches element 399 of a storage of 4"):
        load_state_dict(bad)


def test_expanded_tensor_is_refused_with_the_fix(tmp_path):
    # torch.save keeps an expand()ed view as is: stride 0 over a smaller storage, which zoo never copies out.
    torch = pytest.importorskip("torch")
    expanded = {"w": torch.arange(3.0).expand(4, 3)}
    path = tmp_path / "expanded.pth"
    torch.save(expanded, path)

    with pytest.raises(CheckpointError, match=r"zero or overlapping strides \[0, 1\].*re-save it with contiguous"):
        load_state_dict(path)
    torch.save({k: v.contiguous() for k, v in expanded.items()}, path)
    np.testing.assert_array_equal(load_state_dict(path)["w"], expanded["w"].numpy())


def test_truncated_zip(tmp_path):
    torch = pytest.importorskip("torch")
    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(1000)}, good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[:2000])

    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_state_dict(cut)


def test_legacy_torch_format(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "legacy.pth"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)

    with pytest.raises(CheckpointError, match="legacy"):
        load_state_dict(path)


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (b"hello, this is text\n" * 10, "not a checkpoint"), (pickle.dumps({"w": 1}), "not a checkpoint")],
)
def test_not_a_checkpoint(tmp_path, content, message):
    path = tmp_path / "file.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_state_dict(path)


def test_zip_without_pickle(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hi")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_state_dict(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="cannot read"):
        load_state_dict(tmp_path / "absent.pth")


def _write_safetensors(path, tensors: dict, dtype_names: dict):
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for key, array in tensors.items():
        raw = np.ascontiguousarray(array).tobytes()
        header[key] = {
            "dtype": dtype_names[key],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def test_safetensors_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {
        "conv.weight": rng.standard_normal((4, 3, 3, 3, 3)).astype(np.float32),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
        "half": rng.standard_normal(5).astype(np.float16),
        "mask": np.array([True, False]),
    }
    path = tmp_path / "model.safetensors"
    _write_safetensors(
        path, tensors, {"conv.weight": "F32", "bn.num_batches_tracked": "I64", "half": "F16", "mask": "BOOL"}
    )

    loaded = load_state_dict(path)

    assert list(loaded) == list(tensors)
    for key, array in tensors.items():
        assert loaded[key].dtype == array.dtype
        np.testing.assert_array_equal(loaded[key], array)


def test_safetensors_matches_torch_bf16(tmp_path):
    rng = np.random.default_rng(1)
    values = rng.standard_normal(6).astype(np.float32)
    raw = (values.view(np.uint32) >> 16).astype(np.uint16)  # truncate to bfloat16
    path = tmp_path / "bf16.safetensors"
    _write_safetensors(path, {"w": raw}, {"w": "BF16"})

    expected = (raw.astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(load_state_dict(path)["w"], expected)


def test_safetensors_out_of_range_offsets(tmp_path):
    path = tmp_path / "bad.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [100], "data_offsets": [0, 400]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_state_dict(path)


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    arrays = {"fc.weight": rng.standard_normal((10, 4)).astype(np.float32), "steps": np.array(3, dtype=np.int64)}
    path = tmp_path / "weights.npz"
    np.savez(path, **arrays)

    loaded = load_state_dict(path)

    assert list(loaded) == list(arrays)
    for key, array in arrays.items():
        np.testing.assert_array_equal(loaded[key], array)


def test_npz_with_object_array_is_refused(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="pickle"):
        load_state_dict(path)


def test_r3d18_checkpoint_keys(r3d18_checkpoint):
    torch = pytest.importorskip("torch")
    ours = load_state_dict(r3d18_checkpoint)
    reference = torch.load(r3d18_checkpoint, weights_only=True)

    assert list(ours) == list(reference)
    assert ours["stem.0.weight"].shape == (64, 3, 3, 7, 7)
    assert ours["fc.weight"].shape == (400, 512)
    assert ours["layer4.0.downsample.1.num_batches_tracked"].dtype == np.int64
    np.testing.assert_array_equal(ours["layer3.1.conv2.0.weight"], reference["layer3.1.conv2.0.weight"].numpy())
