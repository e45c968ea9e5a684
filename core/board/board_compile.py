"""Preparing a model for the board toolchain: patch, lint, hb_compile config and calibration in a
working directory, then (where hb_compile exists) compiling it. The CLI only prints the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modelzoo.core.board import hb_compile
from modelzoo.core.board.march_rules import errors
from modelzoo.core.errors import ConversionError, PluginError, ToolchainError
from modelzoo.core.graph.equivalence import Equivalence

CONFIG_SECTIONS = ("model_parameters", "input_parameters", "calibration_parameters", "compiler_parameters")


@dataclass
class CompilePlan:
    """Everything written into WORKDIR, and the hb_compile command that uses it."""

    model: str
    march: str
    workdir: Path
    onnx: Path
    changes: list
    command: list
    output_dir: Path
    prefix: str | None = None
    config: Path | None = None
    calibration: dict | None = None
    fast_perf: bool = False
    warnings: list = field(default_factory=list)

    @property
    def shell_line(self) -> str:
        return hb_compile.shell_line(self.command, self.workdir)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "march": self.march,
            "workdir": str(self.workdir),
            "onnx": str(self.onnx),
            "changes": [str(c) for c in self.changes],
            "config": str(self.config) if self.config else None,
            "calibration": self.calibration,
            "command": self.shell_line,
        }


@dataclass(frozen=True)
class PatchResult:
    changes: list
    equivalence: Equivalence | None

    def to_dict(self) -> dict:
        return {
            "changes": [str(c) for c in self.changes],
            "equivalence": self.equivalence.to_dict() if self.equivalence else None,
        }


def patch_model(model, onnx_model, march, *, verify: bool = True, threads: int | None = None):
    """The model's graph patch for `march` (a registered March), then validation: onnx.checker and, if
    anything changed, numerical equivalence with the unpatched graph. Returns (patched, PatchResult);
    `onnx_model` is untouched.
    """
    import onnx

    from modelzoo.core.contract.registry import blamed_on
    from modelzoo.core.graph.equivalence import verify_equivalent

    patched = onnx.ModelProto()
    patched.CopyFrom(onnx_model)
    with blamed_on(model.plugin, f"patch_graph for {model.name}"):
        changes = list(model.patch_graph(patched, march) or [])
    if patched.SerializeToString() == onnx_model.SerializeToString():
        return patched, PatchResult(changes, None)
    if not changes:  # validated all the same: a silent rewrite is still a rewrite
        changes = ["the graph was changed by the model's patch_graph, which reported no change"]
    try:
        onnx.checker.check_model(patched)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"the patched graph is not valid ONNX ({exc}); the model's patch_graph broke it") from exc
    shape = tuple(1 if isinstance(d, str) else d for d in model.spec.input.shape)  # the board's batch-1 input
    equivalence = verify_equivalent(onnx_model, patched, threads=threads, input_shape=shape) if verify else None
    return patched, PatchResult(changes, equivalence)


def prepare_compile(
    registry,
    model,
    onnx_model,
    march,
    workdir: Path,
    *,
    calib_dir=None,
    count: int = 100,
    fast_perf: bool = False,
    log=None,
) -> CompilePlan:
    """Patch and lint `onnx_model` for `march` (a March; `march.with_rewrites(...)` picks other rewrites)
    and lay out WORKDIR for hb_compile. A node the march rejects stops it; one it is not known to
    accept (a warning rule) is reported in `plan.warnings`."""
    from modelzoo.core.artifacts.artifacts import save_onnx
    from modelzoo.core.contract.registry import blamed_on

    spec = model.spec
    workdir = Path(workdir).resolve()
    if calib_dir and not fast_perf:  # before anything is written
        from modelzoo.core.board.calibration import check_calibration_dir

        check_calibration_dir(registry, model, calib_dir)
    patched, result = patch_model(model, onnx_model, march)
    findings = march.check(patched)
    rejected = errors(findings)
    if rejected:
        raise ToolchainError(
            f"{len(rejected)} node(s) still violate {march.name} constraints after patching "
            f"({'; '.join(f'{f.node}: {f.message}' for f in rejected[:3])}); see `zoo check {spec.name} --march {march.name}`"
        )
    if calib_dir and not fast_perf:  # the .npy samples against the board input, still before anything is written
        from modelzoo.core.board.calibration import check_calibration_arrays
        from modelzoo.core.board.compile_config import board_input_shape, proto_input

        check_calibration_arrays(model, calib_dir, board_input_shape(spec, proto_input(patched, spec.name)[1]))
    warnings = [f"{f.node} ({f.op_type}, {f.rank}-D input): {f.message}" for f in findings if not f.is_error]
    onnx_path = workdir / f"{spec.name}_{march.name}.onnx"
    save_onnx(patched, onnx_path)
    if fast_perf:
        plan = CompilePlan(
            spec.name,
            march.name,
            workdir,
            onnx_path,
            result.changes,
            hb_compile.fast_perf_command(onnx_path.name, march.name, *_static_input(spec, onnx_path)),
            workdir,
            fast_perf=True,
        )
        plan.warnings.extend(warnings)
        if calib_dir:
            plan.warnings.append("--fast-perf calibrates with random data; --calib is not used")
        return plan
    plan = CompilePlan(spec.name, march.name, workdir, onnx_path, result.changes, [], workdir / "model_output")
    plan.warnings.extend(warnings)
    calibration_dir = _calibration(registry, model, plan, calib_dir, count, log)
    with blamed_on(spec.plugin, f"compile_config for {spec.name}"):
        config = model.compile_config(march, onnx_path, calibration_dir, plan.output_dir)
    if not isinstance(config, dict) or any(not isinstance(config.get(key), dict) for key in CONFIG_SECTIONS):
        raise PluginError(
            f"plugin {spec.plugin!r} returned no usable hb_compile config for {spec.name} "
            f"(compile_config must return a dict with the sections {', '.join(CONFIG_SECTIONS)})"
        )
    from modelzoo.core.board.compile_config import relative_paths, write_config

    model_parameters = config["model_parameters"]
    plan.output_dir = workdir / model_parameters.get("working_dir", plan.output_dir)  # a plugin may choose another
    plan.prefix = model_parameters.get("output_model_file_prefix")
    plan.config = write_config(relative_paths(config, workdir), workdir / f"{spec.name}_{march.name}.yaml")
    plan.command = hb_compile.full_command(plan.config.name)
    return plan


def _static_input(spec, onnx_path) -> tuple:
    """(name, batch-1 shape) of the ONNX input: --fast-perf needs them for a model with a dynamic batch."""
    from modelzoo.core.board.compile_config import board_input_shape, onnx_input

    name, shape = onnx_input(onnx_path)
    return name, board_input_shape(spec, shape)


def _calibration(registry, model, plan: CompilePlan, calib_dir, count: int, log):
    """WORKDIR/calibration from --calib (its .npy files, or samples made from the inputs in it), or None."""
    if not calib_dir:
        plan.warnings.append(
            "no --calib: hb_compile will calibrate on random data (calibration_type skip); "
            f"fine for speed, not for accuracy; make real data with `zoo calib {model.name}`"
        )
        return None
    from modelzoo.core.board.calibration import collect_calibration
    from modelzoo.core.board.compile_config import board_input_shape, onnx_input

    target = plan.workdir / "calibration"
    shape = board_input_shape(model.spec, onnx_input(plan.onnx)[1])
    samples = collect_calibration(registry, model, calib_dir, target, shape, count=count, log=log)
    plan.calibration = {"dir": str(target), "samples": samples}
    return target


def run_compile(plan: CompilePlan, echo=None):
    """Run hb_compile for `plan`; its log streams to `echo`. Returns hb_compile.CompileResult."""
    return hb_compile.run_hb_compile(
        plan.command, plan.workdir, plan.output_dir, prefix=plan.prefix, echo=echo, require_hbm=not plan.fast_perf
    )
