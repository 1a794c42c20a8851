"""Every test here needs a cluster; `tekton` is the real-node cluster with the in-cluster Tekton."""

import pytest

from hack.localcluster.realcluster import RealCluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster/" in str(item.fspath):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def tekton(real_cluster: RealCluster) -> RealCluster:
    real_cluster.install_tekton()  # idempotent: an installed Tekton is only waited for
    return real_cluster
