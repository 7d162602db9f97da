"""Grants shown on other apps' pages: the containers pages list who may send to your
receivers and where you may send, without the containers app (below this one)
reaching up for them."""

from django import template

from portal.grants import services

register = template.Library()


@register.simple_tag
def grants_given(user, receiver=None):
    """The grants on `user`'s receivers (on one of them, with `receiver`), revoked ones too."""
    given = services.given(user)
    if receiver is not None:
        return given.filter(receiver=receiver).order_by("grantee__username")
    return given.order_by("receiver__name", "grantee__username")


@register.simple_tag
def grants_received(user):
    return services.received(user).order_by("receiver__name")
