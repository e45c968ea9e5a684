"""Known board-toolchain constraints, as a table per march, and the lint that checks a model against them.

The table is data so that plugins and users can extend it (`register_rules`) without touching
the checker. A rule may name an automatic rewrite (a key of graph_patch.REWRITES) that fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelzoo.core.errors import ToolchainError
from modelzoo.core.graph.onnx_shapes import tensor_ranks


@dataclass(frozen=True)
class Rule:
    """Nodes of `op_types` (with an input of `rank`, when set) are rejected by the march's toolchain."""

    op_types: tuple
    message: str
    fix: str
    rank: int | None = None  # rank of the node's first input that triggers the rule; None = any
    rewrite: str | None = None  # a graph_patch.REWRITES key that fixes it automatically

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


_POOL_5D_FIX = (
    "reshape to 4-D around it (fold T into the batch or channel axis) so the pooling runs as 2-D, "
    "or replace it by ReduceMean/ReduceMax when it covers whole axes"
)

MARCH_RULES: dict = {
    # RDK S100, OpenExplorer 3.5: hb_compile supports 5-D Conv but not 5-D pooling.
    "nash-e": [
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
    ],
}


def register_rules(march: str, *rules: Rule) -> None:
    """Add constraints for `march` (creating the march if new), e.g. from a plugin at import time."""
    MARCH_RULES.setdefault(march, []).extend(rules)


def known_marches() -> list:
    return sorted(MARCH_RULES)


def rules_for(march: str) -> list:
    if march not in MARCH_RULES:
        raise ToolchainError(f"unknown march {march!r}; known: {', '.join(known_marches())} (the RDK S100 is nash-e)")
    return list(MARCH_RULES[march])


def check_model(model, march: str) -> list:
    """Every node of the ONNX `model` that a `march` rule rejects, in graph order."""

    rules = rules_for(march)
    watched = {op for rule in rules for op in rule.op_types}
    if not any(node.op_type in watched for node in model.graph.node):
        return []
    ranks = tensor_ranks(model)
    findings = []
    for index, node in enumerate(model.graph.node):
        if node.op_type not in watched:
            continue
        rank = ranks.get(node.input[0]) if node.input else None
        name = node.name or f"#{index} ({node.output[0]})"
        if rank is None and any(node.op_type in r.op_types and r.rank is not None for r in rules):
            findings.append(
                Finding(
                    name,
                    node.op_type,
                    f"its input rank is unknown, so {march} may reject it",
                    "export the model with static shapes so ONNX shape inference can tell the rank",
                )
            )
            continue
        for rule in rules:
            if rule.matches(node.op_type, rank):
                findings.append(Finding(name, node.op_type, rule.message, rule.fix, rank))
                break
    return findings
