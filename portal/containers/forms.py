from django import forms

from portal.containers.models import Role


class RegisterForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="A name you will recognise, e.g. 'lab-dtn-1'.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.SENDER,
                             help_text="Sender pushes data, receiver serves S3, both does each.")

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the container a name.")
        return name
