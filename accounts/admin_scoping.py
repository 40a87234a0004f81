"""Admin and django-import-export pieces that keep an admin user inside their workspaces.

Every tenant-owned model's admin lists, edits, exports and imports only rows of the
workspaces the signed-in user belongs to; an imported row naming another workspace is
refused with the row's number.
"""

from django.contrib import admin
from django.core.exceptions import ValidationError
from import_export import resources
from import_export.admin import ImportExportModelAdmin

from accounts.models import Workspace


def admin_workspace_ids(user) -> list[int]:
    return list(Workspace.objects.filter(memberships__user=user).values_list("id", flat=True))


class WorkspaceScopedResource(resources.ModelResource):
    """Export and import only rows of the admin user's workspaces."""

    def __init__(self, *, user=None, **kwargs):
        super().__init__(**kwargs)
        self.user = user

    def import_data(self, *args, rollback_on_validation_errors=True, **kwargs):
        # All or nothing: one refused row rolls back the whole file.
        return super().import_data(
            *args, rollback_on_validation_errors=rollback_on_validation_errors, **kwargs
        )

    def allowed_ids(self) -> list[int]:
        return admin_workspace_ids(self.user) if self.user is not None else []

    def get_queryset(self):
        return self._meta.model.objects.unscoped().filter(workspace_id__in=self.allowed_ids())

    def before_import_row(self, row, **kwargs):
        ws = row.get("workspace")
        try:
            allowed = ws is not None and str(ws).strip() != "" and int(ws) in self.allowed_ids()
        except (TypeError, ValueError):
            allowed = False
        if not allowed:
            raise ValidationError(
                f"workspace {ws!r} is not one of your workspaces; rows may only be written "
                "to workspaces you belong to."
            )


class WorkspaceScopedAdmin(ImportExportModelAdmin):
    """ModelAdmin for tenant-owned models, limited to the user's workspaces."""

    def get_queryset(self, request):
        model = self.model
        manager = model.objects.unscoped() if hasattr(model.objects, "unscoped") else model.objects
        return manager.filter(workspace_id__in=admin_workspace_ids(request.user))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "workspace":
            kwargs["queryset"] = Workspace.objects.filter(id__in=admin_workspace_ids(request.user))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_resource_kwargs(self, request, *args, **kwargs):
        return {**super().get_resource_kwargs(request, *args, **kwargs), "user": request.user}

    def get_export_resource_kwargs(self, request, **kwargs):
        return {**super().get_export_resource_kwargs(request, **kwargs), "user": request.user}

    def get_import_resource_kwargs(self, request, **kwargs):
        return {**super().get_import_resource_kwargs(request, **kwargs), "user": request.user}

    def get_export_queryset(self, request):
        return self.get_queryset(request)


class ReadOnlyScopedAdmin(WorkspaceScopedAdmin):
    """High-volume or job rows: browse and export, never hand-edit or import."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_import_permission(self, request):
        return False


__all__ = ["ReadOnlyScopedAdmin", "WorkspaceScopedAdmin", "WorkspaceScopedResource", "admin"]
