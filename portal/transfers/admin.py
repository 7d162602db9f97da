from django.contrib import admin

from portal.transfers.models import Command, Transfer


@admin.register(Command)
class CommandAdmin(admin.ModelAdmin):
    list_display = ("id", "container", "kind", "state", "reason", "attempt", "created_at", "finished_at")
    list_filter = ("state", "reason", "kind")
    search_fields = ("id", "container__name", "container__id")
    # The payload may carry receiver credentials once the send flow exists.
    exclude = ("payload",)
    readonly_fields = [f.name for f in Command._meta.fields if f.name != "payload"]


# Hand-entered keys stay out of the admin, ciphertext included.
_TRANSFER_HIDDEN = ("s3_secret_key_encrypted", "s3_access_key")


@admin.register(Transfer)
class TransferAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "sender", "destination_kind", "state", "label", "created_at", "completed_at")
    list_filter = ("state", "destination_kind")
    search_fields = ("id", "label", "owner__username", "sender__name", "receiver_name")
    exclude = _TRANSFER_HIDDEN
    readonly_fields = [f.name for f in Transfer._meta.fields if f.name not in _TRANSFER_HIDDEN]

    def has_add_permission(self, request):
        return False
