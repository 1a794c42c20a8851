"""Every test here needs the local cluster (the session's real-node cluster)."""

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/kserve/" in str(item.fspath):
            item.add_marker(pytest.mark.cluster)
