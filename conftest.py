"""Root conftest: loads the shared fixture plugins (registry, local cluster, cosign)."""

pytest_plugins = ["tests.fixtures.registry", "tests.fixtures.cluster", "tests.fixtures.cosign"]
