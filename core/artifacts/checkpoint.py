"""Read a state dict without PyTorch: torch's zip checkpoints, `.safetensors` and `.npz`.

A `.pth` file is a pickle, and unpickling runs whatever the file names. The unpickler here
resolves only the handful of globals that rebuild tensors and ordered dicts; every other
global is refused before anything is called. Every size a file claims (zip members, the
pickle, tensor shapes and strides, safetensors offsets, .npy headers) is checked against the
file's real length and `max_bytes` before memory is allocated for it.
"""

from __future__ import annotations

import collections
import io
import json
import math
import os
import pickle
import pickletools
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from modelzoo.core.errors import CheckpointError

# What one file's tensors may take in memory, unless the caller passes its own max_bytes.
DEFAULT_MAX_BYTES = 2 << 30

# A state dict's pickle holds ~110 bytes and ~32 opcodes per tensor: these allow tens of
# thousands of tensors, and keep a pickle from building more than ~100 MB of Python objects.
_MAX_PICKLE_BYTES = 8 << 20
_MAX_PICKLE_OPS = 1 << 20
# Weights barely compress, though an all-zero tensor does ~1000:1: members up to the slack may
# inflate freely (max_bytes still bounds them all), larger ones no further than the ratio.
_MAX_COMPRESSION_RATIO = 100
_COMPRESSION_SLACK = 16 << 20
_MAX_SAFETENSORS_HEADER = 8 << 20
_MAX_NDIM = 32
_MAX_EMPTY_TENSOR_EXTENT = 1 << 48  # the product of an empty tensor's non-zero dims; numpy's own limit is near 2**63

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


def load_state_dict(path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """{name: numpy array} in the file's order; raises CheckpointError for anything unsafe or unreadable.

    `max_bytes` caps the memory the tensors may take (storages read, plus copies of strided views).
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if not head:
        raise CheckpointError(f"{path} is empty; {_HELP}")
    budget = _ByteBudget(path, max_bytes)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _load_zip(path, budget)
    if len(head) >= 9 and head[8:9] == b"{":
        return _load_safetensors(path, budget)
    if head.startswith(b"\x80\x02\x8a\x0a" + _LEGACY_TORCH_MAGIC[:4]):
        raise CheckpointError(
            f"{path} uses PyTorch's legacy (pre-1.6) format, which zoo does not read; "
            "re-save it with a recent torch (torch.save(torch.load(f), out)) or convert it to .safetensors"
        )
    raise CheckpointError(f"{path} is not a checkpoint zoo can read; {_HELP}")


class _ByteBudget:
    """The bytes one file's tensors may still take; charged before each allocation, so a forged size fails first."""

    __slots__ = ("path", "limit", "spent")

    def __init__(self, path: Path, limit: int):
        self.path, self.limit, self.spent = path, limit, 0

    def charge(self, nbytes: int) -> None:
        if self.spent + nbytes > self.limit:
            raise CheckpointError(
                f"{self.path} needs at least {_bytes_text(self.spent + nbytes)} for its tensors, over the "
                f"{_bytes_text(self.limit)} limit (max_bytes); a forged file or a far larger model than expected: "
                "check where it came from, or load it with a larger max_bytes if you trust it"
            )
        self.spent += nbytes


def _bytes_text(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} bytes"


# -- zip members --------------------------------------------------------------------------------


def _check_member(path: Path, info: zipfile.ZipInfo, archive_size: int) -> None:
    """Refuse a member whose header claims more than the archive can hold, before any of it is read."""
    name = info.filename
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        # bzip2 and lzma members are inflated by zipfile without an output bound.
        raise CheckpointError(
            f"{path}: {name} uses zip compression method {info.compress_type}, which zoo does not read; "
            "re-save the file uncompressed"
        )
    if info.header_offset + info.compress_size > archive_size:
        raise CheckpointError(
            f"{path}: {name} claims {info.compress_size} bytes but the file is only {archive_size} bytes long; "
            "it is truncated or forged, so download or copy it again"
        )
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise CheckpointError(
            f"{path}: {name} claims {info.file_size} bytes but stores {info.compress_size}; "
            "the file is corrupt or forged, so download or copy it again"
        )
    if info.file_size > _MAX_COMPRESSION_RATIO * info.compress_size + _COMPRESSION_SLACK:
        raise CheckpointError(
            f"{path}: {name} would inflate {info.compress_size} bytes to {info.file_size}, more than the "
            f"{_MAX_COMPRESSION_RATIO}:1 weights ever compress; a zip bomb or a corrupt file (if it is yours, "
            "re-save it uncompressed)"
        )


# -- PyTorch zip ------------------------------------------------------------------------------


def _load_zip(path: Path, budget: _ByteBudget) -> dict:
    with open(path, "rb") as handle:
        archive_size = os.fstat(handle.fileno()).st_size
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise CheckpointError(f"{path} is a truncated or corrupt zip ({exc}); download or copy it again") from None
        with archive:
            return _load_torch_zip(path, archive, archive_size, budget)


def _load_torch_zip(path: Path, archive: zipfile.ZipFile, archive_size: int, budget: _ByteBudget) -> dict:
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
    if not pickles:
        if names and all(n.endswith(".npy") for n in names):
            return _load_npz(path, archive, archive_size, budget)
        raise CheckpointError(f"{path} is a zip file but not a PyTorch checkpoint (no data.pkl); {_HELP}")
    if len(pickles) > 1:
        raise CheckpointError(f"{path} holds {len(pickles)} pickles; a checkpoint has exactly one")
    prefix = pickles[0].rsplit("/", 1)[0]
    try:
        byteorder = _read_byteorder(path, archive, prefix, archive_size)
        data = _read_pickle(path, archive, f"{prefix}/data.pkl", archive_size)
        _check_pickle(data)
        unpickler = _TorchUnpickler(data, archive, prefix, byteorder, path, archive_size, budget)
        obj = unpickler.load()
    except CheckpointError as exc:
        if str(path) in str(exc):
            raise
        raise CheckpointError(f"{path}: {exc}") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error) as exc:
        raise CheckpointError(f"{path} is truncated or corrupt ({exc}); download or copy it again") from None
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: the pickle is malformed ({exc})") from None
    except Exception as exc:  # a crafted pickle can make allowed callables fail in many ways
        raise CheckpointError(
            f"{path}: the pickle does not describe a state dict ({type(exc).__name__}: {exc})"
        ) from None
    return _as_state_dict(obj, path)


def _read_byteorder(path: Path, archive: zipfile.ZipFile, prefix: str, archive_size: int) -> str:
    try:
        info = archive.getinfo(f"{prefix}/byteorder")
    except KeyError:
        return "little"  # files from before the record existed were all little-endian
    _check_member(path, info, archive_size)
    with archive.open(info) as member:
        byteorder = member.read(16).decode("ascii", "replace").strip()
    if byteorder not in ("little", "big"):
        raise CheckpointError(f"{path}: unknown byte order record {byteorder!r}; the file is corrupt")
    return byteorder


def _read_pickle(path: Path, archive: zipfile.ZipFile, name: str, archive_size: int) -> bytes:
    """The data.pkl member, read whole once its size is known to be a state dict's."""
    info = archive.getinfo(name)
    _check_member(path, info, archive_size)
    if info.file_size > _MAX_PICKLE_BYTES:
        raise CheckpointError(
            f"{path}: {name} is {_bytes_text(info.file_size)}, over the {_bytes_text(_MAX_PICKLE_BYTES)} a state "
            "dict's pickle needs; re-save just the state dict (torch.save(model.state_dict(), f)) or convert it "
            "to .safetensors"
        )
    with archive.open(info) as member:
        return member.read(_MAX_PICKLE_BYTES)


# Opcodes a state dict never uses: sets cost ~200 bytes per pickle byte, out-of-band buffers
# reserve memory for a size the stream merely claims.
_REFUSED_OPCODES = frozenset({"EMPTY_SET", "ADDITEMS", "FROZENSET", "BYTEARRAY8", "NEXT_BUFFER", "READONLY_BUFFER"})
_MEMO_STORES = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


def _check_pickle(data: bytes) -> None:
    """Refuse, before anything is built, a pickle that would take memory out of proportion to its size."""
    try:
        for count, (opcode, arg, _position) in enumerate(pickletools.genops(data), 1):
            if count > _MAX_PICKLE_OPS:
                raise CheckpointError(
                    f"the pickle has more than {_MAX_PICKLE_OPS} opcodes, far more than a state dict needs; "
                    "re-save just the state dict (torch.save(model.state_dict(), f)) or convert it to .safetensors"
                )
            if opcode.name in _REFUSED_OPCODES:
                raise CheckpointError(
                    f"the pickle uses the {opcode.name} opcode, which a state dict never needs; "
                    "the file is forged or not a weights file, so get the checkpoint from its original source"
                )
            # The unpickler sizes its memo table by the largest index: one opcode could reserve gigabytes.
            if opcode.name in _MEMO_STORES and not 0 <= arg < _MAX_PICKLE_OPS:
                raise CheckpointError(
                    f"the pickle stores to memo slot {arg}, beyond any state dict's; "
                    "the file is forged or corrupt, so get the checkpoint from its original source"
                )
    except ValueError as exc:  # genops' report of a truncated or malformed stream
        raise CheckpointError(f"the pickle is malformed ({exc}); download or copy the file again") from None


class _Frozen:
    """Base of every object the unpickler hands to the pickle: fixed once built, so no opcode can alter it."""

    __slots__ = ()
    _what = "helper object"

    def __init__(self, **fields):
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def _refuse(self, *_args):
        raise CheckpointError(
            f"the pickle tries to modify zoo's {self._what} (a BUILD opcode), which a state dict never does; "
            "the file is forged, so get the checkpoint from its original source"
        )

    # BUILD calls __setstate__ when there is one, else sets attributes: both refuse.
    __setstate__ = __setattr__ = __delattr__ = _refuse


class _StorageType(_Frozen):
    """Stands in for a torch storage class: its name and the dtype of one element."""

    __slots__ = ("name", "dtype")
    _what = "storage class"

    def __call__(self, *args, **kwargs):
        raise CheckpointError(f"the pickle calls torch.{self.name} directly, which a state dict never does")


class _Rebuilder(_Frozen):
    """Stands in for one of torch's tensor-rebuilding functions."""

    __slots__ = ("name", "function")
    _what = "tensor rebuilder"

    def __call__(self, *args):
        return self.function(*args)


class _Storage(_Frozen):
    """A storage read from the archive, plus what its raw elements still need to become values."""

    __slots__ = ("array", "swap", "bf16", "budget")
    _what = "storage"


class _Tensor(_Frozen):
    """A rebuilt tensor; unwrapped to its array only once the whole pickle is loaded."""

    __slots__ = ("array",)
    _what = "tensor"


# The only storage types a pickle can name: persistent_load accepts exactly these objects.
_STORAGE_TYPES = {name: _StorageType(name=name, dtype=dtype) for name, dtype in _STORAGE_DTYPES.items()}


class _TorchUnpickler(pickle.Unpickler):
    def __init__(
        self,
        data: bytes,
        archive: zipfile.ZipFile,
        prefix: str,
        byteorder: str,
        path: Path,
        archive_size: int,
        budget: _ByteBudget,
    ):
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix
        self._byteorder = byteorder
        self._path = path
        self._archive_size = archive_size
        self._budget = budget
        self._storages: dict = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        rebuilder = _REBUILDERS.get((module, name))
        if rebuilder is not None:
            return rebuilder
        if module == "torch" and name in _STORAGE_TYPES:
            return _STORAGE_TYPES[name]
        raise CheckpointError(
            f"{self._path} refers to {module}.{name}, which a weights file never needs; "
            "refusing to load it, because unpickling it could run code. Use a plain state dict "
            "(torch.save(model.state_dict(), f)) or a .safetensors file"
        )

    def persistent_load(self, pid):
        if not (type(pid) is tuple and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError(f"unexpected persistent id {pid!r:.80} in the pickle")
        _, storage_type, key, _location, numel = pid
        if not (isinstance(storage_type, _StorageType) and _STORAGE_TYPES.get(storage_type.name) is storage_type):
            raise CheckpointError(f"storage of unsupported type {storage_type!r:.80}")
        if type(key) is not str or len(key) > 64:
            raise CheckpointError(f"storage key {key!r:.80} is not a torch storage key; the file is corrupt")
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
        _check_member(self._path, info, self._archive_size)
        if type(numel) is not int or numel < 0 or info.file_size != numel * dtype.itemsize:
            raise CheckpointError(
                f"{self._path}: {name} holds {info.file_size} bytes, expected {numel!r:.40} x {dtype.itemsize}"
            )
        self._budget.charge(info.file_size)
        # A bytearray keeps the arrays writable without a second copy of the data.
        buffer = bytearray(info.file_size)
        with self._archive.open(info) as member:
            if _read_into(member, buffer) != info.file_size:
                raise CheckpointError(f"{self._path}: {name} is truncated; download or copy the file again")
        if self._byteorder == "big":
            dtype = dtype.newbyteorder(">")
        return _Storage(
            array=np.frombuffer(buffer, dtype=dtype),
            swap=self._byteorder == "big",
            bf16=storage_type.name == "BFloat16Storage",
            budget=self._budget,
        )


def _read_into(stream, buffer: bytearray, chunk: int = 16 << 20) -> int:
    """Fill `buffer` from `stream` a chunk at a time: a zip member's readinto would hold a whole second copy."""
    view, filled = memoryview(buffer), 0
    while filled < len(buffer):
        got = stream.readinto(view[filled : filled + chunk])
        if not got:
            break
        filled += got
    return filled


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_ignored):
    if not isinstance(storage, _Storage):
        raise CheckpointError("a tensor in the pickle does not point at a storage")
    if not (type(size) is tuple and type(stride) is tuple and len(size) == len(stride) <= _MAX_NDIM):
        raise CheckpointError("a tensor in the pickle has a malformed size or stride")
    if not all(type(v) is int and v >= 0 for v in (storage_offset, *size, *stride)):
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
        # Distinct elements also bound the copy below by the storage's real size.
        if _overlaps(size, stride):
            raise CheckpointError(
                f"a tensor of shape {list(size)} has zero or overlapping strides {list(stride)}, which saved weights "
                "never have; the file is forged or corrupt (if it is yours, re-save it with contiguous tensors)"
            )
    elif math.prod(n for n in size if n) > _MAX_EMPTY_TENSOR_EXTENT:
        raise CheckpointError(
            f"an empty tensor in the pickle has an impossible shape {list(size)}; the file is corrupt"
        )
    if numel == data.size and storage_offset == 0 and _is_contiguous(size, stride) and not storage.swap:
        array = data.reshape(size)  # the common case: a view, no copy
    else:
        storage.budget.charge(numel * data.dtype.itemsize)
        itemsize = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[storage_offset:] if numel else data[:0],
            shape=size,
            # A dimension of one element never steps, whatever stride it was saved with.
            strides=tuple(s * itemsize if n > 1 else 0 for n, s in zip(size, stride)),
            writeable=False,
        )
        array = np.array(view, dtype=data.dtype.newbyteorder("="), order="C")
    if storage.bf16:
        storage.budget.charge(numel * 4)
        array = _bf16_to_float32(array)
    return _Tensor(array=array)


def _overlaps(size: tuple, stride: tuple) -> bool:
    """Whether two indices could reach one element: each stride, smallest first, must clear the span below it."""
    span = 0  # the furthest element the smaller-stride dimensions reach
    for s, n in sorted((s, n) for n, s in zip(size, stride) if n > 1):
        if s <= span:
            return True
        span += (n - 1) * s
    return False


def _bf16_to_float32(raw: np.ndarray) -> np.ndarray:
    # bfloat16 is the upper half of a float32.
    widened = raw.astype(np.uint32)
    widened <<= 16
    return widened.view(np.float32)


def _is_contiguous(size: tuple, stride: tuple) -> bool:
    expected = 1
    for n, s in zip(reversed(size), reversed(stride)):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *_state):
    if not isinstance(data, _Tensor):
        raise CheckpointError("a parameter in the pickle does not wrap a tensor")
    return data


# The only callables a state-dict pickle gets; storage classes are handled by find_class.
_REBUILDERS = {
    ("torch._utils", name): _Rebuilder(name=name, function=function)
    for name, function in (
        ("_rebuild_tensor_v2", _rebuild_tensor_v2),
        ("_rebuild_parameter", _rebuild_parameter),
        ("_rebuild_parameter_with_state", _rebuild_parameter),
    )
}


def _as_state_dict(obj, path: Path) -> dict:
    """The tensors of a state dict, unwrapping a training checkpoint's {"state_dict": ...} if needed."""
    if isinstance(obj, dict) and obj and not all(isinstance(v, _Tensor) for v in obj.values()):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, dict):
                obj = inner
                break
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors")
    state = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, _Tensor):
            raise CheckpointError(
                f"{path}: entry {key!r:.60} is a {type(value).__name__}, not a tensor; pass a plain state dict"
            )
        state[key] = value.array
    if not state:
        raise CheckpointError(f"{path} holds an empty state dict")
    return state


# -- safetensors ------------------------------------------------------------------------------

_SAFETENSORS_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}  # fmt: skip


def _load_safetensors(path: Path, budget: _ByteBudget) -> dict:
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        (header_len,) = struct.unpack("<Q", handle.read(8))
        if header_len > min(size - 8, _MAX_SAFETENSORS_HEADER):
            raise CheckpointError(
                f"{path} is not a valid safetensors file (header length {header_len}, the file has {size} bytes and "
                f"zoo reads headers up to {_bytes_text(_MAX_SAFETENSORS_HEADER)}); download or copy it again"
            )
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise CheckpointError(f"{path} is not a valid safetensors file ({exc})") from None
        if not isinstance(header, dict):
            raise CheckpointError(f"{path} is not a valid safetensors file (header is not an object)")
        entries = _safetensors_entries(path, header, size - 8 - header_len)
        # Only the bytes the tensors use are read; the header has shown they lie within the file.
        data_len = max((end for *_, end in entries), default=0)
        budget.charge(data_len)
        buffer = bytearray(data_len)
        if _read_into(handle, buffer) != data_len:
            raise CheckpointError(f"{path} is truncated; download or copy it again")
    state = {}
    for key, dtype_name, shape, begin, end in entries:
        dtype = np.dtype(_SAFETENSORS_DTYPES[dtype_name])
        array = np.frombuffer(buffer, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=begin).reshape(shape)
        if dtype_name == "BF16":
            budget.charge(array.size * 4)
            array = _bf16_to_float32(array)
        state[key] = array
    if not state:
        raise CheckpointError(f"{path} holds no tensors")
    return state


def _safetensors_entries(path: Path, header: dict, data_len: int) -> list:
    """(name, dtype, shape, begin, end) of each tensor, every field checked against the data that follows."""
    entries = []
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise CheckpointError(f"{path}: tensor {key!r:.60} has a malformed header entry; the file is corrupt")
        dtype_name, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not (isinstance(dtype_name, str) and dtype_name in _SAFETENSORS_DTYPES):
            raise CheckpointError(
                f"{path}: tensor {key!r:.60} has dtype {dtype_name!r:.40}, which zoo does not read "
                f"(it reads {', '.join(_SAFETENSORS_DTYPES)}); convert the tensor to one of those"
            )
        if not (type(shape) is list and len(shape) <= _MAX_NDIM and all(type(n) is int and n >= 0 for n in shape)):
            raise CheckpointError(
                f"{path}: tensor {key!r:.60} has shape {shape!r:.60}; dimensions must be non-negative integers, "
                "so the file is corrupt or forged"
            )
        if not (type(offsets) is list and len(offsets) == 2 and all(type(v) is int for v in offsets)):
            raise CheckpointError(f"{path}: tensor {key!r:.60} has malformed data_offsets {offsets!r:.60}")
        begin, end = offsets
        itemsize = np.dtype(_SAFETENSORS_DTYPES[dtype_name]).itemsize
        if not 0 <= begin <= end <= data_len or end - begin != math.prod(shape) * itemsize:
            raise CheckpointError(f"{path}: tensor {key!r:.60} lies outside the file; it is truncated or corrupt")
        entries.append((key, dtype_name, tuple(shape), begin, end))
    # Tensors may not share bytes: converters fold BatchNorm into weights in place.
    ordered = sorted((e for e in entries if e[3] < e[4]), key=lambda e: e[3])
    for before, after in zip(ordered, ordered[1:]):
        if after[3] < before[4]:
            raise CheckpointError(
                f"{path}: tensors {before[0]!r:.60} and {after[0]!r:.60} overlap in the file; it is corrupt or forged"
            )
    return entries


# -- npz ----------------------------------------------------------------------------------------


def _load_npz(path: Path, archive: zipfile.ZipFile, archive_size: int, budget: _ByteBudget) -> dict:
    for info in archive.infolist():
        _check_member(path, info, archive_size)
        budget.charge(_npy_data_size(path, archive, info))
    try:
        with np.load(path, allow_pickle=False) as npz:
            state = {key: npz[key] for key in npz.files}
    except (ValueError, zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise CheckpointError(f"{path} is a truncated or corrupt .npz ({exc}); download or copy it again") from None
    if not state:
        raise CheckpointError(f"{path} holds no arrays")
    return state


def _npy_data_size(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """The bytes of the array one .npy member describes, once its header is known to fit the member."""
    name = info.filename
    try:
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise CheckpointError(f"{path}: {name} uses .npy format {version}, which zoo does not read")
            header_len = member.tell()
    except (ValueError, zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise CheckpointError(f"{path}: {name} is truncated or corrupt ({exc}); download or copy it again") from None
    if dtype.hasobject:
        raise CheckpointError(
            f"{path}: {name} holds Python objects, which need pickle to load and zoo refuses; save plain numeric arrays"
        )
    if not all(type(n) is int and n >= 0 for n in shape):
        raise CheckpointError(f"{path}: {name} has an impossible shape {shape!r:.60}; the file is corrupt")
    nbytes = math.prod(shape) * dtype.itemsize
    if info.file_size < header_len + nbytes:
        raise CheckpointError(
            f"{path}: {name} holds {info.file_size - header_len} bytes for an array of {nbytes}; "
            "the .npz is truncated or corrupt, so download or copy it again"
        )
    return nbytes
