"""Read a state dict without PyTorch: torch's zip checkpoints, `.safetensors` and `.npz`.

A `.pth` file is a pickle, and unpickling runs whatever the file names. The unpickler here
resolves only the handful of globals that rebuild tensors and ordered dicts; every other
global is refused before anything is called.
"""

from __future__ import annotations

import collections
import io
import json
import math
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

from modelzoo.core.errors import CheckpointError

# torch storage class -> numpy dtype of one element (as stored, little-endian).
_STORAGE_DTYPES = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # numpy has no bfloat16; widened to float32 below
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}

_LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C.to_bytes(10, "little")
_HELP = "expected a PyTorch zip checkpoint (.pth saved by torch >= 1.6), a .safetensors or an .npz file"


def load_state_dict(path) -> dict:
    """{name: numpy array} in the file's order; raises CheckpointError for anything unsafe or unreadable."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if not head:
        raise CheckpointError(f"{path} is empty; {_HELP}")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _load_zip(path)
    if len(head) >= 9 and head[8:9] == b"{":
        return _load_safetensors(path)
    if head.startswith(b"\x80\x02\x8a\x0a" + _LEGACY_TORCH_MAGIC[:4]):
        raise CheckpointError(
            f"{path} uses PyTorch's legacy (pre-1.6) format, which zoo does not read; "
            "re-save it with a recent torch (torch.save(torch.load(f), out)) or convert it to .safetensors"
        )
    raise CheckpointError(f"{path} is not a checkpoint zoo can read; {_HELP}")


# -- PyTorch zip ------------------------------------------------------------------------------


def _load_zip(path: Path) -> dict:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{path} is a truncated or corrupt zip ({exc}); download or copy it again") from None
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if not pickles:
            if names and all(n.endswith(".npy") for n in names):
                return _load_npz(path)
            raise CheckpointError(f"{path} is a zip file but not a PyTorch checkpoint (no data.pkl); {_HELP}")
        if len(pickles) > 1:
            raise CheckpointError(f"{path} holds {len(pickles)} pickles; a checkpoint has exactly one")
        prefix = pickles[0].rsplit("/", 1)[0]
        try:
            byteorder = archive.read(f"{prefix}/byteorder").decode("ascii").strip()
        except KeyError:
            byteorder = "little"  # files from before the record existed were all little-endian
        if byteorder not in ("little", "big"):
            raise CheckpointError(f"{path}: unknown byte order record {byteorder!r}")
        try:
            unpickler = _TorchUnpickler(archive, prefix, byteorder, path)
            obj = unpickler.load()
        except CheckpointError as exc:
            if str(path) in str(exc):
                raise
            raise CheckpointError(f"{path}: {exc}") from None
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path} is truncated or corrupt ({exc}); download or copy it again") from None
        except pickle.UnpicklingError as exc:
            raise CheckpointError(f"{path}: the pickle is malformed ({exc})") from None
        except Exception as exc:  # a crafted pickle can make allowed callables fail in many ways
            raise CheckpointError(
                f"{path}: the pickle does not describe a state dict ({type(exc).__name__}: {exc})"
            ) from None
    return _as_state_dict(obj, path)


class _StorageType:
    """Stands in for a torch storage class: it only carries the element dtype."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: np.dtype):
        self.name, self.dtype = name, dtype

    def __call__(self, *args, **kwargs):
        raise CheckpointError(f"the pickle calls torch.{self.name} directly, which a state dict never does")


class _TorchUnpickler(pickle.Unpickler):
    def __init__(self, archive: zipfile.ZipFile, prefix: str, byteorder: str, path: Path):
        super().__init__(_pickle_stream(archive, f"{prefix}/data.pkl", path))
        self._archive = archive
        self._prefix = prefix
        self._byteorder = byteorder
        self._path = path
        self._storages: dict = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        rebuild = _REBUILDERS.get((module, name))
        if rebuild is not None:
            # A fresh wrapper per lookup, so a BUILD opcode aimed at it cannot alter shared functions.
            return lambda *args: rebuild(*args)
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        raise CheckpointError(
            f"{self._path} refers to {module}.{name}, which a weights file never needs; "
            "refusing to load it, because unpickling it could run code. Use a plain state dict "
            "(torch.save(model.state_dict(), f)) or a .safetensors file"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError(f"{self._path}: unexpected persistent id {pid!r:.80} in the pickle")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise CheckpointError(f"{self._path}: storage of unsupported type {storage_type!r:.80}")
        key = str(key)
        cached = self._storages.get(key)
        if cached is None:
            cached = self._storages[key] = self._read_storage(key, storage_type, numel)
        return cached

    def _read_storage(self, key: str, storage_type: _StorageType, numel) -> _Storage:
        dtype = storage_type.dtype
        name = f"{self._prefix}/data/{key}"
        try:
            info = self._archive.getinfo(name)
        except KeyError:
            raise CheckpointError(f"{self._path} is missing tensor data {name}; the file is incomplete") from None
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise CheckpointError(f"{self._path}: {name} claims {info.file_size} bytes but stores {info.compress_size}")
        if not isinstance(numel, int) or numel < 0 or info.file_size != numel * dtype.itemsize:
            raise CheckpointError(
                f"{self._path}: {name} holds {info.file_size} bytes, expected {numel} x {dtype.itemsize}"
            )
        # A bytearray keeps the arrays writable without a second copy of the data.
        buffer = bytearray(info.file_size)
        with self._archive.open(info) as member:
            if member.readinto(buffer) != info.file_size:
                raise CheckpointError(f"{self._path}: {name} is truncated")
        if self._byteorder == "big":
            dtype = dtype.newbyteorder(">")
        return _Storage(
            np.frombuffer(buffer, dtype=dtype),
            swap=self._byteorder == "big",
            bf16=storage_type.name == "BFloat16Storage",
        )


class _Storage:
    """A storage read from the archive, plus what its raw elements still need to become values."""

    __slots__ = ("array", "swap", "bf16")

    def __init__(self, array: np.ndarray, swap: bool, bf16: bool):
        self.array, self.swap, self.bf16 = array, swap, bf16


def _pickle_stream(archive: zipfile.ZipFile, name: str, path: Path) -> io.BytesIO:
    """The data.pkl member, read fully: the pickle of a state dict is small."""
    try:
        return io.BytesIO(archive.read(name))
    except zipfile.BadZipFile as exc:
        raise CheckpointError(f"{path}: {name} is corrupt ({exc}); download or copy it again") from None


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_ignored):
    if not isinstance(storage, _Storage):
        raise CheckpointError("a tensor in the pickle does not point at a storage")
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)):
        raise CheckpointError("a tensor in the pickle has a malformed size or stride")
    if not all(isinstance(v, int) and v >= 0 for v in (storage_offset, *size, *stride)):
        raise CheckpointError("a tensor in the pickle has a negative or non-integer size, stride or offset")
    data = storage.array
    numel = math.prod(size)
    if numel:
        # Bounds are checked here because as_strided would otherwise read outside the buffer.
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= data.size:
            raise CheckpointError(
                f"a tensor of shape {list(size)} reaches element {last} of a storage of {data.size}; the file is corrupt"
            )
    if _is_contiguous(size, stride) and storage_offset == 0 and numel == data.size and not storage.swap:
        array = data.reshape(size)  # the common case: a view, no copy
    else:
        itemsize = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[storage_offset:] if numel else data[:0],
            shape=size,
            strides=tuple(s * itemsize for s in stride),
            writeable=False,
        )
        array = np.array(view, dtype=data.dtype.newbyteorder("="), order="C")
    if storage.bf16:
        array = _bf16_to_float32(array)
    return array


def _bf16_to_float32(raw: np.ndarray) -> np.ndarray:
    # bfloat16 is the upper half of a float32.
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _is_contiguous(size: tuple, stride: tuple) -> bool:
    expected = 1
    for n, s in zip(reversed(size), reversed(stride)):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *_state):
    return data


# The only callables a state-dict pickle gets; storage classes are handled by find_class.
_REBUILDERS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


def _as_state_dict(obj, path: Path) -> dict:
    """The tensors of a state dict, unwrapping a training checkpoint's {"state_dict": ...} if needed."""
    if isinstance(obj, dict) and obj and not all(isinstance(v, np.ndarray) for v in obj.values()):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, dict):
                obj = inner
                break
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors")
    state = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray) or value.dtype == object:
            raise CheckpointError(
                f"{path}: entry {key!r:.60} is a {type(value).__name__}, not a tensor; pass a plain state dict"
            )
        state[key] = value
    if not state:
        raise CheckpointError(f"{path} holds an empty state dict")
    return state


# -- safetensors ------------------------------------------------------------------------------

_SAFETENSORS_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}  # fmt: skip


def _load_safetensors(path: Path) -> dict:
    size = path.stat().st_size
    with open(path, "rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        if header_len > min(size - 8, 100 << 20):
            raise CheckpointError(f"{path} is not a valid safetensors file (header length {header_len})")
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path} is not a valid safetensors file ({exc})") from None
        buffer = bytearray(size - 8 - header_len)
        handle.readinto(buffer)
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a valid safetensors file (header is not an object)")
    state = {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        try:
            dtype = np.dtype(_SAFETENSORS_DTYPES[entry["dtype"]])
            shape = tuple(int(n) for n in entry["shape"])
            begin, end = (int(v) for v in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: tensor {key!r} has an unsupported or malformed header entry") from None
        if not 0 <= begin <= end <= len(buffer) or end - begin != math.prod(shape) * dtype.itemsize:
            raise CheckpointError(f"{path}: tensor {key!r} lies outside the file; it is truncated or corrupt")
        array = np.frombuffer(buffer, dtype=dtype, count=math.prod(shape), offset=begin).reshape(shape)
        if entry["dtype"] == "BF16":
            array = _bf16_to_float32(array)
        state[key] = array
    if not state:
        raise CheckpointError(f"{path} holds no tensors")
    return state


# -- npz ----------------------------------------------------------------------------------------


def _load_npz(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as archive:
            state = {key: archive[key] for key in archive.files}
    except ValueError as exc:
        raise CheckpointError(f"{path}: an array needs pickle to load, which zoo refuses ({exc})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"{path} is a truncated or corrupt .npz ({exc})") from None
    if not state:
        raise CheckpointError(f"{path} holds no arrays")
    return state
