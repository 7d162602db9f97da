"""Model choices built from the protocol's one list, so the portal and the agent
cannot drift apart."""

from django.db import models

from agent.protocol import CommandState, FailureReason

CommandStates = models.TextChoices("CommandStates", [(s.name, s.value) for s in CommandState])
FailureReasons = models.TextChoices("FailureReasons", [(r.name, r.value) for r in FailureReason])
