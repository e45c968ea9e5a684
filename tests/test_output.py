"""modelzoo/output.py: what every command prints, as a user or a program reading it sees it."""

from __future__ import annotations

import json

from modelzoo import progress as run_progress
from modelzoo.output import emit_json, progress


def test_json_output_stays_standard_json_when_a_number_is_not_finite(capsys):
    emit_json({"score": float("nan"), "rows": [1.5, float("inf"), {"low": float("-inf")}], "name": "x"})
    text = capsys.readouterr().out
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"score": None, "rows": [1.5, None, {"low": None}], "name": "x"}


def test_progress_in_a_log_is_a_line_every_few_seconds_and_none_at_the_end(capsys, monkeypatch):
    monkeypatch.setattr(run_progress, "LOG_EVERY", 0.0)
    with progress(3, "calibration") as bar:
        for _ in range(3):
            bar.update(1)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["progress: calibration 1/3", "progress: calibration 2/3"]
