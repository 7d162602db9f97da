from django.urls import path

from portal.accounts.api import views

urlpatterns = [
    path("signup", views.SignupView.as_view(), name="api-signup"),
    path("auth/token", views.LoginTokenView.as_view(), name="api-login-token"),
    path("me", views.MeView.as_view(), name="api-me"),
    path("tokens", views.TokenListView.as_view(), name="api-tokens"),
    path("tokens/<int:token_id>", views.TokenDetailView.as_view(), name="api-token"),
]
