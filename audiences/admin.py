from django.contrib import admin

from accounts.admin_scoping import (
    WorkspaceScopedAdmin,
    WorkspaceScopedResource,
)
from audiences.models import AudienceImport, AudienceMember, TargetAudience


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
    readonly_fields = ("people_count",)


class AudienceMemberResource(WorkspaceScopedResource):
    class Meta:
        model = AudienceMember
        fields = ("workspace", "audience", "person", "source", "added_at")
        use_bulk = True
        batch_size = 1000


@admin.register(AudienceMember)
class AudienceMemberAdmin(WorkspaceScopedAdmin):
    resource_classes = [AudienceMemberResource]
    list_display = ("audience", "person", "source", "added_at", "workspace")
    raw_id_fields = ("audience", "person")
    list_filter = ("source",)
    show_full_result_count = False


@admin.register(AudienceImport)
class AudienceImportAdmin(WorkspaceScopedAdmin):
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

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_import_permission(self, request):
        return False
