"""`python -m hack.tekton build|install|run --kubeconfig K`: build Tekton, install it, or run it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from hack.tekton import launcher


async def _run(kubeconfig: Path, workdir: Path) -> None:
    ctl = launcher.TektonController(kubeconfig, workdir)
    await ctl.start()
    pid = ctl.proc.pid if ctl.proc else "?"
    print(f"tekton controller running (pid {pid}), log {ctl.log_path}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set() and ctl.proc is not None and ctl.proc.poll() is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        await ctl.stop()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m hack.tekton")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build the controller binary (cached) and print its path")
    for name in ("install", "run"):
        sp = sub.add_parser(name, help=f"{name} Tekton against a cluster")
        sp.add_argument("--kubeconfig", type=Path, default=Path(".local/kubeconfig"))
        sp.add_argument("--workdir", type=Path, default=Path(".local/tekton"))
    args = p.parse_args()
    if args.cmd == "build":
        print(launcher.build())
    elif args.cmd == "install":
        asyncio.run(launcher.install(args.kubeconfig))
    else:
        asyncio.run(_run(args.kubeconfig, args.workdir))


if __name__ == "__main__":
    main()
