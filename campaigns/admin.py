from django.contrib import admin

from accounts.admin_scoping import ReadOnlyScopedAdmin
from campaigns.models import Campaign, CampaignLaunch, CampaignLink, Delivery


@admin.register(Campaign)
class CampaignAdmin(ReadOnlyScopedAdmin):
    list_display = ("name", "channel", "status", "launched_at", "workspace", "created_at")
    list_filter = ("channel", "status")
    search_fields = ("name",)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyScopedAdmin):
    list_display = ("campaign", "person", "status", "reason", "is_test", "sent_at", "workspace")
    list_filter = ("status", "is_test")
    search_fields = ("provider_message_id",)


@admin.register(CampaignLaunch)
class CampaignLaunchAdmin(ReadOnlyScopedAdmin):
    list_display = (
        "campaign",
        "status",
        "total_rows",
        "queued",
        "skipped",
        "workspace",
        "created_at",
    )
    list_filter = ("status",)


@admin.register(CampaignLink)
class CampaignLinkAdmin(ReadOnlyScopedAdmin):
    list_display = ("campaign", "index", "url", "clicks", "machine_clicks", "workspace")
