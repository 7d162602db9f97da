from django import forms

from portal.containers.models import Container


class ReceiverChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, container):
        return f"{container.name} ({container.id})"


class GrantForm(forms.Form):
    grantee = forms.CharField(max_length=150, label="Username",
                              help_text="The person who may send to your receiver.")
    receiver = ReceiverChoiceField(queryset=None, empty_label=None, label="Receiver container",
                                   help_text="They get their own bucket and S3 keys on it.")

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["receiver"].queryset = Container.objects.own_receivers(user)
