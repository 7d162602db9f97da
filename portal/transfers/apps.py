from django.apps import AppConfig


class TransfersConfig(AppConfig):
    name = "portal.transfers"
    label = "transfers"
