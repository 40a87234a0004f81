from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from accounts.admin_scoping import (
    ReadOnlyScopedAdmin,
    WorkspaceScopedAdmin,
    WorkspaceScopedResource,
)
from audiences.models import AudienceImport, TargetAudience

# AudienceMember has no admin: Django's admin cannot show a model keyed by (audience,
# person). Members are listed, added and removed on the audience's own page, which the
# audience's admin page links to.


class TargetAudienceResource(WorkspaceScopedResource):
    class Meta:
        model = TargetAudience
        import_id_fields = ("workspace", "name")
        fields = ("workspace", "name", "people_count", "created_at")


@admin.register(TargetAudience)
class TargetAudienceAdmin(WorkspaceScopedAdmin):
    resource_classes = [TargetAudienceResource]
    list_display = ("name", "people_count", "workspace", "created_at")
    search_fields = ("name",)
    readonly_fields = ("people_count", "members_page")

    @admin.display(description="Members")
    def members_page(self, obj):
        if obj.pk is None:
            return "—"
        url = reverse("audience_detail", args=[obj.pk])
        return format_html(
            '<a href="{}">{} members on the audience page</a> (open it in the audience’s '
            "workspace)",
            url,
            f"{obj.people_count:,}",
        )


@admin.register(AudienceImport)
class AudienceImportAdmin(ReadOnlyScopedAdmin):
    list_display = (
        "original_name",
        "mode",
        "status",
        "matched",
        "unmatched",
        "invalid",
        "workspace",
    )
    list_filter = ("status", "mode")
