"""The one definition of the local cluster's nodes: names, labels, taints, where their storage lives.

``local-node-1`` keeps its kubelet root on the ordinary disk. ``local-small`` keeps its kubelet root and pod
logs on a tmpfs (``MODELPUSH_SMALL_NODE_SIZE``, default 512Mi), so filling an emptyDir there drives the
kubelet's own node-pressure eviction; it is tainted so that only pods that ask for it land there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

NODE = "local-node-1"
SMALL_NODE = "local-small"
SMALL_LABEL = ("modelpush.dev/node-size", "small")
SMALL_TAINT = {"key": "modelpush.dev/small", "value": "true", "effect": "NoSchedule"}
SMALL_SIZE = os.environ.get("MODELPUSH_SMALL_NODE_SIZE", "512Mi")


@dataclass(frozen=True)
class NodeSpec:
    name: str
    tmpfs: str | None = None  # size of the tmpfs holding the kubelet root and pod logs; None: on disk
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] = ()
    # The kubelet's hard eviction thresholds. The disk node's are tiny so a busy host never evicts;
    # the small node keeps a real nodefs threshold so node-pressure eviction happens there.
    eviction_hard: dict[str, str] = field(default_factory=dict)


def nodes(small_size: str = SMALL_SIZE) -> list[NodeSpec]:
    return [
        NodeSpec(
            NODE,
            eviction_hard={"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        ),
        NodeSpec(
            SMALL_NODE,
            tmpfs=small_size,
            labels={SMALL_LABEL[0]: SMALL_LABEL[1]},
            taints=(SMALL_TAINT,),
            eviction_hard={"memory.available": "100Mi", "nodefs.available": "10%", "imagefs.available": "1%"},
        ),
    ]
