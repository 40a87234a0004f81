from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from import_export import resources

from accounts.admin_scoping import (
    SafeImportExportAdmin,
    WorkspaceScopedAdmin,
    WorkspaceScopedForm,
    WorkspaceScopedResource,
    admin_users,
    admin_workspace_ids,
)
from accounts.models import ApiKey, Degradation, Membership, Role, User, Workspace, role_at_least


class WorkspaceResource(resources.ModelResource):
    def __init__(self, *, user=None, **kwargs):
        super().__init__(**kwargs)
        self.user = user

    def get_queryset(self):
        ids = admin_workspace_ids(self.user) if self.user is not None else []
        return Workspace.objects.filter(id__in=ids)

    def before_import_row(self, row, **kwargs):
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
class WorkspaceAdmin(SafeImportExportAdmin):
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


def membership_refusal(user, *, workspace_id, role) -> str | None:
    """Why `user` may not give a membership of `workspace_id` the `role`, or change or
    remove one that has it, in the admin; None when they may.

    Outside Settings > Members (whose services guard the last owner), a non-superuser
    manages members only as an admin or owner of the workspace, never above their own
    role, and never makes, changes or removes an owner.
    """
    if user.is_superuser:
        return None
    own = (
        Membership.objects.filter(user=user, workspace_id=workspace_id)
        .values_list("role", flat=True)
        .first()
    )
    if own is None or not role_at_least(own, Role.ADMIN):
        return "Only admins and owners of a workspace manage its members."
    if role not in Role.values:
        return f"“{role}” is not a role."
    if role == Role.OWNER:
        return "Owners are made and changed by owners in Settings > Members, not here."
    if not role_at_least(own, role):
        return f"As {own} of this workspace you cannot give or change the {role} role."
    return None


class MembershipResource(WorkspaceScopedResource):
    class Meta:
        model = Membership
        fields = ("id", "workspace", "user", "role", "created_at")

    def after_init_instance(self, instance, new, row, **kwargs):
        super().after_init_instance(instance, new, row, **kwargs)
        instance._admin_found_role = None if new else instance.role
        instance._admin_found_workspace_id = None if new else instance.workspace_id

    def check_instance(self, instance, *, is_create, row):
        super().check_instance(instance, is_create=is_create, row=row)
        reason = membership_refusal(
            self.user, workspace_id=instance.workspace_id, role=instance.role
        )
        if not is_create and reason is None:
            reason = membership_refusal(
                self.user,
                workspace_id=instance._admin_found_workspace_id,
                role=instance._admin_found_role,
            )
        if reason:
            raise ValidationError({"role": reason})


class MembershipForm(WorkspaceScopedForm):
    def clean(self):
        cleaned = super().clean()
        workspace = cleaned.get("workspace")
        role = cleaned.get("role")
        if workspace is not None and role is not None:
            reason = membership_refusal(self.admin_user, workspace_id=workspace.pk, role=role)
            if reason:
                self.add_error("role", reason)
        return cleaned


@admin.register(Membership)
class MembershipAdmin(WorkspaceScopedAdmin):
    resource_classes = [MembershipResource]
    form = MembershipForm
    list_display = ("user", "workspace", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__email", "workspace__name")
    autocomplete_fields = ("user",)

    def _may_touch(self, request, obj) -> bool:
        return obj is None or not membership_refusal(
            request.user, workspace_id=obj.workspace_id, role=obj.role
        )

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may_touch(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may_touch(request, obj)

    def delete_queryset(self, request, queryset):
        # The bulk "delete selected" action checks no single row.
        if not all(self._may_touch(request, m) for m in queryset):
            raise PermissionDenied
        super().delete_queryset(request, queryset)


class ApiKeyResource(WorkspaceScopedResource):
    class Meta:
        model = ApiKey
        # Never the key's hash.
        fields = ("id", "workspace", "name", "prefix", "created_by", "created_at",
                  "last_used_at", "revoked_at")  # fmt: skip


@admin.register(ApiKey)
class ApiKeyAdmin(WorkspaceScopedAdmin):
    """Keys are created in Settings (shown once); here they can be listed and revoked."""

    resource_classes = [ApiKeyResource]
    list_display = ("name", "prefix", "workspace", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")
    search_fields = ("name", "prefix")

    def has_add_permission(self, request):
        return False

    def has_import_permission(self, request):
        return False


def user_manageable(actor, target) -> bool:
    """Whether `actor` may change or delete the user `target` in the admin.

    A user belongs to several workspaces, so editing one (its email, its password) acts in
    all of them: a non-superuser may edit themself, or a user who is neither staff nor
    superuser and whose every membership is in a workspace where `actor` is an admin or
    owner with at least that member's role.
    """
    if actor.is_superuser or actor.pk == target.pk:
        return True
    if target.is_superuser or target.is_staff:
        return False
    own = dict(Membership.objects.filter(user=actor).values_list("workspace_id", "role"))
    theirs = list(Membership.objects.filter(user=target).values_list("workspace_id", "role"))
    return bool(theirs) and all(
        ws in own and role_at_least(own[ws], Role.ADMIN) and role_at_least(own[ws], role)
        for ws, role in theirs
    )


# Only a superuser hands out admin access and Django permissions.
PRIVILEGED_USER_FIELDS = {"is_staff", "is_superuser", "groups", "user_permissions"}


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
        return qs.filter(pk__in=admin_users(request.user).values("pk"))

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser:
            return fieldsets
        return [
            (
                name,
                {**opts, "fields": [f for f in opts["fields"] if f not in PRIVILEGED_USER_FIELDS]},
            )
            for name, opts in fieldsets
        ]

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or user_manageable(request.user, obj))

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or user_manageable(request.user, obj))

    def delete_queryset(self, request, queryset):
        # The bulk "delete selected" action checks no single row.
        if not all(user_manageable(request.user, u) for u in queryset):
            raise PermissionDenied
        super().delete_queryset(request, queryset)


# Groups carry Django permissions: a staff member who could edit the groups they are in
# could grant themself any permission.
if admin.site.is_registered(Group):
    admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin):
    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


# The audit log, read-only (the table refuses changes anyway), limited to the user's workspaces.
from accounts.admin_scoping import admin_workspace_ids as _audit_workspace_ids  # noqa: E402
from accounts.models import AuditEntry  # noqa: E402


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "workspace", "action", "actor_label", "object_type", "object_id"]
    list_filter = ["action", "object_type"]
    list_select_related = ["workspace", "actor_user", "actor_api_key"]
    readonly_fields = [f.name for f in AuditEntry._meta.fields]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(workspace_id__in=_audit_workspace_ids(request.user))
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Degradation)
class DegradationAdmin(admin.ModelAdmin):
    """What Herald served without (Redis down): read-only, as /healthz reports it."""

    list_display = ("kind", "count", "last_at", "last_error")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser
