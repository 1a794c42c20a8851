"""Every test here needs the local control plane."""

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/kserve/" in str(item.fspath):
            item.add_marker(pytest.mark.cluster)
