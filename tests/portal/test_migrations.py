"""The models and their migrations agree: a change to a model (or to the protocol's lists its
choices are built from) comes with its migration."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_model_change_lacks_its_migration():
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit:
        pytest.fail(f"a model changed without a migration:\n{out.getvalue()}")


def test_no_migration_imports_the_agent_or_the_protocol():
    # A migration keeps a literal copy of the choices it was made with: one that imported them would
    # change meaning when they change.
    from pathlib import Path

    portal = Path(__file__).resolve().parents[2] / "portal"
    importing = [str(path.relative_to(portal)) for path in portal.glob("*/migrations/*.py")
                 if any(word in path.read_text() for word in ("import agent", "from agent", "dtn_protocol"))]
    assert importing == []
