"""Ephemeral-storage eviction decisions with the kubelet's own messages (pkg/kubelet/eviction).

Pure: callers pass measured usage; nothing here touches the disk or the API.
"""

from dataclasses import dataclass, field

from controller.model.quantity import format_quantity

RESOURCE = "ephemeral-storage"


@dataclass(frozen=True)
class ContainerUsage:
    name: str
    used: int
    limit: int | None = None
    request: int | None = None
    limit_text: str | None = None  # as written in the spec, so messages echo "64Mi" verbatim


@dataclass(frozen=True)
class VolumeUsage:
    name: str
    used: int
    size_limit: int | None = None


@dataclass(frozen=True)
class PodUsage:
    key: str  # namespace/name, for the caller
    containers: list[ContainerUsage]
    volumes: list[VolumeUsage] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(c.used for c in self.containers) + sum(v.used for v in self.volumes)

    @property
    def request_total(self) -> int:
        return sum(c.request or 0 for c in self.containers)


def limit_eviction(pod: PodUsage) -> str | None:
    """Kubelet's localStorageEviction order: emptyDir sizeLimit, then the pod total, then each container."""
    for v in pod.volumes:
        if v.size_limit is not None and v.used > v.size_limit:
            limit = format_quantity(v.size_limit)
            return f'Usage of EmptyDir volume "{v.name}" exceeds the limit "{limit}". '
    limited = [c for c in pod.containers if c.limit is not None]
    if limited:
        pod_limit = sum(c.limit or 0 for c in limited)
        if pod.total > pod_limit:
            text = _text(limited[0]) if len(limited) == 1 else format_quantity(pod_limit)
            return f"Pod ephemeral local storage usage exceeds the total limit of containers {text}. "
    for c in limited:
        if c.limit is not None and c.used > c.limit:
            text = _text(c)
            return f'Container {c.name} exceeded its local ephemeral storage limit "{text}". '
    return None


def node_pressure_eviction(pods: list[PodUsage], capacity: int, allocatable: int) -> tuple[str, str] | None:
    """When the pods' total use passes the node's allocatable, pick one pod (the kubelet's ranking: pods
    over their requests first, then by use above request) and return (pod key, message)."""
    used = sum(p.total for p in pods)
    if used <= allocatable or not pods:
        return None
    victim = max(pods, key=lambda p: (p.total > p.request_total, p.total - p.request_total))
    threshold = capacity - allocatable
    available = capacity - used
    msg = f"The node was low on resource: {RESOURCE}. "
    msg += f"Threshold quantity: {format_quantity(threshold)}, available: {format_quantity(available)}. "
    for c in victim.containers:
        req = c.request or 0
        if c.used > req:
            msg += (
                f"Container {c.name} was using {format_quantity(c.used)}, request is {format_quantity(req)}, "
                f"has larger consumption of {RESOURCE}. "
            )
    return victim.key, msg


def _text(c: ContainerUsage) -> str:
    return c.limit_text or format_quantity(c.limit or 0)


def node_capacity(allocatable: int) -> int:
    """Capacity such that the eviction threshold is 10% of it (the kubelet's nodefs.available<10% default)
    and capacity - threshold = allocatable; rounded up to whole KiB."""
    cap = -(-allocatable * 10 // 9)
    return -(-cap // 1024) * 1024
