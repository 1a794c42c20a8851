"""The eviction parser against the kubelet's own message text.

The format strings are copied from k8s.io/kubernetes v1.33.13 `pkg/kubelet/eviction/helpers.go`
(`nodeLowMessageFmt`, `thresholdMetMessageFmt`, `containerMessageFmt`, `podEphemeralStorageMessageFmt`,
`containerEphemeralStorageMessageFmt`, `emptyDirMessageFmt`) and filled in the way the kubelet does
(`resource.Quantity.String()`), so a drift in the kubelet's wording shows up here first.
"""

from __future__ import annotations

import pytest

from controller.logic.eviction import is_storage_eviction, parse_eviction

NODE_LOW = "The node was low on resource: %s. "
THRESHOLD_MET = "Threshold quantity: %s, available: %s. "
CONTAINER = "Container %s was using %s, request is %s, has larger consumption of %s. "
POD_LIMIT = "Pod ephemeral local storage usage exceeds the total limit of containers %s. "
CONTAINER_LIMIT = 'Container %s exceeded its local ephemeral storage limit "%s". '
EMPTYDIR_LIMIT = 'Usage of EmptyDir volume "%s" exceeds the limit "%s". '

Ki, Mi = 1024, 1024**2


def node_pressure(available: str) -> str:
    return (
        NODE_LOW % "ephemeral-storage"
        + THRESHOLD_MET % ("25Mi", available)
        + CONTAINER % ("push", "70312Ki", "10Mi", "ephemeral-storage")
    )


@pytest.mark.parametrize(
    ("available", "expected"),
    [
        ("10Mi", 10 * Mi),
        ("0", 0),
        # once the node is past its threshold the kubelet reports a negative figure
        ("-1024Ki", -1024 * Ki),
        ("-1Mi", -Mi),
        ("-2Ki", -2 * Ki),
        ("-512", -512),
    ],
)
def test_node_pressure_figures(available: str, expected: int) -> None:
    ev = parse_eviction(node_pressure(available))
    assert ev.available == expected
    assert (ev.threshold, ev.usage, ev.request) == (25 * Mi, 70312 * Ki, 10 * Mi)
    assert ev.node_pressure


@pytest.mark.parametrize(
    ("message", "limit"),
    [
        (POD_LIMIT % "64Mi", 64 * Mi),
        (CONTAINER_LIMIT % ("push", "32Mi"), 32 * Mi),
        (EMPTYDIR_LIMIT % ("scratch", "1Gi"), 1024 * Mi),
    ],
)
def test_limit_figures(message: str, limit: int) -> None:
    ev = parse_eviction(message)
    assert ev.limit == limit and not ev.node_pressure
    assert is_storage_eviction("Evicted", message)


def test_memory_pressure_is_not_a_storage_eviction() -> None:
    message = (
        NODE_LOW % "memory" + THRESHOLD_MET % ("100Mi", "-3Mi") + CONTAINER % ("push", "1Gi", "0", "memory")
    )
    assert not is_storage_eviction("Evicted", message)
    assert parse_eviction(message).available == -3 * Mi
