import uuid

from django import forms
from django.core.exceptions import ValidationError

from portal.containers.models import Container
from portal.grants.models import Grant
from portal.transfers import validation
from portal.transfers.choices import NetworkCheckMode, Overwrite
from portal.transfers.services import SendRequest


class SenderChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, container):
        return f"{container.name} ({container.id})"


class SendForm(forms.Form):
    """The send page. Field names and rules are the API's (SendSerializer):
    both call portal.transfers.validation."""

    sender = SenderChoiceField(queryset=None, empty_label=None, help_text="One of your sender containers.")
    # The page's way to name a receiver: by name and owner, from the grants one holds (issue 25); the API's
    # `receiver` (an ID) is still accepted below it.
    receiver_choice = forms.ChoiceField(
        required=False, label="Receiver",
        help_text="A receiver whose owner granted you, by name and owner.")
    receiver = forms.UUIDField(
        required=False, label="Receiver container ID",
        help_text="Or a receiver's ID. Leave both empty to fill in the S3 endpoint fields instead.")
    s3_host = forms.CharField(required=False, label="S3 host", strip=False,
                              help_text="Only for an S3 endpoint the portal does not manage, e.g. s3.example.org.")
    s3_port = forms.IntegerField(required=False, label="S3 port", help_text="e.g. 443 or 9000.")
    s3_tls = forms.BooleanField(required=False, initial=True, label="Use TLS (https)")
    s3_bucket = forms.CharField(required=False, label="S3 bucket", strip=False)
    s3_access_key = forms.CharField(required=False, label="S3 access key", strip=False)
    # PasswordInput never renders a value back, so a form shown again with an
    # error does not carry the secret into the page.
    s3_secret_key = forms.CharField(required=False, label="S3 secret key", strip=False,
                                    widget=forms.PasswordInput(render_value=False))
    sources = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), strip=False, label="Source paths",
        help_text="One per line: files or directories relative to the sender's send folder.")
    prefix = forms.CharField(required=False, strip=False, label="Destination prefix",
                             help_text="Where under the bucket the files land, e.g. from-alice/run-17.")
    verify_checksums = forms.BooleanField(required=False, initial=validation.DEFAULT_VERIFY_CHECKSUMS,
                                          label="Verify checksums (SHA-256 at both ends)")
    overwrite = forms.ChoiceField(choices=Overwrite.choices, initial=validation.DEFAULT_OVERWRITE,
                                  label="Files already at the destination",
                                  help_text="Nothing is ever deleted at the destination.")
    bandwidth_limit = forms.CharField(required=False, label="Bandwidth limit",
                                      help_text="Bytes per second, e.g. 50M; empty for no limit.")
    label = forms.CharField(required=False, max_length=validation.MAX_LABEL_LENGTH,
                            help_text="A name you will recognise in the transfers list.")
    network_check = forms.ChoiceField(choices=NetworkCheckMode.choices, initial=NetworkCheckMode.ENFORCE, required=False,
                                      label="Network check before sending",
                                      help_text="A no-go names what is wrong; override only if you know better.")
    transfers = forms.IntegerField(required=False, label="Files at once",
                                   help_text="Empty: the agent chooses from the network check.")
    upload_concurrency = forms.IntegerField(required=False, label="Parts of a big file at once",
                                            help_text="Empty: the agent chooses.")
    chunk_size_mib = forms.IntegerField(required=False, label="Part size (MiB)", help_text="Empty: the agent chooses.")

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sender"].queryset = Container.objects.own_senders(user)
        self.grants = list(Grant.objects.usable_by(user).select_related("receiver__owner"))
        self.fields["receiver_choice"].choices = [("", "None: an ID or an S3 endpoint instead")] + [
            (str(g.receiver_id), f"{g.receiver.name} ({g.receiver.owner.username})") for g in self.grants]

    def clean_sources(self):
        return validation.source_paths(self.cleaned_data["sources"])

    def clean_prefix(self):
        return validation.destination_prefix(self.cleaned_data["prefix"])

    def clean_bandwidth_limit(self):
        return validation.bandwidth_limit(self.cleaned_data["bandwidth_limit"])

    def clean_label(self):
        return validation.label(self.cleaned_data["label"])

    def clean(self):
        data = super().clean()
        chosen, typed = data.get("receiver_choice"), data.get("receiver")
        if chosen and typed and str(typed) != chosen:
            self.add_error("receiver", "This is not the receiver chosen above: clear one of the two.")
        elif chosen and "receiver" not in self.errors:
            data["receiver"] = uuid.UUID(chosen)
        try:
            data["tuning"] = validation.tuning({name: data.get(name) for name in validation.TUNING_BOUNDS})
        except ValidationError as exc:
            for name, errors in exc.error_dict.items():
                if name not in self.errors:
                    self.add_error(name, errors)
        values = {name: data.get(name, self.data.get(name)) for name in validation.S3_FIELDS}
        values["s3_tls"] = data.get("s3_tls", False)
        try:
            data["s3"] = validation.destination(data.get("receiver") or self.data.get("receiver"), values)
        except ValidationError as exc:
            for name, errors in exc.error_dict.items():
                if name not in self.errors:  # a field's own error (e.g. not a number) says it first
                    self.add_error(name, errors)
        return data

    def to_request(self) -> SendRequest:
        data = self.cleaned_data
        return SendRequest(
            sender_id=data["sender"].pk, receiver_id=data.get("receiver"), s3=data["s3"], sources=data["sources"],
            prefix=data["prefix"], verify_checksums=data["verify_checksums"], overwrite=data["overwrite"],
            bandwidth_limit=data["bandwidth_limit"], label=data["label"],
            network_check=data.get("network_check") or NetworkCheckMode.ENFORCE, tuning=data.get("tuning") or {})
