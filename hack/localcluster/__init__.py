"""Local Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler) for tests and demos.

Python API: ``LocalCluster(workdir).start()`` / ``.stop()``, ``.kubeconfig``, ``.server``.
CLI: ``python -m hack.localcluster up|down|env``.
"""

from hack.localcluster.cluster import LocalCluster

__all__ = ["LocalCluster"]
