"""LocalCluster: etcd + kube-apiserver + kube-controller-manager + kube-scheduler on loopback.

Every component runs detached in its own process group with a pid file under ``<workdir>/pids`` so that
``stop()`` (or ``python -m hack.localcluster down`` from another process) can kill whole groups.
"""

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from hack.localcluster import hostlock, hoststate, network
from hack.localcluster.binaries import REPO, bin_dir
from hack.localcluster.certs import Pki, make_pki
from hack.localcluster.kubeconfig import write_kubeconfig
from hack.localcluster.network import Network
from hack.localcluster.procs import alive, read_pid, spawn, stop_recorded
from hack.localcluster.realnodes import RealNodes
from hack.localcluster.rest import Rest
from hack.localcluster.topology import NodeSpec
from hack.ports import ATTEMPTS, free_port, in_use, port_free
from hack.tekton.manifests import crds as tekton_crds
from hack.tekton.manifests import module_dir

SERVICE_CIDR = "10.0.0.0/24"
CORE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
_HOSTPORT = re.compile(r"^\d+\.\d+\.\d+\.\d+:\d+$")  # the line `python -m hack.registry serve` prints
# Controllers a real cluster would run that our tests depend on (GC, namespace deletion, service accounts,
# quota status, the kube-root-ca.crt ConfigMap, and the finalizers the storage admission plugin adds).
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "resourcequota-controller",
    "root-ca-certificate-publisher-controller",
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
)
# What real nodes, Deployments, StatefulSets (Tekton's affinity assistant), Services and dynamic provisioning
# need on top.
NODE_CONTROLLERS = (
    "node-lifecycle-controller",
    "taint-eviction-controller",
    "pod-garbage-collector-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
    "ttl-after-finished-controller",
    "disruption-controller",
    "persistentvolume-binder-controller",
    "clusterrole-aggregation-controller",
)


class ClusterError(RuntimeError):
    pass


def _wait(
    what: str, check: Any, timeout: float, pid_names: tuple[str, ...] = (), piddir: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for name in pid_names:
            pid = read_pid(piddir, name) if piddir else None
            if pid is not None and not alive(pid):
                raise ClusterError(f"{name} exited while waiting for {what}; see its log")
        time.sleep(0.25)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")


class LocalCluster:
    def __init__(self, workdir: Path | str, die_with_parent: bool = False, real_nodes: bool = False) -> None:
        """``die_with_parent``: processes get SIGTERM when the process that started them exits (fixtures);
        off for `up`, whose processes outlive the CLI. Call start() from the main thread then.
        ``real_nodes``: give the cluster a pod network (bridge, subnet, firewall) and serve the apiserver on
        its gateway, so that kubelets (start_nodes) and pods reach it."""
        self.workdir = Path(workdir).resolve()
        self.die_with_parent = die_with_parent
        self.net: Network | None = Network.load(self.workdir / "network.json")
        self.real_nodes = real_nodes or self.net is not None
        self.piddir = self.workdir / "pids"
        self.logdir = self.workdir / "logs"
        self.kubeconfig = self.workdir / "kubeconfig"
        self._state_file = self.workdir / "state.json"
        self.pki: Pki | None = None
        self.etcd_port = 0
        self.apiserver_port = 0
        self._load_state()

    # -- public attributes -------------------------------------------------------------------------
    @property
    def host_ip(self) -> str:
        """Where the apiserver and the registry listen: the pod network's gateway, else loopback."""
        return self.net.gateway if self.net else "127.0.0.1"

    @property
    def server(self) -> str:
        return f"https://{self.host_ip}:{self.apiserver_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    def rest(self) -> Rest:
        assert self.pki is not None
        return Rest(self.server, self.pki.ca_crt, self.pki.admin_crt, self.pki.admin_key)

    # -- lifecycle ---------------------------------------------------------------------------------
    def running(self) -> bool:
        """True when every core process is alive and the apiserver answers /readyz."""
        if not self.apiserver_port or self.pki is None:
            return False
        for name in CORE:
            pid = read_pid(self.piddir, name)
            if pid is None or not alive(pid):
                return False
        return self.rest().ok("/readyz")

    def start(self, timeout: float = 120.0) -> "LocalCluster":
        """Starts the control plane and installs Tekton's CRDs; a no-op if it is already running."""
        if self.running():
            return self
        self.stop()
        bins = bin_dir()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.real_nodes:
            hostlock.hold(self.spawn, outlives_us=not self.die_with_parent)
            self.net = self.net or network.allocate()
            self.net.save(self.workdir / "network.json")
            hoststate.record(self.workdir / "host-before.json")
            network.up(self.net)
        self.pki = make_pki(self.workdir / "pki", ips=(self.net.gateway,) if self.net else ())
        try:
            self._start_core(bins, timeout)
            write_kubeconfig(
                self.kubeconfig, self.server, self.pki.ca_crt, self.pki.admin_crt, self.pki.admin_key
            )
            self.install_manifests(timeout)
            self._start_controllers(bins, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_core(self, bins: Path, timeout: float) -> None:
        """etcd and kube-apiserver: a restart first keeps its ports (and so its kubeconfig) when they are
        still free; again on fresh ports when a port was taken meanwhile."""
        for attempt in range(1, ATTEMPTS + 1):
            for name in ("etcd", "kube-apiserver"):
                (self.logdir / f"{name}.log").unlink(missing_ok=True)
            keep = attempt == 1
            self.etcd_port = self.etcd_port if keep and port_free(self.etcd_port) else free_port()
            self.apiserver_port = (
                self.apiserver_port if keep and port_free(self.apiserver_port, self.host_ip) else free_port()
            )
            self._save_state()
            try:
                self._start_etcd(bins, timeout)
                self._start_apiserver(bins, timeout)
                return
            except ClusterError:
                logs = [self.logdir / f"{name}.log" for name in ("etcd", "kube-apiserver")]
                if attempt == ATTEMPTS or not in_use(*logs):
                    raise
                stop_recorded(self.piddir, ("kube-apiserver", "etcd"))

    def stop(self) -> list[str]:
        """Stops everything started from this workdir: real nodes (restoring the host), extras (the
        registry), then the core. Returns what could not be removed from the host (empty when clean)."""
        left = self.nodes().stop() if self.net else []
        extras = (
            sorted(p.stem for p in self.piddir.glob("*.pid") if p.stem not in (*CORE, hostlock.NAME))
            if self.piddir.exists()
            else []
        )
        try:
            stop_recorded(self.piddir, extras)
        finally:  # the core goes even when an extra could not be stopped
            stop_recorded(self.piddir, tuple(reversed(CORE)))
            stop_recorded(self.piddir, [hostlock.NAME])  # last: the host is back as it was
        return left

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        """Runs the cluster's kubectl with the admin kubeconfig; a failure raises with kubectl's stderr."""
        argv = [str(bin_dir() / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        r = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
        return r.stdout

    def nodes(self) -> RealNodes:
        assert self.net is not None, "a cluster without real_nodes has no pod network"
        return RealNodes(self, self.net)

    def start_nodes(
        self, specs: list[NodeSpec], pause_image: str, registry: str, timeout: float = 180.0
    ) -> None:
        """Starts kube-proxy and a containerd + kubelet per spec (see hack.localcluster.topology); waits until
        every node is Ready. ``registry`` (host:port) is reached over plain HTTP; ``pause_image`` is there."""
        self.nodes().start(specs, pause_image, registry, timeout)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        """Runs an extra process (the registry) whose lifetime is tied to this cluster."""
        # cwd = repo root, so `python -m hack.*` children import the checkout wherever we were started from.
        return spawn(name, argv, self.piddir, self.logdir, env, self.die_with_parent, cwd=REPO)

    def start_registry(self, data_dir: Path, timeout: float = 30.0) -> str:
        """Starts Debian's docker-registry (``python -m hack.registry serve``) as an extra of this cluster and
        returns the ``HOST:PORT`` it reports (HOST: ``host_ip``, so that pods reach it on real nodes)."""
        log = self.logdir / "registry.log"
        log.unlink(missing_ok=True)  # the address to wait for is the one this start prints
        argv = [
            sys.executable,
            "-m",
            "hack.registry",
            "serve",
            "--dir",
            str(data_dir),
            "--listen",
            self.host_ip,
        ]
        self.spawn("registry", argv)
        host = ""

        def reported() -> bool:
            nonlocal host
            lines = log.read_text(errors="replace").splitlines() if log.exists() else []
            host = next((ln.strip() for ln in reversed(lines) if _HOSTPORT.match(ln.strip())), "")
            return bool(host)

        _wait("the registry's address", reported, timeout, ("registry",), self.piddir)
        return host

    # -- components --------------------------------------------------------------------------------
    def _start_etcd(self, bins: Path, timeout: float) -> None:
        peer = free_port()
        data = self.workdir / "etcd-data"
        argv = [
            str(bins / "etcd"),
            "--name=default",
            f"--data-dir={data}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=default=http://127.0.0.1:{peer}",
            "--initial-cluster-state=new",
            # Test data is throwaway: skipping fsync keeps a 2-core box responsive.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]
        self.spawn("etcd", argv)

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(self.etcd_url + "/health", timeout=2) as r:
                    return bool(json.loads(r.read()).get("health") == "true")
            except OSError:
                return False

        _wait("etcd health", healthy, timeout, ("etcd",), self.piddir)

    def _start_apiserver(self, bins: Path, timeout: float) -> None:
        pki = self.pki
        assert pki is not None
        argv = [
            str(bins / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            f"--bind-address={self.host_ip}",
            f"--advertise-address={self.host_ip}",
            f"--secure-port={self.apiserver_port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.serving_crt}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_crt}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--api-audiences=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            # Already in the default set; listed so the intent survives a change of defaults.
            "--enable-admission-plugins=LimitRanger,ResourceQuota,ServiceAccount,NamespaceLifecycle",
            # Watches are served by etcd directly, so a compacted resourceVersion gives a real 410 Gone
            # (with the watch cache, old versions are answered from memory and no 410 would be seen).
            "--watch-cache=false",
            "--enable-priority-and-fairness=false",
            # `kubectl logs` reaches kubelets by their InternalIP (there is no DNS for node names here), and
            # webhooks are reached at their endpoints (pod IPs) rather than through Service ClusterIPs.
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--kubelet-client-certificate={pki.admin_crt}",
            f"--kubelet-client-key={pki.admin_key}",
            "--enable-aggregator-routing=true",
            # buildah mode's privileged pods; refused with "disallowed by cluster policy" otherwise.
            "--allow-privileged=true",
            "--profiling=false",
            # Every request at Metadata level (who, verb, resource, response code): tests read which calls
            # a component made, e.g. that config/rbac grants exactly what the controller calls.
            f"--audit-policy-file={self._audit_policy()}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-maxsize=200",
            "--v=1",
        ]
        if not self.net:
            # The `kubernetes` Service endpoints cannot be a loopback address; without real nodes nothing
            # needs them.
            argv.append("--endpoint-reconciler-type=none")
        self.spawn("kube-apiserver", argv)
        rest = self.rest()
        _wait("kube-apiserver /readyz", lambda: rest.ok("/readyz"), timeout, ("kube-apiserver",), self.piddir)

    @property
    def audit_log(self) -> Path:
        """The API server's audit log: one JSON event per line, at Metadata level."""
        return self.logdir / "audit.log"

    def _audit_policy(self) -> Path:
        path = self.workdir / "audit-policy.yaml"
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            # ResponseStarted stays: a watch is logged when it starts, not only when it ends minutes later
            "omitStages": ["RequestReceived"],
            "rules": [{"level": "Metadata"}],
        }
        path.write_text(json.dumps(policy))
        return path

    def _start_controllers(self, bins: Path, timeout: float) -> None:
        pki = self.pki
        assert pki is not None
        kc = str(self.kubeconfig)
        common = [f"--kubeconfig={kc}", "--leader-elect=false", "--secure-port=0", "--v=1"]
        self.spawn(
            "kube-controller-manager",
            [
                str(bins / "kube-controller-manager"),
                *common,
                f"--controllers={','.join(CONTROLLERS + (NODE_CONTROLLERS if self.net else ()))}",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_crt}",
                "--use-service-account-credentials=false",
            ],
        )
        self.spawn("kube-scheduler", [str(bins / "kube-scheduler"), *common])
        rest = self.rest()
        # The serviceaccount controller creating `default` proves the controller-manager is working.
        _wait(
            "default ServiceAccount (kube-controller-manager)",
            lambda: rest.ok("/api/v1/namespaces/default/serviceaccounts/default"),
            timeout,
            ("kube-controller-manager", "kube-scheduler"),
            self.piddir,
        )

    def install_manifests(self, timeout: float = 60.0) -> None:
        """Creates (or updates) Tekton's real CRDs, from the same pinned github.com/tektoncd/pipeline module
        the Tekton binaries are built from, and waits until they are Established: every cluster serves
        the real CustomRun schema from its start, whichever test comes first."""
        rest = self.rest()
        for doc in tekton_crds(module_dir()):
            self._apply_crd(rest, doc, timeout)

    @staticmethod
    def _apply_crd(rest: Rest, doc: dict[str, Any], timeout: float) -> None:
        base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        name = doc["metadata"]["name"]
        code, obj = rest.request("POST", base, doc)
        if code == 409:
            _, cur = rest.request("GET", f"{base}/{name}")
            assert isinstance(cur, dict)
            rv = cur["metadata"]["resourceVersion"]
            update = {**doc, "metadata": {**doc["metadata"], "resourceVersion": rv}}
            code, obj = rest.request("PUT", f"{base}/{name}", update)
        if code not in (200, 201):
            raise ClusterError(f"installing CRD {name}: HTTP {code}: {obj}")

        def established() -> bool:
            c, o = rest.request("GET", f"{base}/{name}")
            conds = ((o.get("status") or {}).get("conditions") or []) if isinstance(o, dict) else []
            return c == 200 and any(x["type"] == "Established" and x["status"] == "True" for x in conds)

        try:
            _wait(f"CRD {name} Established", established, min(timeout, 20.0))
        except ClusterError:
            # An apiserver stopped within seconds of creating the CRD can leave it "Installing" forever
            # (the establishing controller only reacts to name changes): recreate it.
            rest.request("DELETE", f"{base}/{name}")
            _wait(f"CRD {name} deleted", lambda: rest.request("GET", f"{base}/{name}")[0] == 404, timeout)
            code, obj = rest.request("POST", base, doc)
            if code != 201:
                raise ClusterError(f"recreating CRD {name}: HTTP {code}: {obj}") from None
            _wait(f"CRD {name} Established", established, timeout)

    # -- state -------------------------------------------------------------------------------------
    def _save_state(self) -> None:
        self._state_file.write_text(
            json.dumps({"etcd_port": self.etcd_port, "apiserver_port": self.apiserver_port})
        )

    def _load_state(self) -> None:
        try:
            st = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return
        self.etcd_port = int(st["etcd_port"])
        self.apiserver_port = int(st["apiserver_port"])
        pki_dir = self.workdir / "pki"
        if (pki_dir / "sa.pub").exists():
            self.pki = make_pki(pki_dir)
