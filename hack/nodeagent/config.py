"""Node agent configuration (validated at the edge with pydantic)."""

from pydantic import BaseModel, Field, field_validator

from controller.model.quantity import parse_quantity

EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


class NodeConfig(BaseModel):
    name: str
    ephemeral: str = "10Gi"  # allocatable ephemeral-storage
    cpu: str = "4"
    memory: str = "8Gi"
    pods: int = 110
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[str] = Field(default_factory=list)  # "key=value:Effect" or "key:Effect"

    @field_validator("ephemeral", "cpu", "memory")
    @classmethod
    def _quantity(cls, v: str) -> str:
        parse_quantity(v)
        return v

    @field_validator("taints")
    @classmethod
    def _taints(cls, v: list[str]) -> list[str]:
        for t in v:
            parse_taint(t)
        return v


class AgentConfig(BaseModel):
    nodes: list[NodeConfig]


def parse_taint(s: str) -> dict[str, str]:
    """'modelpush.dev/small=true:NoSchedule' -> {'key':..., 'value':..., 'effect':...}."""
    kv, sep, effect = s.rpartition(":")
    if not sep or effect not in EFFECTS or not kv:
        raise ValueError(f"taint {s!r}: want key[=value]:{'|'.join(EFFECTS)}")
    key, _, value = kv.partition("=")
    out = {"key": key, "effect": effect}
    if value:
        out["value"] = value
    return out


def parse_label(s: str) -> tuple[str, str]:
    k, sep, v = s.partition("=")
    if not sep or not k:
        raise ValueError(f"label {s!r}: want key=value")
    return k, v
