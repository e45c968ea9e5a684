"""Drive the `zoo` CLI in-process through its real entry point, as a user's shell would."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list:
        return [line for line in self.err.splitlines() if line.startswith("error:")]

    def assert_user_error(self, *fragments: str) -> str:
        """Exit 2, exactly one `error:` line mentioning every fragment, no traceback."""
        assert self.code == 2, (self.code, self.out, self.err)
        assert len(self.error_lines) == 1, self.err
        assert "Traceback" not in self.err + self.out
        for fragment in fragments:
            assert fragment.lower() in self.error_lines[0].lower(), (fragment, self.error_lines[0])
        return self.error_lines[0]


def invoke(capsys, *args) -> Result:
    from modelzoo.cli import main
    from modelzoo.core.contract.registry import reset_registry

    reset_registry()
    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def zoo(capsys, *args) -> tuple:
    """(exit code, stdout, stderr) of one in-process `zoo` call."""
    result = invoke(capsys, *args)
    return result.code, result.out, result.err
