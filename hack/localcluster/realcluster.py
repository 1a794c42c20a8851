"""A whole local cluster on real nodes, in the order it has to come up, for `make cluster-up` and the tests.

control plane (+ pod network) -> registry on the gateway -> images -> kube-proxy + nodes -> local-path
provisioner (default StorageClass) -> Tekton from its release manifests -> this project's controller from
``config/default`` (optional steps, in that order). ``stop()`` takes it all down and restores the host.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hack.images import tekton
from hack.images.catalog import ensure
from hack.localcluster import localpath, topology
from hack.localcluster.binaries import REPO
from hack.localcluster.cluster import LocalCluster
from hack.localcluster.procs import alive, read_pid
from hack.tekton import incluster

BASE_IMAGES = ("pause", "base")
CONTROLLER_NS = "model-image-push-system"
CONTROLLER_DEPLOYMENT = "model-image-push-controller"
UPSTREAM_IMAGE = "quay.io/modelpush/model-image-push"
PROJECT_IMAGE = "model-image-push"


@dataclass
class RealCluster:
    local: LocalCluster
    nodes: list[topology.NodeSpec] = field(default_factory=topology.nodes)
    registry: str = ""  # host:port on the pod network's gateway, plain HTTP; the host and pods reach it
    images: dict[str, Any] = field(default_factory=dict)  # name -> hack.images.catalog.Image
    host_before: dict[str, Any] = field(default_factory=dict)  # hoststate.snapshot() before the first start
    tekton: bool = False  # install Tekton from its release manifests
    controller: bool = False  # then this project's controller from config/default (needs tekton)

    @classmethod
    def at(cls, workdir: Path, die_with_parent: bool = False, **kw: Any) -> RealCluster:
        return cls(LocalCluster(workdir, die_with_parent=die_with_parent, real_nodes=True), **kw)

    @property
    def workdir(self) -> Path:
        return self.local.workdir

    @property
    def kubeconfig(self) -> Path:
        return self.local.kubeconfig

    def image(self, name: str) -> str:
        """The pushed reference of a hack.images image, building and pushing it on first use."""
        if name not in self.images:
            self.images.update(ensure([name], self.registry))
        return str(self.images[name].ref)

    def start(self) -> RealCluster:
        """Idempotent: what already runs is kept. On failure everything started is stopped again."""
        try:
            self.local.start()
            self.registry = self._registry()
            self.images.update(ensure(BASE_IMAGES, self.registry))
            self.local.start_nodes(self.nodes, self.image("pause"), self.registry)
            localpath.install(
                self.local.kubectl, self.registry, self.image("base"), self.workdir / "volumes", self.workdir
            )
            if self.tekton or self.controller:
                self.install_tekton()
            if self.controller:
                self.install_controller()
        except BaseException:
            self.stop()
            raise
        return self

    def _registry(self) -> str:
        """The running registry's host:port, or a new registry's."""
        addr = self.workdir / "registry.addr"
        pid = read_pid(self.local.piddir, "registry")
        if pid is not None and alive(pid) and addr.exists():
            return addr.read_text().strip()
        host = self.local.start_registry(self.workdir / "registry")
        addr.write_text(host + "\n")
        return host

    def install_tekton(self) -> None:
        """Tekton from its release manifests, with the locally built images (hack.images.tekton)."""
        names = [tekton.image_name(cmd) for cmd in tekton.COMMANDS]
        self.images.update(ensure(names, self.registry))
        refs = {cmd: self.image(tekton.image_name(cmd)) for cmd in tekton.COMMANDS}
        incluster.install(self.local.kubectl, {**refs, "shell": self.image("base")}, self.workdir)

    def install_controller(self) -> None:
        """``kubectl apply -k config/default`` as the README says, on a copy of ``config/`` whose image is set
        (what ``kustomize edit set image`` writes) and whose settings trust the local plain-HTTP registry."""
        cfg = self.workdir / "config"
        shutil.rmtree(cfg, ignore_errors=True)
        shutil.copytree(REPO / "config", cfg)
        kust_path = cfg / "default" / "kustomization.yaml"
        kust = yaml.safe_load(kust_path.read_text())
        self.images.update(ensure([PROJECT_IMAGE], self.registry))
        image = self.images[PROJECT_IMAGE]
        name, tag = image.repository, image.tag
        kust["images"] = [{"name": UPSTREAM_IMAGE, "newName": name, "newTag": tag}]
        kust_path.write_text(yaml.safe_dump(kust, sort_keys=False))
        settings_path = cfg / "manager" / "settings.yaml"
        settings = yaml.safe_load(settings_path.read_text())
        values = yaml.safe_load(settings["data"]["settings.yaml"])
        values["insecure_registries"] = [self.registry]
        settings["data"]["settings.yaml"] = yaml.safe_dump(values, sort_keys=False)
        settings_path.write_text(yaml.safe_dump(settings, sort_keys=False))
        self.local.kubectl("apply", "-k", str(cfg / "default"))
        self.local.kubectl(
            "-n", CONTROLLER_NS, "rollout", "status", f"deployment/{CONTROLLER_DEPLOYMENT}", "--timeout=240s"
        )  # fmt: skip

    def uninstall_controller(self) -> None:
        """Scales the in-cluster controller to zero and waits until its pods are gone, keeping the rest of
        ``config/default`` (CRD, RBAC, settings). Another controller that watches the same namespaces (a
        test's host process, or ``make run``) then reconciles alone; ``install_controller`` brings it back."""
        self.local.kubectl(
            "-n", CONTROLLER_NS, "scale", f"deployment/{CONTROLLER_DEPLOYMENT}", "--replicas=0"
        )  # fmt: skip
        self.local.kubectl(
            "-n", CONTROLLER_NS, "wait", "--for=delete", "pod",
            "-l", "app.kubernetes.io/name=model-image-push", "--timeout=120s",
        )  # fmt: skip

    def stop(self) -> list[str]:
        """Stops everything and restores the host; returns what could not be removed (empty when clean)."""
        return self.local.stop()
