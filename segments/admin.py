from django.contrib import admin

from accounts.admin_scoping import ReadOnlyScopedAdmin, WorkspaceScopedAdmin
from segments.models import Segment, SegmentMember, SegmentRefresh, SegmentSnapshot, SnapshotMember


@admin.register(Segment)
class SegmentAdmin(WorkspaceScopedAdmin):
    list_display = ("name", "kind", "people_count", "computed_at", "refresh_status", "workspace")
    list_filter = ("kind", "refresh_status")
    search_fields = ("name",)
    readonly_fields = ("people_count", "computed_at", "refresh_status", "refresh_error")


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
