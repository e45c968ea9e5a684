"""The Backend interface, and the built-in rule for choosing one."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import ClassVar

from modelzoo.core.errors import BackendError


class Backend:
    """Runs one model file. Subclasses set the class attributes, load the model in __init__ and implement run()."""

    name: ClassVar[str]
    model_suffixes: ClassVar[tuple] = ()
    package: ClassVar[str] = ""  # import name whose presence makes the backend available
    install_hint: ClassVar[str] = ""
    auto_priority: ClassVar[int] = 0  # higher is tried first by --backend auto
    converts_weights: ClassVar[bool] = False  # runs the ONNX that zoo converts from the checkpoint
    options: ClassVar[tuple] = ()  # keyword options it honours, e.g. ("priority", "bpu_cores")

    def __init__(self, model_path: Path, *, threads: int | None = None, model=None, **options):
        self.model_path = Path(model_path)
        self.threads = threads
        self.model = model  # the zoo Model being run, for backends that need its preprocessing (e.g. NV12)
        self.options = options

    @classmethod
    def is_available(cls) -> bool:
        """Cheap check (no import), safe for `zoo list`."""
        return bool(cls.package) and importlib.util.find_spec(cls.package) is not None

    @classmethod
    def can_load(cls) -> bool:
        """Whether the backend really works here; may import its package. Used to choose a backend."""
        return cls.is_available()

    @classmethod
    def default_model(cls, model, cache):
        """A model file this backend can run without --model, or None (e.g. a fetched .hbm)."""
        return None

    @classmethod
    def has_model_for(cls, model, cache) -> bool:
        """Whether it can run `model` without --model: the model publishes weights it converts, or it has
        a file of its own (`default_model`). May raise CacheError for such a file gone bad."""
        if cls.converts_weights and model.spec.artifact("weights") is not None:
            return True
        return cls.default_model(model, cache) is not None

    @classmethod
    def unavailable_message(cls) -> str:
        return f"backend {cls.name!r} is not available here: {cls.install_hint}"

    def run(self, batch):
        """[K, ...] float32 model input -> the model's first output for the K samples."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


def choose_backend(model, requested: str, model_path, backends: dict, cache):
    """--backend NAME must exist and be available; auto picks by priority, model suffix and availability."""
    if requested != "auto":
        if requested not in backends:
            known = ", ".join(["auto", *sorted(backends)])
            raise BackendError(f"unknown backend {requested!r}; choose one of: {known}")
        backend = backends[requested]
        if not backend.can_load():
            raise BackendError(backend.unavailable_message())
        if model_path is not None and backend.model_suffixes and Path(model_path).suffix not in backend.model_suffixes:
            raise BackendError(
                f"backend {requested!r} runs {'/'.join(backend.model_suffixes)} files, not {Path(model_path).name}; "
                "pass a matching --model or another --backend"
            )
        return backend
    candidates = sorted(backends.values(), key=lambda b: -b.auto_priority)
    unavailable = []  # backends that could run the file but not here: the most useful thing to say
    # Without --model and with no backend holding the model, one that converts checkpoints: it converts
    # --weights, or its conversion says how to get the model (a model that publishes no weights).
    converter = None
    for backend in candidates:
        if model_path is not None and Path(model_path).suffix not in backend.model_suffixes:
            continue
        if not backend.can_load():
            if model_path is not None:
                unavailable.append(backend)
            continue
        if model_path is None and not backend.has_model_for(model, cache):
            converter = converter or (backend if backend.converts_weights else None)
            continue
        return backend
    if converter is not None:
        return converter
    what = Path(model_path).name if model_path is not None else model.name
    if model_path is not None and Path(model_path).suffix in (".pth", ".pt", ".safetensors", ".npz"):
        raise BackendError(f"{what} looks like a checkpoint, not a model file; pass it as --weights {model_path}")
    if unavailable:
        raise BackendError(f"cannot run {what} here: {unavailable[0].unavailable_message()}")
    raise BackendError(
        f"no backend available here can run {what} (installed: {', '.join(sorted(backends)) or 'none'}); "
        "see `zoo list` for what runs where"
    )


def ignored_options(backend, options: dict) -> list:
    """Warnings for options the chosen backend does not use, so they are not silently dropped."""
    return [
        f"--{name.replace('_', '-')} is not used by the {backend.name} backend; ignored"
        for name in options
        if name not in backend.options
    ]
