"""`python -m controller`: the ModelImagePush CustomRun controller."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

from controller.kube.client import KubeClient
from controller.obs import log as obs_log
from controller.obs.metrics import Metrics
from controller.runtime.controller import Controller
from controller.settings import Settings

log = logging.getLogger("controller")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m controller", description=__doc__)
    p.add_argument("--config", help="settings file (YAML/JSON); same as MODELPUSH_CONFIG_FILE")
    p.add_argument("--kubeconfig", help="kubeconfig path; default $KUBECONFIG, then in-cluster")
    p.add_argument("--metrics-port", type=int, help="port for /healthz /readyz /metrics (0: any free port)")
    p.add_argument("--namespaces", help="comma-separated namespaces to watch (default: all)")
    p.add_argument("--no-leader-election", action="store_true", help="act at once, without a Lease")
    return p.parse_args(argv)


async def amain(args: argparse.Namespace) -> int:
    if args.config:
        os.environ["MODELPUSH_CONFIG_FILE"] = args.config
    overrides: dict[str, object] = {}
    if args.kubeconfig:
        overrides["kubeconfig"] = args.kubeconfig
    if args.metrics_port is not None:
        overrides["metrics_port"] = args.metrics_port
    if args.namespaces:
        overrides["namespaces"] = args.namespaces
    if args.no_leader_election:
        overrides["leader_election"] = False
    settings = Settings(**overrides)  # type: ignore[arg-type]
    obs_log.setup(settings.log_level)
    metrics = Metrics()
    client = await KubeClient.create(
        settings.kubeconfig,
        on_request=lambda verb, code: metrics.api_requests.labels(verb=verb, code=str(code)).inc(),
    )
    ctl = Controller(settings, client, metrics)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await ctl.start()
    log.info(
        "Started controller",
        extra={
            "fields": {
                "identity": settings.identity,
                "namespaces": settings.namespaces or "all",
                "work_image": settings.work_image,
                "leader_election": settings.leader_election,
                "metrics_port": settings.metrics_port,
            }
        },
    )
    stopping = asyncio.create_task(stop.wait())
    failing = asyncio.create_task(ctl.supervise())
    done, _ = await asyncio.wait({stopping, failing}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if failing in done:
        log.error("Stopping controller: a root task ended", extra={"fields": {"error": failing.result()}})
        code = 1
    else:
        log.info("Stopping controller")
    for task in (stopping, failing):
        task.cancel()
    await ctl.stop()
    await client.close()
    log.info("Stopped controller")
    return code


def main() -> None:
    raise SystemExit(asyncio.run(amain(parse_args())))


if __name__ == "__main__":
    main()
