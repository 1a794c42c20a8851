from hack.nodeagent.eviction import (
    ContainerUsage,
    PodUsage,
    VolumeUsage,
    limit_eviction,
    node_capacity,
    node_pressure_eviction,
)

Mi = 2**20


def test_under_limits_no_eviction():
    pod = PodUsage("ns/p", [ContainerUsage("push", 10 * Mi, limit=64 * Mi, limit_text="64Mi")])
    assert limit_eviction(pod) is None


def test_single_container_over_limit_uses_pod_total_message():
    pod = PodUsage("ns/p", [ContainerUsage("push", 70 * Mi, limit=64 * Mi, limit_text="64Mi")])
    assert (
        limit_eviction(pod)
        == "Pod ephemeral local storage usage exceeds the total limit of containers 64Mi. "
    )


def test_emptydir_size_limit_is_checked_first():
    pod = PodUsage(
        "ns/p",
        [ContainerUsage("push", 100 * Mi, limit=64 * Mi)],
        [VolumeUsage("scratch", 20 * Mi, size_limit=10 * Mi)],
    )
    assert limit_eviction(pod) == 'Usage of EmptyDir volume "scratch" exceeds the limit "10Mi". '


def test_emptydir_usage_counts_toward_pod_limit():
    pod = PodUsage(
        "ns/p", [ContainerUsage("push", 40 * Mi, limit=64 * Mi)], [VolumeUsage("scratch", 30 * Mi)]
    )
    assert (
        limit_eviction(pod)
        == "Pod ephemeral local storage usage exceeds the total limit of containers 64Mi. "
    )


def test_container_limit_message_when_pod_total_fits():
    # Two containers: the sum (128Mi) is not exceeded, but one container is over its own 64Mi.
    pod = PodUsage(
        "ns/p",
        [
            ContainerUsage("a", 70 * Mi, limit=64 * Mi, limit_text="64Mi"),
            ContainerUsage("b", 1 * Mi, limit=64 * Mi, limit_text="64Mi"),
        ],
    )
    assert limit_eviction(pod) == 'Container a exceeded its local ephemeral storage limit "64Mi". '


def test_no_limits_no_limit_eviction():
    assert limit_eviction(PodUsage("ns/p", [ContainerUsage("push", 10**12)])) is None


def test_node_pressure_picks_pod_over_request_with_kubelet_message():
    alloc = 256 * Mi
    cap = node_capacity(alloc)
    small = PodUsage("ns/small", [ContainerUsage("c", 10 * Mi, request=20 * Mi)])
    hog = PodUsage("ns/hog", [ContainerUsage("push", 70312 * 1024 * 4, request=10 * Mi)])
    key, msg = node_pressure_eviction([small, hog], cap, alloc)
    assert key == "ns/hog"
    threshold, available = cap - alloc, cap - small.total - hog.total
    assert msg == (
        "The node was low on resource: ephemeral-storage. "
        f"Threshold quantity: {threshold // 1024}Ki, available: {available // 1024}Ki. "
        "Container push was using 281248Ki, request is 10Mi, has larger consumption of ephemeral-storage. "
    )


def test_node_pressure_none_under_allocatable():
    pods = [PodUsage("ns/a", [ContainerUsage("c", 100 * Mi)])]
    assert node_pressure_eviction(pods, node_capacity(256 * Mi), 256 * Mi) is None


def test_node_capacity_threshold_is_ten_percent():
    alloc = 9 * 2**30
    cap = node_capacity(alloc)
    assert cap % 1024 == 0
    assert abs((cap - alloc) / cap - 0.10) < 0.001
