from django.contrib import admin

from portal.transfers.models import Command


@admin.register(Command)
class CommandAdmin(admin.ModelAdmin):
    list_display = ("id", "container", "kind", "state", "reason", "attempt", "created_at", "finished_at")
    list_filter = ("state", "reason", "kind")
    search_fields = ("id", "container__name", "container__id")
    # The payload may carry receiver credentials once the send flow exists.
    exclude = ("payload",)
    readonly_fields = [f.name for f in Command._meta.fields if f.name != "payload"]
