from django.contrib import admin

from accounts.admin_scoping import ReadOnlyScopedAdmin
from channels.models import Provider, SandboxMessage


@admin.register(Provider)
class ProviderAdmin(ReadOnlyScopedAdmin):
    """Set through the API (channels.services.provider_set checks every field and seals
    the secrets); the admin only shows which account each channel uses, never secrets."""

    list_display = ("channel", "platform", "kind", "verified_at", "workspace", "updated_at")
    exclude = ("secrets",)


@admin.register(SandboxMessage)
class SandboxMessageAdmin(ReadOnlyScopedAdmin):
    list_display = ("channel", "address", "subject", "workspace", "created_at")
    search_fields = ("address", "subject")
