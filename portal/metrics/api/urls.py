from django.urls import path

from portal.metrics.api import views

urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
]
