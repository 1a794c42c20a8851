"""Root conftest: loads the shared fixture plugins (registry, local cluster)."""

pytest_plugins = ["tests.fixtures.registry", "tests.fixtures.cluster"]
