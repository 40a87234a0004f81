from django.contrib import admin

from accounts.admin_scoping import ReadOnlyScopedAdmin
from campaigns.models import (
    BannerDismissal,
    BannerStat,
    BannerViewer,
    Campaign,
    CampaignLaunch,
    CampaignLink,
    Delivery,
    Flow,
    FlowRun,
    FlowRunStep,
    FlowVersion,
    Placement,
)


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


@admin.register(Placement)
class PlacementAdmin(ReadOnlyScopedAdmin):
    list_display = ("key", "name", "max_banners", "builtin", "workspace")


@admin.register(BannerDismissal)
class BannerDismissalAdmin(ReadOnlyScopedAdmin):
    list_display = ("campaign", "person", "created_at", "workspace")


@admin.register(BannerStat)
class BannerStatAdmin(ReadOnlyScopedAdmin):
    list_display = ("campaign", "hour", "impressions", "clicks", "dismissals", "workspace")


@admin.register(BannerViewer)
class BannerViewerAdmin(ReadOnlyScopedAdmin):
    list_display = ("campaign", "person", "first_seen_at", "clicked_at", "workspace")


@admin.register(Flow)
class FlowAdmin(ReadOnlyScopedAdmin):
    list_display = ("name", "status", "version", "reentry", "workspace", "created_at")
    list_filter = ("status",)


@admin.register(FlowVersion)
class FlowVersionAdmin(ReadOnlyScopedAdmin):
    list_display = ("flow", "number", "reentry", "created_at", "workspace")


@admin.register(FlowRun)
class FlowRunAdmin(ReadOnlyScopedAdmin):
    list_display = ("flow", "person", "step", "status", "wake_at", "workspace")
    list_filter = ("status",)


@admin.register(FlowRunStep)
class FlowRunStepAdmin(ReadOnlyScopedAdmin):
    list_display = ("run", "step", "type", "outcome", "at", "workspace")
