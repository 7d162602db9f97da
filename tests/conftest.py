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


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    # Under CI a skipped or xfailed test is a test that did not run: fail the run.
    if not CI:
        return
    not_run = [rep.nodeid for key in ("skipped", "xfailed") for rep in terminalreporter.stats.get(key, [])]
    if not_run:
        terminalreporter.write_line(f"CI=true: {len(not_run)} test(s) skipped or xfailed; failing the run:", red=True)
        for nodeid in not_run[:50]:
            terminalreporter.write_line(f"  {nodeid}", red=True)
        config._dtn_ci_not_run = True


def pytest_sessionfinish(session, exitstatus):
    if getattr(session.config, "_dtn_ci_not_run", False) and session.exitstatus == 0:
        session.exitstatus = 1
