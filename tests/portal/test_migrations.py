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


@pytest.mark.django_db(transaction=True)
def test_tasks_asked_before_the_side_channel_moved_to_containers_are_still_there():
    from datetime import timedelta

    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    from portal.containers.models import AgentTask
    from portal.netcheck.models import NetworkCheck

    executor = MigrationExecutor(connection)
    executor.migrate([("containers", "0002_container_certificate")])
    old = MigrationExecutor(connection).loader.project_state([("agentapi", "0003_task_offered_at"),
                                                              ("netcheck", "0001_initial")]).apps
    owner = old.get_model("accounts", "User").objects.create(username="before-the-move")
    container = old.get_model("containers", "Container").objects.create(
        owner=owner, name="old-dtn", role="sender", token_lookup="abcdefabcdef", token_digest="0" * 64)
    task = old.get_model("agentapi", "AgentTask").objects.create(
        container=container, kind="network_check", params={"check_id": "x"},
        expires_at=timezone.now() + timedelta(minutes=2))
    old.get_model("netcheck", "NetworkCheck").objects.create(owner=owner, sender=container, task=task)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    moved = AgentTask.objects.get(pk=task.pk)
    assert (moved.kind, moved.params, moved.container.name) == ("network_check", {"check_id": "x"}, "old-dtn")
    assert NetworkCheck.objects.get(owner__username="before-the-move").task == moved
