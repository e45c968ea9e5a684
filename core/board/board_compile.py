"""Preparing a model for the board toolchain: patch, lint, hb_compile config and calibration in a
working directory, then (where hb_compile exists) compiling it. The CLI only prints the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modelzoo.core.board import hb_compile
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


def patch_model(registry, spec, model, march: str, *, verify: bool = True, threads: int | None = None):
    """Apply every plugin's zoo_patch_graph in order, then validate: onnx.checker and, if anything changed,
    numerical equivalence with the unpatched graph. Returns (patched_model, PatchResult); `model` is untouched.
    """
    import onnx

    from modelzoo.core.board.march_rules import rules_for
    from modelzoo.core.graph.equivalence import verify_equivalent

    rules_for(march)  # an unknown march fails here, before any plugin runs
    patched = onnx.ModelProto()
    patched.CopyFrom(model)
    changes = list(registry.patch_graph(spec, patched, march))
    if patched.SerializeToString() == model.SerializeToString():
        return patched, PatchResult(changes, None)
    if not changes:  # validated all the same: a silent rewrite is still a rewrite
        changes = ["the graph was changed by a zoo_patch_graph hook that reported no change"]
    try:
        onnx.checker.check_model(patched)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"the patched graph is not valid ONNX ({exc}); a zoo_patch_graph hook broke it") from exc
    shape = tuple(1 if isinstance(d, str) else d for d in spec.input.shape)  # the board's batch-1 clip
    equivalence = verify_equivalent(model, patched, threads=threads, input_shape=shape) if verify else None
    return patched, PatchResult(changes, equivalence)


def prepare_compile(
    registry,
    spec,
    model,
    march: str,
    workdir: Path,
    *,
    calib_dir=None,
    count: int = 100,
    fast_perf: bool = False,
    log=None,
) -> CompilePlan:
    """Patch and lint `model` (an onnx.ModelProto) for `march` and lay out WORKDIR for hb_compile."""
    from modelzoo.core.artifacts.artifacts import save_onnx
    from modelzoo.core.board.march_rules import check_model

    workdir = Path(workdir).resolve()
    if calib_dir and not fast_perf and not Path(calib_dir).is_dir():  # before anything is written
        from modelzoo.core.errors import InputError

        raise InputError(f"--calib {calib_dir} is not a directory; make one with `zoo calib {spec.name}`")
    patched, result = patch_model(registry, spec, model, march)
    findings = check_model(patched, march)
    if findings:
        raise ToolchainError(
            f"{len(findings)} node(s) still violate {march} constraints after patching "
            f"({'; '.join(f'{f.node}: {f.message}' for f in findings[:3])}); see `zoo check {spec.name} --march {march}`"
        )
    onnx_path = workdir / f"{spec.name}_{march}.onnx"
    save_onnx(patched, onnx_path)
    if fast_perf:
        plan = CompilePlan(
            spec.name,
            march,
            workdir,
            onnx_path,
            result.changes,
            hb_compile.fast_perf_command(onnx_path.name, march),
            workdir,
            fast_perf=True,
        )
        if calib_dir:
            plan.warnings.append("--fast-perf calibrates with random data; --calib is not used")
        return plan
    plan = CompilePlan(spec.name, march, workdir, onnx_path, result.changes, [], workdir / "model_output")
    calibration_dir = _calibration(registry, spec, plan, calib_dir, count, log)
    config = registry.model_hook(spec, "zoo_compile_config")(
        march=march, onnx_path=onnx_path, calib_dir=calibration_dir, working_dir=plan.output_dir
    )
    if not isinstance(config, dict) or any(not isinstance(config.get(key), dict) for key in CONFIG_SECTIONS):
        raise PluginError(
            f"plugin {spec.plugin!r} returned no usable hb_compile config for {spec.name} "
            f"(zoo_compile_config must return a dict with the sections {', '.join(CONFIG_SECTIONS)})"
        )
    from modelzoo.core.board.compile_config import relative_paths, write_config

    model_parameters = config["model_parameters"]
    plan.output_dir = workdir / model_parameters.get("working_dir", plan.output_dir)  # a plugin may choose another
    plan.prefix = model_parameters.get("output_model_file_prefix")
    plan.config = write_config(relative_paths(config, workdir), workdir / f"{spec.name}_{march}.yaml")
    plan.command = hb_compile.full_command(plan.config.name)
    return plan


def _calibration(registry, spec, plan: CompilePlan, calib_dir, count: int, log):
    """WORKDIR/calibration from --calib (its .npy files, or samples made from its videos), or None."""
    if not calib_dir:
        plan.warnings.append(
            "no --calib: hb_compile will calibrate on random data (calibration_type skip); "
            f"fine for speed, not for accuracy; make real data with `zoo calib {spec.name}`"
        )
        return None
    from modelzoo.core.board.calibration import collect_calibration
    from modelzoo.core.board.compile_config import board_input_shape, onnx_input

    target = plan.workdir / "calibration"
    shape = board_input_shape(spec, onnx_input(plan.onnx)[1])
    samples = collect_calibration(registry, spec, calib_dir, target, shape, count=count, log=log)
    plan.calibration = {"dir": str(target), "samples": samples}
    return target


def run_compile(plan: CompilePlan, echo=None):
    """Run hb_compile for `plan`; its log streams to `echo`. Returns hb_compile.CompileResult."""
    return hb_compile.run_hb_compile(
        plan.command, plan.workdir, plan.output_dir, prefix=plan.prefix, echo=echo, require_hbm=not plan.fast_perf
    )
