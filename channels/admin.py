from django.contrib import admin

from accounts.admin_scoping import ReadOnlyScopedAdmin
from channels.models import Provider, ProviderEvent, SandboxMessage


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


@admin.register(ProviderEvent)
class ProviderEventAdmin(ReadOnlyScopedAdmin):
    list_display = ("channel", "kind", "provider_message_id", "address", "workspace", "occurred_at")
    list_filter = ("channel", "kind")
    search_fields = ("provider_message_id", "address")
