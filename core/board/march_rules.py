"""Board architectures as registered objects: each March holds its toolchain's known constraints
(rules) and the automatic graph rewrites that fix some of them, plus the lint that checks a model.

Marches come from `zoo_register_marches`; the core's own plugin registers nash-e (RDK S100).
A rule is an "error" (the toolchain is known to reject it) or a "warning" (not known to be accepted).
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from modelzoo.core.graph.onnx_shapes import tensor_ranks

SEVERITIES = ("error", "warning")
# In a Rule's fix: stands for the command that patches the model being checked (see March.check).
PATCH_COMMAND = "{zoo_patch}"


@dataclass(frozen=True)
class Rewrite:
    """An automatic graph fix: `apply(model)` rewrites an onnx.ModelProto in place and returns its changes.

    `source` says where the rewrite comes from (a published fix, or zoo's own), for `zoo info` and docs.
    """

    name: str
    description: str
    apply: Callable = field(compare=False)
    source: str = ""


@dataclass(frozen=True)
class Rule:
    """Nodes of `op_types` (with a first input of `rank`, when set) that the march's toolchain rejects
    (severity "error") or is not known to accept ("warning": reported, but `zoo check` still passes).

    `rewrite` names a Rewrite of the same march that fixes it automatically. `fix` may hold
    PATCH_COMMAND, which `March.check` replaces by the `zoo patch` command for the model checked.
    """

    op_types: tuple
    message: str
    fix: str
    rank: int | None = None
    rewrite: str | None = None
    severity: str = "error"

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"Rule severity must be one of {', '.join(SEVERITIES)}, not {self.severity!r}")

    def matches(self, op_type: str, rank: int | None) -> bool:
        return op_type in self.op_types and (self.rank is None or rank == self.rank)


@dataclass(frozen=True)
class Finding:
    node: str
    op_type: str
    message: str
    fix: str
    rank: int | None = None
    severity: str = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def to_dict(self) -> dict:
        return {
            "node": self.node,
            "op_type": self.op_type,
            "rank": self.rank,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
        }


def errors(findings) -> list:
    """The findings the toolchain is known to reject (warnings left out)."""
    return [f for f in findings if f.is_error]


@dataclass(frozen=True)
class March:
    """One board architecture (e.g. nash-e) and what its toolchain is known to accept.

    `chosen`, when set (see `with_rewrites`), names the rewrites `apply_rewrites()` applies instead
    of the default ones, which are those the rules name.
    """

    name: str
    device: str = ""
    rules: tuple = ()
    rewrites: tuple = ()
    chosen: tuple | None = None

    def extended(self, other: March) -> March:
        """This march with another registration's rules and rewrites added (same name)."""
        return March(
            self.name, self.device or other.device, (*self.rules, *other.rules), (*self.rewrites, *other.rewrites)
        )

    def rewrite(self, name: str) -> Rewrite:
        for rewrite in self.rewrites:
            if rewrite.name == name:
                return rewrite
        from modelzoo.core.errors import ToolchainError

        defaults = self.default_rewrites()
        known = ", ".join(f"{r.name} (default)" if r.name in defaults else r.name for r in self.rewrites) or "none"
        raise ToolchainError(f"march {self.name} has no rewrite {name!r}; known: {known}")

    def default_rewrites(self) -> tuple:
        """Names of the rewrites applied when none is chosen: those the rules name, in rule order."""
        return tuple(dict.fromkeys(r.rewrite for r in self.rules if r.rewrite))

    def with_rewrites(self, names) -> March:
        """This march applying exactly the rewrites `names` (in order) instead of its default ones,
        e.g. for `zoo patch --rewrite NAME`. An unknown name is a ToolchainError listing the known ones."""
        names = tuple(dict.fromkeys(names))
        for name in names:
            self.rewrite(name)
        return dataclasses.replace(self, chosen=names)

    def apply_rewrites(self, model, names=None) -> list:
        """Apply, in place, the rewrites in `names`, else the chosen ones, else the default ones;
        returns the changes."""
        if names is None:
            names = self.chosen if self.chosen is not None else self.default_rewrites()
        changes = []
        for name in dict.fromkeys(names):
            changes.extend(self.rewrite(name).apply(model))
        return changes

    def rewrite_summary(self) -> list:
        """One dict per rewrite (name, default, description, source): what `zoo info` shows."""
        defaults = self.default_rewrites()
        return [
            {"name": r.name, "default": r.name in defaults, "description": r.description, "source": r.source}
            for r in self.rewrites
        ]

    def describe_rewrites(self) -> str:
        """The rewrites as text, one per line with its source, the default marked: what `zoo info` shows."""
        defaults = self.default_rewrites()
        lines = [f"{self.name} graph rewrites (`zoo patch MODEL --rewrite NAME`):"]
        for r in self.rewrites:
            lines.append(f"  {r.name}{' (default)' if r.name in defaults else ''}: {r.description}")
            if r.source:
                lines.append(f"    source: {r.source}")
        return "\n".join(lines if self.rewrites else [f"{self.name}: no graph rewrites"])

    def patch_command(self, model_name: str, *, model_path=None, weights=None) -> str:
        """The `zoo patch` command line for this march that starts from what was checked, as a user types it."""
        words = ["zoo", "patch", model_name]
        if model_path is not None:
            words += ["--model", str(model_path)]
        if weights is not None:
            words += ["--weights", str(weights)]
        return shlex.join([*words, "--march", self.name])

    def check(self, model, patch_command: str | None = None) -> list:
        """Every node of the ONNX `model` that a rule rejects, in graph order.

        `patch_command` (see `patch_command()`) goes into the fixes that say to run `zoo patch`, so they
        name the real model; without it they say MODEL."""
        patch = patch_command or f"zoo patch MODEL --march {self.name}"
        watched = {op for rule in self.rules for op in rule.op_types}
        if not any(node.op_type in watched for node in model.graph.node):
            return []
        ranks = tensor_ranks(model)
        findings = []
        for index, node in enumerate(model.graph.node):
            if node.op_type not in watched:
                continue
            rank = ranks.get(node.input[0]) if node.input else None
            name = node.name or f"#{index} ({node.output[0]})"
            ranked = [r for r in self.rules if node.op_type in r.op_types and r.rank is not None]
            if rank is None and ranked:
                findings.append(
                    Finding(
                        name,
                        node.op_type,
                        f"its input rank is unknown, so {self.name} may reject it",
                        "export the model with static shapes so ONNX shape inference can tell the rank",
                        severity="error" if any(r.severity == "error" for r in ranked) else "warning",
                    )
                )
                continue
            for rule in self.rules:
                if rule.matches(node.op_type, rank):
                    fix = rule.fix.replace(PATCH_COMMAND, patch)
                    findings.append(Finding(name, node.op_type, rule.message, fix, rank, rule.severity))
                    break
        return findings


_POOL_5D_FIX = (
    "reshape to 4-D around it (fold T into the batch or channel axis) so the pooling runs as 2-D, "
    "or replace it by ReduceMean/ReduceMax when it covers whole axes"
)
# D-Robotics' words for the fix in its S100 video sample (docs/board.md, source VID)
PUBLISHED_FIX = "We replaced it with the 2D ReduceMean operator"


def nash_e() -> March:
    """RDK S100, OpenExplorer 3.5: hb_compile supports 5-D Conv but not 5-D pooling; a 5-D reduction
    is not known to be accepted (docs/board.md)."""
    from modelzoo.core.graph.graph_patch import reduce_in_4d, replace_global_pooling

    return March(
        name="nash-e",
        device="RDK S100",
        rules=(
            Rule(
                op_types=("GlobalAveragePool", "GlobalMaxPool"),
                rank=5,
                message="hb_compile for nash-e rejects 5-D global pooling",
                fix=f"run {PATCH_COMMAND}; it reshapes [N,C,T,H,W] to 4-D [N,C,T*H,W], then ReduceMean "
                "(ReduceMax) over axes 2,3, the 2-D ReduceMean D-Robotics describes",
                rewrite="reduce_mean_4d",
            ),
            Rule(
                op_types=("AveragePool", "MaxPool"),
                rank=5,
                message="hb_compile for nash-e rejects 5-D pooling",
                fix=_POOL_5D_FIX,
            ),
            Rule(
                op_types=("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum"),
                rank=5,
                message="a 5-D reduction is not known to be accepted by hb_compile for nash-e "
                "(D-Robotics' published fix uses a 2-D ReduceMean)",
                fix=f"run {PATCH_COMMAND} (rewrite reduce_mean_4d) to compute it on a 4-D Reshape when it "
                "reduces axes 2,3,4; otherwise reshape to 4-D around it",
                rewrite="reduce_mean_4d",
                severity="warning",
            ),
        ),
        rewrites=(
            Rewrite(
                "reduce_mean_4d",
                "Reshape the 5-D [N,C,T,H,W] to 4-D [N,C,T*H,W], then ReduceMean (ReduceMax for max pooling) over "
                "axes 2,3 with keepdims=1; also moves 5-D ReduceMean/Max/Min/Sum over axes 2,3,4 to 4-D",
                reduce_in_4d,
                source=f"zoo's default; the 2-D ReduceMean D-Robotics describes for its S100 video sample: "
                f"'{PUBLISHED_FIX}' (docs/board.md, VID)",
            ),
            Rewrite(
                "reduce_mean_5d",
                "ReduceMean (ReduceMax) over axes 2,3,4 of the 5-D input with keepdims=1",
                lambda model: replace_global_pooling(model, ranks=(5,)),
                source="zoo's earlier rewrite; a 5-D ReduceMean is not known to be accepted by nash-e, "
                "so `zoo check` warns about it (docs/board.md, Not confirmed)",
            ),
        ),
    )
