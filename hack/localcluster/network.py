"""The pod network of one local cluster: a Linux bridge, a /24 subnet and the firewall that keeps pods local.

Each cluster gets its own bridge (``mpbr<n>``) and subnet (``10.244.<n>.0/24``), the smallest ``n`` no other
interface uses. The bridge gateway ``10.244.<n>.1`` is a host address: the apiserver, the kubelets and the
registry listen there, so pods reach them without leaving the machine. The CNI ``bridge`` plugin joins pods
to the bridge with ``ipMasq: false``; our chain in FORWARD drops everything from the subnet to anywhere but
the subnet, and everything from elsewhere to it, so no pod traffic leaves this host. Pods get no DNS server.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

CNI_BIN_DIR = "/usr/lib/cni"


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True)


@dataclass(frozen=True)
class Network:
    index: int

    @property
    def bridge(self) -> str:
        return f"mpbr{self.index}"

    @property
    def subnet(self) -> str:
        return f"10.244.{self.index}.0/24"

    @property
    def gateway(self) -> str:
        return f"10.244.{self.index}.1"

    @property
    def chain(self) -> str:
        """Our filter chain, jumped to from FORWARD."""
        return f"MODELPUSH-FWD-{self.index}"

    @property
    def cni_name(self) -> str:
        return f"modelpush-{self.index}"

    def node_range(self, slot: int) -> tuple[str, str]:
        """host-local range of node ``slot`` (0-based): 60 addresses each, .10 onwards."""
        base = ipaddress.ip_network(self.subnet).network_address
        start = 10 + 60 * slot
        return str(base + start), str(base + start + 59)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> Network | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def allocate() -> Network:
    """The first index whose bridge name and subnet no interface on this host uses."""
    links = run("ip", "-o", "link", "show").stdout
    addrs = run("ip", "-o", "-4", "addr", "show").stdout
    for i in range(10, 250):
        n = Network(i)
        if re.search(rf"^\d+: {n.bridge}[:@]", links, re.M) is None and f" 10.244.{i}." not in addrs:
            return n
    raise RuntimeError("no free 10.244.N.0/24 subnet for the pod network")


def up(n: Network) -> None:
    """Creates the bridge with the gateway address and installs the FORWARD guard (idempotent)."""
    if run("ip", "link", "show", n.bridge, check=False).returncode != 0:
        run("ip", "link", "add", "name", n.bridge, "type", "bridge")
    if n.gateway not in run("ip", "-o", "-4", "addr", "show", "dev", n.bridge).stdout:
        run("ip", "addr", "add", f"{n.gateway}/24", "dev", n.bridge)
    run("ip", "link", "set", n.bridge, "up")
    guard(n)


def guard(n: Network) -> None:
    """(Re)installs our chain on top of FORWARD: subnet<->subnet passes on, anything else in or out drops."""
    if run("iptables", "-w", "-n", "-L", n.chain, check=False).returncode != 0:
        run("iptables", "-w", "-N", n.chain)
    run("iptables", "-w", "-F", n.chain)
    run("iptables", "-w", "-A", n.chain, "-s", n.subnet, "-d", n.subnet, "-j", "RETURN")
    run("iptables", "-w", "-A", n.chain, "-s", n.subnet, "-j", "DROP")
    run("iptables", "-w", "-A", n.chain, "-d", n.subnet, "-j", "DROP")
    while run("iptables", "-w", "-D", "FORWARD", "-j", n.chain, check=False).returncode == 0:
        pass
    run("iptables", "-w", "-I", "FORWARD", "1", "-j", n.chain)


def down(n: Network) -> None:
    """Removes the bridge and our chain. Pods' veths vanish with their network namespaces."""
    run("ip", "link", "del", n.bridge, check=False)
    while run("iptables", "-w", "-D", "FORWARD", "-j", n.chain, check=False).returncode == 0:
        pass
    run("iptables", "-w", "-F", n.chain, check=False)
    run("iptables", "-w", "-X", n.chain, check=False)


def cni_config(n: Network, slot: int, ipam_dir: Path) -> dict[str, object]:
    """The CNI conflist of one node: bridge (no masquerade) + host-local (its own range) + loopback."""
    start, end = n.node_range(slot)
    return {
        "cniVersion": "1.0.0",
        "name": n.cni_name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": n.bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(ipam_dir),
                    "ranges": [
                        [{"subnet": n.subnet, "rangeStart": start, "rangeEnd": end, "gateway": n.gateway}]
                    ],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "loopback"},
        ],
    }
