from tests.netbed.plugin import netbed, pytest_sessionfinish, start_bed  # noqa: F401
