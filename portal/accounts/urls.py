from django.contrib.auth.views import LogoutView
from django.urls import path

from portal.accounts import views

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("login/", views.PortalLoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),
    path("tokens/", views.tokens_page, name="tokens"),
    path("tokens/<int:token_id>/revoke", views.revoke_token_page, name="token-revoke"),
]
