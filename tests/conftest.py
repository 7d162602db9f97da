"""Shared fixtures: three personas (Alice sends, Bob receives, Charlie is an
outsider), clients authenticated as each, and their containers."""

from __future__ import annotations

import os

import pytest

CI = os.environ.get("CI") == "true"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The real hasher costs ~0.3 s per user; tests create hundreds.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Hashed static names need `collectstatic`, which the servers run; in-process tests don't.
    # Held claims query on the request's thread, inside the test's transaction.
    settings.DTN_DB_THREADS = 0
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}


def _not_run(config) -> list[str]:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    stats = reporter.stats if reporter else {}
    return [rep.nodeid for key in ("skipped", "xfailed") for rep in stats.get(key, [])]


def pytest_sessionfinish(session, exitstatus):
    # Under CI a skipped or xfailed test is a test that did not run: fail the run.
    # Decided here, not in pytest_terminal_summary, which runs after the exit
    # status is settled.
    if CI and session.exitstatus == 0 and _not_run(session.config):
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    not_run = _not_run(config) if CI else []
    if not_run:
        terminalreporter.write_line(f"CI=true: {len(not_run)} test(s) skipped or xfailed; the run fails:", red=True)
        for nodeid in not_run[:50]:
            terminalreporter.write_line(f"  {nodeid}", red=True)
