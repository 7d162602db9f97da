from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from portal.accounts.models import PersonalToken, User

admin.site.register(User, UserAdmin)


@admin.register(PersonalToken)
class PersonalTokenAdmin(admin.ModelAdmin):
    # The digest is not a secret one can use, but there is no reason to show it.
    list_display = ("name", "user", "display_prefix", "created_at", "last_used_at")
    fields = ("name", "user", "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False
