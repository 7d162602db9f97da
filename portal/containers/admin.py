from django.contrib import admin

from portal.containers.models import Container


@admin.register(Container)
class ContainerAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "owner", "role", "last_seen_at", "agent_version", "endpoint")
    list_filter = ("role",)
    search_fields = ("name", "id", "owner__username")
    # No token material in the admin, not even its hash.
    exclude = ("token_lookup", "token_digest")
    readonly_fields = ("id", "created_at", "token_rotated_at", "last_seen_at", "agent_version",
                       "rclone_version", "hostname", "disk_free_bytes", "endpoint", "health")
