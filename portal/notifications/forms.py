from django import forms
from django.core.exceptions import ValidationError

from portal.notifications.models import NotificationSettings
from portal.notifications.validation import WebhookRefused, check_webhook_url


class NotificationSettingsForm(forms.ModelForm):
    email_address = forms.EmailField(required=False, label="Email address",
                                     help_text="Where the mails go. Empty: no mail.")

    class Meta:
        model = NotificationSettings
        fields = ("email_succeeded", "email_failed", "email_stall", "webhook_url",
                  "webhook_succeeded", "webhook_failed", "webhook_stall")
        labels = {
            "email_succeeded": "Mail me when a transfer succeeds",
            "email_failed": "Mail me when a transfer fails",
            "email_stall": "Mail me when a transfer stalls",
            "webhook_url": "Webhook URL",
            "webhook_succeeded": "Call the webhook when a transfer succeeds",
            "webhook_failed": "Call the webhook when a transfer fails",
            "webhook_stall": "Call the webhook when a transfer stalls",
        }
        help_texts = {
            "webhook_url": "Optional. An http:// or https:// address the portal POSTs a signed JSON "
                           "document to. Empty: no webhook.",
        }
        widgets = {"webhook_url": forms.URLInput(attrs={"placeholder": "https://hooks.example.org/dtn"})}

    field_order = ["email_address", "email_succeeded", "email_failed", "email_stall", "webhook_url"]

    def clean_webhook_url(self):
        try:
            return check_webhook_url(self.cleaned_data.get("webhook_url", ""))
        except WebhookRefused as exc:
            raise ValidationError(f"Not usable: {exc}.") from None
