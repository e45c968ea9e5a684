"""User-facing errors, raised deep and turned into one `error:` line at the CLI edge."""


class ZooError(Exception):
    """An error the user can fix; its message says what is wrong and what to do next."""

    exit_code = 2


class UnknownModelError(ZooError):
    """No registered plugin provides a model of that name."""


class ConfigError(ZooError):
    """A config file is malformed, has an unknown key or a wrong type."""


class InputError(ZooError):
    """An input file is missing, empty, unreadable or of the wrong shape."""


class OutputError(ZooError):
    """An output file or the cache cannot be written (read-only, missing directory, not a directory)."""


class BackendError(ZooError):
    """A backend is unknown, not available here, or cannot load the model."""


class PluginError(ZooError):
    """A plugin failed to load or raised inside a hook."""


class DownloadError(ZooError):
    """An artifact could not be downloaded or failed its checksum."""


class CheckpointError(ZooError):
    """A checkpoint file cannot be read safely."""


class ConversionError(ZooError):
    """A state dict could not be turned into an ONNX graph, or a patch broke the graph."""


class CacheError(ZooError):
    """A cached file is missing or changed, or a name cannot be used in the cache."""


class ToolchainError(ZooError):
    """A board march is unknown, or the board toolchain (hb_compile) failed."""
