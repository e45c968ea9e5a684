"""Hostile weights files: each is refused with a one-line CheckpointError by a process that stays small.

The files are built here, without torch: a small assembler writes the pickle opcodes torch.save
writes, and zip headers are patched the way a forger would patch them. Every hostile file is
loaded in a fresh process whose peak RSS (ru_maxrss) must stay under PEAK_LIMIT_MB.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np
import pytest

from modelzoo.core.artifacts.checkpoint import load_state_dict
from modelzoo.core.errors import CheckpointError

PEAK_LIMIT_MB = 300
BOMB_MIB = 512  # what a bomb inflates to: well over the limit, yet its deflate stream is ~0.5 MB

# -- a pickle assembler: the protocol-2 opcodes torch.save writes ----------------------------------


def _global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def _str(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(value: int) -> bytes:
    return pickle.dumps(value, protocol=2)[2:-1]  # BININT*/LONG1, without PROTO and STOP


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


_FLOAT_STORAGE = _global("torch", "FloatStorage")
_REBUILD = _global("torch._utils", "_rebuild_tensor_v2")
_TRUE = b"\x88"


def _storage(key: str, numel: int, storage_class: bytes = _FLOAT_STORAGE) -> bytes:
    """A BINPERSID reference to archive/data/<key>, as torch writes it."""
    return _tuple(_str("storage"), storage_class, _str(key), _str("cpu"), _int(numel)) + b"Q"


def _tensor(storage: bytes, size: tuple, stride: tuple, offset: int = 0, rebuild: bytes = _REBUILD) -> bytes:
    """rebuild(storage, offset, size, stride, False, OrderedDict())."""
    hooks = _global("collections", "OrderedDict") + b")R"
    sizes, strides = _tuple(*map(_int, size)), _tuple(*map(_int, stride))
    return rebuild + _tuple(storage, _int(offset), sizes, strides, b"\x89", hooks) + b"R"


def _build(obj: bytes, slots: dict) -> bytes:
    """`obj`, then BUILD with state (None, {slot: value}): the unpickler setattr()s each slot."""
    return obj + b"N}(" + b"".join(_str(k) + v for k, v in slots.items()) + b"u\x86b"


def _state_dict(entries: dict) -> bytes:
    return b"\x80\x02}(" + b"".join(_str(key) + value for key, value in entries.items()) + b"u."


def _torch_zip(path, payload: bytes, storages: dict, deflated=()):
    """A checkpoint laid out as torch.save lays it out, with `payload` as its data.pkl."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            method = zipfile.ZIP_DEFLATED if key in deflated else zipfile.ZIP_STORED
            archive.writestr(f"archive/data/{key}", raw, compress_type=method)
        archive.writestr("archive/version", "3\n")
    return path


# -- forging zip headers -----------------------------------------------------------------------------


def _patch_member(path, name: str, *, method=None, crc=None, compressed=None, size=None) -> None:
    """Rewrite a member's sizes, CRC or method in both its local and its central header, as a forger would."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    with zipfile.ZipFile(path) as archive:
        local = archive.getinfo(name).header_offset
    central = data.find(b"PK\x01\x02")
    while central >= 0 and data[central + 46 : central + 46 + len(encoded)] != encoded:
        central = data.find(b"PK\x01\x02", central + 4)
    assert central >= 0, f"no central header for {name}"
    # Offsets of (method, crc, compressed size, uncompressed size) in each header.
    for base, fields in ((local, (8, 14, 18, 22)), (central, (10, 16, 20, 24))):
        for offset, fmt, value in zip(fields, ("<H", "<I", "<I", "<I"), (method, crc, compressed, size)):
            if value is not None:
                struct.pack_into(fmt, data, base + offset, value)
    path.write_bytes(bytes(data))


def _write_bomb(path, name: str, prefix: bytes, zeros_mib: int, others: dict) -> None:
    """A zip whose member `name` inflates to `prefix` and `zeros_mib` MiB of zeros, never held in memory here."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    # After a full flush the compressor starts afresh, so every MiB of zeros compresses to the same block.
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    stream = head + block * zeros_mib + compressor.flush()
    crc = zlib.crc32(prefix)
    for _ in range(zeros_mib):
        crc = zlib.crc32(chunk, crc)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for member, raw in {name: stream, **others}.items():
            archive.writestr(member, raw)
    _patch_member(path, name, method=zipfile.ZIP_DEFLATED, crc=crc, size=len(prefix) + (zeros_mib << 20))
    with zipfile.ZipFile(path) as archive, archive.open(name) as member:  # the bomb is real
        assert member.read(len(prefix) + (1 << 20)) == prefix + chunk


# -- loading in a child process, measuring its peak --------------------------------------------------

_LOADER = r"""
import json, resource, sys
from modelzoo.core.artifacts.checkpoint import load_state_dict
from modelzoo.core.errors import CheckpointError
try:
    outcome = {"loaded": sorted(load_state_dict(sys.argv[1]))}
except CheckpointError as exc:
    outcome = {"error": str(exc)}
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
outcome["peak_mb"] = peak / (2**20 if sys.platform == "darwin" else 2**10)
print(json.dumps(outcome))
"""
# The loader runs as a grandchild: Linux carries the peak of the process that exec()s into
# ru_maxrss, so a child exec'd straight from pytest (torch loaded) would report pytest's peak.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.run([sys.executable, *sys.argv[1:]]).returncode)"


def _load_in_child(path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, "-c", _LOADER, str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"the loader raised something other than CheckpointError:\n{done.stderr}"
    return json.loads(done.stdout)


def _assert_refused(path, match: str, *, in_child: bool = True) -> str:
    """The file is refused with a one-line CheckpointError; in a child process, under the peak limit too."""
    if in_child:
        outcome = _load_in_child(path)
        assert "error" in outcome, f"the hostile file loaded: {outcome}"
        message = outcome["error"]
        assert outcome["peak_mb"] < PEAK_LIMIT_MB, f"peak RSS {outcome['peak_mb']:.0f} MB while refusing: {message}"
    else:  # for variants of a measured attack that are small by construction: a child costs ~0.4 s
        with pytest.raises(CheckpointError) as caught:
            load_state_dict(path)
        message = str(caught.value)
    assert re.search(match, message), message
    assert "\n" not in message
    return message


def test_peak_memory_meter_sees_a_large_load(tmp_path):
    """The meter is not vacuous: a legitimate tensor larger than the limit shows up above it."""
    nbytes = (PEAK_LIMIT_MB + 40) << 20
    header = json.dumps({"w": {"dtype": "U8", "shape": [nbytes], "data_offsets": [0, nbytes]}}).encode()
    path = tmp_path / "large.safetensors"
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + nbytes)  # sparse: nothing written to disk

    outcome = _load_in_child(path)

    assert outcome["loaded"] == ["w"]
    assert outcome["peak_mb"] > PEAK_LIMIT_MB


def test_hand_built_checkpoint_loads(tmp_path):
    """The assembler writes what torch.save writes: a benign file of its making loads, views and all."""
    values = np.arange(12, dtype="<f4")
    payload = _state_dict(
        {
            "w": _tensor(_storage("0", 12), (3, 4), (4, 1)),
            "t": _tensor(_storage("0", 12), (4, 3), (1, 4)),
            "s": _tensor(_storage("0", 12), (2, 2), (6, 2), offset=1),
            "row": _tensor(_storage("0", 12), (1, 4), (999, 1), offset=8),  # a one-row dim's stride is moot
        }
    )
    path = _torch_zip(tmp_path / "ok.pth", payload, {"0": values.tobytes()})

    state = load_state_dict(path)

    np.testing.assert_array_equal(state["w"], values.reshape(3, 4))
    np.testing.assert_array_equal(state["t"], values.reshape(3, 4).T)
    np.testing.assert_array_equal(state["s"], [[1, 3], [7, 9]])
    np.testing.assert_array_equal(state["row"], [[8, 9, 10, 11]])
    torch = pytest.importorskip("torch")
    for key, tensor in torch.load(path, weights_only=True).items():
        np.testing.assert_array_equal(state[key], tensor.numpy(), err_msg=key)


# -- tensor views ----------------------------------------------------------------------------------


def test_zero_stride_views_are_refused(tmp_path):
    # Four 16384x16384 views of one 4-byte storage: 4 GiB once copied, from a file of about a kilobyte.
    views = {f"w{i}": _tensor(_storage("0", 1), (16384, 16384), (0, 0)) for i in range(4)}
    path = _torch_zip(tmp_path / "zero_stride.pth", _state_dict(views), {"0": np.float32(1).tobytes()})
    assert path.stat().st_size < 2000

    _assert_refused(path, r"zero or overlapping strides \[0, 0\]")


@pytest.mark.parametrize(
    "size, stride",
    [((1000, 1000), (1, 1)), ((4, 4), (1, 1)), ((3, 3), (2, 1)), ((2, 2, 2), (4, 1, 1)), ((5, 3), (1, 0))],
)
def test_overlapping_strides_are_refused(tmp_path, size, stride):
    payload = _state_dict({"w": _tensor(_storage("0", 2000), size, stride)})
    path = _torch_zip(tmp_path / "overlap.pth", payload, {"0": bytes(8000)})

    _assert_refused(path, "zero or overlapping strides", in_child=size == (1000, 1000))


# -- zip headers and bombs ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["stored", "deflated"])
def test_forged_member_size_is_refused_before_allocating(tmp_path, method):
    # The header claims 2 GiB for a 4-byte storage, and the pickle agrees with the header.
    payload = _state_dict({"w": _tensor(_storage("0", 1 << 29), (1 << 29,), (1,))})
    path = tmp_path / "forged.pth"
    _torch_zip(path, payload, {"0": bytes(4)}, deflated={"0"} if method == "deflated" else ())
    forged = {"compressed": 2 << 30} if method == "stored" else {}
    _patch_member(path, "archive/data/0", size=2 << 30, **forged)
    assert path.stat().st_size < 1000

    _assert_refused(path, "file is only .* bytes long" if method == "stored" else "would inflate")


def test_zip_bomb_pickle_is_refused(tmp_path):
    # A valid pickle followed by 512 MiB of zeros: the unpickler stops at STOP, the inflater would not.
    payload = _state_dict({"w": _tensor(_storage("0", 1), (1,), (1,))})
    path = tmp_path / "bomb.pth"
    _write_bomb(path, "archive/data.pkl", payload, BOMB_MIB, {"archive/data/0": bytes(4)})

    _assert_refused(path, "data.pkl would inflate")


def test_zip_bomb_storage_is_refused(tmp_path):
    numel = (BOMB_MIB << 20) // 4
    payload = _state_dict({"w": _tensor(_storage("0", numel), (numel,), (1,))})
    path = tmp_path / "bomb.pth"
    _write_bomb(path, "archive/data/0", b"", BOMB_MIB, {"archive/data.pkl": payload})

    _assert_refused(path, "data/0 would inflate")


def test_oversized_pickle_is_refused(tmp_path):
    payload = _state_dict({"w": _tensor(_storage("0", 1), (1,), (1,))}) + bytes(9 << 20)
    path = _torch_zip(tmp_path / "big_pickle.pth", payload, {"0": bytes(4)})

    _assert_refused(path, r"data.pkl is 9.0 MiB, over the 8.0 MiB")


@pytest.mark.parametrize(
    "payload, match",
    [
        # One LONG_BINPUT to slot 2**26 makes the unpickler zero a 1 GiB memo table.
        (b"\x80\x02Nr" + struct.pack("<I", 1 << 26) + b".", "memo slot 67108864"),
        # Empty sets cost ~220 bytes of memory per byte of pickle.
        (b"\x80\x04](" + b"\x8f" * (2 << 20) + b"e.", "EMPTY_SET"),
        # A dict per byte (~70 bytes of memory each): the opcode count caps it.
        (b"\x80\x02](" + b"}" * (4 << 20) + b"e.", "more than 1048576 opcodes"),
    ],
    ids=["memo-slot", "set-flood", "dict-flood"],
)
def test_pickle_that_outgrows_its_size_is_refused(tmp_path, payload, match):
    path = _torch_zip(tmp_path / "flood.pth", payload, {})

    _assert_refused(path, match)


def test_truncated_pickle_is_refused(tmp_path):
    path = _torch_zip(tmp_path / "cut_pickle.pth", b"\x80\x02}(", {})

    _assert_refused(path, "the pickle is malformed", in_child=False)


# -- the unpickler's helper objects are immutable --------------------------------------------------

_BUILD_ATTACKS = {
    # Each aims a BUILD at an object zoo hands the pickle; obeyed, the first three would change how bytes are read.
    "storage-class-dtype": _tensor(_storage("0", 4, _build(_FLOAT_STORAGE, {"dtype": _str("O")})), (4,), (1,)),
    "storage-class-name": _tensor(
        _storage("0", 4, _build(_FLOAT_STORAGE, {"name": _str("BFloat16Storage")})), (4,), (1,)
    ),
    "storage": _tensor(_build(_storage("0", 4), {"bf16": _TRUE}), (4,), (1,)),
    "rebuilder": _tensor(
        _storage("0", 4), (4,), (1,), rebuild=_build(_REBUILD, {"function": _global("collections", "OrderedDict")})
    ),
    "tensor": _build(_tensor(_storage("0", 4), (4,), (1,)), {"array": _str("x")}),
}


@pytest.mark.parametrize("target", list(_BUILD_ATTACKS))
def test_build_opcode_cannot_modify_helpers(tmp_path, target):
    path = _torch_zip(tmp_path / "build.pth", _state_dict({"w": _BUILD_ATTACKS[target]}), {"0": bytes(16)})

    # The attack is measured; the other targets are the same few hundred bytes.
    _assert_refused(path, "tries to modify zoo's", in_child=target == "storage-class-dtype")


def test_persistent_id_accepts_only_the_storage_table(tmp_path):
    # A tuple that merely looks like a storage class is not one.
    fake_class = _tuple(_str("FloatStorage"), _str("O"))
    payload = _state_dict({"w": _tensor(_storage("0", 4, fake_class), (4,), (1,))})
    path = _torch_zip(tmp_path / "fake_type.pth", payload, {"0": bytes(16)})

    with pytest.raises(CheckpointError, match="storage of unsupported type"):
        load_state_dict(path)


# -- safetensors -----------------------------------------------------------------------------------


def _safetensors(path, header: dict, data: bytes, header_len=None):
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded) if header_len is None else header_len) + encoded + data)
    return path


@pytest.mark.parametrize("shape", [[-2, -2], [-4, -1], [4, -1, -1]])
def test_safetensors_negative_dims_are_refused(tmp_path, shape):
    header = {"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 16]}}
    path = _safetensors(tmp_path / "negative.safetensors", header, bytes(16))

    _assert_refused(path, "must be non-negative integers")


@pytest.mark.parametrize(
    "shape, offsets, dtype, match",
    [
        (["2", "2"], [0, 16], "F32", "must be non-negative integers"),
        ([True, 4], [0, 16], "F32", "must be non-negative integers"),
        ([2.0, 2], [0, 16], "F32", "must be non-negative integers"),
        ([4], [0, 16], "O", "has dtype 'O', which zoo does not read"),
        ([4], [0, 16], ["F32"], "which zoo does not read"),
        ([4], ["0", "16"], "F32", "malformed data_offsets"),
        ([1 << 40], [0, 1 << 42], "F32", "lies outside the file"),
    ],
)
def test_safetensors_forged_entries_are_refused(tmp_path, shape, offsets, dtype, match):
    header = {"w": {"dtype": dtype, "shape": shape, "data_offsets": offsets}}
    path = _safetensors(tmp_path / "bad.safetensors", header, bytes(16))

    _assert_refused(path, match, in_child=False)


def test_safetensors_overlapping_tensors_are_refused(tmp_path):
    header = {
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
    }
    path = _safetensors(tmp_path / "overlap.safetensors", header, bytes(24))

    _assert_refused(path, "'a' and 'b' overlap", in_child=False)


@pytest.mark.parametrize("header_len", [1 << 40, 9 << 20])
def test_safetensors_header_length_is_capped(tmp_path, header_len):
    header = {"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}
    path = _safetensors(tmp_path / "long_header.safetensors", header, bytes(10 << 20), header_len=header_len)

    _assert_refused(path, f"header length {header_len}")


# -- npz -------------------------------------------------------------------------------------------


def _npy(shape, dtype="<f4", data=b"") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + data


@pytest.mark.parametrize(
    "member, in_child",
    [
        (_npy((1000,), data=bytes(4000))[:-100], True),  # data cut short
        (_npy((1 << 40,), data=bytes(16)), True),  # a 4 TiB array from 16 bytes
        (_npy((1000,))[:40], False),  # header cut short
        (b"not an npy file at all", False),
    ],
    ids=["data", "huge-shape", "header", "garbage"],
)
def test_truncated_npz_is_refused(tmp_path, member, in_child):
    path = tmp_path / "truncated.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", member)

    message = _assert_refused(path, "truncated or corrupt", in_child=in_child)
    assert "pickle" not in message


def test_cut_npz_file_is_refused(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, w=np.arange(1000, dtype=np.float32))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:-30])

    _assert_refused(cut, "truncated or corrupt")


def test_compressed_npz_of_zeros_loads(tmp_path):
    # A zero-initialised tensor deflates ~1000:1, far past the bomb ratio, yet is legitimate.
    arrays = {"head.bias": np.zeros(3 << 20, dtype=np.float32), "w": np.arange(12, dtype=np.float32)}
    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, **arrays)

    loaded = load_state_dict(path)

    for key, array in arrays.items():
        np.testing.assert_array_equal(loaded[key], array)


def test_npz_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.npz"
    _write_bomb(path, "w.npy", _npy((BOMB_MIB << 20,), dtype="|u1"), BOMB_MIB, {})

    _assert_refused(path, "w.npy would inflate")


# -- max_bytes -------------------------------------------------------------------------------------


def _pth_with(values: np.ndarray, path):
    payload = _state_dict({"w": _tensor(_storage("0", values.size), values.shape, (values.shape[1], 1))})
    return _torch_zip(path, payload, {"0": values.astype("<f4").tobytes()})


def _safetensors_with(values: np.ndarray, path):
    header = {"w": {"dtype": "F32", "shape": list(values.shape), "data_offsets": [0, values.nbytes]}}
    return _safetensors(path, header, values.astype("<f4").tobytes())


def _npz_with(values: np.ndarray, path):
    np.savez(path, w=values)
    return path


@pytest.mark.parametrize(
    "writer, suffix", [(_pth_with, ".pth"), (_safetensors_with, ".safetensors"), (_npz_with, ".npz")]
)
def test_max_bytes_caps_the_tensors(tmp_path, writer, suffix):
    values = np.arange(1024, dtype=np.float32).reshape(32, 32)
    path = writer(values, tmp_path / f"w{suffix}")

    with pytest.raises(CheckpointError, match=r"needs at least 4096 bytes .* over the 4095 bytes limit \(max_bytes\)"):
        load_state_dict(path, max_bytes=4095)
    np.testing.assert_array_equal(load_state_dict(path, max_bytes=4096)["w"], values)


def test_max_bytes_counts_copies_of_strided_views(tmp_path):
    values = np.arange(1024, dtype="<f4")
    payload = _state_dict({"t": _tensor(_storage("0", 1024), (32, 32), (1, 32))})  # a transpose is copied
    path = _torch_zip(tmp_path / "t.pth", payload, {"0": values.tobytes()})

    with pytest.raises(CheckpointError, match="max_bytes"):
        load_state_dict(path, max_bytes=8191)
    np.testing.assert_array_equal(load_state_dict(path, max_bytes=8192)["t"], values.reshape(32, 32).T)
