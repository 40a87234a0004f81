from django.contrib import admin

from accounts.admin_scoping import ReadOnlyScopedAdmin
from channels.models import (
    ChannelAudience,
    ChannelSegment,
    ChannelSync,
    MetaExport,
    Provider,
    ProviderEvent,
    SandboxMessage,
    SegmentSource,
)


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


@admin.register(ChannelSegment)
class ChannelSegmentAdmin(ReadOnlyScopedAdmin):
    list_display = ("channel", "name", "external_id", "source", "active", "workspace")
    list_filter = ("channel", "source", "active")
    search_fields = ("name", "external_id")


@admin.register(ChannelAudience)
class ChannelAudienceAdmin(ReadOnlyScopedAdmin):
    list_display = ("channel", "name", "estimated_volume", "meta_audience_id", "workspace")
    list_filter = ("channel",)
    search_fields = ("name",)


@admin.register(SegmentSource)
class SegmentSourceAdmin(ReadOnlyScopedAdmin):
    """The Klaviyo key is sealed and never shown."""

    list_display = ("channel", "kind", "last_sync_at", "next_sync_at", "workspace")
    exclude = ("secrets",)


@admin.register(ChannelSync)
class ChannelSyncAdmin(ReadOnlyScopedAdmin):
    list_display = ("channel", "status", "full", "profiles", "created_at", "workspace")
    list_filter = ("channel", "status")


@admin.register(MetaExport)
class MetaExportAdmin(ReadOnlyScopedAdmin):
    list_display = ("audience", "status", "replace", "sent", "created_at", "workspace")
    list_filter = ("status",)
