"""Writing files so that readers see the old file or the whole new one, never half of it.

`atomic_write` yields an open handle; `PendingFile` is for writers that open the file by name
themselves (OpenCV's VideoWriter picks the container from the name's suffix, so that temp name
keeps it). The hidden temp files of writes in progress are listed in a registry, so that a signal
handler can remove them with `remove_temporary_files()` before the process exits. Files that are
meant to survive an interruption (a download's resumable `.part`) are listed too, so the
interrupted message can say what was kept and what was removed (`interruption_report()`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import threading
from pathlib import Path

from modelzoo.core.errors import OutputError

_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
_live: set[str] = set()  # this process's temp files not yet renamed or removed
_resumable: set[str] = set()  # files this process is filling in that a later run resumes (.part)
_interrupted: list[Path] = []  # targets whose unfinished write was removed because the process was interrupted
# Reentrant: a signal handler runs on the main thread, possibly while that thread holds the lock.
_live_lock = threading.RLock()


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb"):
    """Yield a temp file beside `path`; rename it over `path` only if the block succeeds.

    The result gets ordinary permissions (0666 less the umask), not mkstemp's private 0600,
    so exported models and a shared cache stay readable by others.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}; choose another location") from None
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            with _live_lock:
                _interrupted.append(path)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}; choose another location") from None
        raise
    finally:
        # after the rename: removing a name that no longer exists is harmless, a leftover temp file is not
        with _live_lock:
            _live.discard(tmp)


class PendingFile:
    """A hidden temp file beside `target`, with the target's suffix, for a writer that opens it by name
    (`.temp`): `commit()` renames it over the target, `discard()` removes it; as a context manager it
    commits when the block succeeds. Registered like atomic_write's, so SIGTERM and Ctrl-C remove it."""

    def __init__(self, target):
        self.target = Path(target)
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = _create_temp(self.target, keep_suffix=True)
        except OSError as exc:
            raise OutputError(f"cannot write {self.target}: {exc.strerror}; choose another location") from None
        os.close(fd)  # the name is reserved; the writer opens it itself
        self.temp = Path(name)
        self.done = False

    def commit(self) -> Path:
        """Flush the temp file to disk and rename it over the target."""
        try:
            with open(self.temp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(self.temp, self.target)
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write {self.target}: {exc.strerror or exc}; choose another location") from None
        self._forget()
        return self.target

    def discard(self) -> None:
        """Remove the temp file; the target keeps what it had."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp)
        self._forget()

    def _forget(self) -> None:
        self.done = True
        with _live_lock:
            _live.discard(str(self.temp))

    def __enter__(self) -> PendingFile:
        return self

    def __exit__(self, kind, exc, _traceback) -> None:
        if self.done:
            return
        if kind is None:
            self.commit()
            return
        self.discard()
        if issubclass(kind, (KeyboardInterrupt, SystemExit)):
            with _live_lock:
                _interrupted.append(self.target)


def check_writable(path) -> None:
    """Refuse a target that cannot be written, before the work that makes it rather than after: a temp
    file is made in the nearest existing folder (`atomic_write` creates the missing ones), since
    permissions alone do not tell (read-only mounts, quotas)."""
    import tempfile

    path = Path(path)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} is not a folder")
        with tempfile.TemporaryFile(dir=folder, prefix=".zoo-check-"):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}; choose another location") from None


@contextlib.contextmanager
def held(lock, doing: str, log=None, patience: float = 0.5):
    """Hold `lock` (a filelock.FileLock) for the block. When another zoo process holds it past `patience`
    seconds, `log` says so ("waiting for another zoo process that is DOING ...") and the wait goes on: that
    process's work is then found done, not done again."""
    from filelock import Timeout

    try:
        lock.acquire(timeout=patience)
    except Timeout:
        if log:
            log(f"waiting for another zoo process that is {doing} ...")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def same_file(a, b) -> bool:
    """Whether a write to `a` would replace `b` (the same path, resolved, or the same inode)."""
    try:
        return Path(a).resolve() == Path(b).resolve() or Path(a).samefile(b)
    except OSError:  # one of them does not exist (yet): not the same file
        return False


def remove_temporary_files() -> list[Path]:
    """Remove the temp files of this process's unfinished atomic writes; returns those removed.

    For a signal handler before exit: the target files keep their old contents.
    """
    with _live_lock:
        pending = sorted(_live)
        _live.clear()
    removed = []
    for name in pending:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
            removed.append(Path(name))
    return removed


@contextlib.contextmanager
def resumable(path):
    """Mark `path` as a partial file this process is filling in and a later run resumes: an
    interruption keeps it, and `interruption_report()` names it. Unmarked when the block ends normally."""
    name = str(path)
    with _live_lock:
        _resumable.add(name)
    yield
    with _live_lock:
        _resumable.discard(name)


def interruption_report(removed=()) -> tuple[list[Path], list[Path]]:
    """(kept, removed) for the interrupted message: this process's resumable partial files that exist,
    and the targets of writes that were abandoned (plus the temp files in `removed`)."""
    with _live_lock:
        kept = sorted(Path(name) for name in _resumable if os.path.isfile(name))
        abandoned = list(dict.fromkeys([*_interrupted, *(_target_of(Path(p)) for p in removed)]))
    return kept, abandoned


def forget_interruptions() -> None:
    """Start a new record for `interruption_report` (a long-lived process runs many commands)."""
    with _live_lock:
        _resumable.clear()
        _interrupted.clear()


_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[0-9a-f]{12}\.tmp(\.[^.]*)?")


def _target_of(tmp: Path) -> Path:
    """out.bin for the temp file .out.bin.<hex>.tmp (or .out.mp4.<hex>.tmp.mp4 from PendingFile)."""
    found = _TEMP_NAME.fullmatch(tmp.name)
    return tmp.with_name(found["target"]) if found else tmp


def _create_temp(path: Path, keep_suffix: bool = False) -> tuple[int, str]:
    """Open a new hidden file beside `path`, registered before it exists so no signal can orphan it."""
    for _ in range(100):
        tail = path.suffix if keep_suffix else ""
        tmp = str(path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp{tail}"))
        with _live_lock:
            _live.add(tmp)
        try:
            # Mode 0666 lets the kernel apply the umask at creation, so it is never read or changed here
            # (os.umask is process-wide: setting it to read it races with other threads creating files).
            return os.open(tmp, _OPEN_FLAGS, 0o666), tmp
        except FileExistsError:
            pass
        except BaseException:
            with _live_lock:
                _live.discard(tmp)
            raise
        with _live_lock:
            _live.discard(tmp)
    raise FileExistsError(errno.EEXIST, "no free name for a temporary file")
