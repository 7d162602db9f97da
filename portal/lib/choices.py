"""Model choices made from one of the protocol's lists (dtn_protocol), so a word the
agent knows and the portal stores cannot differ; only the labels people read are the
portal's."""

from django.db import models


def text_choices(name: str, words, labels: dict | None = None) -> type[models.TextChoices]:
    # Without a label of its own, a choice reads as Django would label it ("Lease Expired").
    return models.TextChoices(name, [(word.name, (word.value, labels[word]) if labels else word.value)
                                     for word in words])
