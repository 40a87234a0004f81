from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from import_export import resources
from import_export.admin import ImportExportModelAdmin

from accounts.admin_scoping import (
    WorkspaceScopedAdmin,
    WorkspaceScopedResource,
    admin_workspace_ids,
)
from accounts.models import ApiKey, Membership, User, Workspace


class WorkspaceResource(resources.ModelResource):
    def __init__(self, *, user=None, **kwargs):
        super().__init__(**kwargs)
        self.user = user

    def get_queryset(self):
        ids = admin_workspace_ids(self.user) if self.user is not None else []
        return Workspace.objects.filter(id__in=ids)

    def before_import_row(self, row, **kwargs):
        from django.core.exceptions import ValidationError

        ids = admin_workspace_ids(self.user) if self.user is not None else []
        if str(row.get("id") or "").strip() == "" or int(row["id"]) not in ids:
            raise ValidationError(
                "Only existing workspaces you belong to can be updated here; "
                "create new ones with `manage.py create_workspace`."
            )

    class Meta:
        model = Workspace
        fields = ("id", "name", "slug", "time_zone")


@admin.register(Workspace)
class WorkspaceAdmin(ImportExportModelAdmin):
    resource_classes = [WorkspaceResource]
    list_display = ("name", "slug", "time_zone", "created_at")
    search_fields = ("name", "slug")

    def get_queryset(self, request):
        return super().get_queryset(request).filter(id__in=admin_workspace_ids(request.user))

    def has_add_permission(self, request):
        return False

    def get_resource_kwargs(self, request, *args, **kwargs):
        return {**super().get_resource_kwargs(request, *args, **kwargs), "user": request.user}

    def get_export_resource_kwargs(self, request, **kwargs):
        return {**super().get_export_resource_kwargs(request, **kwargs), "user": request.user}

    def get_import_resource_kwargs(self, request, **kwargs):
        return {**super().get_import_resource_kwargs(request, **kwargs), "user": request.user}


class MembershipResource(WorkspaceScopedResource):
    class Meta:
        model = Membership
        fields = ("id", "workspace", "user", "role", "created_at")


@admin.register(Membership)
class MembershipAdmin(WorkspaceScopedAdmin):
    resource_classes = [MembershipResource]
    list_display = ("user", "workspace", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__email", "workspace__name")
    autocomplete_fields = ("user",)


@admin.register(ApiKey)
class ApiKeyAdmin(WorkspaceScopedAdmin):
    """Keys are created in Settings (shown once); here they can be listed and revoked."""

    list_display = ("name", "prefix", "workspace", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")
    search_fields = ("name", "prefix")

    def has_add_permission(self, request):
        return False

    def has_import_permission(self, request):
        return False


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ("email",)
    list_display = ("email", "full_name", "is_staff", "is_active", "date_joined")
    search_fields = ("email", "full_name")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    filter_horizontal = ()
    list_filter = ("is_staff", "is_active")

    def get_queryset(self, request):
        # Users who share a workspace with the admin user, and the admin user themself.
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(memberships__workspace_id__in=admin_workspace_ids(request.user)).distinct()
