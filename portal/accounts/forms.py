from django import forms
from django.contrib.auth.forms import UserCreationForm

from portal.accounts.models import User


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=False, help_text="For transfer notifications (optional).")

    class Meta:
        model = User
        fields = ("username", "email")


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What this token is for, e.g. 'laptop CLI'.")
