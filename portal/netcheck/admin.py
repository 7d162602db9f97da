from django.contrib import admin

from portal.netcheck.models import NetworkCheck


@admin.register(NetworkCheck)
class NetworkCheckAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "sender", "receiver", "state", "verdict", "reason", "created_at")
    list_filter = ("state", "verdict")
    readonly_fields = [f.name for f in NetworkCheck._meta.fields]
