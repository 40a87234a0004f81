from django.contrib import admin

from accounts.admin_scoping import (
    ReadOnlyScopedAdmin,
    WorkspaceScopedAdmin,
    WorkspaceScopedResource,
)
from segments.models import (
    Segment,
    SegmentMember,
    SegmentRefresh,
    SegmentSnapshot,
    SegmentTransition,
    SnapshotMember,
)


class SegmentResource(WorkspaceScopedResource):
    class Meta:
        model = Segment
        import_id_fields = ("workspace", "name")
        fields = (
            "workspace", "name", "kind", "rules", "refresh_every_minutes", "predefined",
            "people_count", "computed_at", "refresh_status", "created_at",
        )  # fmt: skip


@admin.register(Segment)
class SegmentAdmin(WorkspaceScopedAdmin):
    resource_classes = [SegmentResource]
    list_display = ("name", "kind", "people_count", "computed_at", "refresh_status", "workspace")
    list_filter = ("kind", "refresh_status")
    search_fields = ("name",)
    # The rules are shown, not edited: rule writes go through segments.services, which
    # parses them (segments.rules.schema.parse_rules), checks for cycles and recomputes
    # the members; a JSON edit here would store a tree nothing ever checked.
    readonly_fields = ("rules", "people_count", "computed_at", "refresh_status", "refresh_error")

    def has_import_permission(self, request):
        # Export only: a segment is written by segments.services (rules parsed and checked
        # for cycles, stored members computed); a CSV row would skip all of that.
        return False


@admin.register(SegmentMember)
class SegmentMemberAdmin(ReadOnlyScopedAdmin):
    list_display = ("segment", "person", "entered_at", "exited_at", "workspace")
    raw_id_fields = ("segment", "person")
    show_full_result_count = False


@admin.register(SegmentSnapshot)
class SegmentSnapshotAdmin(ReadOnlyScopedAdmin):
    list_display = ("segment", "requester", "people_count", "frozen_at", "workspace")


@admin.register(SnapshotMember)
class SnapshotMemberAdmin(ReadOnlyScopedAdmin):
    list_display = ("snapshot", "person", "workspace")
    raw_id_fields = ("snapshot", "person")
    show_full_result_count = False


@admin.register(SegmentRefresh)
class SegmentRefreshAdmin(ReadOnlyScopedAdmin):
    list_display = ("segment", "status", "started_at", "entered", "exited", "people_count")


@admin.register(SegmentTransition)
class SegmentTransitionAdmin(ReadOnlyScopedAdmin):
    list_display = ("segment", "person", "kind", "at", "workspace")
    raw_id_fields = ("segment", "person")
    show_full_result_count = False
