"""Prometheus metrics, prefix modelpush_; reconcile/workqueue/leader names follow controller-runtime's."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, float("inf"))
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf"))


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.runs = Counter(
            "modelpush_runs",
            "Finished CustomRuns by outcome, reason and mode",
            ["outcome", "reason", "mode"],
            registry=r,
        )
        self.run_duration = Histogram(
            "modelpush_run_duration_seconds",
            "Time from a run's first start to its completion",
            ["outcome", "mode"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.bytes_pushed = Counter(
            "modelpush_pushed_bytes", "Bytes uploaded by successful runs", ["mode"], registry=r
        )
        self.evictions = Counter(
            "modelpush_evictions", "Work pods evicted for ephemeral storage", ["mode"], registry=r
        )
        self.active_pods = Gauge("modelpush_active_pods", "Work pods not yet finished", registry=r)
        self.reconcile = Counter("modelpush_reconcile", "Reconciles by result", ["result"], registry=r)
        self.reconcile_errors = Counter(
            "modelpush_reconcile_errors", "Reconciles that raised an error", registry=r
        )
        self.reconcile_time = Histogram(
            "modelpush_reconcile_time_seconds", "Time per reconcile", buckets=RECONCILE_BUCKETS, registry=r
        )
        self.queue_depth = Gauge("modelpush_workqueue_depth", "Keys waiting in the work queue", registry=r)
        self.leader = Gauge(
            "modelpush_leader_election_master_status", "1 when this replica is the leader", registry=r
        )
        self.api_requests = Counter(
            "modelpush_api_requests",
            "Kubernetes API requests by verb and status code",
            ["verb", "code"],
            registry=r,
        )
        self.status_updates = Counter(
            "modelpush_status_updates", "CustomRun status patches written", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
