"""Board architectures as registered objects: each March holds its toolchain's known constraints
(rules) and the automatic graph rewrites that fix some of them, plus the lint that checks a model.

Marches come from `zoo_register_marches`; the core's own plugin registers nash-e (RDK S100).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from modelzoo.core.graph.onnx_shapes import tensor_ranks


@dataclass(frozen=True)
class Rewrite:
    """An automatic graph fix: `apply(model)` rewrites an onnx.ModelProto in place and returns its changes."""

    name: str
    description: str
    apply: Callable = field(compare=False)


@dataclass(frozen=True)
class Rule:
    """Nodes of `op_types` (with a first input of `rank`, when set) are rejected by the march's toolchain.

    `rewrite` names a Rewrite of the same march that fixes it automatically.
    """

    op_types: tuple
    message: str
    fix: str
    rank: int | None = None
    rewrite: str | None = None

    def matches(self, op_type: str, rank: int | None) -> bool:
        return op_type in self.op_types and (self.rank is None or rank == self.rank)


@dataclass(frozen=True)
class Finding:
    node: str
    op_type: str
    message: str
    fix: str
    rank: int | None = None

    def to_dict(self) -> dict:
        return {"node": self.node, "op_type": self.op_type, "rank": self.rank, "message": self.message, "fix": self.fix}


@dataclass(frozen=True)
class March:
    """One board architecture (e.g. nash-e) and what its toolchain is known to accept."""

    name: str
    device: str = ""
    rules: tuple = ()
    rewrites: tuple = ()

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

        known = ", ".join(r.name for r in self.rewrites) or "none"
        raise ToolchainError(f"march {self.name} has no rewrite {name!r}; known: {known}")

    def apply_rewrites(self, model, names=None) -> list:
        """Apply, in place, the rewrites the rules name (or those in `names`); returns the changes."""
        wanted = list(dict.fromkeys(names if names is not None else (r.rewrite for r in self.rules if r.rewrite)))
        changes = []
        for name in wanted:
            changes.extend(self.rewrite(name).apply(model))
        return changes

    def check(self, model) -> list:
        """Every node of the ONNX `model` that a rule rejects, in graph order."""
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
            if rank is None and any(node.op_type in r.op_types and r.rank is not None for r in self.rules):
                findings.append(
                    Finding(
                        name,
                        node.op_type,
                        f"its input rank is unknown, so {self.name} may reject it",
                        "export the model with static shapes so ONNX shape inference can tell the rank",
                    )
                )
                continue
            for rule in self.rules:
                if rule.matches(node.op_type, rank):
                    findings.append(Finding(name, node.op_type, rule.message, rule.fix, rank))
                    break
        return findings


_POOL_5D_FIX = (
    "reshape to 4-D around it (fold T into the batch or channel axis) so the pooling runs as 2-D, "
    "or replace it by ReduceMean/ReduceMax when it covers whole axes"
)


def nash_e() -> March:
    """RDK S100, OpenExplorer 3.5: hb_compile supports 5-D Conv but not 5-D pooling (docs/board.md)."""
    from modelzoo.core.graph.graph_patch import replace_global_pooling

    return March(
        name="nash-e",
        device="RDK S100",
        rules=(
            Rule(
                op_types=("GlobalAveragePool", "GlobalMaxPool"),
                rank=5,
                message="hb_compile for nash-e rejects 5-D global pooling",
                fix="replace GlobalAveragePool by ReduceMean (GlobalMaxPool by ReduceMax) over axes 2,3,4 with keepdims=1: run `zoo patch MODEL`",
                rewrite="global_pool_to_reduce",
            ),
            Rule(
                op_types=("AveragePool", "MaxPool"),
                rank=5,
                message="hb_compile for nash-e rejects 5-D pooling",
                fix=_POOL_5D_FIX,
            ),
        ),
        rewrites=(
            Rewrite(
                "global_pool_to_reduce",
                "5-D GlobalAveragePool/GlobalMaxPool -> ReduceMean/ReduceMax over the spatial axes, keepdims=1",
                lambda model: replace_global_pooling(model, ranks=(5,)),
            ),
        ),
    )
