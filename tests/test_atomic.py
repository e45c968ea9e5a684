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


def test_a_pending_file_keeps_the_suffix_a_writer_needs_and_lands_whole(tmp_path):
    """OpenCV's VideoWriter opens the file by name and picks the container from its suffix."""
    import cv2
    import numpy as np

    from modelzoo.core.atomic import PendingFile

    target = tmp_path / "clips" / "out.mp4"  # the folder is made
    with PendingFile(target) as pending:
        assert pending.temp.parent == target.parent and pending.temp.suffix == ".mp4"
        assert pending.temp.name.startswith(".out.mp4.") and not target.exists()
        writer = cv2.VideoWriter(str(pending.temp), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (32, 24))
        assert writer.isOpened()
        for value in range(5):
            writer.write(np.full((24, 32, 3), value * 40, np.uint8))
        writer.release()
    assert os.listdir(target.parent) == ["out.mp4"]
    capture = cv2.VideoCapture(str(target))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    capture.release()


def test_a_pending_file_that_fails_or_is_discarded_leaves_the_old_file(tmp_path):
    from modelzoo.core.atomic import PendingFile

    target = tmp_path / "out.mp4"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with PendingFile(target) as pending:
            pending.temp.write_bytes(b"half")
            raise RuntimeError("the writer failed")
    pending = PendingFile(target)
    pending.temp.write_bytes(b"half")
    pending.discard()
    assert os.listdir(tmp_path) == ["out.mp4"] and target.read_bytes() == b"old"
    assert remove_temporary_files() == []  # nothing left registered


def test_sigterm_removes_a_pending_file_and_the_report_names_its_target(tmp_path):
    from modelzoo.core.atomic import PendingFile, forget_interruptions, interruption_report

    forget_interruptions()
    pending = PendingFile(tmp_path / "out.mp4")
    pending.temp.write_bytes(b"half a video")

    removed = remove_temporary_files()  # what the SIGTERM handler does

    assert removed == [pending.temp] and os.listdir(tmp_path) == []
    assert interruption_report(removed) == ([], [tmp_path / "out.mp4"])

    with pytest.raises(KeyboardInterrupt):  # Ctrl-C inside the block: named as removed
        with PendingFile(tmp_path / "other.avi"):
            raise KeyboardInterrupt
    assert interruption_report() == ([], [tmp_path / "other.avi"])
    assert os.listdir(tmp_path) == []
    forget_interruptions()


def test_a_pending_file_in_an_unwritable_place_is_an_output_error(tmp_path):
    from modelzoo.core.atomic import PendingFile

    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot write"):
        PendingFile(tmp_path / "file" / "out.mp4")
    assert remove_temporary_files() == []
