from django.apps import AppConfig


class NetcheckConfig(AppConfig):
    name = "portal.netcheck"
    label = "netcheck"
    verbose_name = "network checks"
