"""Side-channel tasks: ask a container's agent something short, get the answer in seconds.

This is the one place tasks are asked, handed over and answered. What a kind
means belongs to the app that asks it: each registers its kind here at start-up
(its AppConfig.ready) with what to do on an answer, what to add to the offer, and
whether a person may ask it. The portal asks for others itself (a receiver's
verify_received for a transfer). The agents' API (portal/agentapi) hands tasks over
and takes the answers; a new task wakes its waiting poll (agentapi/signals.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.containers.models import AgentTask, Container, TaskState
from portal.lib.errors import Refused

log = logging.getLogger(__name__)

DEFAULT_TTL = timedelta(minutes=2)
# At most this many tasks offered in one reply: each is short, and more will follow.
OFFER_LIMIT = 20
# A task handed over is not handed over again for this long: the agent is working on it (a network check
# takes ~15 s), and offering it on every poll made an agent's long-poll come straight back, over and over,
# until the answer arrived. After that it is offered again, in case the agent lost it (e.g. restarted).
REOFFER_AFTER = timedelta(seconds=30)


class TaskRefused(Refused):
    pass


class AlreadyAnswered(Refused):
    status = 409


@dataclass(frozen=True)
class Kind:
    # Inside answer()'s transaction, once the answer is stored.
    on_answer: Callable[[AgentTask], None] | None = None
    # The params the agent gets, when they hold more than the stored ones (keys, looked up at offer time).
    on_offer: Callable[[AgentTask], dict] | None = None
    # The Container property that says whether it answers this kind when a person asks; None: only the
    # portal asks it.
    for_people: str | None = None


_kinds: dict[str, Kind] = {}


def register(kind: str, *, on_answer=None, on_offer=None, for_people: str | None = None) -> None:
    _kinds[kind] = Kind(on_answer, on_offer, for_people)


def people_may_ask() -> list[str]:
    return sorted(kind for kind, known in _kinds.items() if known.for_people)


def ask(container: Container, kind: str, params: dict, *, user=None, command=None,
        ttl: timedelta = DEFAULT_TTL) -> AgentTask:
    return AgentTask.objects.create(container=container, kind=kind, params=params, requested_by=user,
                                    command=command, expires_at=timezone.now() + ttl)


def ask_for_person(container: Container, kind: str, params: dict, user) -> AgentTask:
    role = _kinds[kind].for_people if kind in _kinds else None
    if role is None:
        raise TaskRefused("kind", f"unknown task kind {kind!r}; one of: {', '.join(people_may_ask())}")
    if not getattr(container, role):
        raise TaskRefused("kind", f"a {container.role} container does not answer {kind}")
    return ask(container, kind, params, user=user)


def pending(container: Container, kind: str | None = None) -> list[AgentTask]:
    # Read on every heartbeat and task poll: a filter, no write. Overdue tasks are
    # marked expired where that is seen (an answer, a person reading the task).
    found = AgentTask.objects.filter(container=container, state=TaskState.PENDING, expires_at__gt=timezone.now())
    if kind is not None:
        found = found.filter(kind=kind)
    return list(found[:OFFER_LIMIT])


def _offerable(now):
    return AgentTask.objects.filter(Q(offered_at__isnull=True) | Q(offered_at__lte=now - REOFFER_AFTER),
                                    state=TaskState.PENDING, expires_at__gt=now)


def to_offer(container: Container) -> list[AgentTask]:
    """The tasks to hand this container's agent now, marked as handed over (one read, one write when
    there are any)."""
    now = timezone.now()
    found = list(_offerable(now).filter(container=container)[:OFFER_LIMIT])
    if found:
        AgentTask.objects.filter(pk__in=[task.pk for task in found]).update(offered_at=now)
    return found


def pending_containers(container_ids) -> set:
    """Which of these containers have a task to hand over (one query over the pending tasks, whatever the
    number of waiting agents: see transfers.queue.queued_containers)."""
    offerable = _offerable(timezone.now()).values_list("container_id", flat=True).distinct()
    return set(container_ids).intersection(offerable)


def expire_overdue(container: Container | None = None) -> int:
    overdue = AgentTask.objects.filter(state=TaskState.PENDING, expires_at__lte=timezone.now())
    if container is not None:
        overdue = overdue.filter(container=container)
    return overdue.update(state=TaskState.EXPIRED)


def expire_if_overdue(task: AgentTask) -> AgentTask:
    """Write `expired` on this one task if its deadline passed (a read that sees it; no write otherwise)."""
    if task.state == TaskState.PENDING and task.overdue:
        AgentTask.objects.filter(pk=task.pk, state=TaskState.PENDING).update(state=TaskState.EXPIRED)
        task.refresh_from_db()
    return task


def answer(task: AgentTask, ok: bool, result, error: str) -> AgentTask:
    with transaction.atomic():
        # Past its deadline a task is over even before a sweep marks it expired.
        expire_overdue(task.container)
        changed = AgentTask.objects.filter(pk=task.pk, state=TaskState.PENDING).update(
            state=TaskState.ANSWERED, ok=ok, result=result if ok else None, error="" if ok else error,
            answered_at=timezone.now())
        if changed != 1:
            raise AlreadyAnswered(None, f"the task is already {AgentTask.objects.get(pk=task.pk).state}")
        task.refresh_from_db()
        handler = _kinds[task.kind].on_answer if task.kind in _kinds else None
        if handler is not None:
            handler(task)
    return task


def offer(task: AgentTask) -> dict:
    expand = _kinds[task.kind].on_offer if task.kind in _kinds else None
    return {"task_id": task.pk, "kind": task.kind, "params": expand(task) if expand else task.params}
