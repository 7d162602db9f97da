from django.contrib import admin

from portal.notifications.models import Delivery, NotificationSettings


@admin.register(NotificationSettings)
class NotificationSettingsAdmin(admin.ModelAdmin):
    list_display = ("user", "email_succeeded", "email_failed", "email_stall", "webhook_secret_created_at")
    search_fields = ("user__username",)
    # Not even the ciphertext: the admin is a person's page.
    exclude = ("webhook_secret_encrypted",)
    readonly_fields = ("user", "webhook_secret_created_at", "updated_at")

    def has_add_permission(self, request):
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "channel", "event", "status", "attempts", "created_at", "finished_at")
    list_filter = ("status", "channel", "event")
    search_fields = ("id", "user__username")
    readonly_fields = [field.name for field in Delivery._meta.fields]

    def has_add_permission(self, request):
        return False
