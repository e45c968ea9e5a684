"""Writes are all-or-nothing: a failure or an interruption keeps the old file and leaves no temp file behind."""

import os
import stat
import threading

import pytest

from modelzoo.core.atomic import atomic_write, remove_temporary_files
from modelzoo.core.errors import OutputError


def test_success_replaces_the_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt, SystemExit])
def test_failure_keeps_the_old_file_and_no_temp(tmp_path, failure):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(failure):
        with atomic_write(target) as handle:
            handle.write(b"half of the new")
            raise failure("interrupted")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_unwritable_place_is_an_output_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot write"):
        with atomic_write(tmp_path / "file" / "out.bin") as handle:
            handle.write(b"x")


def test_mode_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "out.bin") as handle:
            handle.write(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.bin").stat().st_mode) == 0o640


def test_the_umask_is_never_changed(tmp_path, monkeypatch):
    """os.umask is process-wide: setting it, even briefly, would change files other threads create."""

    def forbidden(mask):
        raise AssertionError(f"os.umask({mask:#o}) called")

    old = os.umask(0o022)
    try:
        monkeypatch.setattr(os, "umask", forbidden)
        with atomic_write(tmp_path / "out.bin", "w") as handle:
            handle.write("x")
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.bin").stat().st_mode) == 0o644


def test_remove_temporary_files_removes_unfinished_writes_only(tmp_path):
    """What a SIGTERM handler calls: writes in progress leave nothing, finished files stay."""
    (tmp_path / "done.bin").write_bytes(b"old")
    with atomic_write(tmp_path / "done.bin") as handle:
        handle.write(b"finished")
    (tmp_path / "busy.bin").write_bytes(b"old")
    writing, finish = threading.Event(), threading.Event()
    outcome = []

    def slow_write():
        try:
            with atomic_write(tmp_path / "busy.bin") as handle:
                handle.write(b"half of the new")
                writing.set()
                finish.wait(10)
        except Exception as exc:  # examined below
            outcome.append(exc)

    thread = threading.Thread(target=slow_write)
    thread.start()
    assert writing.wait(10)
    hidden = [name for name in os.listdir(tmp_path) if name.startswith(".busy.bin.")]
    assert len(hidden) == 1  # the write in progress

    removed = remove_temporary_files()

    assert [path.name for path in removed] == hidden
    assert sorted(os.listdir(tmp_path)) == ["busy.bin", "done.bin"]
    assert (tmp_path / "done.bin").read_bytes() == b"finished"
    assert (tmp_path / "busy.bin").read_bytes() == b"old"
    finish.set()
    thread.join(10)
    assert (tmp_path / "busy.bin").read_bytes() == b"old"  # the interrupted write never lands
    assert remove_temporary_files() == []


def test_the_interruption_report_names_what_was_kept_and_what_was_removed(tmp_path):
    """What the Ctrl-C and SIGTERM messages say: the resumable partial file kept, the unfinished write removed."""
    from modelzoo.core.atomic import forget_interruptions, interruption_report, resumable

    forget_interruptions()
    part = tmp_path / "weights.pth.part"
    with pytest.raises(KeyboardInterrupt):
        with resumable(part):
            part.write_bytes(b"the first half")
            with atomic_write(tmp_path / "model.onnx") as handle:
                handle.write(b"half")
                raise KeyboardInterrupt
    assert interruption_report() == ([part], [tmp_path / "model.onnx"])
    forget_interruptions()
    assert interruption_report() == ([], [])
